from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import SchemaError
from cloudbalance.schema import (
    ACCURACY,
    COSTS,
    FORECAST,
    PRICES,
    SERIES,
    validate_costs,
    validate_forecast,
    validate_prices,
    validate_series,
)
from tests.conftest import focus_rows


def issues_of(excinfo: pytest.ExceptionInfo[SchemaError]) -> list[tuple[int | None, str | None]]:
    return [(i.row, i.column) for i in excinfo.value.issues]


def test_series_are_coerced_sorted_and_naive_utc() -> None:
    frame = pd.DataFrame(
        {"unique_id": ["b", "a"], "ds": ["2025-01-01T02:00:00+02:00", "2025-01-01"], "y": ["1", 2]}
    )
    out = validate_series(frame)
    assert list(out["unique_id"]) == ["a", "b"]
    assert out["ds"].dt.tz is None
    assert out.loc[1, "ds"] == pd.Timestamp("2025-01-01 00:00")  # converted to UTC
    assert out["y"].dtype == np.float64


def test_series_name_file_row_and_column_of_each_problem() -> None:
    frame = pd.DataFrame(
        {
            "unique_id": ["a", "a", None],
            "ds": ["2025-01-01", "not a day", "2025-01-03"],
            "y": ["1", "2", "x"],
        }
    )
    with pytest.raises(SchemaError) as excinfo:
        validate_series(frame, file="mine.csv")
    assert set(issues_of(excinfo)) == {(2, "ds"), (3, "y"), (3, "unique_id")}
    assert "mine.csv, row 2, column 'ds': is not a date/time (got 'not a day')" in str(
        excinfo.value
    )


def test_series_report_duplicated_timestamps() -> None:
    frame = pd.DataFrame({"unique_id": ["a", "a"], "ds": ["2025-01-01", "2025-01-01"], "y": [1, 2]})
    with pytest.raises(SchemaError, match="duplicated"):
        validate_series(frame)


def test_missing_required_column_is_named() -> None:
    with pytest.raises(SchemaError, match="column 'y': required column is missing"):
        validate_series(pd.DataFrame({"unique_id": ["a"], "ds": ["2025-01-01"]}))


def test_not_a_frame_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="expected a pandas DataFrame"):
        SERIES.validate([1, 2, 3])  # type: ignore[arg-type]


def test_infinite_numbers_are_rejected() -> None:
    frame = pd.DataFrame({"unique_id": ["a"], "ds": ["2025-01-01"], "y": [np.inf]})
    with pytest.raises(SchemaError, match="is infinite"):
        validate_series(frame)


def test_costs_accept_credits_zero_costs_and_null_strings() -> None:
    frame = focus_rows(3)
    frame.loc[0, "BilledCost"] = "-5.5"
    frame.loc[1, "BilledCost"] = "0"
    frame.loc[2, "RegionId"] = "NULL"
    out = validate_costs(frame)
    assert list(out["BilledCost"]) == [-5.5, 0.0, 2.304]
    assert pd.isna(out.loc[2, "RegionId"])
    assert list(out.columns[: len(COSTS.names)]) == COSTS.names


def test_costs_tags_become_compact_json_from_text_or_dicts() -> None:
    frame = focus_rows(2)
    frame["Tags"] = [{"workload": "web", "team": "a"}, '{"workload": "api"}']
    out = validate_costs(frame)
    assert [json.loads(t)["workload"] for t in out["Tags"]] == ["web", "api"]


def test_costs_tags_that_are_not_json_objects_are_errors() -> None:
    frame = focus_rows(2)
    frame["Tags"] = ["{not json", "[1, 2]"]
    with pytest.raises(SchemaError) as excinfo:
        validate_costs(frame, file="x.csv")
    assert issues_of(excinfo) == [(1, "Tags"), (2, "Tags")]


def test_costs_periods_must_end_after_they_start() -> None:
    frame = focus_rows(1)
    frame["ChargePeriodEnd"] = frame["ChargePeriodStart"]
    with pytest.raises(SchemaError, match="ends before it starts"):
        validate_costs(frame)


def test_costs_unparseable_numbers_are_named() -> None:
    frame = focus_rows(2)
    frame.loc[1, "EffectiveCost"] = "12,5"
    with pytest.raises(SchemaError) as excinfo:
        validate_costs(frame, file="e.csv")
    assert issues_of(excinfo) == [(2, "EffectiveCost")]


def test_forecast_bounds_must_bracket_the_point() -> None:
    frame = pd.DataFrame(
        {
            "unique_id": ["a"],
            "ds": ["2025-01-01"],
            "yhat": [5.0],
            "yhat_lower": [6.0],
            "yhat_upper": [7.0],
            "model": ["prophet"],
            "interval": [0.8],
        }
    )
    with pytest.raises(SchemaError, match="outside"):
        validate_forecast(frame)
    frame["yhat_lower"] = 4.0
    frame["interval"] = 1.5
    with pytest.raises(SchemaError, match="must be in"):
        validate_forecast(frame)
    frame["interval"] = 0.8
    assert list(validate_forecast(frame).columns[: len(FORECAST.names)]) == FORECAST.names


def prices_frame(**overrides: object) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "ProviderName": ["aws"],
            "RegionId": ["us-east-1"],
            "SkuId": ["m6i.large"],
            "vcpus": [2],
            "memory_gib": [8],
            "unit_price": [0.096],
            "price_kind": ["spot"],
            "PricingUnit": ["Hours"],
            "BillingCurrency": ["USD"],
            "observed_at": ["2025-01-01"],
        }
    )
    for name, value in overrides.items():
        frame[name] = value
    return frame


def test_prices_kinds_and_signs_are_checked() -> None:
    assert len(validate_prices(prices_frame())) == 1
    with pytest.raises(SchemaError, match="must be one of on_demand, spot, committed"):
        validate_prices(prices_frame(price_kind="reserved"))
    with pytest.raises(SchemaError, match="must not be negative"):
        validate_prices(prices_frame(unit_price=-1.0))


def test_optional_columns_are_added_and_extra_columns_kept() -> None:
    frame = prices_frame(note="x")
    out = PRICES.validate(frame)
    assert "note" in out.columns
    accuracy = ACCURACY.validate(
        pd.DataFrame(
            {
                "unique_id": ["a"],
                "model": ["naive"],
                "mase": [None],
                "smape": [0.1],
                "interval": [0.8],
                "coverage": [0.7],
                "coverage_calibrated": [0.8],
                "windows": [3],
                "confidence": [0.6],
            }
        )
    )
    assert accuracy["reason"].isna().all()


def test_validation_does_not_modify_the_input() -> None:
    frame = focus_rows(2)
    before = frame.copy()
    validate_costs(frame)
    pd.testing.assert_frame_equal(frame, before)


def test_tags_nested_past_the_json_parser_are_refused_not_a_crash() -> None:
    from cloudbalance.schema import validate_costs
    from tests.conftest import focus_rows

    frame = focus_rows(2)
    frame.loc[1, "Tags"] = "[" * 100_000 + "]" * 100_000
    with pytest.raises(SchemaError, match="row 2, column 'Tags': is not a JSON object"):
        validate_costs(frame)
