from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudbalance.cli import main


def _write_series(path: Path, *, ids: tuple[str, ...] = ("web", "batch"), n: int = 120) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for k, uid in enumerate(ids):
        t = np.arange(n)
        y = 100 + 10 * k + 8 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1, n)
        ds = pd.date_range("2025-01-01", periods=n, freq="D")
        rows.append(pd.DataFrame({"unique_id": uid, "ds": ds.strftime("%Y-%m-%d"), "y": y}))
    frame = pd.concat(rows, ignore_index=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def test_forecast_csv_writes_the_documented_columns(tmp_path, capsys) -> None:
    src, out = tmp_path / "costs.csv", tmp_path / "forecast.csv"
    _write_series(src)
    acc, spikes = tmp_path / "accuracy.csv", tmp_path / "spikes.csv"
    code = main(
        [
            "forecast",
            "--input",
            str(src),
            "--horizon",
            "7",
            "--output",
            str(out),
            "--windows",
            "2",
            "--jobs",
            "1",
            "--accuracy",
            str(acc),
            "--spikes",
            str(spikes),
        ]
    )
    assert code == 0
    fc = pd.read_csv(out)
    for col in (
        "unique_id",
        "ds",
        "yhat",
        "yhat_lower",
        "yhat_upper",
        "model",
        "spike",
        "spike_score",
    ):
        assert col in fc.columns
    assert fc.groupby("unique_id").size().to_dict() == {"batch": 7, "web": 7}
    assert set(pd.read_csv(acc)["unique_id"]) == {"web", "batch"}
    assert spikes.exists()
    assert "forecast 2 series" in capsys.readouterr().err


def test_parquet_in_and_out_and_duplicates_are_reported(tmp_path, capsys) -> None:
    src, out = tmp_path / "costs.parquet", tmp_path / "out" / "forecast.parquet"
    _write_series(src, ids=("web",))
    frame = pd.read_parquet(src)
    pd.concat([frame, frame.iloc[[3, 4]]]).to_parquet(src, index=False)
    code = main(
        ["forecast", "-i", str(src), "-n", "5", "-o", str(out), "--windows", "1", "--jobs", "1"]
    )
    assert code == 0
    assert len(pd.read_parquet(out)) == 5
    err = capsys.readouterr().err
    assert "2 duplicated timestamps were combined with sum" in err


def test_bad_value_exits_1_naming_file_row_and_column(tmp_path, capsys) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("unique_id,ds,y\nweb,2025-01-01,1.5\nweb,2025-01-02,twelve\n")
    code = main(["forecast", "-i", str(src), "-n", "3", "-o", str(tmp_path / "f.csv")])
    assert code == 1
    err = capsys.readouterr().err
    assert "bad.csv" in err
    assert "row 2" in err
    assert "'y'" in err
    assert "Traceback" not in err


def test_missing_input_file_exits_1(tmp_path, capsys) -> None:
    code = main(
        ["forecast", "-i", str(tmp_path / "nope.csv"), "-n", "3", "-o", str(tmp_path / "f.csv")]
    )
    assert code == 1
    assert "file not found" in capsys.readouterr().err


def test_short_series_fail_unless_skipped(tmp_path, capsys) -> None:
    src = tmp_path / "s.csv"
    _write_series(src, ids=("web",))
    with src.open("a") as fh:
        fh.write("tiny,2025-01-01,3\ntiny,2025-01-02,4\n")
    out = tmp_path / "f.csv"
    assert main(["forecast", "-i", str(src), "-n", "3", "-o", str(out), "--jobs", "1"]) == 1
    assert "'tiny'" in capsys.readouterr().err
    code = main(
        [
            "forecast",
            "-i",
            str(src),
            "-n",
            "3",
            "-o",
            str(out),
            "--jobs",
            "1",
            "--windows",
            "1",
            "--skip-short",
        ]
    )
    assert code == 0
    assert "skipped" in capsys.readouterr().err
    assert set(pd.read_csv(out)["unique_id"]) == {"web"}


@pytest.mark.parametrize("flag", ["--spike-threshold", "--spike-budget"])
def test_absolute_and_budget_spike_rules_flag_periods_above(tmp_path, flag) -> None:
    src, out = tmp_path / "s.csv", tmp_path / "f.csv"
    _write_series(src, ids=("web",))
    code = main(
        [
            "forecast",
            "-i",
            str(src),
            "-n",
            "7",
            "-o",
            str(out),
            "--jobs",
            "1",
            "--windows",
            "1",
            flag,
            "100",
        ]
    )
    assert code == 0
    fc = pd.read_csv(out)
    assert fc.loc[fc["yhat"] > 106, "spike"].all()
    assert not fc.loc[fc["yhat"] < 94, "spike"].any()


def test_anomalies_command_writes_flags_and_scores(tmp_path, capsys) -> None:
    src, out = tmp_path / "s.csv", tmp_path / "a.csv"
    _write_series(src, ids=("web",))
    frame = pd.read_csv(src)
    frame.loc[50, "y"] = 900.0
    frame.to_csv(src, index=False)
    assert main(["anomalies", "--input", str(src), "--output", str(out)]) == 0
    result = pd.read_csv(out)
    assert list(result.columns[:5]) == ["unique_id", "ds", "y", "anomaly", "score"]
    assert result.loc[result["anomaly"], "ds"].tolist() == [frame.loc[50, "ds"]]
    assert "1 anomaly (1 point(s))" in capsys.readouterr().err


def test_anomalies_command_shows_each_incidents_kind(tmp_path, capsys) -> None:
    src, out, events = tmp_path / "s.csv", tmp_path / "a.csv", tmp_path / "e.parquet"
    _write_series(src, ids=("web",))
    frame = pd.read_csv(src)
    frame.loc[50, "y"] = 900.0
    frame.to_csv(src, index=False)
    args = ["anomalies", "-i", str(src), "-o", str(out), "--events", str(events)]
    assert main(args) == 0
    result = pd.read_csv(out)
    assert result.loc[result["anomaly"], "anomaly_kind"].tolist() == ["spike"]
    assert pd.read_parquet(events)["anomaly_kind"].tolist() == ["spike"]
    assert f"anomaly: web@{frame.loc[50, 'ds']}: spike, impact +" in capsys.readouterr().err


def test_unknown_output_type_is_a_user_error(tmp_path, capsys) -> None:
    src = tmp_path / "s.csv"
    _write_series(src, ids=("web",))
    code = main(["anomalies", "-i", str(src), "-o", str(tmp_path / "a.xlsx")])
    assert code == 1
    assert "unknown output type" in capsys.readouterr().err


def test_without_input_the_store_cost_series_are_forecast(tmp_path, monkeypatch, capsys) -> None:
    from cloudbalance.store import Store

    monkeypatch.chdir(tmp_path)
    days = pd.date_range("2025-01-01", periods=60, freq="D")
    rows = []
    for k, workload in enumerate(("checkout", "search")):
        cost = 50 + 10 * k + 5 * np.sin(2 * np.pi * np.arange(60) / 7)
        rows.append(
            pd.DataFrame(
                {
                    "ChargePeriodStart": days,
                    "ChargePeriodEnd": days + pd.Timedelta(days=1),
                    "ProviderName": "AWS",
                    "BillingAccountId": "111111111111",
                    "ServiceName": "Amazon Elastic Compute Cloud",
                    "ChargeCategory": "Usage",
                    "BilledCost": cost,
                    "EffectiveCost": cost,
                    "BillingCurrency": "USD",
                    "x_Workload": workload,
                }
            )
        )
    store_path = tmp_path / "store.duckdb"
    with Store(store_path) as store:
        store.ingest_costs(pd.concat(rows, ignore_index=True), source="test.csv")
    out = tmp_path / "fc.csv"
    code = main(
        [
            "forecast",
            "-n",
            "7",
            "-o",
            str(out),
            "--store",
            str(store_path),
            "--windows",
            "1",
            "--jobs",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert set(pd.read_csv(out)["unique_id"]) == {"checkout", "search"}
    assert "from the store" in capsys.readouterr().err
