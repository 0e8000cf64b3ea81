from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from cloudbalance.budgets import SpendBudget
from cloudbalance.config import ForecastSettings, Settings, StoreSettings
from cloudbalance.models import Location, Move, Placement, Plan, RunRecord
from cloudbalance.report import (
    ChartGroup,
    ReportData,
    _band_lower,
    build_report,
    render_html,
    render_json,
    render_markdown,
    report_schema,
    write_reports,
)
from cloudbalance.series import Forecasts
from cloudbalance.store import Store


def data(with_plan: bool = True) -> ReportData:
    ds = pd.date_range("2025-01-01", periods=60, freq="D")
    history = pd.DataFrame({"unique_id": "web", "ds": ds, "y": np.linspace(10, 20, 60)})
    fds = pd.date_range("2025-03-02", periods=7, freq="D")
    forecast = pd.DataFrame(
        {
            "unique_id": "web",
            "ds": fds,
            "yhat": 21.0,
            "yhat_lower": 19.0,
            "yhat_upper": 30.0,
            "model": "prophet",
            "interval": 0.8,
            "spike": [False] * 5 + [True] * 2,
            "spike_score": 0.7,
        }
    )
    anomalies = history.assign(anomaly=history.index == 30, score=0.0)
    spikes = pd.DataFrame(
        [
            {
                "unique_id": "web",
                "start": fds[5],
                "end": fds[6],
                "peak_ds": fds[6],
                "expected": 28.0,
                "normal_level": 20.0,
                "threshold": 25.0,
                "ratio": 1.4,
                "probability": 0.7,
                "periods": 2,
                "basis": "relative",
            }
        ]
    )
    accuracy = pd.DataFrame(
        [
            {
                "unique_id": "web",
                "model": "prophet",
                "mase": 0.8,
                "smape": 0.1,
                "interval": 0.8,
                "coverage": 0.7,
                "coverage_calibrated": 0.8,
                "windows": 3.0,
                "confidence": 0.85,
                "reason": "lowest MASE",
            }
        ]
    )
    here, there = Location("aws", "us-east-1"), Location("gcp", "us-central1")
    plan = Plan(
        plan_id="p1",
        created_at=datetime(2025, 3, 1),
        period_start=datetime(2025, 3, 2),
        period="1D",
        horizon=7,
        current=(Placement("web", here, 4),),
        schedule=((Placement("web", here, 2), Placement("web", there, 2)),),
        moves=(
            Move(
                "web",
                there,
                0,
                2,
                saving=12.5,
                confidence=0.85,
                reason="aws spot forecast +38% | gcp cheaper",
            ),
        ),
        expected_cost=80.0,
        baseline_cost=92.5,
        confidence=0.85,
    )
    return ReportData(
        title="test <report>",
        generated_at=datetime(2025, 3, 1, 6, 0),
        groups=[ChartGroup("Cost per workload", "USD/day", history, forecast, anomalies)],
        accuracy=accuracy,
        spikes=spikes,
        plan=plan if with_plan else None,
        steps=[{"step": "forecast", "status": "ok", "detail": "1 series"}],
        notes=["aws provider failed: token expired"],
    )


def test_html_is_self_contained_with_one_chart_per_series() -> None:
    page = render_html(data())
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 2  # the series and the plan's moves
    for external in ("<script", "<link", "src=", "@import", "url(http", 'href="http'):
        assert external not in page, external
    assert "test &lt;report&gt;" in page  # escaped
    assert "aws spot forecast +38% | gcp cheaper" in page
    assert "spike 1.4x, p=70%" in page


def test_markdown_has_the_spikes_the_plan_and_the_accuracy() -> None:
    text = render_markdown(data())
    assert "| web | 2025-03-07 | 2025-03-08 | 2025-03-08 | 28.00 | 20.00 | 1.40x | 70% |" in text
    assert "saving **12.50 USD**" in text
    assert "aws spot forecast +38% \\| gcp cheaper" in text  # pipes escaped in tables
    assert "| web | prophet | 0.80 | 0.10 | 70% | 80% | 85% |" in text
    assert "> aws provider failed: token expired" in text


def test_top_anomalies_show_whether_each_was_a_spike_or_a_shift() -> None:
    from cloudbalance.forecast import detect_anomalies
    from cloudbalance.report import _top_anomalies

    history = data().groups[0].history.copy()
    history["y"] = 15.0 + np.random.default_rng(0).normal(0, 0.2, len(history))
    history.loc[30, "y"] = 40.0
    top = _top_anomalies(detect_anomalies(history).assign(kind="cost"))
    assert top[["anomaly_kind", "actual"]].values.tolist() == [["spike", 40.0]]
    report = replace(data(), top_anomalies=top)
    assert "| series | anomaly | day | cost | expected | gap |" in render_markdown(report)
    assert "| web (workload cost) | spike | 2025-01-31 | 40.00 |" in render_markdown(report)
    document = json.loads(json.dumps(render_json(report), default=str))
    jsonschema.validate(document, report_schema())
    assert document["top_anomalies"][0]["anomaly_kind"] == "spike"


def test_json_follows_its_schema_with_and_without_a_plan() -> None:
    for with_plan in (True, False):
        document = json.loads(json.dumps(render_json(data(with_plan)), default=str))
        jsonschema.validate(document, report_schema())
    assert render_json(data(False))["plan"] is None


def test_json_schema_rejects_a_broken_document() -> None:
    document = json.loads(json.dumps(render_json(data()), default=str))
    document["spikes"][0]["probability"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, report_schema())


def test_write_reports_writes_three_files(tmp_path: Path) -> None:
    paths = write_reports(data(), tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == ["report.html", "report.json", "report.md"]
    assert all(p.stat().st_size > 200 for p in paths.values())


def test_empty_report_still_renders() -> None:
    empty = ReportData(title="nothing", generated_at=datetime(2025, 1, 1))
    assert "No plan was made" in render_markdown(empty)
    jsonschema.validate(render_json(empty), report_schema())


def test_no_forecast_is_not_no_spike() -> None:
    """Without a forecast the page says so, instead of a comforting "no spike predicted"."""
    empty = ReportData(title="nothing", generated_at=datetime(2025, 1, 1))
    for page in (render_html(empty), render_markdown(empty)):
        assert "No forecast yet" in page
        assert "No spike predicted" not in page
    assert render_json(empty)["forecast_made"] is False
    calm = ReportData(
        title="calm", generated_at=datetime(2025, 1, 1), forecast_made=True, horizon=14
    )
    for page in (render_html(calm), render_markdown(calm)):
        assert "No spike predicted over the horizon (14 periods)." in page
        assert "No forecast yet" not in page
    assert "no forecast yet" in render_html(empty).split("Predicted spikes", 1)[1][:200]


def test_demand_spikes_are_not_shaded_on_cost_charts() -> None:
    base = data(with_plan=False)
    group = base.groups[0]
    cost_group = ChartGroup(group.title, group.unit, group.history, group.forecast, kind="cost")
    demand_spike = base.spikes.assign(kind="demand")
    page = render_html(replace(base, groups=[cost_group], spikes=demand_spike))
    assert "spike 1.4x" not in page  # the cost chart of "web" is not shaded
    assert "web (demand)" in page  # the spike is still listed
    cost_spike = base.spikes.assign(kind="cost")
    assert "spike 1.4x" in render_html(replace(base, groups=[cost_group], spikes=cost_spike))


def test_the_spike_tile_counts_every_spike_the_table_lists() -> None:
    base = data(with_plan=False)
    price = base.spikes.assign(unique_id="aws:us-east-1:m5:spot", kind="price")
    both = replace(base, spikes=pd.concat([base.spikes.assign(kind="cost"), price]))
    page = render_html(both)
    tile = page.split("data-kpi='spikes'", 1)[1].split("</div>", 1)[0]
    assert "<b>2</b>" in tile
    assert "aws:us-east-1:m5:spot (price)" in page
    assert render_json(both)["spike_count"] == 2
    assert len(render_json(both)["spikes"]) == 2


def test_money_bands_never_go_below_zero() -> None:
    frame = pd.DataFrame({"yhat_lower": [-5.0, 2.0], "yhat": [1.0, 3.0]})
    assert list(_band_lower(frame, money=True)) == [0.0, 2.0]
    assert list(_band_lower(frame, money=False)) == [-5.0, 2.0]


def test_the_same_data_gives_the_same_page() -> None:
    assert render_html(data()) == render_html(data())


# ---------------------------------------------------------------------------------- from a store


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    """40 days: checkout on aws, web on gcp (half off list), 200 of support nobody owns."""
    from tests.conftest import focus_rows

    settings = Settings(
        store=StoreSettings(path=str(tmp_path / "store.duckdb")),
        budgets=(SpendBudget(500.0, cloud="gcp"),),
        forecast=ForecastSettings(horizon=7),
    )
    aws = focus_rows(days=40)
    gcp = focus_rows(
        days=40,
        ProviderName="Google Cloud",
        BillingAccountId="g1",
        RegionId="us-central1",
        Tags=json.dumps({"workload": "web"}),
        EffectiveCost="5",
        BilledCost="5",
        ListCost="10",
    )
    support = focus_rows(
        days=2,
        ServiceName="Support",
        ChargeCategory="Purchase",
        Tags=None,
        ResourceId=None,
        EffectiveCost="100",
        BilledCost="100",
        ListCost="100",
    )
    with Store(settings.store_path) as store:
        store.ingest_costs(pd.concat([aws, gcp, support]), source="test")
        yield settings, store


def test_report_numbers_come_from_the_store(small_store: tuple[Settings, Store]) -> None:
    settings, store = small_store
    day = pd.Timestamp("2025-02-10")
    spikes = pd.DataFrame(
        [
            {
                "unique_id": uid,
                "start": day,
                "end": day,
                "peak_ds": day,
                "expected": 9.0,
                "normal_level": 5.0,
                "threshold": 6.0,
                "ratio": 1.8,
                "probability": 0.9,
                "periods": 1,
                "basis": "relative",
            }
            for uid in ("web", "gcp:us-central1:n2:spot")
        ]
    ).assign(kind=["demand", "price"])
    forecast = pd.DataFrame(
        {
            "kind": "cloud_cost",
            "unique_id": "gcp",
            "ds": pd.date_range(day, periods=7, freq="D"),
            "yhat": 5.0,
            "yhat_lower": -1.0,
            "yhat_upper": 11.0,
            "model": "naive",
            "interval": 0.8,
        }
    )
    store.record(
        RunRecord(
            "r1",
            "verify",
            "ok",
            datetime(2025, 2, 10),
            datetime(2025, 2, 10),
            {"plan_id": "p9"},
            {
                "plan_id": "p9",
                "status": "kept",
                "start": "2025-02-01T00:00:00",
                "end": "2025-02-08T00:00:00",
                "periods": 7,
                "currency": "USD",
                "expected": 20.0,
                "saving": 25.0,
                "realised": 95.0,
                "counterfactual": 120.0,
                "excess": -25.0,
            },
        )
    )
    report = build_report(
        settings,
        store,
        now=datetime(2026, 11, 29),
        forecasts=Forecasts(forecast=forecast, accuracy=pd.DataFrame(), spikes=spikes),
    )
    assert report.data_as_of == datetime(2025, 2, 10)
    assert report.title == "cloudbalance report, data as of 2025-02-10"  # not the run date
    orphan = store.con.execute(
        "SELECT sum(EffectiveCost) FROM costs WHERE x_Workload IS NULL"
    ).fetchone()
    assert float(report.unattributed["amount"].sum()) == pytest.approx(orphan[0]) == 200.0
    locations = report.locations.set_index(["workload", "location"])["amount"]
    # the last 30 days of data, ending at "data as of"
    assert locations[("web", "gcp:us-central1")] == pytest.approx(5.0 * 30)
    assert locations[("checkout", "aws:us-east-1")] == pytest.approx(2.304 * 30)
    gcp = report.commitments.set_index("cloud").loc["gcp"]
    assert gcp["coverage"] == pytest.approx(0.5)
    assert report.spike_count == 2
    assert set(report.spikes["kind"]) == {"demand", "price"}
    assert (report.spend_forecast["yhat_lower"] < 0).any()  # the data keep what the model said
    [budget] = report.budgets
    assert budget.actual == pytest.approx(5.0 * 9)  # February 1..9
    [verified] = report.verified
    assert verified["realised"] == 95.0
    page = render_html(report)
    for anchor in ("spend", "budgets", "savings", "unattributed", "locations", "commitments"):
        assert f"id='{anchor}'" in page
    assert "25.00 USD" in page  # realised saving: not moving 120 - realised 95
    assert "200.00 USD in the store carries no workload" in page
    assert "Data as of 2025-02-10 00:00 UTC" in page
    markdown = render_markdown(report)
    assert (
        "| p9 | kept | 2025-02-01 to 2025-02-08 | 7 | 20.00 | 95.00 | 120.00 | 25.00 |" in markdown
    )
    document = json.loads(json.dumps(render_json(report), default=str))
    jsonschema.validate(document, report_schema())
    assert document["data_as_of"] == "2025-02-10T00:00:00"


def test_report_of_an_empty_store_says_what_is_missing(tmp_path: Path) -> None:
    settings = Settings(store=StoreSettings(path=str(tmp_path / "s.duckdb")))
    with Store(settings.store_path) as store:
        report = build_report(settings, store, now=datetime(2026, 1, 1))
    page = render_html(report)
    assert "No cost data in the store yet." in page
    assert "No forecast yet" in page
    jsonschema.validate(json.loads(json.dumps(render_json(report), default=str)), report_schema())
