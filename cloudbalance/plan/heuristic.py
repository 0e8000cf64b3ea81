"""A near-optimal plan with a proven bound, fast: Lagrangian pricing of the coupling rows.

Why: quotas, budgets and commitments are the only rows that tie workloads together. A budget
that binds couples every workload of its cloud into one MILP, a reserved commitment or savings
plan every workload in its scope, and HiGHS then spends minutes finding incumbents and closing
a gap that its root bound nearly closes already (benchmarks/bench_planner.py). Without those
rows the model falls apart into one small problem per workload, whose LP relaxation is almost
always integral.

How (Lagrangian relaxation, prices adjusted by a per-row bisection):

1. Each coupling row ``k`` (a quota in one period, a budget over the horizon, a reserved
   commitment's capacity at a location in one period, a savings plan's coverage of its scope's
   spend in one period) gets a price ``lam[k] >= 0``; the cost of every column becomes
   ``c + A_k^T lam`` and the rows go. What is left is solved as an LP in independent blocks of
   workloads, each kept warm in HiGHS so a new price costs a few simplex iterations; the
   savings-plan columns, shared by all blocks, are priced once (each covers all it may while
   covered spend is worth more than its price).
2. **Bound.** For any ``lam >= 0``, ``sum(block LP optima) - lam . b`` is a lower bound on the
   LP relaxation of the full model, hence on its MILP optimum (weak duality). The best one seen
   is kept; the gap reported is measured against it, so it is a true, proven gap.
3. **Plan.** The LP solution is rounded to whole replicas (the few workloads with fractional
   values are solved as small MILPs at the same prices), its commitment columns set to their
   optimum for it (:func:`cloudbalance.plan.problem.coverage`), checked against every row of
   the full model, and kept when it is feasible and the cheapest so far.
4. A row that the minimiser breaks gets a higher price, a row with slack a lower one; each
   row's step grows while the direction holds and halves when it flips (a bisection).
   Commitments make the dual degenerate (every vCPU at a location saves the same rate, so at
   the right price all workloads there tie): a reserved row starts at the dearest rate it
   covers, and a row that some tie-break of the tied columns meets keeps its price. When the
   bound stalls, a second phase restarts from the best bound's prices and moves the quota and
   budget prices on the plan's own use (the minimiser may credit tied reserved vCPUs beyond a
   commitment's size, which leaves a budget too cheap for any plan to meet).

It stops when the plan is within the target gap of the bound, or after a few rounds. The
caller (:func:`cloudbalance.plan.milp.solve_lazy`) returns the plan only when its proven gap
meets the target; otherwise it hands the plan to HiGHS as a MIP start and the priced rows as
the ones predicted to bind, and solves exactly.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cloudbalance.plan.milp import BLOCK, Group, Model, build, load, solve
from cloudbalance.plan.problem import Problem

__all__ = ["Priced", "lagrangian", "objective", "satisfies"]

#: Rounds of price updates at most (each re-solves every block from its last basis).
ROUNDS = 30

#: With commitments: rounds that seek a plan meeting the quotas and budgets, after the rounds
#: that seek the bound; those end early when the bound has not risen for ``STALL`` rounds.
PRIMAL = 20
STALL = 3
STALL_SHARE = 0.25

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
    return _meets(model, model.start(problem, x), tol)


def _meets(model: Model, v: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether the column vector ``v`` meets every integrality, bound and row of ``model``."""
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
    a_pos: Any  # their positive and negative coefficients apart (a tie's range of use)
    a_neg: Any
    index: np.ndarray  # 0..n_columns-1 (HiGHS's change-cost call wants the set)


def lagrangian(
    problem: Problem,
    *,
    gap: float,
    time_limit: float,
    pinned: Mapping[int, np.ndarray] | None = None,
) -> Priced | None:
    """Price the coupling rows until a plan is within ``gap`` of a proven bound (see module).

    The rounds go on while the plan is more than ``AIM * gap`` from the bound; the best plan
    found is returned with its proven gap whatever it is (the caller compares it with ``gap``).

    Returns ``None`` when the heuristic does not apply (no quota, budget or commitment), a
    held placement breaks a bound, or an LP is not solved to optimality in time (no valid
    bound); the caller then solves exactly.
    """
    import highspy

    if not (problem.quotas or problem.budgets or problem.commitments):
        return None
    started = time.monotonic()
    deadline = started + time_limit
    W = problem.demand.shape[0]
    full = build(problem, pinned=pinned)
    if np.any(full.lb > full.ub + 1e-9) or len(full.c) == 0 or not full.coupling:
        return None
    label = {key: k for k, key in enumerate(full.coupling)}
    K = len(label)
    a_full = full.a[full.n_local :].tocsr()
    caps = full.row_ub[full.n_local :]
    # Prices are markups in units of each row's mean objective coefficient per unit of the row.
    unit = (a_full != 0).astype("float64") @ np.abs(full.c)
    weight = abs(a_full) @ np.ones(len(full.c))
    scale = unit / np.maximum(weight, 1e-12)
    # The savings-plan columns are shared by every block: priced once, here.
    a_s = a_full[:, full.s_cols].tocsc()
    a_s_pos, a_s_neg = a_s.maximum(0).tocsr(), a_s.minimum(0).tocsr()
    s_cost, s_ub = full.c[full.s_cols], full.ub[full.s_cols]
    blocks: list[_Block] = []
    for lo in range(0, W, BLOCK):
        rows = list(range(lo, min(W, lo + BLOCK)))
        sub = problem.subset(rows)
        sub_pins = {k: pinned[i] for k, i in enumerate(rows) if i in pinned} if pinned else None
        model = build(sub, pinned=sub_pins)
        if len(model.c) == 0:
            return None
        model.ub[model.s_cols] = 0.0  # shared columns: priced from the full model
        a_c = model.a[model.n_local :].tocsr()
        h = load(model, integer=False, n_rows=model.n_local)
        blocks.append(
            _Block(
                rows,
                sub,
                model,
                h,
                np.asarray([label[key] for key in model.coupling], dtype=np.int64),
                a_c,
                a_c.maximum(0).tocsr(),
                a_c.minimum(0).tocsr(),
                np.arange(len(model.c), dtype=np.int32),
            )
        )
    lam = np.zeros(K)
    # A reserved row starts at the dearest rate it covers: the usual commitment covers a base
    # load used anyway, so its capacity is used up and the next vCPU there pays full price.
    reserved = np.array([key[0][0] == "reserved" for key in full.coupling])
    plain = np.array([key[0][0] in ("quota", "budget") for key in full.coupling])
    if reserved.any():
        dearest = np.zeros(K)
        r_rows = a_full[:, full.r_cols].tocsr()
        r_rate = -full.c[full.r_cols]
        for k in np.flatnonzero(reserved):
            row = r_rows[[k]]
            dearest[k] = float(r_rate[row.indices].max()) if row.nnz else 0.0
        lam[reserved] = dearest[reserved] / np.maximum(scale[reserved], 1e-12)
    step = np.full(K, 0.02)  # markup as a fraction of the row's unit cost
    last = np.zeros(K)
    best = Priced(None, math.inf, -math.inf)
    x = np.zeros((W, len(problem.locations), problem.horizon))
    history: list[np.ndarray] = []
    # With commitments, two phases: the first moves the prices towards the best bound (the
    # rows' own subgradients); the second starts from the best bound's prices and prices the
    # quotas and budgets on the plan's own use, to find a plan that meets them.
    committed = dual = not plain.all()
    queued: list[np.ndarray] = []
    warm = _WARM.get("last")
    if dual and warm is not None and warm[0]() is problem and warm[1] == full.coupling:
        lam, queued = warm[2].copy(), [warm[3].copy()]
    warmed = bool(queued)
    best_lam, plan_lam, bounds = lam.copy(), lam.copy(), []
    rounds = ended = 0  # ended: the round the first phase ended (with commitments)
    while rounds < (ended + (PRIMAL // 2 if warmed else PRIMAL) if ended else ROUNDS):
        rounds += 1
        price = lam * scale
        total = -float(price @ caps)
        use = np.zeros(K)
        # Columns tied at a zero priced cost may take any value in their range: the row's use
        # can be anything in [use + low, use + high] at these prices (a degenerate dual).
        low, high = np.zeros(K), np.zeros(K)
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
            v, tied = _minimiser(b.model, b.problem, xb, cost)
            use += np.bincount(b.rows_k, weights=b.a_c @ v, minlength=K)
            low += np.bincount(b.rows_k, weights=b.a_neg @ tied, minlength=K)
            high += np.bincount(b.rows_k, weights=b.a_pos @ tied, minlength=K)
        # Savings plans: each covers all it may while covered spend is worth more than its price.
        s_rc = s_cost + a_s.T @ price
        s_val = np.where(s_rc < -TIE, s_ub, 0.0)
        s_tied = np.where(np.abs(s_rc) <= TIE, s_ub, 0.0)
        total += float(s_rc @ s_val)
        use += a_s @ s_val
        low += a_s_neg @ s_tied
        high += a_s_pos @ s_tied
        if total > best.bound:
            best.bound, best_lam = total, lam.copy()
        bounds.append(best.bound)
        # The bound has stalled when it rose by less than a small share of the aim lately.
        stalled = len(bounds) > STALL and (
            bounds[-1] - bounds[-1 - STALL] < gap * AIM * STALL_SHARE * abs(bounds[-1])
        )
        history.append(x.copy())
        best.rounds = rounds
        v_full = full.start(problem, x)
        if _meets(full, v_full):
            z = float(full.c @ v_full)
            if z < best.objective:
                best.x, best.objective, plan_lam = x.copy(), z, lam.copy()
        best.binding = {key[0] for key, k in label.items() if lam[k] > 0}
        if best.gap <= gap * AIM:
            break
        if queued:  # a warm start: then the prices of the previous call's plan
            dual, lam, last, ended = False, queued.pop(), np.zeros(K), rounds
            step = np.where(plain, 0.005, np.minimum(step, 0.005))
            continue
        if dual and (stalled or rounds >= ROUNDS):
            dual, lam, last, ended = False, best_lam.copy(), np.zeros(K), rounds
            step = np.where(plain, 0.02, np.minimum(step, 0.005))
            continue
        if committed and not dual:
            # Quotas and budgets follow the plan itself (its commitment columns at their
            # optimum for it): the minimiser may credit tied reserved vCPUs beyond a
            # commitment's size, and a budget priced on that credit stays too cheap for any
            # plan to meet it.
            use = np.where(plain, a_full @ v_full, use)
            low[plain] = high[plain] = 0.0
            if np.any(plain & (use > caps + 1e-9 * np.maximum(1.0, np.abs(caps)))):
                # No price of these rows falls while the plan breaks one: lowering one while
                # another rises trades one budget's excess for another's.
                high[plain] = np.inf
        # Per-row bisection on the price: up when broken, down when slack and priced; a row
        # that some tie-break of the minimiser meets keeps its price (a subgradient of zero).
        over = use + low > caps
        slack = ~over & (use + high <= caps + 1e-9 * np.maximum(1.0, np.abs(caps)))
        direction = np.where(over, 1.0, np.where(slack & (lam > 0), -1.0, 0.0))
        flip = (direction * last) < 0
        same = (direction * last) > 0
        step = np.where(flip, step / 2, np.where(same, step * 1.5, step))
        lam = np.maximum(0.0, lam + direction * step)
        last = np.where(direction != 0, direction, last)
    # With commitments the exact repair runs only when the plan misses the target itself (not
    # the aim), for at most as long as the rounds took (or 2 s): a MILP over many workloads
    # that share commitments can take minutes, and the caller's exact path follows anyway.
    # A small problem without a plan is re-planned whole, with the time left (its exact solve).
    left = deadline - time.monotonic()
    repair = gap * AIM
    if committed:
        repair = gap
        if best.x is not None or W > FIX:
            left = min(left, max(2.0, time.monotonic() - started))
    if best.gap > repair and len(history) > 1 and left > 0:
        # The prices flip a set of near-tied workloads back and forth: solve those exactly,
        # the others fixed where the prices put them.
        recent = history[-4:]
        moving = np.flatnonzero(np.any([np.any(h != x, axis=(1, 2)) for h in recent], axis=0))
        if best.x is None and committed and W <= FIX:  # no plan yet: re-plan them all
            moving = np.arange(W)
        fixed = _fix(problem, full, x, moving, pinned, gap, left)
        if fixed is not None and satisfies(full, problem, fixed):
            z = objective(full, problem, fixed)
            if z < best.objective:
                best.x, best.objective = fixed, z
    if best.x is not None and committed:
        _WARM["last"] = (weakref.ref(problem), full.coupling, best_lam, plan_lam)
    return best


#: With commitments, the prices of the last call: its best bound's and its best plan's. The
#: guardrails solve the same problem again with some workloads held, and these prices start
#: that solve a round or two from its answer (any prices give a valid bound: a start only).
_WARM: dict[str, tuple[Any, tuple[tuple[Group, int], ...], np.ndarray, np.ndarray]] = {}


#: A priced cost within this fraction of the column's own cost of zero is a tie.
TIE = 1e-6


def _minimiser(
    model: Model, problem: Problem, x: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The columns of a block that minimise the priced ``cost`` once its replicas are ``x``.

    Moves and HA follow from ``x``; a workload takes all the reserved vCPUs its replicas may
    (``r = v x``) where the priced discount is positive, none elsewhere; the shared
    savings-plan columns are zero (priced apart). Its coupling rows are a subgradient.

    Returns:
        The columns, and the range of the reserved columns tied at a zero priced cost (any
        value from 0 to it minimises as well; zero elsewhere).
    """
    v = model.start(problem, x, cover=False)
    tied = np.zeros(len(v))
    if len(model.ri_pairs):
        T = model.n_t
        vc = np.array([w.vcpus for w in problem.workloads])
        rp = model.ri_pairs
        most = v[: len(model.pw) * T].reshape(-1, T)[rp] * vc[model.pw[rp]][:, None]
        rc = cost[model.r_cols].reshape(-1, T)
        band = TIE * np.abs(model.c[model.r_cols]).reshape(-1, T)
        v[model.r_cols] = np.where(rc < -band, most, 0.0).ravel()
        tied[model.r_cols] = np.where(np.abs(rc) <= band, most, 0.0).ravel()
    v[model.s_cols] = 0.0
    return v, tied


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

    The other workloads keep their replicas and the reserved vCPUs they would take; the
    commitments, quotas and budgets left to the moving ones are what the others do not use
    (read from the full model's coupling rows). The savings-plan columns stay whole in the
    re-solve: they cover the others' spend and the moving ones' together.
    """
    if len(moving) == 0 or len(moving) > FIX:
        return None
    rows = [int(i) for i in moving]
    rest = x.copy()
    rest[rows] = 0
    others = full.start(problem, rest)
    others[full.s_cols] = 0.0
    used = full.a[full.n_local :] @ others
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
    # Columns of the fractional workloads: their x, u, y and r blocks.
    P = len(model.pw)
    cols[: P * T] = np.repeat(keep, T)
    cols[P * T : 2 * P * T] = np.repeat(keep, T)
    if len(model.ha_pairs):
        cols[2 * P * T : 2 * P * T + len(model.ha_pairs) * T] = np.repeat(keep[model.ha_pairs], T)
    cols[model.r_cols] = np.repeat(keep[model.ri_pairs], T)
    lb, ub = model.lb.copy(), model.ub.copy()
    # The other workloads are fixed at their whole LP values: a MILP on the fractional ones only.
    v, _ = _minimiser(model, sub, out, cost)
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
        ri_pairs=model.ri_pairs,
        n_sp=model.n_sp,
    )
    sol = solve(sub, sub_model, gap=1e-6, time_limit=max(1.0, left))
    if sol.x is None or sol.status != 0:
        return None
    return sol.x
