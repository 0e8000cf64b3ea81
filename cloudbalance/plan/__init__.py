"""Place every workload's replicas across clouds and regions ahead of forecast spikes.

One mixed-integer linear programme (the architecture page, "The plan"), solved with HiGHS. The
package shows its parts apart:

- :mod:`~cloudbalance.plan.catalog`: prices -> the cost of one replica per location and period.
- :mod:`~cloudbalance.plan.problem`: the typed, frozen :class:`Problem` (what the MILP is built
  from, stored in every plan) and the cost arithmetic the plan and its baseline share.
- :mod:`~cloudbalance.plan.milp`: the formulation and the solve.
- :mod:`~cloudbalance.plan.heuristic`: Lagrangian pricing of quotas and budgets: a plan with a
  proven gap, fast, before (or instead of) the exact solve.
- :mod:`~cloudbalance.plan.diagnose`: which constraints conflict when no plan exists.
- :mod:`~cloudbalance.plan.explain`: the reason of every move.
- :mod:`~cloudbalance.plan.solve`: guardrails (the only home of the minimum saving) and the
  :class:`~cloudbalance.models.Plan`.

``cloudbalance.plan`` is both this package and, at the top level, the :func:`plan` function:
the package is callable (``cloudbalance.plan(...)`` is :func:`plan` whichever was loaded first).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from cloudbalance.plan.catalog import Catalog, ReplicaCost, load_catalog, period_hours
from cloudbalance.plan.problem import (
    Budget,
    Commitment,
    Egress,
    Problem,
    Quota,
    build_problem,
    demand_replicas,
)
from cloudbalance.plan.solve import Hold, plan, reproduce_plan, solve_problem

__all__ = [
    "Budget",
    "Catalog",
    "Commitment",
    "Egress",
    "Hold",
    "Problem",
    "Quota",
    "ReplicaCost",
    "build_problem",
    "demand_replicas",
    "load_catalog",
    "period_hours",
    "plan",
    "reproduce_plan",
    "solve_problem",
]


class _CallablePackage(types.ModuleType):
    """The package, callable as :func:`plan` (``cloudbalance.plan`` names both)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return plan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
