"""The contract end to end: what cloudbalance writes into a stack file is what the stacks deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
from ruamel.yaml import YAML

from cloudbalance.gitops import edit_placements, read_placements, validate_stack_config
from cloudbalance.models import Location

STACKS = Path(__file__).resolve().parents[2] / "stacks"


def workloads_of(text: str) -> dict[str, Any]:
    config = YAML(typ="safe").load(text)["config"]
    workloads: dict[str, Any] = config["cloudbalance:workloads"]
    return workloads


def check_replicas(expected: dict[str, dict[str, int]]) -> Any:
    """A run check asserting every component's replicas output, inside ``Output.all().apply``."""

    def check(namespace: dict[str, Any]) -> pulumi.Output[Any]:
        deployed = namespace["deployed"]
        keys = [(w, k) for w in sorted(deployed) for k in sorted(deployed[w])]

        def compare(values: list[int]) -> None:
            found: dict[str, dict[str, int]] = {}
            for (workload, key), value in zip(keys, values, strict=True):
                found.setdefault(workload, {})[key] = value
            assert found == expected

        return pulumi.Output.all(*(deployed[w][k].replicas for w, k in keys)).apply(compare)

    return check


def as_keys(placements: dict[str, dict[Location, int]]) -> dict[str, dict[str, int]]:
    return {
        workload: {f"{loc.cloud}-{loc.region}": n for loc, n in found.items()}
        for workload, found in placements.items()
    }


@pytest.mark.parametrize("template", ["service", "batch"])
def test_example_stack_file_is_valid_and_deploys_exactly_its_placements(
    run_stack: Any, template: str
) -> None:
    stack_file = STACKS / template / "Pulumi.dev.yaml"
    text = stack_file.read_text(encoding="utf-8")
    validate_stack_config(stack_file)
    expected = as_keys(read_placements(text, file=str(stack_file)))

    run_stack(template, workloads_of(text), check=check_replicas(expected))


@pytest.mark.parametrize(
    ("template", "workload", "targets", "expected"),
    [
        pytest.param(
            "service",
            "checkout",
            {Location("aws", "us-east-1"): 2, Location("azure", "westeurope"): 5},
            {"aws-us-east-1": 2, "gcp-us-central1": 0, "azure-westeurope": 5},
            id="service-move-to-azure",
        ),
        pytest.param(
            "batch",
            "worker",
            {Location("gcp", "us-central1"): 6, Location("gcp", "europe-west4"): 3},
            {
                "aws-us-east-1": 0,
                "azure-westeurope": 0,
                "gcp-us-central1": 6,
                "gcp-europe-west4": 3,
            },
            id="batch-all-to-gcp-new-region",
        ),
    ],
)
def test_a_plan_written_by_gitops_is_what_the_program_declares(
    run_stack: Any,
    template: str,
    workload: str,
    targets: dict[Location, int],
    expected: dict[str, int],
) -> None:
    stack_file = STACKS / template / "Pulumi.dev.yaml"
    text, changes = edit_placements(
        stack_file.read_text(encoding="utf-8"), {workload: targets}, file=str(stack_file)
    )
    assert changes

    run = run_stack(template, workloads_of(text), check=check_replicas({workload: expected}))

    components = {r.name for r in run.resources if r.typ.startswith("cloudbalance:")}
    assert components == {f"{workload}-{key}" for key in expected}


def test_one_workload_name_rule_for_cloudbalance_and_the_stacks() -> None:
    import json
    import re

    from cloudbalance.models import WORKLOAD_NAME

    schema = json.loads(
        (
            Path(__file__).resolve().parents[2] / "cloudbalance/schemas/stack-config.schema.json"
        ).read_text()
    )
    stack_rule = re.search(
        r'NAME_PATTERN = re.compile\(r"([^"]+)"\)',
        (STACKS / "common" / "workload_placements.py").read_text(),
    )
    assert stack_rule is not None
    assert stack_rule.group(1) == WORKLOAD_NAME.pattern
    assert schema["$defs"]["workloads"]["propertyNames"]["pattern"] == WORKLOAD_NAME.pattern
    for copy in ("service", "batch"):  # each project carries the shared file as it is
        assert (STACKS / copy / "workload_placements.py").read_text() == (
            STACKS / "common" / "workload_placements.py"
        ).read_text()


def test_a_workload_the_stacks_cannot_name_is_refused_at_config_time(tmp_path: Path) -> None:
    from cloudbalance.config import load_config
    from cloudbalance.exceptions import ConfigError

    (tmp_path / "cloudbalance.yaml").write_text(
        "workloads:\n  Checkout_API:\n    match: {tags: [checkout]}\n"
    )
    with pytest.raises(ConfigError, match=r"cloudbalance.yaml:2: workloads.Checkout_API: .*lower"):
        load_config(tmp_path / "cloudbalance.yaml")
