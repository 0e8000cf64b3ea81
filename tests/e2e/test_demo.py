from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema

from cloudbalance.demo.run import DemoResult, run_demo
from cloudbalance.report import report_schema
from cloudbalance.store import Store


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def test_every_step_of_the_loop_ran(demo: DemoResult) -> None:
    status = {s.step: s.status for s in demo.run.steps}
    assert status["forecast"] == "ok"
    assert status["plan"] == "ok"
    assert status["apply"] == "ok"
    assert status["report"] == "ok"
    assert demo.run.exit_code == 0, demo.run.steps


def test_the_plan_is_a_real_commit_with_trailers_touching_only_stack_files(
    demo: DemoResult,
) -> None:
    plan = demo.run.plan
    assert plan is not None
    assert plan.moves
    message = git(demo.infra, "log", "-1", "--format=%B")
    assert f"Cloudbalance-Plan: {plan.plan_id}" in message
    assert "Cloudbalance-Confidence: " in message
    changed = git(demo.infra, "show", "--name-only", "--format=", "HEAD").split()
    assert changed
    assert all(Path(p).name == "Pulumi.prod.yaml" for p in changed)
    diff = git(demo.infra, "show", "--format=", "-U0", "HEAD")
    for move in plan.moves:
        loc = move.location
        assert (
            f"+        - {{cloud: {loc.cloud}, region: {loc.region}, replicas: {move.after}}}"
            in diff
        )


def test_the_reports_exist_and_are_valid(demo: DemoResult) -> None:
    reports = demo.run.reports
    document = json.loads(reports["json"].read_text())
    jsonschema.validate(document, report_schema())
    assert document["plan"]["plan_id"] == demo.run.plan.plan_id  # type: ignore[union-attr]
    assert {g["title"] for g in document["groups"]} >= {"Cost per workload", "Cost per cloud"}
    assert "## Plan" in reports["markdown"].read_text()
    assert reports["html"].read_text().count("<svg") >= 8


def test_every_step_is_in_the_audit_log(demo: DemoResult) -> None:
    with Store(demo.store) as store:
        runs = store.runs()
    mine = runs[runs["run_id"] == demo.run.run_id]
    assert dict(zip(mine["step"], mine["status"], strict=True)) == {
        s.step: s.status for s in demo.run.steps
    }


def test_a_second_run_changes_nothing(demo: DemoResult) -> None:
    head = git(demo.infra, "rev-parse", "HEAD")
    again = run_demo(demo.folder)
    assert git(demo.infra, "rev-parse", "HEAD") == head
    assert again.run.plan is not None
    assert again.run.plan.plan_id == demo.run.plan.plan_id  # type: ignore[union-attr]
    assert git(demo.infra, "status", "--porcelain") == ""
