from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudbalance.cli import main
from cloudbalance.gitops import parse_trailers

CURRENT = {"checkout": {"aws:us-east-1": 6, "gcp:us-central1": 2}}
SHIFT = {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 5}}


@pytest.fixture
def plan_file(tmp_path: Path, plan_factory, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no cloudbalance.yaml above: built-in defaults
    path = tmp_path / "plan.json"
    path.write_text(plan_factory(SHIFT, current=CURRENT).to_json(), encoding="utf-8")
    return path


def test_apply_without_a_mode_prints_the_diff_and_commits_nothing(infra, plan_file, capsys) -> None:
    head = infra.head()
    assert main(["apply", str(plan_file), "--repo", str(infra.root)]) == 0
    out = capsys.readouterr().out
    assert "+        - {cloud: aws, region: us-east-1, replicas: 3}    # primary" in out
    assert "Cloudbalance-Plan: p-20261124-a1" in out
    assert infra.head() == head


def test_apply_commit_mode_commits_and_reports_the_commit(infra, plan_file, capsys) -> None:
    assert main(["apply", str(plan_file), "--repo", str(infra.root), "--mode", "commit"]) == 0
    out = capsys.readouterr().out
    assert f"committed {infra.head()[:12]} on main (pushed)" in out
    assert parse_trailers(infra.message())["Cloudbalance-Plan"] == "p-20261124-a1"


def test_apply_json_output_lists_the_changes(infra, plan_file, capsys) -> None:
    assert main(["apply", str(plan_file), "--repo", str(infra.root), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["mode"] == "dry-run"
    assert payload["files"] == ["shop/Pulumi.prod.yaml"]
    assert payload["changes"][0] == {
        "workload": "checkout",
        "location": "aws:us-east-1",
        "before": 6,
        "after": 3,
    }


def test_apply_reads_mode_and_guardrails_from_cloudbalance_yaml(
    infra, plan_file, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "cloudbalance.yaml"
    config.write_text(
        f"git:\n  repo: {infra.root}\n  mode: commit\nguardrails:\n  max_moves: 1\n",
        encoding="utf-8",
    )
    # The Rego guardrails, the one place the limit is enforced, read it ...
    assert main(["apply", str(plan_file), "--config", str(config)]) == 1
    assert "more than the 1 allowed" in capsys.readouterr().err
    # ... and the command line's override reaches both.
    assert main(["apply", str(plan_file), "--config", str(config), "--max-moves", "5"]) == 0
    assert "committed" in capsys.readouterr().out


def test_freeze_option_refuses_with_exit_code_1(infra, plan_file, capsys) -> None:
    code = main(
        [
            "apply",
            str(plan_file),
            "--repo",
            str(infra.root),
            "--mode",
            "commit",
            "--freeze",
            "2000-01-01..2999-12-31",
        ]
    )
    assert code == 1
    assert "no change may be written from 2000-01-01" in capsys.readouterr().err


def test_revert_command_makes_the_revert_commit(infra, plan_file, capsys) -> None:
    original = infra.prod.read_bytes()
    main(["apply", str(plan_file), "--repo", str(infra.root), "--mode", "commit"])
    assert main(["revert", "p-20261124-a1", "--repo", str(infra.root)]) == 0
    assert infra.prod.read_bytes() == original
    assert parse_trailers(infra.message())["Cloudbalance-Revert"] == "p-20261124-a1"


def test_unreadable_plan_and_unknown_mode_are_user_errors(infra, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{}", encoding="utf-8")
    assert main(["apply", str(bad), "--repo", str(infra.root)]) == 1
    assert "column 'plan_id': is missing" in capsys.readouterr().err
    assert main(["apply", str(tmp_path / "missing.json"), "--repo", str(infra.root)]) == 1
    assert "missing.json: cannot be read" in capsys.readouterr().err
    assert main(["revert", "x", "--repo", str(infra.root), "--mode", "yolo"]) == 1
    assert "'yolo' is not one of" in capsys.readouterr().err


def test_rego_policy_from_the_configuration_can_deny_the_change(
    infra, plan_file, tmp_path: Path, capsys
) -> None:
    (tmp_path / "pinned.rego").write_text(
        "package cloudbalance.pinned\n\n"
        "deny contains msg if {\n"
        "  some change in input.changes\n"
        '  change.workload == "checkout"\n'
        '  msg := "checkout is pinned during the migration"\n'
        "}\n",
        encoding="utf-8",
    )
    config = tmp_path / "cloudbalance.yaml"
    config.write_text(
        f"git:\n  repo: {infra.root}\n  mode: commit\nguardrails:\n  policies: [pinned.rego]\n",
        encoding="utf-8",
    )
    head = infra.head()
    assert main(["apply", str(plan_file), "--config", str(config)]) == 1
    assert "checkout is pinned during the migration" in capsys.readouterr().err
    assert infra.head() == head
    assert main(["apply", str(plan_file), "--config", str(config), "--no-policies"]) == 0
    assert infra.head() != head


def test_apply_pr_mode_opens_a_pull_request_and_prints_its_address(
    infra, plan_file, github, token, capsys
) -> None:
    args = ["apply", str(plan_file), "--repo", str(infra.root), "--mode", "pr"]
    args += ["--api-url", github.url, "--repository", "acme/infra"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "opened pull request #1: https://github.example/acme/infra/pull/1" in out
    assert token not in out
    assert main([*args[:-4], "--forge", "bitbucket"]) == 1
    assert "'bitbucket' is not one of" in capsys.readouterr().err
