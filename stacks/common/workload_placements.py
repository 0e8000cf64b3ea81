"""The part of ``cloudbalance:workloads`` every stack template reads the same way.

The config key is the whole contract between cloudbalance and these programs: cloudbalance
rewrites ``placements[*].replicas`` (and adds placements); every other field belongs to the stack.
The programs do not import cloudbalance, so they check the shape themselves and fail with one clear
line (:class:`WorkloadConfigError`) naming the workload and the field, before any resource is
declared.

Rule for placements, shared by every component: a cloud listed in ``placements`` is created and
sized to its ``replicas``, zero included (scaled to nothing; endpoints, DNS records and networks
are kept so the planner can move load back without re-creating infrastructure); a cloud not listed
is not created at all.

This file is shared by the ``service`` and ``batch`` templates (one source, linked into each
project and copied into generated projects by ``cloudbalance stack init``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import pulumi

CLOUDS = ("aws", "azure", "gcp")
#: Lower-case letters, digits and hyphens, short enough for every cloud's resource names
#: (an AWS load balancer name, with region and random suffix, must stay within 32 characters).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,15}$")


class WorkloadConfigError(pulumi.RunError):
    """``cloudbalance:workloads`` is malformed; the message names the workload and field.

    A ``RunError`` so that ``pulumi preview``/``up`` print the message without a traceback.
    """

    def __init__(self, workload: str | None, field: str, message: str) -> None:
        self.workload = workload
        self.field = field
        where = f"cloudbalance:workloads.{workload}.{field}" if workload else field
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Placement:
    """One cloud region and its replica count, as cloudbalance wrote it."""

    cloud: str
    region: str
    replicas: int

    @property
    def key(self) -> str:
        """``cloud-region``: unique within a workload, used in resource and record names."""
        return f"{self.cloud}-{self.region}"


def workload_items(raw: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Split the ``cloudbalance:workloads`` object into checked ``(name, spec)`` pairs, in order.

    Raises:
        WorkloadConfigError: When the object is empty, a name is unusable or a spec is not a
            mapping.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise WorkloadConfigError(
            None, "cloudbalance:workloads", "expected a non-empty mapping of workload name -> spec"
        )
    items: list[tuple[str, Mapping[str, Any]]] = []
    for name, spec in raw.items():
        name = str(name)
        if not NAME_PATTERN.match(name):
            raise WorkloadConfigError(
                name,
                "name",
                "use 1-16 lower-case letters, digits or hyphens, starting with a letter",
            )
        if not isinstance(spec, Mapping):
            raise WorkloadConfigError(name, "", "expected a mapping of settings")
        items.append((name, spec))
    return items


def parse_placements(workload: str, raw: Any) -> tuple[Placement, ...]:
    """Check the placements list: known clouds, one entry per region, whole replicas >= 0.

    Raises:
        WorkloadConfigError: Naming the placement's index and field.
    """
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise WorkloadConfigError(workload, "placements", "expected a list")
    found: list[Placement] = []
    for index, item in enumerate(raw):
        field = f"placements[{index}]"
        if not isinstance(item, Mapping):
            raise WorkloadConfigError(workload, field, "expected {cloud, region, replicas}")
        cloud, region, replicas = item.get("cloud"), item.get("region"), item.get("replicas")
        if cloud not in CLOUDS:
            raise WorkloadConfigError(
                workload, f"{field}.cloud", f"must be one of {', '.join(CLOUDS)} (got {cloud!r})"
            )
        if not isinstance(region, str) or not region:
            raise WorkloadConfigError(workload, f"{field}.region", "a region id is required")
        if not is_whole(replicas) or replicas < 0:
            raise WorkloadConfigError(
                workload, f"{field}.replicas", f"must be a whole number >= 0 (got {replicas!r})"
            )
        placement = Placement(cloud=cloud, region=region, replicas=int(replicas))
        if any(p.key == placement.key for p in found):
            raise WorkloadConfigError(
                workload, field, f"{cloud} {region} is listed twice; merge the entries"
            )
        found.append(placement)
    return tuple(found)


def is_whole(value: Any) -> TypeGuard[int | float]:
    """True for integers (and integral floats, as JSON round-trips may produce), never bools."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def number(workload: str, field: str, value: Any) -> float:
    """``value`` as a float, or a :class:`WorkloadConfigError` naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkloadConfigError(workload, field, f"must be a number (got {value!r})")
    return float(value)


def flag(workload: str, field: str, value: Any) -> bool:
    """``value`` as a bool (YAML ``true``/``false`` only), or a :class:`WorkloadConfigError`."""
    if not isinstance(value, bool):
        raise WorkloadConfigError(workload, field, f"must be true or false (got {value!r})")
    return value


def text(workload: str, field: str, value: Any) -> str:
    """``value`` as a non-empty string, or a :class:`WorkloadConfigError` naming the field."""
    if not isinstance(value, str) or not value.strip():
        raise WorkloadConfigError(workload, field, "a non-empty string is required")
    return value
