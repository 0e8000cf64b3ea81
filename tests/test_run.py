from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.cli import main
from cloudbalance.config import load_config
from cloudbalance.exceptions import CloudBalanceError, CredentialsError
from cloudbalance.provider import register_provider, unregister_provider
from cloudbalance.run import EXIT_PARTIAL, run
from cloudbalance.store import Store

CONFIG = """\
providers:
  demo: {days: 150}
  broken: {}
workloads:
  checkout:
    match: {tags: [checkout]}
    replica: {vcpus: 2, memory_gib: 8}
    allowed: [aws:us-east-1, gcp:us-central1, azure:eastus]
    max_share: 0.8
    min_locations: 2
  etl:
    match: {tags: [etl]}
    replica: {vcpus: 2, memory_gib: 8}
    allowed: [aws:us-east-1, gcp:us-central1]
    spot: true
forecast: {horizon: 7, model: seasonal_naive}
"""


class BrokenProvider:
    name = "broken"
    revision_days = 0

    def __init__(self) -> None:
        pass

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        raise CredentialsError("the token expired", provider="broken")

    def prices(self, locations: object = None) -> pd.DataFrame:
        raise AssertionError("not reached")

    def check(self) -> object:
        raise AssertionError("not reached")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cloudbalance.yaml").write_text(CONFIG)
    register_provider("broken", BrokenProvider)
    yield tmp_path
    unregister_provider("broken")


NOW = datetime(2026, 11, 1, 6, 0)


def test_a_failing_provider_does_not_lose_the_others(project: Path) -> None:
    settings = load_config(project / "cloudbalance.yaml")
    result = run(settings, now=NOW)
    status = {s.step: s for s in result.steps}
    assert status["sync"].status == "failed"
    assert "broken failed: provider 'broken': the token expired" in status["sync"].detail
    assert "demo: " in status["sync"].detail
    assert status["forecast"].status == "ok"
    assert status["plan"].status == "ok"
    assert status["apply"].status == "skipped"  # no Git repository configured here
    assert status["report"].status == "ok"
    assert result.exit_code == EXIT_PARTIAL
    report = json.loads(result.reports["json"].read_text())
    assert report["steps"][0] == {
        "step": "sync",
        "status": "failed",
        "detail": status["sync"].detail,
    }
    with Store(settings.store_path) as store:
        assert len(store.costs()) > 0
        logged = store.runs()
    assert set(logged["step"]) >= {"sync", "forecast", "plan", "report"}
    assert "failed" in set(
        logged[logged["step"] == "sync"]["outputs"].map(
            lambda o: "failed" if '"ok": false' in o else "ok"
        )
    )


def test_running_twice_on_the_same_day_changes_nothing(project: Path) -> None:
    settings = load_config(project / "cloudbalance.yaml")
    first = run(settings, now=NOW, skip=["report"])
    with Store(settings.store_path) as store:
        rows = store.con.execute("SELECT count(*) FROM forecasts").fetchone()
        plans = store.plans()
        costs = len(store.costs())
    second = run(settings, now=NOW, skip=["report"])
    with Store(settings.store_path) as store:
        assert store.con.execute("SELECT count(*) FROM forecasts").fetchone() == rows
        assert len(store.plans()) == len(plans)
        assert len(store.costs()) == costs
    assert first.plan is not None
    assert second.plan is not None
    assert first.plan.plan_id == second.plan.plan_id


def test_unknown_steps_are_user_errors(project: Path) -> None:
    settings = load_config(project / "cloudbalance.yaml")
    with pytest.raises(CloudBalanceError, match="unknown step"):
        run(settings, skip=["dance"])


def test_the_cli_exit_code_says_partial_failure(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(project)
    code = main(["run", "--skip", "plan", "--skip", "report"])
    out = capsys.readouterr().out
    assert code == EXIT_PARTIAL
    assert "failed  sync" in out
    assert "skipped plan      asked to skip" in out


def test_schedule_init_writes_three_schedules_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ruamel.yaml import YAML

    assert main(["schedule", "init", str(tmp_path), "--cron", "5 4 * * 1-5"]) == 0
    workflow = YAML(typ="safe").load((tmp_path / ".github/workflows/cloudbalance.yml").read_text())
    assert workflow["on"]["schedule"] == [{"cron": "5 4 * * 1-5"}]
    assert "cloudbalance run" in json.dumps(workflow["jobs"])
    job = YAML(typ="safe").load((tmp_path / "deploy/cloudbalance-cronjob.yaml").read_text())
    assert job["kind"] == "CronJob"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert (tmp_path / "cloudbalance.crontab").read_text().count("5 4 * * 1-5") == 1
    capsys.readouterr()
    assert main(["schedule", "init", str(tmp_path)]) == 1
    assert "not overwriting" in capsys.readouterr().err
    assert main(["schedule", "init", str(tmp_path / "x"), "--cron", "daily"]) == 1
