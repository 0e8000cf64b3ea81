from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.cli import main
from cloudbalance.exceptions import CredentialsError
from cloudbalance.provider import ProviderCheck, register_provider, unregister_provider
from cloudbalance.schema import PRICES, empty_frame
from tests.conftest import focus_rows


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cloudbalance.yaml").write_text(
        "providers:\n  fake: {}\n  broken: {}\n"
        "workloads:\n  checkout:\n    match: {tags: [checkout]}\n"
    )
    focus_rows(3).to_csv(tmp_path / "export.csv", index=False)
    return tmp_path


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("cloudbalance ")
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("ingest", "costs", "sync", "config", "providers", "demo"):
        assert command in out


def test_ingest_then_costs_as_csv_and_json(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "ingest", "export.csv")
    assert code == 0
    assert "loaded 3 rows" in out
    code, out, _ = run(capsys, "costs", "--by", "workload,day", "--format", "csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "workload,day,currency,amount,lines"
    assert len(lines) == 4
    code, out, _ = run(capsys, "costs", "--by", "cloud", "--format", "json")
    assert json.loads(out)[0]["cloud"] == "aws"
    code, out, _ = run(capsys, "costs", "--by", "cloud")
    assert "6.91" in out


def test_user_errors_exit_1_with_one_line_and_no_traceback(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "ingest", "missing.csv")
    assert code == 1
    assert err.strip().splitlines() == ["error: missing.csv: no such file or folder"]
    assert "Traceback" not in err


def test_bad_data_exits_1_naming_file_row_and_column(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = focus_rows(2)
    frame.loc[1, "BilledCost"] = "lots"
    frame.to_csv(project / "bad.csv", index=False)
    code, _, err = run(capsys, "ingest", "bad.csv")
    assert code == 1
    assert "bad.csv, row 2, column 'BilledCost': is not a number (got 'lots')" in err


def test_config_check_reports_the_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "cloudbalance.yaml").write_text("version: 1\nworkloads:\n  x:\n    colour: red\n")
    code, _, err = run(capsys, "config", "check")
    assert code == 1
    assert "cloudbalance.yaml:4: workloads.x.colour: unknown key" in err


def test_config_init_refuses_to_overwrite(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "config", "init", ".")
    assert code == 1
    assert "--force" in err
    code, _, _ = run(capsys, "config", "init", "fresh")
    assert code == 0
    code, out, _ = run(capsys, "config", "check", "fresh/cloudbalance.yaml")
    assert code == 0
    assert out.startswith("ok ")


def test_internal_errors_exit_2_with_a_traceback(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cloudbalance.store

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("bug")

    assert run(capsys, "ingest", "export.csv")[0] == 0
    monkeypatch.setattr(cloudbalance.store.Store, "summary", boom)
    code, _, err = run(capsys, "costs")
    assert code == 2
    assert "Traceback" in err
    assert "this is a bug" in err


class FakeProvider:
    name = "fake"
    revision_days = 1

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        frame = focus_rows(3)
        return frame.assign(x_Source="fake:api")

    def prices(self, locations: object = None) -> pd.DataFrame:
        return empty_frame(PRICES)

    def check(self) -> ProviderCheck:
        return ProviderCheck(self.name, ok=True, detail="profile default")


class BrokenProvider(FakeProvider):
    name = "broken"

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        raise CredentialsError("the token expired", provider="broken")

    def check(self) -> ProviderCheck:
        return ProviderCheck(self.name, ok=False, detail="no credentials", missing="a token")


@pytest.fixture
def plugins() -> None:
    register_provider("fake", FakeProvider)
    register_provider("broken", BrokenProvider)
    yield
    unregister_provider("fake")
    unregister_provider("broken")


def test_sync_keeps_the_providers_that_worked(
    project: Path, plugins: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sync", "--since", "2025-01-01")
    assert code == 1
    assert "ok     fake: 3 cost rows" in out
    assert "failed broken: provider 'broken': the token expired" in out
    code, out, _ = run(capsys, "costs", "--by", "provider", "--format", "csv")
    assert "AWS,USD" in out


def test_providers_check_prints_one_line_each(
    project: Path, plugins: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "providers", "check")
    assert code == 1
    assert out.splitlines() == [
        "ok      fake: profile default",
        "missing broken: no credentials (needs: a token)",
    ]


def test_providers_list_shows_the_builtin_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "providers", "list")
    assert code == 0
    assert "focus" in out
    assert "demo" in out


def test_sync_runs_every_day_and_says_what_data_it_stands_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    focus_rows(3).to_csv(tmp_path / "exports" / "a.csv", index=False)
    (tmp_path / "cloudbalance.yaml").write_text(
        "providers:\n  focus: {paths: exports}\nsync: {lookback_days: 3650}\n"
    )
    for _ in range(2):
        code, out, err = run(capsys, "sync")
        assert code == 0, err
        assert "data as of aws 2025-01-03" in out
        assert "warning aws: data ends 2025-01-03" in out  # the sample is from 2025: stale
    code, out, err = run(capsys, "sync", "--since", "2025-01-01")
    assert code == 0, err
