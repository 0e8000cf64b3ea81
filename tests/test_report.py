from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from cloudbalance.models import Location, Move, Placement, Plan
from cloudbalance.report import (
    ChartGroup,
    ReportData,
    render_html,
    render_json,
    render_markdown,
    report_schema,
    write_reports,
)


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
    assert "No spike predicted" in render_html(empty)
    assert "No plan was made" in render_markdown(empty)
    jsonschema.validate(render_json(empty), report_schema())


def test_the_same_data_gives_the_same_page() -> None:
    assert render_html(data()) == render_html(data())
