from __future__ import annotations

import math

import pandas as pd
import pytest

from cloudbalance.cli import main
from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast import AnomalyFeedback, Label, anomaly_events, detect_anomalies
from cloudbalance.forecast.feedback import parse_anomaly_id
from cloudbalance.store import Store


def _with_incidents(make_series) -> pd.DataFrame:
    series = make_series(n=150, slope=0, weekly=0, noise=1, seed=3)
    series.loc[40, "y"] += 50  # labelled below
    series.loc[40 + 56, "y"] += 60  # same weekday, similar size: the same pattern
    series.loc[40 + 59, "y"] += 55  # another weekday and day of month: a new pattern
    return series


def test_labels_parse_like_aws_cost_anomaly_detection() -> None:
    assert Label.parse("planned") is Label.PLANNED_ACTIVITY
    assert Label.parse("Yes") is Label.YES
    assert Label.parse("no") is Label.NO
    with pytest.raises(ForecastError, match="yes, no or planned"):
        Label.parse("maybe")
    with pytest.raises(ForecastError, match="not an anomaly id"):
        parse_anomaly_id("web")
    with pytest.raises(ForecastError, match="not a time"):
        parse_anomaly_id("web@soon")


def test_feedback_is_stored_with_history_and_suppresses_the_same_pattern(
    tmp_path, make_series
) -> None:
    series = _with_incidents(make_series)
    first = anomaly_events(detect_anomalies(series))
    assert first["anomaly"].sum() == 3
    labelled = first[first["start"] == series.loc[40, "ds"]].iloc[0]
    with Store(tmp_path / "s.duckdb") as store:
        store.add_anomaly_feedback(AnomalyFeedback(labelled["anomaly_id"], Label.YES))
        store.add_anomaly_feedback(
            AnomalyFeedback(
                labelled["anomaly_id"], Label.PLANNED_ACTIVITY, impact=labelled["impact"]
            )
        )
        feedback = store.anomaly_feedback()
    assert feedback["label"].tolist() == ["YES", "PLANNED_ACTIVITY"]  # history kept
    events = anomaly_events(detect_anomalies(series, feedback=feedback)).set_index("start")
    assert events.loc[series.loc[40, "ds"], "feedback"] == "PLANNED_ACTIVITY"
    assert not events.loc[series.loc[40, "ds"], "anomaly"]
    assert not events.loc[series.loc[96, "ds"], "anomaly"]  # same pattern
    assert events.loc[series.loc[99, "ds"], "anomaly"]  # not the same pattern


def test_a_yes_label_keeps_flagging_and_a_bigger_repeat_is_flagged_again(make_series) -> None:
    series = _with_incidents(make_series)
    series.loc[96, "y"] += 200  # the repeat is now far bigger than the labelled incident
    first = anomaly_events(detect_anomalies(series)).set_index("start")
    aid = first.loc[series.loc[40, "ds"], "anomaly_id"]
    impact = float(first.loc[series.loc[40, "ds"], "impact"])
    feedback = pd.DataFrame(
        {
            "anomaly_id": [aid],
            "unique_id": ["s"],
            "start": [series.loc[40, "ds"]],
            "label": ["NO"],
            "impact": [impact],
            "note": [""],
            "labelled_at": [pd.Timestamp("2025-01-01")],
        }
    )
    events = anomaly_events(detect_anomalies(series, feedback=feedback)).set_index("start")
    assert events.loc[series.loc[96, "ds"], "anomaly"]
    feedback["label"] = "YES"
    events = anomaly_events(detect_anomalies(series, feedback=feedback)).set_index("start")
    assert events.loc[series.loc[40, "ds"], "anomaly"]
    assert events.loc[series.loc[40, "ds"], "feedback"] == "YES"


def test_cli_feedback_then_anomalies_respects_it(tmp_path, make_series, capsys) -> None:
    src, out, store = tmp_path / "s.csv", tmp_path / "a.csv", tmp_path / "s.duckdb"
    _with_incidents(make_series).to_csv(src, index=False)
    assert main(["anomalies", "-i", str(src), "-o", str(out), "--store", str(store)]) == 0
    assert not store.exists()  # reading feedback never creates a store
    aid = "s@2024-02-10"
    code = main(["anomalies", "feedback", aid, "--label", "planned", "--store", str(store)])
    assert code == 0
    assert main(["anomalies", "-i", str(src), "-o", str(out), "--store", str(store)]) == 0
    result = pd.read_csv(out)
    assert not result.loc[result["anomaly_id"] == aid, "anomaly"].any()
    assert "expected by feedback" in capsys.readouterr().err
    code = main(["anomalies", "feedback", aid, "--label", "maybe", "--store", str(store)])
    assert code == 1


def test_feedback_impact_defaults_to_any_size() -> None:
    fb = AnomalyFeedback("web@2025-01-01", Label.NO)
    assert fb.unique_id == "web"
    assert math.isnan(fb.impact)
