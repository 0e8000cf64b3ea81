"""Azure VM sizes -> (vCPUs, memory GiB).

The Retail Prices API prices a size by name and says nothing of its shape, while the planner
needs the shape to pack replicas. Shapes come from, in order:

1. the user's ``vm_sizes`` option (any size, exact);
2. a table of sizes whose shape the name does not tell (the B-series, the largest E sizes);
3. the name itself for the general-purpose, compute-, memory- and storage-optimised families
   of version 3 and later (``Standard_D4s_v5`` = 4 vCPUs at 4 GiB each): D = 4 GiB per vCPU
   (2 with the ``l`` low-memory feature), E = 8, F = 2 (v2 and later), L = 8.

Anything else (GPU N-series, M-series, constrained-vCPU sizes, older generations) returns
``None`` and is left out of the prices frame rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["vm_shape"]

_EXACT: dict[str, tuple[float, float]] = {
    "standard_b1ls": (1, 0.5),
    "standard_b1s": (1, 1),
    "standard_b1ms": (1, 2),
    "standard_b2s": (2, 4),
    "standard_b2ms": (2, 8),
    "standard_b4ms": (4, 16),
    "standard_b8ms": (8, 32),
    "standard_b12ms": (12, 48),
    "standard_b16ms": (16, 64),
    "standard_b20ms": (20, 80),
    "standard_e64_v3": (64, 432),
    "standard_e64s_v3": (64, 432),
    "standard_e64_v4": (64, 504),
    "standard_e64s_v4": (64, 504),
    "standard_e64ds_v4": (64, 504),
    "standard_e64d_v4": (64, 504),
    "standard_e96_v5": (96, 672),
    "standard_e96s_v5": (96, 672),
    "standard_e96d_v5": (96, 672),
    "standard_e96ds_v5": (96, 672),
    "standard_e104i_v5": (104, 672),
    "standard_e104is_v5": (104, 672),
}

_NAME = re.compile(
    r"^standard_(?P<family>[a-z])(?P<vcpus>\d+)(?P<features>[a-z]*)_v(?P<version>\d+)$"
)
_GIB_PER_VCPU = {"d": 4.0, "e": 8.0, "f": 2.0, "l": 8.0}
_MIN_VERSION = {"d": 3, "e": 3, "f": 2, "l": 2}


def vm_shape(
    size: str, overrides: Mapping[str, tuple[float, float]] | None = None
) -> tuple[float, float] | None:
    """(vCPUs, GiB) of an ARM VM size name such as ``Standard_D4s_v5``; None when unknown."""
    key = size.strip().lower()
    if overrides:
        for name, shape in overrides.items():
            if name.strip().lower() == key:
                return (float(shape[0]), float(shape[1]))
    if key in _EXACT:
        vcpus, mem = _EXACT[key]
        return (float(vcpus), float(mem))
    match = _NAME.match(key)
    if match is None:
        return None
    family = match["family"]
    if family not in _GIB_PER_VCPU or int(match["version"]) < _MIN_VERSION[family]:
        return None
    vcpus = float(match["vcpus"])
    ratio = _GIB_PER_VCPU[family]
    if family == "d" and "l" in match["features"]:
        ratio = 2.0
    return (vcpus, vcpus * ratio)
