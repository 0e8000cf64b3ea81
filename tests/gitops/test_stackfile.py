from __future__ import annotations

import difflib
import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from cloudbalance.exceptions import StackConfigError
from cloudbalance.gitops import (
    discover_stacks,
    edit_placements,
    read_placements,
    validate_stack_config,
)
from cloudbalance.models import Location

AWS = Location("aws", "us-east-1")
GCP = Location("gcp", "us-central1")
AZURE = Location("azure", "westeurope")


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_stack_file_full_of_comments_and_secrets_changes_only_the_replicas_lines(
    infra,
) -> None:
    before = infra.prod.read_text(encoding="utf-8")
    after, changes = edit_placements(
        before, {"checkout": {AWS: 4, GCP: 5}, "reports": {AWS: 1, AZURE: 3}}
    )
    assert changed_lines(before, after) == [
        "-        - {cloud: aws, region: us-east-1, replicas: 6}    # primary",
        "-        - {cloud: gcp, region: us-central1, replicas: 2}  # overflow",
        "+        - {cloud: aws, region: us-east-1, replicas: 4}    # primary",
        "+        - {cloud: gcp, region: us-central1, replicas: 5}  # overflow",
        "-          replicas: 4",
        "+          replicas: 1",
        "-          replicas: 0   # scaled to nothing, kept for the diff",
        "+          replicas: 3   # scaled to nothing, kept for the diff",
    ]
    # Every other byte is identical: put the old values back and get the original file.
    restored, _ = edit_placements(
        after, {"checkout": {AWS: 6, GCP: 2}, "reports": {AWS: 4, AZURE: 0}}
    )
    assert restored.encode() == before.encode()
    assert "secure: AAABAKm3YlQ0rL7v/Ow0dB6bX8k5s3ZcYvH0W8v+Qe9a" in after
    assert [(c.workload, c.location.key, c.before, c.after) for c in changes] == [
        ("checkout", "aws:us-east-1", 6, 4),
        ("checkout", "gcp:us-central1", 2, 5),
        ("reports", "aws:us-east-1", 4, 1),
        ("reports", "azure:westeurope", 0, 3),
    ]


def test_plan_equal_to_the_file_returns_the_same_text_and_no_change(infra) -> None:
    before = infra.prod.read_text(encoding="utf-8")
    after, changes = edit_placements(before, {"checkout": {AWS: 6, GCP: 2}})
    assert after is before
    assert changes == []


def test_location_left_out_of_the_plan_keeps_its_entry_at_zero_replicas(infra) -> None:
    before = infra.prod.read_text(encoding="utf-8")
    after, _ = edit_placements(before, {"checkout": {AWS: 8}})
    assert "- {cloud: gcp, region: us-central1, replicas: 0}  # overflow" in after
    assert read_placements(after)["checkout"] == {AWS: 8, GCP: 0}


def test_new_location_is_appended_in_flow_style_after_flow_neighbours(infra) -> None:
    before = infra.prod.read_text(encoding="utf-8")
    after, changes = edit_placements(before, {"checkout": {AWS: 6, GCP: 2, AZURE: 3}})
    assert changed_lines(before, after) == [
        "+        - {cloud: azure, region: westeurope, replicas: 3}"
    ]
    assert changes[0].before is None


def test_new_location_is_appended_in_block_style_after_block_neighbours(infra) -> None:
    before = infra.prod.read_text(encoding="utf-8")
    after, _ = edit_placements(before, {"reports": {AWS: 4, GCP: 2}})
    assert changed_lines(before, after) == [
        "+        - cloud: gcp",
        "+          region: us-central1",
        "+          replicas: 2",
    ]
    assert read_placements(after)["reports"] == {AWS: 4, AZURE: 0, GCP: 2}


def test_empty_flow_list_receives_the_first_placement() -> None:
    text = "config:\n  cloudbalance:workloads:\n    api:\n      placements: []  # none yet\n"
    after, _ = edit_placements(text, {"api": {GCP: 2}})
    assert after == (
        "config:\n  cloudbalance:workloads:\n    api:\n"
        "      placements: [{cloud: gcp, region: us-central1, replicas: 2}]  # none yet\n"
    )


def test_windows_line_endings_are_kept() -> None:
    text = (
        "config:\r\n  cloudbalance:workloads:\r\n    api:\r\n      placements:\r\n"
        "      - {cloud: aws, region: us-east-1, replicas: 1}\r\n"
    )
    after, _ = edit_placements(text, {"api": {AWS: 2, GCP: 1}})
    assert after == (
        "config:\r\n  cloudbalance:workloads:\r\n    api:\r\n      placements:\r\n"
        "      - {cloud: aws, region: us-east-1, replicas: 2}\r\n"
        "      - {cloud: gcp, region: us-central1, replicas: 1}\r\n"
    )


def test_quoted_replicas_are_rejected_with_file_and_line() -> None:
    text = (
        "config:\n  cloudbalance:workloads:\n    api:\n      placements:\n"
        "        - {cloud: aws, region: us-east-1, replicas: '3'}\n"
    )
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config("Pulumi.prod.yaml", text=text)
    assert caught.value.file == "Pulumi.prod.yaml"
    assert caught.value.line == 5
    assert "replicas" in str(caught.value)


def test_unknown_cloud_is_rejected() -> None:
    text = (
        "config:\n  cloudbalance:workloads:\n    api:\n      placements:\n"
        "        - {cloud: ibm, region: us-south, replicas: 3}\n"
    )
    with pytest.raises(StackConfigError, match="ibm"):
        validate_stack_config("s.yaml", text=text)


def test_location_listed_twice_for_a_workload_is_rejected_with_its_line() -> None:
    text = (
        "config:\n  cloudbalance:workloads:\n    api:\n      placements:\n"
        "        - {cloud: aws, region: us-east-1, replicas: 3}\n"
        "        - {cloud: aws, region: us-east-1, replicas: 1}\n"
    )
    with pytest.raises(StackConfigError, match="appears twice") as caught:
        validate_stack_config("s.yaml", text=text)
    assert caught.value.line == 6


def test_broken_yaml_is_a_stack_config_error_with_line() -> None:
    with pytest.raises(StackConfigError, match="not valid YAML") as caught:
        validate_stack_config("s.yaml", text="config:\n  a: [1, 2\n  b: 3\n")
    assert caught.value.line is not None


def test_workload_absent_from_the_file_is_named_in_the_error(infra) -> None:
    with pytest.raises(StackConfigError, match="'billing'"):
        edit_placements(infra.prod.read_text(encoding="utf-8"), {"billing": {AWS: 1}})


def test_discovery_finds_several_projects_and_stacks_and_stack_config_dir(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "Pulumi.yaml").write_text("name: web\nruntime: python\n")
    (tmp_path / "web" / "Pulumi.prod.yaml").write_text("config: {}\n")
    (tmp_path / "web" / "Pulumi.dev.eu.yaml").write_text("config: {}\n")
    (tmp_path / "batch").mkdir()
    (tmp_path / "batch" / "Pulumi.yaml").write_text(
        "name: batch\nruntime: python\nstackConfigDir: stacks\n"
    )
    (tmp_path / "batch" / "stacks").mkdir()
    (tmp_path / "batch" / "stacks" / "Pulumi.prod.yaml").write_text("config: {}\n")
    (tmp_path / "web" / ".venv" / "x").mkdir(parents=True)
    (tmp_path / "web" / ".venv" / "x" / "Pulumi.yaml").write_text("name: vendored\n")
    found = [(s.ref, s.path) for s in discover_stacks(tmp_path)]
    assert found == [
        ("batch/prod", "batch/stacks/Pulumi.prod.yaml"),
        ("web/dev.eu", "web/Pulumi.dev.eu.yaml"),
        ("web/prod", "web/Pulumi.prod.yaml"),
    ]


def test_project_file_without_a_name_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("runtime: python\n")
    with pytest.raises(StackConfigError, match="no 'name'") as caught:
        discover_stacks(tmp_path)
    assert caught.value.file == "Pulumi.yaml"


def test_shipped_schema_is_a_valid_json_schema() -> None:
    text = resources.files("cloudbalance").joinpath("schemas/stack-config.schema.json")
    schema = json.loads(text.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)


def test_new_region_that_yaml_would_misread_is_quoted() -> None:
    text = (
        "config:\n  cloudbalance:workloads:\n    api:\n      placements:\n"
        "        - {cloud: aws, region: us-east-1, replicas: 1}\n"
    )
    odd = Location("gcp", "no")  # plain `no` would read back as a boolean in YAML 1.1 tools
    after, _ = edit_placements(text, {"api": {AWS: 1, odd: 2}})
    assert '- {cloud: gcp, region: "no", replicas: 2}' in after
    assert read_placements(after)["api"][odd] == 2


def test_tags_and_anchors_on_replicas_are_kept() -> None:
    text = (
        "config:\n  cloudbalance:workloads:\n    api:\n      placements:\n"
        "        - {cloud: aws, region: us-east-1, replicas: !!int 6}\n"
        "        - cloud: gcp\n          region: us-central1\n          replicas: &overflow 2\n"
    )
    after, _ = edit_placements(text, {"api": {AWS: 3, GCP: 4}})
    assert "replicas: !!int 3}" in after
    assert "replicas: &overflow 4\n" in after


def test_an_edit_that_would_break_the_file_is_refused(monkeypatch) -> None:
    import re

    from cloudbalance.gitops import _stackfile

    # A splicer bug (simulated: it matches only the first character of a value) must never
    # reach the file: the re-parse after the edit catches it.
    monkeypatch.setattr(_stackfile, "_SCALAR", re.compile(r"\S"))
    text = (
        "config:\n  cloudbalance:workloads:\n    api:\n      placements:\n"
        "        - {cloud: aws, region: us-east-1, replicas: 12}\n"
    )
    with pytest.raises(StackConfigError, match="refusing to write"):
        edit_placements(text, {"api": {AWS: 3}})
