"""The service template's fields of ``cloudbalance:workloads``.

Per workload (all snake_case; only ``placements[*].replicas`` is written by cloudbalance)::

    checkout:
      image: ghcr.io/acme/checkout:1.4   # required: container image
      cpu: 0.5                           # vCPU per replica: 0.25, 0.5, 1, 2, 4, 8 or 16
      memory_gib: 1                      # memory per replica
      port: 8080                         # port the container listens on
      spot: false                        # AWS: run on Fargate Spot (Azure, GCP: no effect)
      public: true                       # reachable from the internet (Cloud Run invoker)
      aws_certificate_arn: arn:aws:acm:... # optional: HTTPS on the AWS load balancer (443)
      dns: {zone_id: Z..., name: checkout.example.com, ttl: 60}   # optional weighted records
      placements:
        - {cloud: aws, region: us-east-1, replicas: 6}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workload_placements import (
    Placement,
    WorkloadConfigError,
    flag,
    is_whole,
    number,
    parse_placements,
    text,
    workload_items,
)

#: Fargate's allowed task sizes in vCPU; Container Apps and Cloud Run accept these too.
FARGATE_CPUS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class DnsSpec:
    """Weighted Route 53 records for a workload: one per placement, weight = replicas."""

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
    aws_certificate_arn: str | None
    dns: DnsSpec | None
    placements: tuple[Placement, ...]


def load_services(raw: Any) -> list[ServiceWorkload]:
    """Parse the whole ``cloudbalance:workloads`` object, in the order it is written.

    Raises:
        WorkloadConfigError: On the first malformed workload or field.
    """
    return [_service(name, spec) for name, spec in workload_items(raw)]


def _service(name: str, spec: Mapping[str, Any]) -> ServiceWorkload:
    cpu = number(name, "cpu", spec.get("cpu", 0.25))
    if cpu not in FARGATE_CPUS:
        allowed = ", ".join(f"{c:g}" for c in FARGATE_CPUS)
        raise WorkloadConfigError(name, "cpu", f"must be one of {allowed} (got {cpu:g})")
    memory = number(name, "memory_gib", spec.get("memory_gib", 0.5))
    if memory <= 0:
        raise WorkloadConfigError(name, "memory_gib", f"must be positive (got {memory:g})")
    port = spec.get("port", 8080)
    if not is_whole(port) or not 0 < port < 65536:
        raise WorkloadConfigError(name, "port", f"must be a TCP port 1-65535 (got {port!r})")
    return ServiceWorkload(
        name=name,
        image=text(name, "image", spec.get("image")),
        cpu=cpu,
        memory_gib=memory,
        port=int(port),
        spot=flag(name, "spot", spec.get("spot", False)),
        public=flag(name, "public", spec.get("public", True)),
        aws_certificate_arn=(
            text(name, "aws_certificate_arn", spec["aws_certificate_arn"])
            if spec.get("aws_certificate_arn") is not None
            else None
        ),
        dns=_dns(name, spec.get("dns")),
        placements=parse_placements(name, spec.get("placements")),
    )


def _dns(workload: str, raw: Any) -> DnsSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise WorkloadConfigError(workload, "dns", "expected {zone_id, name, ttl}")
    ttl = raw.get("ttl", 60)
    if not is_whole(ttl) or ttl <= 0:
        raise WorkloadConfigError(workload, "dns.ttl", f"must be a positive integer (got {ttl!r})")
    return DnsSpec(
        zone_id=text(workload, "dns.zone_id", raw.get("zone_id")),
        name=text(workload, "dns.name", raw.get("name")),
        ttl=int(ttl),
    )
