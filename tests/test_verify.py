"""Closed-loop verification of applied plans and reverts, on the bundled sample and real Git."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.demo.sample import SAMPLE_END, Sample, generate_sample
from cloudbalance.gitops import Forge, PullRequest, apply
from cloudbalance.models import Location, Move, Placement, Plan, Workload
from cloudbalance.store import Store
from cloudbalance.verify import (
    HealthResult,
    propose_reverts,
    run_health_check,
    verify_applied,
    verify_plan,
)
from tests.conftest import git

AWS = Location("aws", "us-east-1")
GCP = Location("gcp", "us-central1")
END = datetime(SAMPLE_END.year, SAMPLE_END.month, SAMPLE_END.day)
START = END - timedelta(days=13)  # the plan's first period; 14 periods end with the sample
NOW = END + timedelta(days=1)

STACK = """\
# Nightly batch fleet; cloudbalance edits only replicas.
config:
  cloudbalance:workloads:
    etl:
      spot: true
      placements:
        - {cloud: aws, region: us-east-1, replicas: 8}
        - {cloud: gcp, region: us-central1, replicas: 2}
"""


@pytest.fixture(scope="module")
def sample() -> Sample:
    return generate_sample(days=60)


def etl_plan(plan_id: str = "etl-move-1", *, saving: float = 5.0) -> Plan:
    """Move 4 etl replicas from aws:us-east-1 to gcp:us-central1 for 14 days."""
    current = (Placement("etl", AWS, 8), Placement("etl", GCP, 2))
    after = (Placement("etl", AWS, 4), Placement("etl", GCP, 6))
    return Plan(
        plan_id=plan_id,
        created_at=START - timedelta(hours=6),
        period_start=START,
        period="1D",
        horizon=14,
        current=current,
        schedule=(after,) * 14,
        moves=(
            Move("etl", AWS, 8, 4, saving=saving, confidence=0.9, reason="gcp spot cheaper"),
            Move("etl", GCP, 2, 6, saving=saving, confidence=0.9, reason="gcp spot cheaper"),
        ),
        expected_cost=100.0,
        baseline_cost=100.0 + 2 * saving,
        confidence=0.9,
    )


def prices_turned(sample: Sample, factor: float) -> pd.DataFrame:
    """The sample's prices, with gcp:us-central1 scaled by ``factor`` from the plan's start."""
    prices = sample.prices.copy()
    hit = (
        (prices["ProviderName"] == "gcp")
        & (prices["RegionId"] == "us-central1")
        & (prices["observed_at"] >= START)
    )
    prices.loc[hit, "unit_price"] = prices.loc[hit, "unit_price"] * factor
    return prices


# ---------------------------------------------------------------------------------- numbers


def test_realised_and_not_moving_are_priced_from_the_same_observed_prices(sample: Sample) -> None:
    rows = [
        {
            "ProviderName": cloud,
            "RegionId": region,
            "SkuId": "std",
            "vcpus": 2.0,
            "memory_gib": 8.0,
            "unit_price": price,
            "price_kind": "on_demand",
            "PricingUnit": "Hours",
            "BillingCurrency": "USD",
            "observed_at": START,
        }
        for cloud, region, price in (("aws", "us-east-1", 0.10), ("gcp", "us-central1", 0.05))
    ]
    plan = etl_plan(saving=1.0)
    shape = Workload("etl", vcpus=2, memory_gib=8)
    result = verify_plan(
        plan,
        prices=pd.DataFrame(rows),
        costs=sample.costs,
        now=START + timedelta(days=3),
        workloads=[shape],
    )
    # 3 days: after = 4 aws x 2.40 + 6 gcp x 1.20 = 16.80/day; before = 8 x 2.40 + 2 x 1.20
    # = 21.60/day; expected: the claimed 2.00 saving pro rata (3/14), the plan has no problem.
    assert result.status == "kept"
    assert result.periods == 3
    assert result.realised == pytest.approx(50.40)
    assert result.counterfactual == pytest.approx(64.80)
    assert result.excess == pytest.approx(-14.40)
    assert result.saving == pytest.approx(14.40)
    assert result.expected == pytest.approx(2.0 * 3 / 14)
    assert (result.start, result.end) == (START, START + timedelta(days=3))


def test_a_plan_whose_periods_have_not_elapsed_is_pending(sample: Sample) -> None:
    result = verify_plan(
        etl_plan(), prices=sample.prices, costs=sample.costs, now=START + timedelta(hours=20)
    )
    assert result.status == "pending"
    assert result.periods == 0


def test_no_observed_price_leaves_the_plan_unpriced(sample: Sample) -> None:
    empty = sample.prices.iloc[0:0]
    result = verify_plan(etl_plan(), prices=empty, costs=sample.costs, now=NOW, threshold=1.0)
    assert result.status == "unpriced"
    assert not result.should_revert


def test_prices_turning_against_the_plan_call_for_a_revert(sample: Sample) -> None:
    result = verify_plan(
        etl_plan(),
        prices=prices_turned(sample, 3.0),
        costs=sample.costs,
        now=NOW,
        workloads=sample.workloads,
        threshold=5.0,
    )
    assert result.status == "revert"
    assert result.periods == 14
    assert result.excess > 5.0
    assert "above the rollback threshold of 5.00 USD" in result.reasons[0]


def test_a_good_plan_is_kept(sample: Sample) -> None:
    result = verify_plan(
        etl_plan(),
        prices=prices_turned(sample, 0.5),
        costs=sample.costs,
        now=NOW,
        workloads=sample.workloads,
        threshold=5.0,
    )
    assert result.status == "kept"
    assert result.excess < 0


def test_without_a_threshold_cost_never_triggers_a_revert(sample: Sample) -> None:
    result = verify_plan(etl_plan(), prices=prices_turned(sample, 3.0), costs=sample.costs, now=NOW)
    assert result.status == "kept"
    assert result.excess > 0


def test_a_failing_health_check_calls_for_a_revert_with_its_output(sample: Sample) -> None:
    command = f"{sys.executable} -c \"import sys; print('5xx on {{locations}}'); sys.exit(3)\""
    result = verify_plan(
        etl_plan(),
        prices=prices_turned(sample, 0.5),
        costs=sample.costs,
        now=NOW,
        health_check=command,
    )
    assert result.status == "revert"
    assert result.health == (
        HealthResult("etl", False, 3, "5xx on aws:us-east-1,gcp:us-central1\n"),
    )
    assert "health check failed for etl (exit 3)" in result.reasons[-1]
    assert "5xx on aws:us-east-1,gcp:us-central1" in result.evidence()


def test_a_health_check_gets_the_workload_in_its_environment() -> None:
    check = "import os, sys; sys.exit(os.environ['CLOUDBALANCE_WORKLOAD'] != 'etl')"
    command = f'{sys.executable} -c "{check}"'
    assert run_health_check(command, plan=etl_plan(), workload="etl", locations=[GCP]).ok
    missing = run_health_check(
        "no-such-command-xyz", plan=etl_plan(), workload="etl", locations=[GCP]
    )
    assert not missing.ok
    assert missing.output == "command not found: no-such-command-xyz"


# ---------------------------------------------------------------------------------- git


@pytest.fixture
def infra(tmp_path: Path, git_identity: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    root = tmp_path / "infra"
    (root / "batch").mkdir(parents=True)
    (root / "batch" / "Pulumi.yaml").write_text("name: batch\nruntime: python\n")
    (root / "batch" / "Pulumi.prod.yaml").write_text(STACK)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial")
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "-u", "origin", "main")
    return root


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store(tmp_path / "store.duckdb")
    yield opened  # type: ignore[misc]
    opened.close()


def applied(infra: Path, store: Store, plan: Plan, prices: pd.DataFrame, sample: Sample) -> None:
    apply(plan, infra, mode="commit")
    store.save_plan(plan)
    store.ingest_prices(prices, source="sample")
    store.ingest_costs(sample.costs, source="sample")


def stack_text(infra: Path) -> str:
    return (infra / "batch" / "Pulumi.prod.yaml").read_text()


def test_a_plan_turned_bad_is_reverted_once_through_git(
    infra: Path, store: Store, sample: Sample
) -> None:
    plan = etl_plan()
    applied(infra, store, plan, prices_turned(sample, 3.0), sample)
    assert "replicas: 6}" in stack_text(infra)

    verifications = verify_applied(
        infra, store, now=NOW, workloads=sample.workloads, threshold=5.0, run_id="run-1"
    )
    assert [(v.plan_id, v.status) for v in verifications] == [("etl-move-1", "revert")]
    outcomes = propose_reverts(
        verifications, infra, mode="commit", push=False, store=store, run_id="run-1"
    )
    assert [(o.plan_id, o.status) for o in outcomes] == [("etl-move-1", "proposed")]
    assert stack_text(infra) == STACK  # the values before the plan, comments kept
    message = git(infra, "log", "-1", "--format=%B")
    assert "Cloudbalance-Revert: etl-move-1" in message
    # The evidence is in the commit message, before the trailers.
    assert "### Why plan etl-move-1 is reverted" in message
    assert "above the rollback threshold of 5.00 USD" in message
    assert message.index("### Why plan") < message.index("Cloudbalance-Revert:")

    runs = store.runs()
    steps = runs[runs["run_id"] == "run-1"].sort_values("started_at")
    assert list(steps["step"]) == ["verify", "revert"]
    verify_out = json.loads(steps.iloc[0]["outputs"])
    revert_out = json.loads(steps.iloc[1]["outputs"])
    assert verify_out["status"] == "revert"
    assert verify_out["excess"] > 5.0
    assert revert_out["status"] == "proposed"
    assert "### Why plan etl-move-1 is reverted" in revert_out["evidence"]
    assert "| etl |" in revert_out["evidence"]

    # Never twice: the next run neither verifies the reverted plan nor reverts it again.
    assert verify_applied(infra, store, now=NOW, threshold=5.0) == []
    again = propose_reverts(verifications, infra, mode="commit", push=False, store=store)
    assert [o.status for o in again] == ["already-reverted"]
    assert stack_text(infra) == STACK


def test_a_good_plan_is_kept_in_git(infra: Path, store: Store, sample: Sample) -> None:
    applied(infra, store, etl_plan(), prices_turned(sample, 0.5), sample)
    verifications = verify_applied(infra, store, now=NOW, workloads=sample.workloads, threshold=5.0)
    assert [v.status for v in verifications] == ["kept"]
    assert propose_reverts(verifications, infra, mode="commit", push=False, store=store) == []
    assert "replicas: 6}" in stack_text(infra)


def test_a_person_s_change_since_the_plan_blocks_the_revert(
    infra: Path, store: Store, sample: Sample
) -> None:
    applied(infra, store, etl_plan(), prices_turned(sample, 3.0), sample)
    path = infra / "batch" / "Pulumi.prod.yaml"
    path.write_text(stack_text(infra).replace("replicas: 6}", "replicas: 5}"))
    git(infra, "commit", "-q", "-am", "etl: one replica less on gcp")
    edited = stack_text(infra)

    verifications = verify_applied(infra, store, now=NOW, workloads=sample.workloads, threshold=5.0)
    outcomes = propose_reverts(verifications, infra, mode="commit", push=False, store=store)
    assert [o.status for o in outcomes] == ["blocked"]
    assert "a person changed the placements since the plan" in outcomes[0].detail
    assert stack_text(infra) == edited  # nothing written
    last = json.loads(store.runs(limit=1).iloc[0]["outputs"])
    assert last["status"] == "blocked"


@dataclass(frozen=True)
class FakeForge(Forge):
    """Records pull requests in memory instead of calling an API."""

    opened: list[dict[str, str]] = field(default_factory=list)

    def find_open(self, repository: str, base: str) -> PullRequest | None:
        return None

    def open(
        self, repository: str, *, branch: str, base: str, title: str, body: str
    ) -> PullRequest:
        self.opened.append({"branch": branch, "base": base, "title": title, "body": body})
        return PullRequest(
            len(self.opened), f"https://example.com/pr/{len(self.opened)}", branch, True
        )

    def update(self, repository: str, pull: PullRequest, *, title: str, body: str) -> PullRequest:
        self.opened[pull.number - 1].update(title=title, body=body)
        return pull


def test_a_revert_pull_request_carries_the_evidence(
    infra: Path, store: Store, sample: Sample
) -> None:
    applied(infra, store, etl_plan(), prices_turned(sample, 3.0), sample)
    forge = FakeForge(repository="acme/infra")
    verifications = verify_applied(infra, store, now=NOW, workloads=sample.workloads, threshold=5.0)
    outcomes = propose_reverts(verifications, infra, mode="pr", forge=forge, store=store)
    assert [o.status for o in outcomes] == ["proposed"]
    assert outcomes[0].detail == "revert proposed in pull request #1"
    (pull,) = forge.opened
    assert pull["title"] == "cloudbalance: revert plan etl-move-1"
    assert "### Why plan etl-move-1 is reverted" in pull["body"]
    assert "above the rollback threshold of 5.00 USD" in pull["body"]
    assert "Cloudbalance-Revert: etl-move-1" in pull["body"]
    assert stack_text(infra) != STACK  # the working branch is untouched until the PR merges


def test_verify_command_reverts_a_bad_plan_with_the_configured_threshold(
    infra: Path, store: Store, sample: Sample, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudbalance.cli import main

    applied(infra, store, etl_plan(), prices_turned(sample, 3.0), sample)
    store.close()
    config = infra.parent / "cloudbalance.yaml"
    config.write_text(
        "version: 1\nstore: {path: store.duckdb}\ngit: {repo: infra}\n"
        "workloads:\n  etl: {replica: {vcpus: 2, memory_gib: 8}, spot: true}\n"
        "guardrails: {rollback_threshold: 5.0}\n"
    )
    as_of = NOW.date().isoformat()
    code = main(
        ["verify", "--revert", "--mode", "commit", "--as-of", as_of, "--json", "-c", str(config)]
    )
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [v["status"] for v in payload["verifications"]] == ["revert"]
    assert payload["reverts"][0]["status"] == "proposed"
    assert stack_text(infra) == STACK


# ---------------------------------------------------------------------------------- one saving


def scale_plan(plan_id: str = "etl-scale-1") -> Plan:
    """Scale etl up in place (8 + 2 -> 10 + 2), claiming a saving as the planner used to."""
    current = (Placement("etl", AWS, 8), Placement("etl", GCP, 2))
    after = (Placement("etl", AWS, 10), Placement("etl", GCP, 2))
    return Plan(
        plan_id=plan_id,
        created_at=START - timedelta(hours=6),
        period_start=START,
        period="1D",
        horizon=14,
        current=current,
        schedule=(after,) * 14,
        moves=(Move("etl", AWS, 8, 10, saving=20.0, confidence=0.9, reason="demand grows"),),
        expected_cost=100.0,
        baseline_cost=120.0,
        confidence=0.9,
    )


def test_commit_verify_and_report_show_one_saving_to_the_cent(
    infra: Path, store: Store, sample: Sample
) -> None:
    """Once the commit said "saves 111.20 USD" while verify said "+187.94 USD" and "kept".

    A scale-up in place was priced as a loss against the old replica count; now not moving is
    the same replicas in the same locations, so it saves exactly nothing, and every place
    shows the plan's expected saving with the same cents.
    """
    from cloudbalance.gitops import parse_trailers
    from cloudbalance.verify import realised_savings

    applied(infra, store, scale_plan(), sample.prices, sample)
    message = git(infra, "log", "-1", "--format=%B")
    assert (
        message.splitlines()[0]
        == "cloudbalance: scale etl in place (saves 20.00 USD over 14 periods)"
    )
    assert parse_trailers(message)["Cloudbalance-Saving"] == "20.00 USD"
    assert "| etl | aws:us-east-1 | 8 | 10 |" in message
    row = next(line for line in message.splitlines() if line.startswith("| etl |"))
    assert "| - |" in row  # no saving shown for scaling in place

    (checked,) = verify_applied(infra, store, now=NOW, workloads=sample.workloads, run_id="r1")
    assert checked.status == "kept"
    assert checked.workloads == ()
    assert checked.saving == 0.0
    assert "expected 20.00 USD over the plan's horizon" in checked.summary()
    assert "the plan moved no workload" in checked.reasons[0]
    assert realised_savings(store) == [checked]
    assert realised_savings(store, run_id="r1")[0].to_dict() == checked.to_dict()


def test_a_moved_plan_s_figures_survive_the_audit_log(
    infra: Path, store: Store, sample: Sample
) -> None:
    from cloudbalance.verify import realised_savings

    applied(infra, store, etl_plan(), sample.prices, sample)
    (checked,) = verify_applied(infra, store, now=NOW, workloads=sample.workloads)
    assert checked.status == "kept"
    assert checked.periods == 14
    (recorded,) = realised_savings(store)
    assert f"{recorded.saving:,.2f}" == f"{checked.saving:,.2f}"
    assert f"{recorded.expected:,.2f}" == f"{checked.expected:,.2f}"
    assert recorded.summary() == checked.summary()


def test_periods_without_cost_data_are_never_judged(sample: Sample) -> None:
    """On 2026-11-29 with data ending 2026-10-31, nothing claims November."""
    late = etl_plan()
    november = Plan.from_dict(
        {
            **late.to_dict(),
            "period_start": (END + timedelta(days=1)).isoformat(),
            "created_at": END.isoformat(),
        }
    )
    result = verify_plan(
        november,
        prices=sample.prices,
        costs=sample.costs,
        now=datetime(2026, 11, 29),
        threshold=0.0,
    )
    assert result.status == "pending"
    assert result.periods == 0
    assert result.data_end == END + timedelta(days=1)
    assert result.reasons == (
        "no period of the plan has cost data yet (the cost data ends with 2026-10-31, "
        "the plan starts 2026-11-01)",
    )
    assert not result.should_revert


def test_a_cloud_a_day_behind_limits_the_periods_judged(sample: Sample) -> None:
    costs = sample.costs
    aws_late = ~(
        (costs["ProviderName"] == "Amazon Web Services")
        & (costs["ChargePeriodStart"] >= END - timedelta(days=2))
    )
    result = verify_plan(etl_plan(), prices=sample.prices, costs=costs[aws_late], now=NOW)
    assert result.status == "kept"
    assert result.periods == 14 - 3
    assert result.end == END - timedelta(days=2)
    assert verify_plan(etl_plan(), prices=sample.prices, costs=costs.iloc[:0], now=NOW).status == (
        "pending"
    )
