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
