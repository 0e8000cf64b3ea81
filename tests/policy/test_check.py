"""`cloudbalance check --base`: a stack-config change in a real Git repository."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.checks import check_change, is_stack_file
from cloudbalance.cli import main
from cloudbalance.config import Settings
from cloudbalance.models import Workload
from cloudbalance.store import Store
from tests.conftest import git as run

STACK = """\
# EU search service; cloudbalance edits only replicas.
config:
  aws:region: eu-west-1
  cloudbalance:workloads:
    search:
      placements:
        - {cloud: aws, region: eu-west-1, replicas: 4}
        - {cloud: gcp, region: europe-west1, replicas: 2}
"""

CONFIG = """\
version: 1
workloads:
  search:
    allowed: [aws:eu-west-1, gcp:europe-west1, azure:westeurope]
    min_locations: 2
    replica: {vcpus: 2, memory_gib: 8}
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_identity: Path) -> Path:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    root = tmp_path / "infra"
    (root / "search").mkdir(parents=True)
    (root / "search" / "Pulumi.yaml").write_text("name: search\nruntime: python\n")
    (root / "search" / "Pulumi.prod.yaml").write_text(STACK)
    (root / "cloudbalance.yaml").write_text(CONFIG)
    run(root, "init", "-q")
    run(root, "add", ".")
    run(root, "commit", "-q", "-m", "initial")
    run(root, "checkout", "-q", "-b", "change")
    return root


def edit(repo: Path, old: str, new: str, message: str = "hand edit") -> None:
    path = repo / "search" / "Pulumi.prod.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    run(repo, "commit", "-q", "-am", message)


def settings(repo: Path) -> Settings:
    from cloudbalance.config import load_config

    return load_config(repo / "cloudbalance.yaml")


def test_a_person_s_edit_violating_residency_is_denied(repo: Path) -> None:
    edit(
        repo,
        "{cloud: gcp, region: europe-west1, replicas: 2}",
        "{cloud: gcp, region: us-central1, replicas: 2}",
    )
    result = check_change(repo, base="main", settings=settings(repo))
    assert not result.passed
    assert result.report.deny_messages == [
        "residency: workload search may only run in aws:eu-west-1, gcp:europe-west1, "
        "azure:westeurope, but the change leaves replicas in gcp:us-central1"
    ]
    assert [(c["location"], c["before"], c["after"]) for c in result.changes] == [
        ("gcp:europe-west1", 2, 0),
        ("gcp:us-central1", 0, 2),
    ]


def test_an_allowed_edit_passes(repo: Path) -> None:
    edit(repo, "replicas: 2}", "replicas: 3}")
    result = check_change(repo, base="main", settings=settings(repo))
    assert result.passed
    assert result.report.denies == ()
    assert [f.path for f in result.files] == ["search/Pulumi.prod.yaml"]


def test_schema_error_in_the_head_fails_with_file_and_line(repo: Path) -> None:
    edit(repo, "replicas: 2}", "replicas: two}")
    result = check_change(repo, base="main", settings=settings(repo))
    assert not result.passed
    assert result.schema_errors == [
        "search/Pulumi.prod.yaml:8: config.cloudbalance:workloads.search.placements.1.replicas: "
        "'two' is not of type 'integer'"
    ]


def test_changes_outside_stack_files_are_ignored(repo: Path) -> None:
    (repo / "README.md").write_text("notes\n")
    run(repo, "add", "README.md")
    run(repo, "commit", "-q", "-m", "docs")
    result = check_change(repo, base="main", settings=settings(repo))
    assert result.passed
    assert result.files == ()
    assert "No placement changes." in result.to_markdown()


def test_the_working_copy_is_checked_with_worktree(repo: Path) -> None:
    path = repo / "search" / "Pulumi.prod.yaml"
    path.write_text(path.read_text().replace("replicas: 4}", "replicas: 0}"))
    result = check_change(repo, base="main", head=None, settings=settings(repo))
    assert result.head == "WORKTREE"
    assert [m.split(":")[0] for m in result.report.deny_messages] == ["min_locations"]


def _priced_store(path: Path) -> Store:
    day = datetime(2026, 11, 1)
    rows = []
    for region, provider, price in (("eu-west-1", "aws", 0.10), ("europe-west1", "gcp", 0.05)):
        rows.append(
            {
                "ProviderName": provider,
                "RegionId": region,
                "SkuId": f"{provider}-2x8",
                "vcpus": 2.0,
                "memory_gib": 8.0,
                "unit_price": price,
                "price_kind": "on_demand",
                "PricingUnit": "Hours",
                "BillingCurrency": "USD",
                "observed_at": day,
            }
        )
    store = Store(path)
    store.ingest_prices(pd.DataFrame(rows), source="test")
    return store


def test_markdown_summary_lists_moves_cost_and_policies(repo: Path, tmp_path: Path) -> None:
    edit(
        repo,
        "{cloud: aws, region: eu-west-1, replicas: 4}",
        "{cloud: aws, region: eu-west-1, replicas: 3}",
    )
    edit(
        repo,
        "{cloud: gcp, region: europe-west1, replicas: 2}",
        "{cloud: gcp, region: europe-west1, replicas: 3}",
        "second",
    )
    store = _priced_store(tmp_path / "store.duckdb")
    try:
        result = check_change(
            repo,
            base="main",
            settings=settings(repo),
            store=store,
            now=datetime(2026, 11, 23),
        )
    finally:
        store.close()
    merge_base = run(repo, "merge-base", "main", "HEAD")
    # One replica leaves aws (0.10 USD/h = 2.40/day), one joins gcp (0.05/h = 1.20/day):
    # -1.20 USD a day, over 30 days without a forecast.
    assert result.to_markdown() == (
        "## cloudbalance check: passed\n"
        "\n"
        f"Stack-config change from `{merge_base[:12]}` (merge base with `main`) to `HEAD`: "
        "1 stack file(s), 2 placement value(s) changed.\n"
        "\n"
        "### Moves\n"
        "\n"
        "| Workload | Location | Before | After | Change |\n"
        "|---|---|--:|--:|--:|\n"
        "| search | aws:eu-west-1 | 4 | 3 | -1 |\n"
        "| search | gcp:europe-west1 | 2 | 3 | +1 |\n"
        "\n"
        "### Cost impact\n"
        "\n"
        "-36.00 USD over 30 period(s) of 1D (prices observed up to 2026-11-01, 30 days).\n"
        "\n"
        "| Workload | Cost change (USD) | Saving vs not moving (USD) | Forecast peak |\n"
        "|---|--:|--:|--:|\n"
        "| search | -36.00 | +36.00 | - |\n"
        "\n"
        "### Policies\n"
        "\n"
        "**Policies**: 6 package(s) evaluated, 0 deny, 0 warn.\n"
    )


def test_check_command_exits_1_on_deny_and_writes_the_job_summary(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        repo,
        "{cloud: gcp, region: europe-west1, replicas: 2}",
        "{cloud: azure, region: eastus, replicas: 2}",
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.chdir(repo)
    code = main(["check", "--base", "main", "--config", str(repo / "cloudbalance.yaml")])
    out = capsys.readouterr().out
    assert code == 1
    assert "## cloudbalance check: failed" in out
    assert "| deny | `cloudbalance.starter.residency` |" in out
    assert summary.read_text() == out


def test_check_command_json_output_passes_with_exit_0(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo, "replicas: 2}", "replicas: 3}")
    monkeypatch.chdir(repo)
    code = main(["check", "--base", "main", "--format", "json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload["passed"] is True
    assert payload["changes"][0]["after"] == 3


def test_an_unknown_base_is_a_clear_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo)
    assert main(["check", "--base", "no-such-branch"]) == 1
    assert "git merge-base failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Pulumi.prod.yaml", True),
        ("stacks/service/Pulumi.dev.yml", True),
        ("stacks/service/Pulumi.yaml", False),
        ("docs/Pulumi.prod.yaml.md", False),
    ],
)
def test_stack_files_are_recognised_by_name(path: str, expected: bool) -> None:
    assert is_stack_file(path) is expected


def test_settings_without_workloads_still_check_schema_and_moves(repo: Path) -> None:
    edit(repo, "replicas: 2}", "replicas: 5}")
    result = check_change(repo, base="main", settings=Settings(workloads={"x": Workload("x")}))
    assert result.passed
    assert len(result.changes) == 1


def test_ci_template_runs_the_check_on_stack_config_pull_requests() -> None:
    from importlib import resources

    from ruamel.yaml import YAML

    text = resources.files("cloudbalance").joinpath("templates/ci/check-pr.yml").read_text("utf-8")
    workflow = YAML(typ="safe").load(text)
    assert "**/Pulumi.*.yaml" in workflow["on"]["pull_request"]["paths"]
    steps = workflow["jobs"]["check"]["steps"]
    commands = " ".join(step.get("run", "") for step in steps)
    assert 'cloudbalance check --base "origin/${{ github.base_ref }}"' in commands
    assert "--summary cloudbalance-check.md" in commands
    assert steps[0]["with"]["fetch-depth"] == 0


def test_summary_file_and_job_summary_both_get_the_markdown(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo, "replicas: 2}", "replicas: 3}")
    job = tmp_path / "job.md"
    mine = tmp_path / "mine.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(job))
    monkeypatch.chdir(repo)
    assert main(["check", "--base", "main", "--summary", str(mine)]) == 0
    out = capsys.readouterr().out
    assert job.read_text() == out
    assert mine.read_text() == out


def _forecast(ids: list[str], peak: float) -> pd.DataFrame:
    days = pd.date_range("2026-11-23", periods=3, freq="D")
    rows = [
        {
            "unique_id": uid,
            "ds": day,
            "yhat": peak - i,
            "yhat_lower": peak - i - 1,
            "yhat_upper": peak - i + 1,
            "model": "naive",
            "interval": 0.8,
        }
        for uid in ids
        for i, day in enumerate(days)
    ]
    return pd.DataFrame(rows)


def _shift(repo: Path) -> None:
    edit(
        repo,
        "{cloud: aws, region: eu-west-1, replicas: 4}",
        "{cloud: aws, region: eu-west-1, replicas: 3}",
    )


def test_forecast_peak_is_the_demand_series_of_prefixed_forecast_ids(
    repo: Path, tmp_path: Path
) -> None:
    """The forecast ids carry a ``demand:`` prefix: the peak column was always "-"."""
    _shift(repo)
    store = _priced_store(tmp_path / "store.duckdb")
    ids = ["demand:search", "cost:search", "cloud:aws"]
    store.save_forecast(_forecast(ids, 7.0), run_id="f1")
    try:
        result = check_change(
            repo, base="main", settings=settings(repo), store=store, now=datetime(2026, 11, 23)
        )
    finally:
        store.close()
    assert result.cost is not None
    assert result.cost.forecast_peak == {"search": 7.0}
    assert "| search | -7.20 | +0.00 | 7.0 |" in result.to_markdown()


def test_forecast_peak_reads_the_kind_column_when_forecasts_carry_it(
    repo: Path, tmp_path: Path
) -> None:
    _shift(repo)
    store = _priced_store(tmp_path / "store.duckdb")
    frame = _forecast(["search", "search", "aws"], 5.0)
    frame["kind"] = ["demand"] * 3 + ["cost"] * 3 + ["cloud_cost"] * 3
    frame.loc[frame["kind"] == "cost", "yhat"] = 99.0  # a cost series of the same name
    store.save_forecast(frame, run_id="f2")
    try:
        result = check_change(
            repo, base="main", settings=settings(repo), store=store, now=datetime(2026, 11, 23)
        )
    finally:
        store.close()
    assert result.cost is not None
    assert result.cost.forecast_peak == {"search": 5.0}


def test_check_shows_the_plan_s_expected_saving_as_its_commit_does(
    repo: Path, tmp_path: Path
) -> None:
    from cloudbalance.gitops import apply, parse_trailers
    from cloudbalance.models import Location, Move, Placement, Plan

    aws, gcp = Location("aws", "eu-west-1"), Location("gcp", "europe-west1")
    plan = Plan(
        plan_id="search-1",
        created_at=datetime(2026, 11, 22),
        period_start=datetime(2026, 11, 23),
        period="1D",
        horizon=14,
        current=(Placement("search", aws, 4), Placement("search", gcp, 2)),
        schedule=((Placement("search", aws, 3), Placement("search", gcp, 3)),) * 14,
        moves=(
            Move("search", aws, 4, 3, saving=16.8, confidence=0.9),
            Move("search", gcp, 2, 3, saving=16.8, confidence=0.9),
        ),
        expected_cost=1000.0,
        baseline_cost=1033.6049,
        confidence=0.9,
    )
    apply(plan, repo, mode="commit")
    store = _priced_store(tmp_path / "store.duckdb")
    store.save_plan(plan)
    try:
        result = check_change(
            repo, base="main", settings=settings(repo), store=store, now=datetime(2026, 11, 23)
        )
    finally:
        store.close()
    trailer = parse_trailers(run(repo, "log", "-1", "--format=%B"))["Cloudbalance-Saving"]
    assert trailer == "33.60 USD"
    assert result.cost is not None
    assert result.cost.plans == {"search-1": plan.saving}
    assert f"Plan search-1 expects to save {trailer} over its horizon." in result.to_markdown()
