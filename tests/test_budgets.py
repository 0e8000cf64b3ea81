from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.budgets import SpendBudget, budget_status, evaluate_budgets, planner_budgets
from cloudbalance.cli import main
from cloudbalance.config import ForecastSettings, Settings, load_config
from cloudbalance.exceptions import ConfigError
from cloudbalance.notify import budget_events
from cloudbalance.store import Store
from tests.conftest import focus_rows


def daily_costs(days: int = 45, *, start: str = "2026-09-17") -> pd.DataFrame:
    """100/day on aws (workload web, tag team=a), 50/day on gcp (no workload)."""
    ds = pd.date_range(start, periods=days, freq="D")
    rows = []
    for day in ds:
        rows.append(("aws", "AWS", "111", "web", {"team": "a"}, 100.0, day))
        rows.append(("gcp", "Google Cloud", "222", None, None, 50.0, day))
    frame = pd.DataFrame(
        rows,
        columns=["x_Cloud", "ProviderName", "BillingAccountId", "x_Workload", "Tags", "cost", "d"],
    )
    return pd.DataFrame(
        {
            "ChargePeriodStart": frame["d"],
            "ChargePeriodEnd": frame["d"] + pd.Timedelta(days=1),
            "ProviderName": frame["ProviderName"],
            "BillingAccountId": frame["BillingAccountId"],
            "SubAccountId": None,
            "x_Cloud": frame["x_Cloud"],
            "x_Workload": frame["x_Workload"],
            "Tags": frame["Tags"].map(lambda t: json.dumps(t) if t else None),
            "EffectiveCost": frame["cost"],
            "BillingCurrency": "USD",
        }
    )


def flat_forecast(series: str, start: str, days: int, level: float) -> pd.DataFrame:
    """``series`` as ``kind:unique_id`` (``cloud_cost:aws``)."""
    kind, _, uid = series.partition(":")
    ds = pd.date_range(start, periods=days, freq="D")
    return pd.DataFrame(
        {
            "kind": kind,
            "unique_id": uid,
            "ds": ds,
            "yhat": level,
            "yhat_lower": level - 10,
            "yhat_upper": level + 10,
            "model": "naive",
            "interval": 0.8,
        }
    )


def test_periods_month_quarter_year_and_fixed_window() -> None:
    when = datetime(2026, 11, 17, 6)
    assert SpendBudget(1.0).window(when) == (datetime(2026, 11, 1), datetime(2026, 12, 1))
    assert SpendBudget(1.0, period="quarter").window(when) == (
        datetime(2026, 10, 1),
        datetime(2027, 1, 1),
    )
    assert SpendBudget(1.0, period="month").window(datetime(2026, 12, 3)) == (
        datetime(2026, 12, 1),
        datetime(2027, 1, 1),
    )
    assert SpendBudget(1.0, period="year").window(when)[1] == datetime(2027, 1, 1)
    fixed = SpendBudget(1.0, start=date(2026, 11, 10), end=date(2026, 11, 20))
    assert fixed.window(when) == (datetime(2026, 11, 10), datetime(2026, 11, 21))


def test_month_to_date_plus_forecast_gives_the_projection() -> None:
    costs = daily_costs()  # data to 2026-10-31 inclusive: as of 2026-11-01 00:00
    costs = costs[costs["ChargePeriodStart"] < "2026-10-16"]  # as of 10-16: 15 days of October
    forecast = flat_forecast("cloud_cost:aws", "2026-10-16", 16, 120.0)
    [status] = budget_status([SpendBudget(3000.0, cloud="aws")], costs, forecast)
    assert status.as_of == datetime(2026, 10, 16)
    assert (status.start, status.end) == (datetime(2026, 10, 1), datetime(2026, 11, 1))
    assert status.actual == pytest.approx(1500.0)
    assert status.projected == pytest.approx(1500.0 + 16 * 120.0)
    assert status.lower == pytest.approx(1500.0 + 16 * 110.0)
    assert status.upper == pytest.approx(1500.0 + 16 * 130.0)
    assert status.crossed == (0.5,)
    p = status.probabilities
    assert p[0.5] == 1.0
    assert p[0.75] > 0.99  # 3420 >> 2250
    assert p[1.0] == pytest.approx(0.9996, abs=1e-3)  # 420 above, sigma 320 / (2 z80)
    assert "forecast (16 of 16" in status.basis
    # beyond the forecast's horizon: its last week's level
    short = flat_forecast("cloud_cost:aws", "2026-10-16", 7, 120.0)
    [extended] = budget_status([SpendBudget(3000.0, cloud="aws")], costs, short)
    assert extended.projected == pytest.approx(status.projected)
    assert "the rest at its last week's level" in extended.basis


def test_scopes_without_a_forecast_use_the_run_rate() -> None:
    costs = daily_costs()
    costs = costs[costs["ChargePeriodStart"] < "2026-10-16"]
    by_tag, by_account, unscoped_gcp = budget_status(
        [
            SpendBudget(5000.0, tag="team=a"),
            SpendBudget(5000.0, account="222"),
            SpendBudget(5000.0, cloud="gcp"),
        ],
        costs,
        pd.DataFrame(),
    )
    assert by_tag.actual == pytest.approx(1500.0)
    assert by_tag.projected == pytest.approx(1500.0 + 16 * 100.0)
    assert by_tag.lower == by_tag.upper == pytest.approx(3100.0)  # no spread in a flat history
    assert "run rate" in by_tag.basis
    assert by_account.actual == pytest.approx(750.0)
    assert unscoped_gcp.projected == pytest.approx(50.0 * 31)


def test_probabilities_grow_with_the_threshold_crossed() -> None:
    costs = daily_costs()
    costs = costs[costs["ChargePeriodStart"] < "2026-10-16"]
    forecast = flat_forecast("cost:web", "2026-10-16", 16, 100.0)
    [status] = budget_status([SpendBudget(3200.0, workload="web")], costs, forecast)
    probabilities = [status.probabilities[t] for t in (0.5, 0.75, 0.9, 1.0)]
    assert probabilities == sorted(probabilities, reverse=True)
    assert status.probabilities[1.0] < 0.5 < status.probabilities[0.9]
    [event] = budget_events([status])  # crossed 0.5 is below 75%: only 0.9 forecast
    assert event.threshold == 0.9
    assert event.crossed is False


def test_planner_reads_per_cloud_budgets_pro_rata() -> None:
    settings = Settings(
        forecast=ForecastSettings(horizon=14),
        budgets=(
            SpendBudget(3000.0, cloud="aws"),
            SpendBudget(2000.0, cloud="aws", period="month"),
            SpendBudget(900.0, workload="web"),  # for people only
            SpendBudget(9000.0, cloud="GCP", period="quarter"),
        ),
    )
    caps = {b.cloud: b.amount for b in planner_budgets(settings, now=datetime(2026, 11, 5))}
    assert caps == {
        "aws": pytest.approx(2000.0 * 14 / 30),
        "gcp": pytest.approx(9000.0 * 14 / 92),
    }
    hourly = Settings(forecast=ForecastSettings(horizon=48, freq="h"), budgets=settings.budgets)
    caps = {b.cloud: b.amount for b in planner_budgets(hourly, now=datetime(2026, 11, 5))}
    assert caps["aws"] == pytest.approx(2000.0 * 2 / 30)


def test_config_budgets_one_setting(tmp_path: Path) -> None:
    path = tmp_path / "cloudbalance.yaml"
    path.write_text(
        "version: 1\nbudgets:\n  - {cloud: aws, amount: 1000}\n"
        "  - {tag: 'team=a', amount: 500, period: quarter, thresholds: [0.8, 1.0]}\n"
    )
    settings = load_config(path)
    assert settings.budgets[1].thresholds == (0.8, 1.0)
    assert settings.budgets[1].period == "quarter"
    path.write_text("version: 1\nplan:\n  budgets:\n    - {cloud: aws, amount: 1000}\n")
    with pytest.raises(ConfigError, match="moved to the top-level `budgets:`") as err:
        load_config(path)
    assert err.value.line == 3
    path.write_text("version: 1\nbudgets:\n  - {cloud: aws, amount: 0}\n")
    with pytest.raises(ConfigError, match="amount must be a positive number"):
        load_config(path)
    path.write_text("version: 1\nbudgets:\n  - {tag: team, amount: 5}\n")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path)


def test_budgets_command_reads_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cloudbalance.yaml"
    config.write_text(
        "version: 1\nstore: {path: store.duckdb}\nbudgets:\n  - {cloud: aws, amount: 3000}\n"
    )
    settings = load_config(config)
    with Store(settings.store_path) as store:
        store.ingest_costs(focus_rows(days=40), source="test")
        statuses = evaluate_budgets(settings, store)
    assert main(["budgets", "-c", str(config), "-f", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["actual"] == pytest.approx(round(statuses[0].actual, 2))
    assert printed[0]["as_of"] == statuses[0].as_of.isoformat()
    empty = tmp_path / "none"
    empty.mkdir()
    (empty / "cloudbalance.yaml").write_text("version: 1\n")
    assert main(["budgets", "-c", str(empty / "cloudbalance.yaml")]) == 1
