"""Read and check the ``cloudbalance:workloads`` stack config for the service template.

The config key is the whole contract between cloudbalance and this program: cloudbalance rewrites
``placements[*].replicas`` (and adds placements); every other field belongs to this stack. The
program does not import cloudbalance, so it validates the shape itself and fails with one clear
line (:class:`WorkloadConfigError`) naming the workload and the field, before any resource is
declared.

Rule for placements, shared by every component: a cloud listed in ``placements`` is created and
sized to its ``replicas``, zero included (scaled to nothing, endpoint and DNS record kept so the
planner can move load back without re-creating infrastructure); a cloud not listed is not created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

CLOUDS = ("aws", "azure", "gcp")
#: Fargate's allowed task sizes in vCPU; Container Apps and Cloud Run accept these too.
FARGATE_CPUS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: Lower-case letters, digits and hyphens, short enough for every cloud's resource names
#: (an ALB name, with region and random suffix, must stay within 32 characters).
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


@dataclass(frozen=True)
class DnsSpec:
    """Weighted Route 53 records for the workload: one per placement, weight = replicas."""

    zone_id: str
    name: str
    ttl: int = 60


@dataclass(frozen=True)
class ServiceWorkload:
    """A containerised service and where it runs."""

    name: str
    image: str
    cpu: float
    memory_gib: float
    port: int
    spot: bool
    public: bool
    dns: DnsSpec | None
    placements: tuple[Placement, ...]


def load_workloads(raw: Any) -> list[ServiceWorkload]:
    """Parse the whole ``cloudbalance:workloads`` object, in the order it is written.

    Raises:
        WorkloadConfigError: On the first malformed workload or field.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise WorkloadConfigError(
            None, "cloudbalance:workloads", "expected a non-empty mapping of workload name -> spec"
        )
    return [_workload(str(name), spec) for name, spec in raw.items()]


def _workload(name: str, spec: Any) -> ServiceWorkload:
    if not NAME_PATTERN.match(name):
        raise WorkloadConfigError(
            name, "name", "use 1-16 lower-case letters, digits or hyphens, starting with a letter"
        )
    if not isinstance(spec, Mapping):
        raise WorkloadConfigError(name, "", "expected a mapping")
    image = spec.get("image")
    if not isinstance(image, str) or not image:
        raise WorkloadConfigError(name, "image", "a container image reference is required")
    cpu = _number(name, "cpu", spec.get("cpu", 0.25))
    if cpu not in FARGATE_CPUS:
        raise WorkloadConfigError(
            name, "cpu", f"must be one of {', '.join(f'{c:g}' for c in FARGATE_CPUS)} (got {cpu:g})"
        )
    memory = _number(name, "memory_gib", spec.get("memory_gib", 0.5))
    if memory <= 0:
        raise WorkloadConfigError(name, "memory_gib", f"must be positive (got {memory:g})")
    port = spec.get("port", 8080)
    if not _is_int(port) or not 0 < port < 65536:
        raise WorkloadConfigError(name, "port", f"must be a TCP port 1-65535 (got {port!r})")
    return ServiceWorkload(
        name=name,
        image=image,
        cpu=cpu,
        memory_gib=memory,
        port=int(port),
        spot=_flag(name, "spot", spec.get("spot", False)),
        public=_flag(name, "public", spec.get("public", True)),
        dns=_dns(name, spec.get("dns")),
        placements=parse_placements(name, spec.get("placements")),
    )


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
        if not _is_int(replicas) or replicas < 0:
            raise WorkloadConfigError(
                workload, f"{field}.replicas", f"must be a whole number >= 0 (got {replicas!r})"
            )
        placement = Placement(cloud=cloud, region=region, replicas=int(replicas))
        if any(p.key == placement.key for p in found):
            raise WorkloadConfigError(
                workload, f"{field}", f"{cloud} {region} is listed twice; merge the entries"
            )
        found.append(placement)
    return tuple(found)


def _dns(workload: str, raw: Any) -> DnsSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise WorkloadConfigError(workload, "dns", "expected {zone_id, name, ttl}")
    zone_id, name, ttl = raw.get("zone_id"), raw.get("name"), raw.get("ttl", 60)
    if not isinstance(zone_id, str) or not zone_id:
        raise WorkloadConfigError(workload, "dns.zone_id", "the Route 53 hosted zone id is required")
    if not isinstance(name, str) or not name:
        raise WorkloadConfigError(workload, "dns.name", "the record name is required")
    if not _is_int(ttl) or ttl <= 0:
        raise WorkloadConfigError(workload, "dns.ttl", f"must be a positive integer (got {ttl!r})")
    return DnsSpec(zone_id=zone_id, name=name, ttl=int(ttl))


def _is_int(value: Any) -> bool:
    """True for integers (and integral floats, as JSON round-trips may produce), never bools."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _number(workload: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkloadConfigError(workload, field, f"must be a number (got {value!r})")
    return float(value)


def _flag(workload: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise WorkloadConfigError(workload, field, f"must be true or false (got {value!r})")
    return value
