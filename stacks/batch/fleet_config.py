"""The batch template's fields of ``cloudbalance:workloads``.

Per workload (all snake_case; only ``placements[*].replicas`` is written by cloudbalance)::

    worker:
      image: ghcr.io/acme/worker:2.0      # container run on every VM by the start-up script
      startup_script: "#!/bin/sh ..."     # optional: replaces the generated script
      spot: true                          # spot/preemptible capacity on every cloud
      aws: {instance_type: m7i.large}
      azure: {vm_size: Standard_D2s_v5, admin_username: cloudbalance, ssh_public_key: "ssh-..."}
      gcp: {machine_type: e2-standard-2}
      placements:
        - {cloud: aws, region: us-east-1, replicas: 4}

The per-cloud sections are optional except Azure's ``ssh_public_key`` when the workload has an
Azure placement (Azure requires a way to log in to Linux VMs; passwords are not offered).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workload_placements import (
    Placement,
    WorkloadConfigError,
    flag,
    parse_placements,
    text,
    workload_items,
)

DEFAULT_AWS_INSTANCE_TYPE = "m7i.large"
DEFAULT_AZURE_VM_SIZE = "Standard_D2s_v5"
DEFAULT_GCP_MACHINE_TYPE = "e2-standard-2"


@dataclass(frozen=True)
class FleetWorkload:
    """A fleet of identical worker VMs and where it runs."""

    name: str
    image: str
    startup_script: str
    spot: bool
    aws_instance_type: str
    azure_vm_size: str
    azure_admin_username: str
    azure_ssh_public_key: str | None
    gcp_machine_type: str
    placements: tuple[Placement, ...]


def load_fleets(raw: Any) -> list[FleetWorkload]:
    """Parse the whole ``cloudbalance:workloads`` object, in the order it is written.

    Raises:
        WorkloadConfigError: On the first malformed workload or field.
    """
    return [_fleet(name, spec) for name, spec in workload_items(raw)]


def startup_script(workload: str, image: str) -> str:
    """A boot script that installs Docker (dnf or apt) and keeps ``image`` running."""
    container = shlex.quote(workload)
    return "\n".join(
        [
            "#!/bin/sh",
            "set -eu",
            "if ! command -v docker >/dev/null 2>&1; then",
            "  if command -v dnf >/dev/null 2>&1; then dnf install -y docker;",
            "  else apt-get update && apt-get install -y docker.io; fi",
            "fi",
            "systemctl enable --now docker",
            f"docker rm -f {container} >/dev/null 2>&1 || true",
            f"docker run -d --restart always --name {container} {shlex.quote(image)}",
            "",
        ]
    )


def _fleet(name: str, spec: Mapping[str, Any]) -> FleetWorkload:
    image = text(name, "image", spec.get("image"))
    script = spec.get("startup_script")
    aws = _section(name, spec, "aws")
    azure = _section(name, spec, "azure")
    gcp = _section(name, spec, "gcp")
    placements = parse_placements(name, spec.get("placements"))
    key = azure.get("ssh_public_key")
    if key is not None:
        key = text(name, "azure.ssh_public_key", key)
    if key is None and any(p.cloud == "azure" for p in placements):
        raise WorkloadConfigError(
            name, "azure.ssh_public_key", "required when the workload has an Azure placement"
        )
    return FleetWorkload(
        name=name,
        image=image,
        startup_script=(
            text(name, "startup_script", script)
            if script is not None
            else startup_script(name, image)
        ),
        spot=flag(name, "spot", spec.get("spot", False)),
        aws_instance_type=text(
            name, "aws.instance_type", aws.get("instance_type", DEFAULT_AWS_INSTANCE_TYPE)
        ),
        azure_vm_size=text(name, "azure.vm_size", azure.get("vm_size", DEFAULT_AZURE_VM_SIZE)),
        azure_admin_username=text(
            name, "azure.admin_username", azure.get("admin_username", "cloudbalance")
        ),
        azure_ssh_public_key=key,
        gcp_machine_type=text(
            name, "gcp.machine_type", gcp.get("machine_type", DEFAULT_GCP_MACHINE_TYPE)
        ),
        placements=placements,
    )


def _section(workload: str, spec: Mapping[str, Any], cloud: str) -> Mapping[str, Any]:
    section = spec.get(cloud, {})
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise WorkloadConfigError(workload, cloud, "expected a mapping of settings")
    return section
