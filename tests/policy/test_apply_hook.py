"""The policy gate plugged into gitops' apply: a deny stops the change, a warn is in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbalance.exceptions import PolicyDeniedError
from cloudbalance.gitops import apply
from cloudbalance.policy import policy_gate
from tests.conftest import git
from tests.policy.builders import make_plan, make_settings

STACK = """\
config:
  cloudbalance:workloads:
    search:
      placements:
        - {cloud: aws, region: eu-west-1, replicas: 4}
        - {cloud: gcp, region: europe-west1, replicas: 2}
    etl:
      placements:
        - {cloud: aws, region: us-east-1, replicas: 10}
"""


@pytest.fixture
def repo(tmp_path: Path, git_identity: Path) -> Path:
    root = tmp_path / "infra"
    (root / "svc").mkdir(parents=True)
    (root / "svc" / "Pulumi.yaml").write_text("name: svc\nruntime: python\n")
    (root / "svc" / "Pulumi.prod.yaml").write_text(STACK)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "initial")
    return root


def test_a_denied_plan_writes_nothing(repo: Path) -> None:
    plan = make_plan({"search": {"aws:us-east-1": 2, "gcp:europe-west1": 0}})
    head = git(repo, "rev-parse", "HEAD")
    with pytest.raises(PolicyDeniedError) as caught:
        apply(plan, repo, mode="commit", push=False, policy_check=policy_gate(make_settings()))
    assert caught.value.messages[0].startswith("residency: workload search may only run in")
    assert git(repo, "rev-parse", "HEAD") == head
    assert (repo / "svc" / "Pulumi.prod.yaml").read_text() == STACK


def test_a_warning_goes_into_the_commit_message(repo: Path) -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 8, "gcp:us-central1": 2}}, confidence=0.6)
    gate = policy_gate(make_settings(), mode="pr")
    result = apply(plan, repo, mode="commit", push=False, policy_check=gate)
    assert result.commit is not None
    message = git(repo, "log", "-1", "--format=%B")
    assert "confidence: plan p-test has confidence 0.6 (below 0.8)" in message
    assert gate.last_report is not None
    assert gate.last_report.warnings[0].package == "cloudbalance.starter.confidence"
