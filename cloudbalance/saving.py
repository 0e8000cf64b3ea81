"""What a move is and what it saves: the one definition the commit, verify, check and report share.

A workload's placement changes for two different reasons, and only one of them is a decision
about *where* to run:

- **Scaling in place**: the workload keeps its locations and only the number of replicas follows
  the demand. "Not moving" would have done the same, so this is **not a move and has no saving**.
- **A move**: replicas land somewhere the workload would not have put them by scaling in place
  (another cloud or region, or a different split between its locations).

"Not moving" (:func:`not_moving`) is the counterfactual every figure is measured against: the
replicas the plan places, spread over the workload's current locations in proportion to what
each holds today (largest remainder, so the counts are whole replicas). The planner's baseline
uses the same rule, so a plan that only scales in place writes exactly that placement and shows
no moved replica (:func:`moved_replicas`).

The saving of a placement over some periods (:func:`placement_saving`) is the cost of not moving
minus the cost of the placement, at one set of per-replica costs per period, net of the move
costs of the replicas added beyond what scaling in place adds. With the plan's own cost model
that is the **expected** saving; with the prices observed over periods that have cost data it is
the **realised** saving (:mod:`cloudbalance.verify`). A plan's expected saving over its horizon is
:attr:`cloudbalance.models.Plan.saving`; every message shows it with :func:`money`, so the
commit, the pull request, the report, ``verify`` and ``check`` print the same cents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cloudbalance.models import Location

__all__ = ["is_move", "money", "moved_replicas", "not_moving", "placement_saving"]


def money(value: float, currency: str, *, signed: bool = False) -> str:
    """An amount as every message shows it: two decimals, thousands separators, the currency.

    Rounding happens here only, so two places that show the same figure show the same cents.
    """
    return f"{value:+,.2f} {currency}" if signed else f"{value:,.2f} {currency}"


def not_moving(before: Mapping[Location, int], replicas: int) -> dict[Location, int]:
    """``replicas`` spread over the current locations in proportion to what each holds.

    Whole replicas by largest remainder (ties go to the location that sorts first). A workload
    running nowhere has no such alternative: the result is empty.

    Args:
        before: Replicas per location now.
        replicas: Replicas to place.
    """
    held = {loc: n for loc, n in sorted(before.items()) if n > 0}
    total = sum(held.values())
    if total <= 0:
        return {}
    raw = {loc: replicas * n / total for loc, n in held.items()}
    out = {loc: math.floor(value) for loc, value in raw.items()}
    rest = replicas - sum(out.values())
    order = sorted(held, key=lambda loc: -(raw[loc] - out[loc]))
    for loc in order[: max(0, rest)]:
        out[loc] += 1
    return out


def moved_replicas(before: Mapping[Location, int], after: Mapping[Location, int]) -> int:
    """Replicas placed where scaling in place would not have put them (0: not a move).

    A workload that runs nowhere yet is deployed, not moved: 0.
    """
    total = sum(n for n in after.values() if n > 0)
    base = not_moving(before, total)
    if not base:
        return 0
    return sum(max(0, n - base.get(loc, 0)) for loc, n in after.items())


def is_move(before: Mapping[Location, int], after: Mapping[Location, int]) -> bool:
    """Whether going from ``before`` to ``after`` changes where the workload runs."""
    return moved_replicas(before, after) > 0


def _added(before: Mapping[Location, int], placement: Mapping[Location, int]) -> int:
    return sum(max(0, n - before.get(loc, 0)) for loc, n in placement.items())


def _cost(
    placement: Mapping[Location, int], unit_cost: Mapping[Location, Sequence[float]]
) -> float:
    total = 0.0
    for loc, n in placement.items():
        if n <= 0:
            continue
        values = unit_cost.get(loc)
        if values is None or any(math.isnan(v) for v in values):
            return math.nan
        total += n * float(sum(values))
    return total


def placement_saving(
    before: Mapping[Location, int],
    after: Mapping[Location, int],
    unit_cost: Mapping[Location, Sequence[float]],
    *,
    move_cost: float = 0.0,
) -> tuple[float, float, float]:
    """What ``after`` saves against not moving, held over the periods of ``unit_cost``.

    Args:
        before: Replicas per location before the change.
        after: Replicas per location after it (held over every period).
        unit_cost: Cost of one replica per period, per location (NaN: not priced).
        move_cost: Cost of adding one replica somewhere (the workload's ``move_cost``).

    Returns:
        ``(saving, cost, not_moving_cost)``: the saving (positive: moving is cheaper) net of
        the extra move costs, the cost of ``after`` and the cost of not moving, both including
        their move costs. NaN when a placed location has no cost. A change that is not a move
        saves exactly 0.
    """
    total = sum(n for n in after.values() if n > 0)
    base = not_moving(before, total) or dict(after)
    cost = _cost(after, unit_cost) + move_cost * _added(before, after)
    counter = _cost(base, unit_cost) + move_cost * _added(before, base)
    return counter - cost, cost, counter
