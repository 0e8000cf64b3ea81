"""The step layer: each stage from settings + store, the same for ``run``, commands and Python."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance import steps
from cloudbalance.cli import main
from cloudbalance.config import load_config
from cloudbalance.run import run
from cloudbalance.series import KINDS, PRICE_MODEL, Forecasts, complete_until
from cloudbalance.store import Store

CONFIG = """\
providers:
  demo: {days: 120}
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
forecast: {horizon: 7, model: seasonal_naive}
git:
  repo: infra
  mode: pr
  remote: upstream
  base: release
  github_repo: acme/infra
  api_url: https://ghe.example.com/api/v3
"""

NOW = datetime(2026, 11, 1, 6, 0)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose store holds the demo provider's data (synced once for the module)."""
    folder = tmp_path_factory.mktemp("steps")
    (folder / "cloudbalance.yaml").write_text(CONFIG)
    settings = load_config(folder / "cloudbalance.yaml")
    with Store.from_settings(settings) as store:
        result = steps.sync(steps.Context(settings, store, NOW))
    assert result.status == "ok", result.detail
    return folder


def _copy(synced: Path, tmp_path: Path) -> Path:
    (tmp_path / "cloudbalance.yaml").write_text(CONFIG)
    store = tmp_path / ".cloudbalance"
    store.mkdir()
    (store / "store.duckdb").write_bytes((synced / ".cloudbalance/store.duckdb").read_bytes())
    return tmp_path


def test_forecasts_carry_their_kind_as_data_not_as_an_id_prefix(synced: Path) -> None:
    settings = load_config(synced / "cloudbalance.yaml")
    with Store.from_settings(settings) as store:
        made = steps.forecast(steps.Context(settings, store, NOW))
        kept = Forecasts.from_store(store)
    assert made.status == "ok"
    assert made.forecasts is not None
    assert set(made.forecasts.forecast["kind"]) == {"demand", "cost", "cloud_cost", "price"}
    assert set(kept.forecast["kind"]) == set(made.forecasts.forecast["kind"])
    assert set(kept.of("demand")["unique_id"]) == {"checkout", "etl"}
    assert set(kept.of("cloud_cost")["unique_id"]) == {"aws", "azure", "gcp"}
    assert not kept.forecast["unique_id"].str.contains(":").any() or set(
        kept.forecast.loc[kept.forecast["unique_id"].str.contains(":"), "kind"]
    ) == {"price"}  # only price ids are cloud:region:sku:kind, by their own name
    assert "kind" not in kept.of("demand").columns
    assert set(kept.accuracy["kind"]) <= set(KINDS)
    # Prices are forecast by the spot model (what the planner backtest chose), not persisted.
    assert set(kept.of("price")["model"]) == {PRICE_MODEL}


def test_an_unknown_kind_is_refused() -> None:
    empty = Forecasts(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    with pytest.raises(ValueError, match="unknown series kind 'demnd'"):
        empty.of("demnd")
    assert empty.empty


def test_one_cloud_a_day_behind_never_fails_the_plan(synced: Path, tmp_path: Path) -> None:
    folder = _copy(synced, tmp_path)
    settings = load_config(folder / "cloudbalance.yaml")
    with Store.from_settings(settings) as store:
        last = store.data_as_of()
        store.con.execute(
            "DELETE FROM costs WHERE x_Cloud = 'gcp' AND ChargePeriodStart >= ?",
            [last["gcp"] - pd.Timedelta(days=1)],
        )
        ctx = steps.Context(settings, store, NOW)
        made = steps.forecast(ctx)
        planned = steps.plan(ctx, made.forecasts, costs=made.costs)
    assert made.status == "ok"
    assert made.data_as_of == last["gcp"] - pd.Timedelta(days=1)
    assert any(w.startswith("gcp: data ends") for w in made.warnings)
    assert planned.status == "ok", planned.detail
    assert planned.plan is not None
    assert planned.plan.period_start == made.data_as_of


def test_complete_until_is_the_earliest_clouds_last_period() -> None:
    costs = pd.DataFrame(
        {
            "ChargePeriodStart": pd.to_datetime(
                ["2026-10-30", "2026-10-31", "2026-10-30", "2026-10-31", "2026-10-30"]
            ),
            "ChargePeriodEnd": pd.to_datetime(
                ["2026-10-31", "2026-11-01", "2026-10-31", "2026-11-01", "2026-10-31"]
            ),
            "x_Cloud": ["aws", "aws", "azure", "azure", "gcp"],
            "ProviderName": ["AWS", "AWS", "Microsoft", "Microsoft", "Google Cloud"],
        }
    )
    edge, notes = complete_until(costs)
    assert edge == datetime(2026, 10, 31)
    assert len(notes) == 1
    assert notes[0].startswith("gcp: data ends 2026-10-30")
    edge, notes = complete_until(costs[costs["x_Cloud"] != "gcp"])
    assert (edge, notes) == (datetime(2026, 11, 1), ())


def test_a_plan_that_starts_long_before_the_run_says_so(synced: Path, tmp_path: Path) -> None:
    folder = _copy(synced, tmp_path)
    settings = load_config(folder / "cloudbalance.yaml")
    late = datetime(2026, 11, 29, 6, 0)
    with Store.from_settings(settings) as store:
        ctx = steps.Context(settings, store, late)
        made = steps.forecast(ctx)
        planned = steps.plan(ctx, made.forecasts)
        stale = steps.sync(ctx)
    assert any("before 2026-11-29" in w for w in planned.warnings)
    assert made.data_as_of is not None
    assert made.data_as_of < late
    # the demo provider's data ends four weeks before the run's day: the sync says so
    assert "aws: data ends 2026-10-31, older than 3 day(s) before 2026-11-29" in "".join(
        stale.warnings
    )


def test_git_target_is_built_once_from_the_settings(synced: Path) -> None:
    settings = load_config(synced / "cloudbalance.yaml")
    target = steps.git_target(settings)
    assert target.repo == synced / "infra"
    assert target.remote == "upstream"
    assert target.base == "release"
    assert target.forge.repository == "acme/infra"
    assert target.forge.api_url == "https://ghe.example.com/api/v3"
    assert target.mode == "pr"
    assert target.pushes() is False  # no such repository, so no remote to push to
    other = steps.git_target(settings, remote="origin", api_url="https://gitlab.example.com")
    assert (other.remote, other.forge.api_url) == ("origin", "https://gitlab.example.com")
    assert other.forge.kind == "gitlab"


def test_the_report_command_and_the_run_share_one_step(
    synced: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy(synced, tmp_path)
    settings = load_config(folder / "cloudbalance.yaml")
    ran = run(settings, now=NOW, skip=["sync", "apply", "verify"])
    assert ran.exit_code == 0, ran.steps
    monkeypatch.chdir(folder)
    assert main(["report", "-o", str(folder / "again")]) == 0
    first = (folder / "reports" / "report.md").read_text()
    again = (folder / "again" / "report.md").read_text()
    assert "data as of" in first
    # the same data, forecast and plan give the same sections (the run table aside)

    def sections(text: str) -> dict[str, str]:
        parts = (part.partition("\n") for part in text.split("\n## ")[1:])
        return {title: body for title, _, body in parts if title != "Run"}

    assert sections(first) == sections(again)
    assert "Predicted spikes" in sections(first)


def test_run_takes_the_day_it_runs_for(
    synced: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _copy(synced, tmp_path)
    monkeypatch.chdir(folder)
    code = main(["run", "--no-sync", "--skip", "apply,verify,report", "--as-of", "2026-11-01"])
    assert code == 0, capsys.readouterr()
    with Store(folder / ".cloudbalance/store.duckdb") as store:
        logged = store.runs()
    assert set(logged["inputs"].str.contains("2026-11-01T00:00:00")) == {True}
    assert main(["run", "--as-of", "tomorrow"]) == 1
    assert "--as-of: expected a date like 2025-01-31, got 'tomorrow'" in capsys.readouterr().err
