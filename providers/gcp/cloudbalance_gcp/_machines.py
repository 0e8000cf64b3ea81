"""Compute Engine predefined machine types: their shapes, from their names.

Compute Engine prices most general-purpose and compute-optimised families per vCPU-hour and per
GiB-hour, and a predefined machine type is ``<family>-<class>-<vCPUs>`` whose memory is a fixed
number of GiB per vCPU for that family and class. So one table of ratios turns the two catalog
rates into the hourly price of any predefined shape, which is what the planner compares across
clouds (it needs whole instances, not unit rates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudbalance.exceptions import ConfigError

__all__ = ["DEFAULT_MACHINE_TYPES", "GIB_PER_VCPU", "MachineType", "parse_machine_type"]

#: GiB of memory per vCPU, by family and class (Compute Engine machine-family documentation).
GIB_PER_VCPU: dict[str, dict[str, float]] = {
    "e2": {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0},
    "n2": {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0},
    "n2d": {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0},
    "n1": {"standard": 3.75, "highmem": 6.5, "highcpu": 0.9},
    "n4": {"standard": 4.0, "highmem": 8.0, "highcpu": 2.0},
    "c2": {"standard": 4.0},
    "c2d": {"standard": 4.0, "highmem": 8.0, "highcpu": 2.0},
    "c3": {"standard": 4.0, "highmem": 8.0, "highcpu": 2.0},
    "c3d": {"standard": 4.0, "highmem": 8.0, "highcpu": 2.0},
    "t2d": {"standard": 4.0},
    "t2a": {"standard": 4.0},
}

#: Shapes priced when the configuration names none: the common general-purpose sizes.
DEFAULT_MACHINE_TYPES: tuple[str, ...] = (
    *(f"e2-{c}-{n}" for c in ("standard", "highmem", "highcpu") for n in (2, 4, 8, 16)),
    *(f"n2-{c}-{n}" for c in ("standard", "highmem", "highcpu") for n in (2, 4, 8, 16, 32)),
    *(f"n2d-standard-{n}" for n in (2, 4, 8, 16, 32)),
    *(f"n1-standard-{n}" for n in (1, 2, 4, 8, 16)),
    *(f"c2d-standard-{n}" for n in (2, 4, 8, 16)),
    *(f"c3-standard-{n}" for n in (4, 8, 22, 44)),
    *(f"t2d-standard-{n}" for n in (1, 2, 4, 8)),
)

_NAME = re.compile(r"^(?P<family>[a-z][a-z0-9]*)-(?P<cls>standard|highmem|highcpu)-(?P<n>[0-9]+)$")


@dataclass(frozen=True)
class MachineType:
    """One predefined machine type.

    Attributes:
        name: ``n2-standard-4``.
        family: ``n2``.
        vcpus: vCPUs of one instance.
        memory_gib: GiB of memory of one instance.
    """

    name: str
    family: str
    vcpus: float
    memory_gib: float


def parse_machine_type(name: str, *, key: str = "providers.gcp.machine_types") -> MachineType:
    """Parse a predefined machine-type name into its shape.

    Raises:
        ConfigError: The name is not ``<family>-<standard|highmem|highcpu>-<vCPUs>`` of a family
            priced per vCPU and GiB (custom, shared-core and accelerator types are not).
    """
    match = _NAME.match(str(name).strip().lower())
    ratios = GIB_PER_VCPU.get(match["family"]) if match else None
    if match is None or ratios is None or match["cls"] not in ratios or int(match["n"]) < 1:
        families = ", ".join(f"{f}-{'|'.join(c)}" for f, c in sorted(GIB_PER_VCPU.items()))
        raise ConfigError(
            f"{name!r} is not a predefined machine type priced per vCPU and GiB "
            f"(expected <family>-<class>-<vCPUs> with one of: {families})",
            key=key,
        )
    vcpus = float(match["n"])
    return MachineType(
        name=match.group(0),
        family=match["family"],
        vcpus=vcpus,
        memory_gib=vcpus * ratios[match["cls"]],
    )
