"""Why no plan exists: the conflicting constraints, where, and what to change.

Infeasibility
-------------
No assert, no silent relaxation: when the constraints cannot all hold, the planner finds the
first period where they fail (the problem cut after period ``t`` is a relaxation, so a bisection
finds it), then a minimal set of conflicting constraint groups by a deletion filter (drop one
group, keep it dropped if the rest is still infeasible), and raises
:class:`~cloudbalance.exceptions.InfeasiblePlanError` naming each one, the workloads and period,
and a suggestion sized from a plan that exists once that group is lifted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from cloudbalance.exceptions import InfeasiblePlanError
from cloudbalance.models import Location
from cloudbalance.plan.milp import Group, feasible, groups, share_cap
from cloudbalance.plan.problem import Problem, evaluate_cloud

__all__ = ["diagnose"]


def _describe_period(problem: Problem, t: int) -> str:
    return f"period {t + 1} ({problem.period_starts()[t]:%Y-%m-%d %H:%M})"


def diagnose(problem: Problem) -> InfeasiblePlanError:
    """Find and explain why no plan satisfies every constraint."""
    conflicts: list[str] = []
    suggestions: list[str] = []
    allowed = problem.allowed()
    vc = np.array([w.vcpus for w in problem.workloads])
    quota = {q.location: q.vcpus for q in problem.quotas}
    first_bad: str | None = None
    for i, w in enumerate(problem.workloads):
        opened = [problem.locations[j] for j in np.flatnonzero(allowed[i])]
        peak = int(problem.demand[i].max())
        t_peak = int(problem.demand[i].argmax())
        if not opened and peak > 0:
            where = ", ".join(loc.key for loc in w.allowed) or "any location"
            conflicts.append(
                f"{w.name} needs {peak} replica(s) in {_describe_period(problem, t_peak)} but "
                f"none of its allowed locations ({where}) has a price for a "
                f"{w.vcpus:g}-vCPU/{w.memory_gib:g}-GiB replica"
            )
            suggestions.append(f"allow a priced region for {w.name} or add prices for its shape")
            first_bad = first_bad or w.name
            continue
        if w.min_locations > len(opened) and peak > 0:
            conflicts.append(
                f"{w.name} needs at least {w.min_locations} locations (HA) but only "
                f"{len(opened)} are allowed and priced ({', '.join(o.key for o in opened)})"
            )
            suggestions.append(
                f"allow {w.min_locations - len(opened)} more region(s) for {w.name} "
                f"or lower its min_locations"
            )
            first_bad = first_bad or w.name
        short = np.flatnonzero(
            len(opened) * share_cap(w.max_share, problem.demand[i]) < problem.demand[i]
        )
        if len(short) and w.max_share < 1:
            t = int(short[0])
            conflicts.append(
                f"{w.name} may put at most {w.max_share:.0%} of its replicas in one location "
                f"but only {len(opened)} location(s) are allowed and priced "
                f"({problem.demand[i, t]} replicas in {_describe_period(problem, t)})"
            )
            suggestions.append(
                f"raise max_share of {w.name} to {1 / len(opened):.0%} or allow more regions"
            )
            first_bad = first_bad or w.name
        cap = sum(quota.get(loc, math.inf) for loc in opened)
        need = problem.demand[i] * vc[i]
        over = np.flatnonzero(need > cap + 1e-9)
        if len(over):
            t = int(over[0])
            conflicts.append(
                f"{w.name} needs {int(need[t]):d} vCPUs ({problem.demand[i, t]} replicas) in "
                f"{_describe_period(problem, t)} but the quotas of its allowed locations total "
                f"{cap:g} vCPUs"
            )
            suggestions.append(
                f"raise a vCPU quota among {', '.join(o.key for o in opened)} by "
                f"{need[t] - cap:g}, or allow another region for {w.name}"
            )
            first_bad = first_bad or w.name
    if conflicts:
        return InfeasiblePlanError(
            "no plan satisfies every constraint.",
            conflicts=conflicts,
            suggestions=suggestions,
            workload=first_bad,
        )

    # First failing period (a shorter horizon is a relaxation).
    lo, hi = 1, problem.horizon
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(problem, n_t=mid).x is None:
            hi = mid
        else:
            lo = mid + 1
    n_t = lo
    period_text = _describe_period(problem, n_t - 1)
    all_groups = groups(problem)
    per_workload = {"residency", "throttle", "share", "ha"}
    shared = [g for g in all_groups if g[0] not in per_workload]
    own = [g for g in all_groups if g[0] in per_workload]

    def infeasible(disabled: Iterable[Group], only: Sequence[int] | None = None) -> bool:
        return feasible(problem, n_t=n_t, disabled=frozenset(disabled), only=only).x is None

    culprits: list[int] | None = None
    if infeasible(shared):
        # Some workloads cannot be placed even alone: find them and their own conflicts.
        culprits = []
        for i in range(len(problem.workloads)):
            if infeasible(shared, only=[i]):
                culprits.append(i)
                if len(culprits) == 3:
                    break
        candidates = [g for g in own if any(g[1] == problem.workloads[i].name for i in culprits)]
        base_disabled = set(shared)
    else:
        candidates = shared + own
        base_disabled = set()
    # Deletion filter: what stays is a minimal set of groups that still conflict.
    keep: list[Group] = []
    off = set(base_disabled) | set(candidates)
    if not infeasible(off, culprits):
        # The candidates are needed; filter them one by one.
        rest = list(candidates)
        for g in list(rest):
            trial = set(base_disabled) | {h for h in candidates if h not in rest or h == g}
            if infeasible(trial, culprits):
                rest.remove(g)
        keep = rest
    involved = sorted(
        {
            problem.workloads[i].name
            for i in (culprits if culprits is not None else range(len(problem.workloads)))
        }
    )
    for g in keep:
        relaxed = feasible(problem, n_t=n_t, disabled=frozenset(base_disabled | {g}), only=culprits)
        text, hint = _explain_group(problem, g, relaxed.x, n_t)
        conflicts.append(f"{text} in {period_text}")
        suggestions.append(hint)
    if culprits is not None:
        for i in culprits:
            w = problem.workloads[i]
            conflicts.append(
                f"serving the forecast demand of {w.name} "
                f"({int(problem.demand[i, n_t - 1])} replicas in {period_text})"
            )
    else:
        touched = _workloads_touching(problem, keep)
        names = touched or involved
        shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        conflicts.append(f"serving the forecast demand of {shown} by {period_text}")
    if not keep:
        suggestions.append("lower the demand quantile or the demand of these workloads")
    single = involved[0] if culprits is not None and len(culprits) == 1 else None
    return InfeasiblePlanError(
        f"no plan satisfies every constraint (first failing: {period_text}).",
        conflicts=conflicts,
        suggestions=suggestions,
        workload=single,
    )


def _workloads_touching(problem: Problem, groups: Sequence[Group]) -> list[str]:
    allowed = problem.allowed()
    names: set[str] = set()
    for kind, subject in groups:
        if kind in {"residency", "throttle", "share", "ha"}:
            names.add(subject)
        elif kind == "quota":
            j = problem.locations.index(Location.parse(subject))
            names.update(problem.workloads[i].name for i in np.flatnonzero(allowed[:, j]))
        elif kind == "budget":
            cols = [j for j, loc in enumerate(problem.locations) if loc.cloud == subject]
            names.update(
                problem.workloads[i].name for i in np.flatnonzero(allowed[:, cols].any(axis=1))
            )
    return sorted(names)


def _explain_group(
    problem: Problem, group: Group, relaxed: np.ndarray | None, n_t: int
) -> tuple[str, str]:
    """Words for one conflicting group and a suggestion sized from the relaxed plan."""
    kind, subject = group
    cur = problem.currency
    if kind == "quota":
        loc = Location.parse(subject)
        q = min(x.vcpus for x in problem.quotas if x.location == loc)
        text = f"the vCPU quota of {q:g} at {subject}"
        hint = f"raise the vCPU quota at {subject}"
        if relaxed is not None:
            j = problem.locations.index(loc)
            vc = np.array([w.vcpus for w in problem.workloads])
            used = float((relaxed[:, j, :] * vc[:, None]).sum(axis=0).max())
            if used > q:
                hint += f" to {used:g} (a plan exists at that level)"
        return text, hint
    if kind == "budget":
        amount = min(b.amount for b in problem.budgets if b.cloud == subject)
        text = f"the {subject} budget of {amount:,.2f} {cur} over the horizon"
        hint = f"raise the {subject} budget"
        if relaxed is not None:
            per_w = evaluate_cloud(problem, relaxed, subject)
            if per_w > amount:
                hint += f" to {per_w:,.2f} {cur} (a plan exists at that level)"
        return text, hint
    i = [w.name for w in problem.workloads].index(subject)
    w = problem.workloads[i]
    if kind == "residency":
        allowed = ", ".join(loc.key for loc in w.allowed)
        text = f"the allowed locations of {subject} ({allowed})"
        hint = f"allow another region for {subject}"
        if relaxed is not None:
            extra = [
                problem.locations[j].key
                for j in np.flatnonzero(relaxed[i].sum(axis=1) > 0)
                if problem.locations[j] not in w.allowed
            ]
            if extra:
                hint = f"allow {', '.join(extra)} for {subject}"
        return text, hint
    if kind == "throttle":
        text = (
            f"the change throttle of {subject} (at most {w.max_change:.0%} of its replicas "
            "added per period)"
        )
        return text, f"raise max_change of {subject} or start from a placement closer to the plan"
    if kind == "share":
        text = f"the maximum share of {subject} per location ({w.max_share:.0%})"
        return text, f"raise max_share of {subject} or allow another region"
    text = f"the HA minimum of {subject} ({w.min_locations} locations)"
    return text, f"lower min_locations of {subject} or allow another region"
