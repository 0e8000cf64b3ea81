"""Loading, evaluating and testing user policies: the conftest convention, errors, the hook."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from cloudbalance.exceptions import PolicyDeniedError, PolicyError
from cloudbalance.models import Location
from cloudbalance.policy import (
    POLICY_INPUT_VERSION,
    PolicySet,
    check_policies,
    diff_input,
    load_policies,
    plan_input,
    policy_gate,
    starter_policy_paths,
)
from tests.policy.builders import make_plan, make_settings

TODAY = date(2026, 11, 23)

USER_POLICY = """\
package team.placement

import rego.v1

# conftest-style named rules and object messages are both understood
deny_gcp_for_payments contains {"msg": msg} if {
	some change in input.changes
	change.workload == "etl"
	change.cloud == "gcp"
	change.after > 0
	msg := sprintf("etl may not use gcp (%v)", [change.location])
}

warn contains "large change" if input.summary.replicas_moved > data.limits.large

test_gcp_is_denied if {
	count(deny_gcp_for_payments) == 1 with input as {"changes": [
		{"workload": "etl", "cloud": "gcp", "location": "gcp:x", "after": 1},
	]}
}

test_aws_is_allowed if {
	count(deny_gcp_for_payments) == 0 with input as {"changes": [
		{"workload": "etl", "cloud": "aws", "location": "aws:x", "after": 1},
	]}
}

test_that_fails if {
	count(deny_gcp_for_payments) == 5 with input as {"changes": []}
}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_user_policy_rules_with_prefixes_and_object_messages_are_evaluated(tmp_path: Path) -> None:
    write(tmp_path, "policies/placement.rego", USER_POLICY)
    policies = PolicySet.load([tmp_path / "policies"], data={"limits": {"large": 2}})
    plan = make_plan({"etl": {"aws:us-east-1": 6, "gcp:us-central1": 4}})
    report = policies.evaluate(plan_input(plan, now=TODAY))
    assert report.deny_messages == ["etl may not use gcp (gcp:us-central1)"]
    assert report.denies[0].rule == "deny_gcp_for_payments"
    assert report.denies[0].package == "team.placement"
    assert report.warning_messages == ["large change"]
    with pytest.raises(PolicyDeniedError) as caught:
        report.raise_for_denies()
    assert caught.value.messages == ["etl may not use gcp (gcp:us-central1)"]


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broken.rego",
        "package broken\n\nimport rego.v1\n\ndeny contains msg if {\n  msg := \n}\n",
    )
    with pytest.raises(PolicyError) as caught:
        PolicySet.load([path])
    assert caught.value.file == str(path)
    assert caught.value.line == 6
    assert str(caught.value) == f"{path}:6: Invalid assignment operator"


def test_unclosed_bracket_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "open.rego", "package open\n\nimport rego.v1\n\nx := input.a[\n")
    with pytest.raises(PolicyError) as caught:
        PolicySet.load([path])
    assert (caught.value.file, caught.value.line) == (str(path), 5)
    assert "unclosed" in str(caught.value)


def test_rego_v0_rule_syntax_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "old.rego", 'package old\n\ndeny[msg] {\n  msg := "x"\n}\n')
    with pytest.raises(PolicyError) as caught:
        PolicySet.load([path])
    assert caught.value.line == 3
    assert "write `deny contains msg if {`" in str(caught.value)


def test_a_missing_policy_path_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        PolicySet.load([tmp_path / "nope"])


def test_a_file_without_package_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "nopkg.rego", "deny contains 1 if true\n")
    with pytest.raises(PolicyError, match="no `package` declaration"):
        PolicySet.load([path])


def test_unknown_starter_policy_lists_the_starter_library() -> None:
    with pytest.raises(PolicyError, match="starter policies: residency, max_share_moved"):
        starter_policy_paths(["residence"])


def test_rego_unit_tests_report_each_test_rule(tmp_path: Path) -> None:
    write(tmp_path, "placement.rego", USER_POLICY)
    results = PolicySet.load([tmp_path]).run_tests()
    assert [(r.name, r.passed) for r in results] == [
        ("test_gcp_is_denied", True),
        ("test_aws_is_allowed", True),
        ("test_that_fails", False),
    ]


def test_guardrails_policies_from_settings_are_resolved_against_the_config_folder(
    tmp_path: Path,
) -> None:
    write(tmp_path, "rules/placement.rego", USER_POLICY)
    from dataclasses import replace

    settings = make_settings()
    settings = replace(
        settings,
        path=tmp_path / "cloudbalance.yaml",
        guardrails=replace(settings.guardrails, policies=("rules",)),
    )
    policies = load_policies(settings, data={"limits": {"large": 100}})
    assert "team.placement" in policies.packages
    assert "cloudbalance.starter.residency" in policies.packages


def test_input_documents_match_the_published_schema() -> None:
    schema_file = starter_policy_paths(["residency"])[0].parent.parent / "schemas"
    schema = json.loads((schema_file / "policy-input.schema.json").read_text(encoding="utf-8"))
    plan = make_plan(
        {"etl": {"aws:us-east-1": 6, "gcp:us-central1": 4}},
        inputs={
            "unit_costs": {
                "aws:us-east-1": 1.0,
                "gcp:us-central1": 1.0,
                "aws:eu-west-1": 1.0,
                "gcp:europe-west1": 1.0,
            }
        },
    )
    plan_doc = plan_input(plan, settings=make_settings(), now=TODAY)
    loc = Location.parse
    diff_doc = diff_input(
        {"etl": {loc("aws:us-east-1"): 2}}, {"etl": {loc("aws:us-east-1"): 3}}, base="main"
    )
    for document in (plan_doc, diff_doc):
        jsonschema.Draft202012Validator(schema).validate(json.loads(json.dumps(document)))
        assert document["version"] == POLICY_INPUT_VERSION


def test_check_policies_accepts_a_plan_and_can_raise_on_deny() -> None:
    plan = make_plan({"search": {"aws:us-east-1": 6}})
    with pytest.raises(PolicyDeniedError, match="residency: workload search"):
        check_policies(plan, settings=make_settings(), raise_on_deny=True)


def test_policy_gate_returns_denies_and_warnings_for_gitops() -> None:
    gate = policy_gate(make_settings(), mode="pr")
    moved_out = {"aws:us-east-1": 6, "aws:eu-west-1": 0, "gcp:europe-west1": 0}
    plan = make_plan({"search": moved_out}, confidence=0.5)
    result = gate(plan)
    assert [d.split(":")[0] for d in result.denies] == ["residency", "min_locations"]
    assert [w.split(":")[0] for w in result.warnings] == ["confidence"]
    assert gate.last_report is not None
    assert gate.last_report.denied
