"""`cloudbalance policy check` and `cloudbalance policy test` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudbalance.cli import main
from tests.policy.builders import make_plan

CONFIG = """\
version: 1
workloads:
  search:
    allowed: [aws:eu-west-1, gcp:europe-west1, azure:westeurope]
    min_locations: 2
guardrails:
  min_confidence_commit: 0.8
"""

POLICY_WITH_TESTS = """\
package team.limits

import rego.v1

deny contains msg if {
	input.summary.replicas_moved > 5
	msg := sprintf("moves %v replicas, at most 5 per change", [input.summary.replicas_moved])
}

test_six_replicas_are_denied if {
	count(deny) == 1 with input as {"summary": {"replicas_moved": 6}}
}

test_five_replicas_pass if {
	count(deny) == 0 with input as {"summary": {"replicas_moved": 5}}
}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cloudbalance.yaml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_plan(folder: Path, **kwargs: object) -> Path:
    plan = make_plan(**kwargs)  # type: ignore[arg-type]
    path = folder / "plan.json"
    path.write_text(plan.to_json())
    return path


def test_policy_check_on_a_plan_file_denies_with_exit_1(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(workdir, after={"search": {"aws:us-east-1": 2}})
    assert main(["policy", "check", str(plan)]) == 1
    out = capsys.readouterr().out
    assert "DENY  residency: workload search may only run in" in out
    assert "denied: 1 deny, 0 warn, 6 package(s)" in out


def test_policy_check_in_commit_mode_applies_the_confidence_rule(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(workdir, after={"search": {"aws:eu-west-1": 5}}, confidence=0.5)
    assert main(["policy", "check", str(plan), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"][0]["package"] == (
        "cloudbalance.starter.confidence"
    )
    assert main(["policy", "check", str(plan), "--mode", "commit", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [d["package"] for d in report["denies"]] == ["cloudbalance.starter.confidence"]


def test_policy_check_on_two_stack_files(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = (
        "config:\n  cloudbalance:workloads:\n    search:\n      placements:\n"
        "        - {cloud: aws, region: eu-west-1, replicas: 4}\n"
        "        - {cloud: gcp, region: europe-west1, replicas: REPLICAS}\n"
    )
    (workdir / "before.yaml").write_text(stack.replace("REPLICAS", "2"))
    (workdir / "after.yaml").write_text(stack.replace("REPLICAS", "0"))
    code = main(
        ["policy", "check", "--before", "before.yaml", "--after", "after.yaml", "-f", "markdown"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "| deny | `cloudbalance.starter.min_locations` | min_locations: workload search" in out


def test_policy_check_with_a_user_policy_and_data(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "rules.rego").write_text(
        "package team\n\nimport rego.v1\n\n"
        'warn contains "over budget" if input.plan.expected_cost > data.budget\n'
    )
    (workdir / "data.json").write_text('{"budget": 50}')
    plan = write_plan(workdir, after={"search": {"aws:eu-west-1": 5}})
    args = ["policy", "check", str(plan), "--no-starter", "-p", "rules.rego", "-d", "data.json"]
    assert main(args) == 0
    assert "WARN  over budget  (team)" in capsys.readouterr().out


def test_policy_syntax_error_is_one_line_with_file_and_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bad.rego").write_text("package bad\n\nimport rego.v1\n\nx := [1,\n")
    plan = write_plan(workdir, after={"search": {"aws:eu-west-1": 5}})
    assert main(["policy", "check", str(plan), "-p", "bad.rego"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: bad.rego:5: ")


def test_policy_check_refuses_a_file_that_is_neither_plan_nor_input(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "other.json").write_text('{"hello": 1}')
    assert main(["policy", "check", "other.json"]) == 1
    assert "neither a plan" in capsys.readouterr().err


def test_policy_test_runs_user_tests(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "policies").mkdir()
    (workdir / "policies" / "limits.rego").write_text(POLICY_WITH_TESTS)
    assert main(["policy", "test", "policies"]) == 0
    out = capsys.readouterr().out
    assert "PASS  team.limits.test_six_replicas_are_denied" in out
    assert "2 passed, 0 failed" in out


def test_policy_test_fails_with_exit_1_when_a_test_fails(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = POLICY_WITH_TESTS.replace("replicas_moved > 5", "replicas_moved > 6")
    (workdir / "limits.rego").write_text(broken)
    assert main(["policy", "test", "limits.rego"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  team.limits.test_six_replicas_are_denied" in out
    assert "1 passed, 1 failed" in out
