from __future__ import annotations

import pandas as pd
import pytest

from cloudbalance.demo.sample import LOCATIONS, SAMPLE_END, generate_sample
from cloudbalance.schema import validate_costs, validate_prices


@pytest.fixture(scope="module")
def sample():  # type: ignore[no-untyped-def]
    return generate_sample()


def test_the_sample_is_deterministic(sample) -> None:  # type: ignore[no-untyped-def]
    again = generate_sample()
    pd.testing.assert_frame_equal(sample.costs, again.costs)
    pd.testing.assert_frame_equal(sample.prices, again.prices)


def test_two_years_of_valid_focus_costs_on_three_clouds(sample) -> None:  # type: ignore[no-untyped-def]
    costs = validate_costs(sample.costs)
    assert costs["ChargePeriodStart"].max() == pd.Timestamp(SAMPLE_END)
    assert costs["ChargePeriodStart"].dt.normalize().nunique() == 730
    assert set(costs["ProviderName"]) == {"Amazon Web Services", "Microsoft", "Google Cloud"}
    assert (costs["BilledCost"] < 0).any(), "credits"
    assert (costs["EffectiveCost"] == 0).any(), "zero-cost lines"


def test_demand_has_weekly_and_holiday_structure(sample) -> None:  # type: ignore[no-untyped-def]
    checkout = sample.demand[sample.demand["unique_id"] == "checkout"].set_index("ds")["y"]
    weekday = checkout[checkout.index.day_of_week < 5].mean()
    weekend = checkout[checkout.index.day_of_week >= 5].mean()
    assert weekday > weekend * 1.2
    black_friday = checkout.loc["2025-11-28"]
    assert black_friday > checkout.loc["2025-11-01":"2025-11-20"].mean() * 1.4


def test_spot_prices_move_and_spike(sample) -> None:  # type: ignore[no-untyped-def]
    prices = validate_prices(sample.prices)
    assert len(prices) == len(LOCATIONS) * 3 * 730
    spot = prices[prices["price_kind"] == "spot"].pivot(
        index="observed_at", columns="RegionId", values="unit_price"
    )
    od = prices[prices["price_kind"] == "on_demand"].pivot(
        index="observed_at", columns="RegionId", values="unit_price"
    )
    ratio = spot / od
    assert ratio.median().between(0.2, 0.6).all()
    assert (ratio.max() > 0.8).all(), "every pool spikes towards on-demand at least once"
