"""A near-optimal plan with a proven bound, fast: Lagrangian pricing of the quotas and budgets.

Why: quotas and budgets are the only rows that tie workloads together (when no commitment
does). A budget that binds couples every workload of its cloud into one MILP, and HiGHS then
spends minutes finding incumbents and closing a gap that its root bound nearly closes already
(benchmarks/bench_planner.py). Without those rows the model falls apart into one small problem
per workload, whose LP relaxation is almost always integral.

How (Lagrangian relaxation, prices adjusted by a per-row bisection):

1. Each coupling row ``k`` (a quota in one period, a budget over the horizon) gets a price
   ``lam[k] >= 0``; the cost of every column becomes ``c + A_k^T lam`` and the rows go. What
   is left is solved as an LP in independent blocks of workloads, each kept warm in HiGHS so a
   new price costs a few simplex iterations.
2. **Bound.** For any ``lam >= 0``, ``sum(block LP optima) - lam . b`` is a lower bound on the
   LP relaxation of the full model, hence on its MILP optimum (weak duality). The best one seen
   is kept; the gap reported is measured against it, so it is a true, proven gap.
3. **Plan.** The LP solution is rounded to whole replicas (the few workloads with fractional
   values are solved as small MILPs at the same prices), checked against every row of the full
   model, and kept when it is feasible and the cheapest so far.
4. A row that the plan breaks gets a higher price, a row with slack a lower one; each row's
   step doubles while the direction holds and halves when it flips (a bisection on the price).

It stops when the plan is within the target gap of the bound, or after a few rounds. The
caller (:func:`cloudbalance.plan.milp.solve_lazy`) returns the plan only when its proven gap
meets the target; otherwise it hands the plan to HiGHS as a MIP start and the priced rows as
the ones predicted to bind, and solves exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cloudbalance.plan.milp import BLOCK, Group, Model, build, load, solve
from cloudbalance.plan.problem import Problem

__all__ = ["Priced", "lagrangian", "objective", "satisfies"]

#: Rounds of price updates at most (each re-solves every block from its last basis).
ROUNDS = 30

#: The rounds aim at this fraction of the target gap (a round is cheap, and a gap of a total
#: cost can be a large part of a plan's saving); the caller accepts up to the target.
AIM = 0.25


@dataclass
class Priced:
    """What the Lagrangian heuristic found.

    Attributes:
        x: The cheapest plan found that satisfies every row (``[W, L, T]``), or ``None``.
        objective: Its objective in the full model (``inf`` without a plan).
        bound: The best Lagrangian lower bound on the full model's optimum.
        binding: The quotas and budgets that carry a positive price at the end (predicted to
            bind).
        rounds: Price rounds made.
    """

    x: np.ndarray | None
    objective: float
    bound: float
    binding: set[Group] = field(default_factory=set)
    rounds: int = 0

    @property
    def gap(self) -> float:
        """Relative gap ``(objective - bound) / |objective|`` (HiGHS's definition), proven."""
        if self.x is None or not math.isfinite(self.bound):
            return math.inf
        diff = max(0.0, self.objective - self.bound)
        if diff <= 1e-9:
            return 0.0
        return diff / abs(self.objective) if self.objective else math.inf


def objective(model: Model, problem: Problem, x: np.ndarray) -> float:
    """The full model's objective of replicas ``x`` (moves and HA follow from ``x``)."""
    return float(model.c @ model.start(problem, x))


def satisfies(model: Model, problem: Problem, x: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether replicas ``x`` are a feasible integer solution of ``model`` (every row, bound).

    The check reads the model's own matrix, so it is the formulation's definition of feasible,
    not a re-statement of it. Commitment columns start at zero (always feasible for them).
    """
    v = model.start(problem, x)
    if np.any(np.abs(v - np.rint(v))[model.integrality == 1] > tol):
        return False
    if np.any(v < model.lb - tol) or np.any(v > model.ub + tol):
        return False
    if model.a is None:
        return True
    ax = model.a @ v
    # Rounding noise only: ``tol`` absolute plus 1e-9 of the right-hand side (a budget's sum).
    ub = np.where(np.isfinite(model.row_ub), model.row_ub, 0.0)
    if np.any(ax > model.row_ub + tol + 1e-9 * np.abs(ub)):
        return False
    lb = np.where(np.isfinite(model.row_lb), model.row_lb, 0.0)
    return not np.any(ax < model.row_lb - tol - 1e-9 * np.abs(lb))


@dataclass
class _Block:
    rows: list[int]
    problem: Problem
    model: Model
    highs: Any
    rows_k: np.ndarray  # global coupling index of each of the model's coupling rows
    a_c: Any  # the coupling rows (csr)
    index: np.ndarray  # 0..n_columns-1 (HiGHS's change-cost call wants the set)


def lagrangian(
    problem: Problem,
    *,
    gap: float,
    time_limit: float,
    pinned: Mapping[int, np.ndarray] | None = None,
) -> Priced | None:
    """Price quotas and budgets until a plan is within ``gap`` of a proven bound (see module).

    The rounds go on while the plan is more than ``AIM * gap`` from the bound; the best plan
    found is returned with its proven gap whatever it is (the caller compares it with ``gap``).

    Returns ``None`` when the heuristic does not apply (a commitment couples workloads, or no
    quota or budget) or an LP is not solved to optimality in time (no valid bound); the caller
    then solves exactly.
    """
    import highspy

    if problem.commitments or not (problem.quotas or problem.budgets):
        return None
    deadline = time.monotonic() + time_limit
    W = problem.demand.shape[0]
    label: dict[tuple[Group, int], int] = {}
    cap: list[float] = []
    unit: list[float] = []  # objective per unit of the row (scales the first price step)
    weight: list[float] = []
    blocks: list[_Block] = []
    for lo in range(0, W, BLOCK):
        rows = list(range(lo, min(W, lo + BLOCK)))
        sub = problem.subset(rows)
        sub_pins = {k: pinned[i] for k, i in enumerate(rows) if i in pinned} if pinned else None
        model = build(sub, pinned=sub_pins)
        if np.any(model.lb > model.ub + 1e-9) or len(model.c) == 0:
            return None
        a_c = model.a[model.n_local :].tocsr()
        ks = []
        for r, key in enumerate(model.coupling):
            if key not in label:
                label[key] = len(cap)
                cap.append(float(model.row_ub[model.n_local + r]))
                unit.append(0.0)
                weight.append(0.0)
            k = label[key]
            ks.append(k)
            row = a_c[[r]]
            unit[k] += float(np.abs(model.c[row.indices]).sum())
            weight[k] += float(np.abs(row.data).sum())
        h = load(model, integer=False, n_rows=model.n_local)
        blocks.append(
            _Block(
                rows,
                sub,
                model,
                h,
                np.asarray(ks, dtype=np.int64),
                a_c,
                np.arange(len(model.c), dtype=np.int32),
            )
        )
    K = len(cap)
    if K == 0:
        return None
    caps = np.asarray(cap)
    scale = np.asarray(unit) / np.maximum(np.asarray(weight), 1e-12)
    full = build(problem, pinned=pinned)
    lam = np.zeros(K)
    step = np.full(K, 0.02)  # markup as a fraction of the row's unit cost
    last = np.zeros(K)
    best = Priced(None, math.inf, -math.inf)
    x = np.zeros((W, len(problem.locations), problem.horizon))
    history: list[np.ndarray] = []
    for rounds in range(1, ROUNDS + 1):
        price = lam * scale
        total = -float(price @ caps)
        use = np.zeros(K)
        for b in blocks:
            left = deadline - time.monotonic()
            if left <= 0:
                return best if best.x is not None else None
            cost = b.model.c + b.a_c.T @ price[b.rows_k]
            h = b.highs
            h.changeColsCost(len(cost), b.index, cost)
            h.setOptionValue("time_limit", float(left))
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return best if best.x is not None else None
            total += float(h.getInfo().objective_function_value)
            values = np.asarray(h.getSolution().col_value)
            xb = _whole(b, values, cost, left)
            if xb is None:
                return best if best.x is not None else None
            x[b.rows] = xb
            use += np.bincount(b.rows_k, weights=b.a_c @ b.model.start(b.problem, xb), minlength=K)
        best.bound = max(best.bound, total)
        history.append(x.copy())
        best.rounds = rounds
        if np.all(use <= caps + 1e-6 + 1e-9 * np.abs(caps)) and satisfies(full, problem, x):
            z = objective(full, problem, x)
            if z < best.objective:
                best.x, best.objective = x.copy(), z
        best.binding = {key[0] for key, k in label.items() if lam[k] > 0}
        if best.gap <= gap * AIM:
            break
        # Per-row bisection on the price: up when broken, down when slack and priced.
        direction = np.where(use > caps, 1.0, np.where(lam > 0, -1.0, 0.0))
        flip = (direction * last) < 0
        same = (direction * last) > 0
        step = np.where(flip, step / 2, np.where(same, step * 1.5, step))
        lam = np.maximum(0.0, lam + direction * step)
        last = np.where(direction != 0, direction, last)
    left = deadline - time.monotonic()
    if best.gap > gap * AIM and len(history) > 1 and left > 0:
        # The prices flip a set of near-tied workloads back and forth: solve those exactly,
        # the others fixed where the prices put them.
        recent = history[-4:]
        moving = np.flatnonzero(np.any([np.any(h != x, axis=(1, 2)) for h in recent], axis=0))
        fixed = _fix(problem, full, x, moving, pinned, gap, left)
        if fixed is not None and satisfies(full, problem, fixed):
            z = objective(full, problem, fixed)
            if z < best.objective:
                best.x, best.objective = fixed, z
    return best


#: At most this many workloads are re-solved exactly around the priced plan.
FIX = 400


def _fix(
    problem: Problem,
    full: Model,
    x: np.ndarray,
    moving: np.ndarray,
    pinned: Mapping[int, np.ndarray] | None,
    gap: float,
    left: float,
) -> np.ndarray | None:
    """``x`` with the workloads ``moving`` re-planned as one MILP under every row.

    The other workloads keep their replicas; the quotas and budgets left to the moving ones
    are what the others do not use (read from the full model's coupling rows).
    """
    if len(moving) == 0 or len(moving) > FIX:
        return None
    rows = [int(i) for i in moving]
    rest = x.copy()
    rest[rows] = 0
    used = full.a[full.n_local :] @ full.start(problem, rest)
    where = {key: r for r, key in enumerate(full.coupling)}
    sub = problem.subset(rows)
    sub_pins = {k: pinned[i] for k, i in enumerate(rows) if i in pinned} if pinned else None
    model = build(sub, pinned=sub_pins)
    row_ub = model.row_ub.copy()
    for r, key in enumerate(model.coupling):
        row_ub[model.n_local + r] -= used[where[key]]
    model.row_ub = row_ub
    sol = solve(sub, model, gap=gap / 2, time_limit=left, start=x[rows])
    if sol.x is None:
        return None
    out = x.copy()
    out[rows] = sol.x
    return out


def _whole(b: _Block, values: np.ndarray, cost: np.ndarray, left: float) -> np.ndarray | None:
    """Replicas ``[w, L, T]`` of an LP solution of a block, fractional workloads made whole.

    Workloads whose replicas are all whole keep them (whole replicas make a feasible HA and
    throttle choice: see :func:`satisfies`); the others are solved as a small MILP at the same
    prices, without the coupling rows.
    """
    model, sub = b.model, b.problem
    T = model.n_t
    W, L = sub.demand.shape[0], len(sub.locations)
    xs = values[: len(model.pw) * T].reshape(len(model.pw), T)
    out = np.zeros((W, L, T))
    out[model.pw, model.pl, :] = xs
    frac = np.flatnonzero(np.any(np.abs(out - np.rint(out)) > 1e-6, axis=(1, 2)))
    out = np.rint(out)
    if len(frac) == 0:
        return out
    keep = np.isin(model.pw, frac)
    cols = np.zeros(len(model.c), dtype=bool)
    # Columns of the fractional workloads: their x, u, y blocks.
    P = len(model.pw)
    cols[: P * T] = np.repeat(keep, T)
    cols[P * T : 2 * P * T] = np.repeat(keep, T)
    if len(model.ha_pairs):
        cols[2 * P * T : 2 * P * T + len(model.ha_pairs) * T] = np.repeat(keep[model.ha_pairs], T)
    lb, ub = model.lb.copy(), model.ub.copy()
    # The other workloads are fixed at their whole LP values: a MILP on the fractional ones only.
    fixed = np.zeros((W, L, T))
    fixed[:] = out
    v = model.start(sub, fixed)
    lb[~cols] = ub[~cols] = v[~cols]
    sub_model = Model(
        cost,
        model.integrality,
        lb,
        ub,
        model.a[: model.n_local],
        model.row_lb[: model.n_local],
        model.row_ub[: model.n_local],
        model.pw,
        model.pl,
        T,
        model.ha_pairs,
        model.n_local,
    )
    sol = solve(sub, sub_model, gap=1e-6, time_limit=max(1.0, left))
    if sol.x is None or sol.status != 0:
        return None
    return sol.x
