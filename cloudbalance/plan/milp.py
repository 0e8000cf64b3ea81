"""The mixed-integer linear programme and its solve with HiGHS (``highspy``).

Formulation
-----------
Workloads ``w``, locations ``l = (cloud, region)``, periods ``t = 1..T``. Given: demand ``d[w,t]``
in replicas (forecast at a chosen quantile, rounded up); cost
``c[w,l,t]`` of one replica for one period (:mod:`cloudbalance.plan.catalog`); current placement
``x[w,l,0]``; move cost ``m_w`` per replica added; allowed locations ``A_w``; vCPUs ``v_w``.

Variables: ``x[w,l,t]`` integer >= 0 (only for ``l`` in ``A_w`` that have a price: residency is
enforced by the variable not existing); ``u[w,l,t] >= 0`` replicas added; ``y[w,l,t]`` binary
"location in use" (only for workloads with an HA minimum); ``r[w,l,t] >= 0`` vCPUs covered by a
regional commitment; ``s[j,t] >= 0`` spend covered by a savings-plan-like commitment ``j``.

```
minimise   sum c[w,l,t] x[w,l,t] + sum m_w u[w,l,t]
           - sum (c[w,l,t] / v_w) r[w,l,t] - sum s[j,t]          (paid-for capacity is free)
subject to sum_l x[w,l,t] >= d[w,t]                              (serve the forecast demand)
           u[w,l,t] >= x[w,l,t] - x[w,l,t-1]                     (what is added is what moves)
           sum_l u[w,l,t] <= floor(theta_w * max(1, D[w,t-1])) + g[w,t]     (change throttle)
           x[w,l,t] <= max(1, ceil(s_w * d[w,t]))                 (max share of one location)
           x[w,l,t] >= y[w,l,t], sum_l y[w,l,t] >= k_w            (HA, when k_w > 1)
           sum_w v_w x[w,l,t] <= quota[l]                        (vCPU quotas)
           sum over a cloud's l, t of the objective terms <= budget[cloud]   (budgets, horizon)
           r[w,l,t] <= v_w x[w,l,t], sum_w r[w,l,t] <= C[l,t]     (reserved / committed-use vCPUs)
           s[j,t] <= S_j, s[j,t] <= covered spend in j's scope    (savings plans, per period)
```

Three choices deviate from a literal reading of the page, on purpose:

- ``g[w,t] = max(0, d[w,t] - d[w,t-1])`` (``d[w,0]`` = current replicas): replicas added to serve
  *growing* demand do not count against the throttle, which limits relocation, not growth; a
  literal throttle would make every demand increase above ``theta`` infeasible.
- The throttle is measured on the previous period's demand ``D[w,t-1]`` (the current replicas for
  period 1), not on the previous period's replicas; and the share on the period's demand,
  rounded up to a whole replica, not on the replicas placed. Both are equal whenever the plan
  places exactly the demand (the usual case: extra replicas cost money), and they turn rows with
  fractional coefficients on variables (``theta * x``, ``s * x``) into cardinality limits and
  plain bounds: with them HiGHS stalled on 200 workloads; without them it solves 500 in seconds.

Only the first period is written to Git (receding horizon); the later periods are why the plan
moves early and gradually ahead of a spike when a throttle or move costs make a late move dear.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import coo_array

from cloudbalance.models import Location
from cloudbalance.plan.problem import Problem, coverage, evaluate_cloud

__all__ = ["Group", "Model", "Solution", "build", "feasible", "groups", "solve", "solve_lazy"]

Group = tuple[str, str]  # (kind, subject): ("quota", "aws:us-east-1"), ("throttle", "api")


@dataclass
class Model:
    """The assembled MILP in the arrays HiGHS reads (columns: x, u, y, r, s blocks)."""

    c: np.ndarray
    integrality: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    a: Any
    row_lb: np.ndarray
    row_ub: np.ndarray
    pw: np.ndarray  # workload of each pair
    pl: np.ndarray  # location of each pair
    n_t: int
    ha_pairs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_local: int = 0  # rows before the coupling rows, which come last
    # Per coupling row (commitments, quotas, budgets): its group and period (budget k: -1-k).
    coupling: tuple[tuple[Group, int], ...] = ()
    ri_pairs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_sp: int = 0  # savings plans (one s column per plan and period)

    @property
    def r_cols(self) -> slice:
        """Columns ``r``: vCPUs of each pair in ``ri_pairs`` covered, per period."""
        r0 = (2 * len(self.pw) + len(self.ha_pairs)) * self.n_t
        return slice(r0, r0 + len(self.ri_pairs) * self.n_t)

    @property
    def s_cols(self) -> slice:
        """Columns ``s``: spend covered by each savings plan, per period."""
        s0 = self.r_cols.stop
        return slice(s0, s0 + self.n_sp * self.n_t)

    def start(self, problem: Problem, x: np.ndarray, *, cover: bool = True) -> np.ndarray:
        """A full column vector from replicas ``x`` ``[W, L, T]`` (a MIP start, a plan's check).

        Moves and HA indicators follow from ``x``; the commitment columns are what the
        commitments cover of ``x`` (:func:`~cloudbalance.plan.problem.coverage`), which is
        their optimum for ``x``: so ``c @ start(x)`` is the plan's cost and the budget rows see
        its net spend. Without ``cover`` they are zero (a caller that sets them itself).
        """
        T = self.n_t
        P = len(self.pw)
        xs = x[self.pw, self.pl, :T]
        prev = np.concatenate([problem.current[self.pw, self.pl][:, None], xs[:, :-1]], axis=1)
        out = np.zeros(len(self.c))
        out[: P * T] = xs.ravel()
        out[P * T : 2 * P * T] = np.maximum(0.0, xs - prev).ravel()
        if len(self.ha_pairs):
            n_y = len(self.ha_pairs) * T
            out[2 * P * T : 2 * P * T + n_y] = (xs[self.ha_pairs] > 0).astype(float).ravel()
        if cover and (len(self.ri_pairs) or self.n_sp):
            full = np.zeros((*x.shape[:2], T))
            full[self.pw, self.pl, :] = xs
            _, vcpus, covered = coverage(problem, full)
            rp = self.ri_pairs
            out[self.r_cols] = vcpus[self.pw[rp], self.pl[rp], :].ravel()
            out[self.s_cols] = covered.ravel()
        return out


@dataclass
class _Rows:
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)
    lb: list[np.ndarray] = field(default_factory=list)
    ub: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    def add(
        self,
        n_rows: int,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray | float,
        lb: np.ndarray | float,
        ub: np.ndarray | float,
    ) -> None:
        if n_rows == 0:
            return
        self.rows.append(np.asarray(rows, dtype=np.int64) + self.n)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype="float64"), np.shape(cols)))
        self.lb.append(np.broadcast_to(np.asarray(lb, dtype="float64"), (n_rows,)))
        self.ub.append(np.broadcast_to(np.asarray(ub, dtype="float64"), (n_rows,)))
        self.n += n_rows


def groups(problem: Problem) -> list[Group]:
    """Every switchable constraint group (diagnosis and lazy rows name them)."""
    out: list[Group] = []
    for w in problem.workloads:
        if w.allowed:
            out.append(("residency", w.name))
        if w.max_change is not None:
            out.append(("throttle", w.name))
        if w.max_share < 1:
            out.append(("share", w.name))
        if w.min_locations > 1:
            out.append(("ha", w.name))
    out += [("quota", q.location.key) for q in problem.quotas]
    out += [("budget", b.cloud) for b in problem.budgets]
    return out


def build(
    problem: Problem,
    *,
    n_t: int | None = None,
    disabled: frozenset[Group] = frozenset(),
    only: Sequence[int] | None = None,
    pinned: Mapping[int, np.ndarray] | None = None,
) -> Model:
    """Assemble the MILP (see the module docstring) for periods ``0..n_t-1``.

    Args:
        problem: The data.
        n_t: Cut the horizon after this many periods (diagnosis).
        disabled: Constraint groups left out (diagnosis).
        only: Plan only these workloads (diagnosis); shared constraints see only them.
        pinned: Workload index -> ``[L]`` replicas fixed in the first period (guardrails).
    """
    T = problem.horizon if n_t is None else n_t
    W, L = problem.demand.shape[0], len(problem.locations)
    allowed = problem.allowed()
    for i, w in enumerate(problem.workloads):
        if ("residency", w.name) in disabled:
            allowed[i] = ~np.all(np.isnan(problem.cost[i]), axis=1)
    d = problem.demand[:, :T]
    if only is not None:
        keep = np.zeros(W, dtype=bool)
        keep[list(only)] = True
        allowed &= keep[:, None]
        d = d * keep[:, None]
    pw, pl = np.nonzero(allowed)
    P = len(pw)
    cost = problem.cost[pw, pl, :T]  # [P, T]
    avail = ~np.isnan(cost)
    cost = np.nan_to_num(cost, nan=0.0)
    ongoing = (problem.gravity() + problem.preference_cost())[pw, pl, :T]  # [P, T]
    vc = np.array([w.vcpus for w in problem.workloads])
    mv = np.array([w.move_cost for w in problem.workloads])
    cur = problem.current
    starts = problem.period_starts()[:T]

    # Variable blocks.
    n_x = P * T
    x0, u0 = 0, n_x
    ha_w = [
        i
        for i, w in enumerate(problem.workloads)
        if w.min_locations > 1 and ("ha", w.name) not in disabled and np.any(pw == i)
    ]
    ha_pairs = np.flatnonzero(np.isin(pw, ha_w))
    y0 = 2 * n_x
    n_y = len(ha_pairs) * T
    # Regional vCPU commitments: capacity C[l, t].
    cap = np.zeros((L, T))
    for cm in problem.commitments:
        if cm.vcpus > 0:
            for j, loc in enumerate(problem.locations):
                if cm.covers(loc):
                    for t in range(T):
                        if cm.active(starts[t]):
                            cap[j, t] += cm.vcpus
    ri_pairs = np.flatnonzero(cap[pl].sum(axis=1) > 0) if P else np.array([], dtype=np.int64)
    r0 = y0 + n_y
    n_r = len(ri_pairs) * T
    sps = [cm for cm in problem.commitments if cm.amount > 0]
    s0 = r0 + n_r
    n_s = len(sps) * T
    n_var = s0 + n_s

    c = np.zeros(n_var)
    c[x0:u0] = (cost + ongoing).ravel()
    c[u0 : u0 + n_x] = np.repeat(mv[pw], T)
    ri_rate = np.zeros((len(ri_pairs), T))
    if n_r:
        ri_rate = cost[ri_pairs] / vc[pw[ri_pairs]][:, None]
        c[r0 : r0 + n_r] = -ri_rate.ravel()
    c[s0:] = -1.0

    integrality = np.zeros(n_var, dtype=np.int64)
    integrality[x0:u0] = 1
    integrality[y0 : y0 + n_y] = 1
    lb = np.zeros(n_var)
    ub = np.full(n_var, np.inf)
    ub[x0:u0] = np.where(avail, np.inf, 0.0).ravel()
    ub[y0 : y0 + n_y] = 1.0
    for j, cm in enumerate(sps):
        for t in range(T):
            ub[s0 + j * T + t] = cm.amount if cm.active(starts[t]) else 0.0

    pairs_t = np.arange(n_x)
    p_of = pairs_t // T
    t_of = pairs_t % T
    rows = _Rows()

    # Demand: sum_l x[w,l,t] >= d[w,t].
    rows.add(W * T, pw[p_of] * T + t_of, x0 + pairs_t, 1.0, d.ravel(), np.inf)

    # u[p,t] - x[p,t] + x[p,t-1] >= 0 (t=0: >= -current).
    prev = t_of > 0
    rows.add(
        n_x,
        np.concatenate([pairs_t, pairs_t, pairs_t[prev]]),
        np.concatenate([u0 + pairs_t, x0 + pairs_t, x0 + pairs_t[prev] - 1]),
        np.concatenate([np.ones(n_x), -np.ones(n_x), np.ones(int(prev.sum()))]),
        np.where(t_of == 0, -cur[pw[p_of], pl[p_of]], 0.0),
        np.inf,
    )

    for i, w in enumerate(problem.workloads):
        mine = np.flatnonzero(pw == i)
        if len(mine) == 0:
            continue
        theta = w.max_change
        if theta is not None and ("throttle", w.name) not in disabled:
            rhs = throttle_limit(theta, float(cur[i].sum()), d[i])
            cols = (u0 + mine[:, None] * T + np.arange(T)).ravel()
            rows.add(T, np.tile(np.arange(T), len(mine)), cols, 1.0, -np.inf, rhs)
    if pinned:
        for i, reps in pinned.items():
            for p in np.flatnonzero(pw == i):
                if reps.ndim == 1:  # first period only
                    lb[x0 + p * T] = ub[x0 + p * T] = float(reps[pl[p]])
                else:  # every period
                    block = slice(x0 + p * T, x0 + (p + 1) * T)
                    lb[block] = ub[block] = reps[pl[p], :T]
    # The share cap holds for held placements too: it is applied after the pins, so a pin that
    # breaks it leaves lb > ub, which solve() reports as infeasible (never a silent drop).
    for i, w in enumerate(problem.workloads):
        if w.max_share < 1 and ("share", w.name) not in disabled:
            most = share_cap(w.max_share, d[i])
            for p in np.flatnonzero(pw == i):
                block = slice(x0 + p * T, x0 + (p + 1) * T)
                ub[block] = np.minimum(ub[block], most)
    # HA: x - y >= 0 ; sum_l y >= k.
    if n_y:
        hp = np.repeat(ha_pairs, T)
        ht = np.tile(np.arange(T), len(ha_pairs))
        yk = np.arange(n_y)
        rows.add(
            n_y,
            np.concatenate([yk, yk]),
            np.concatenate([x0 + hp * T + ht, y0 + yk]),
            np.concatenate([np.ones(n_y), -np.ones(n_y)]),
            0.0,
            np.inf,
        )
        ha_index = {i: k for k, i in enumerate(ha_w)}
        kmin = np.array([problem.workloads[i].min_locations for i in ha_w], dtype="float64")
        rows.add(
            len(ha_w) * T,
            np.array([ha_index[int(pw[p])] for p in hp]) * T + ht,
            y0 + yk,
            1.0,
            np.where(d[ha_w] >= 1, kmin[:, None], 0.0).ravel(),
            np.inf,
        )
    # Commitments (vCPUs): r <= v x ; sum_w r[., l, t] <= C[l, t].
    if n_r:
        rk = np.arange(n_r)
        rp = np.repeat(ri_pairs, T)
        rt = np.tile(np.arange(T), len(ri_pairs))
        rows.add(
            n_r,
            np.concatenate([rk, rk]),
            np.concatenate([r0 + rk, x0 + rp * T + rt]),
            np.concatenate([np.ones(n_r), -vc[pw[rp]]]),
            -np.inf,
            0.0,
        )
    # Coupling rows last (commitments, quotas, budgets): they alone tie workloads together, so
    # the Lagrangian heuristic (plan/heuristic.py) prices them and drops them.
    n_local = rows.n
    coupling: list[tuple[Group, int]] = []
    if n_r:
        loc_rows = {int(j): k for k, j in enumerate(sorted(set(pl[ri_pairs].tolist())))}
        rows.add(
            len(loc_rows) * T,
            np.array([loc_rows[int(pl[p])] for p in rp]) * T + rt,
            r0 + rk,
            1.0,
            -np.inf,
            np.array([cap[j, t] for j in sorted(loc_rows) for t in range(T)]),
        )
        coupling += [
            (("reserved", problem.locations[j].key), t) for j in sorted(loc_rows) for t in range(T)
        ]

    def spend_terms(scope: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns/values of the net replica spend of the pairs in ``scope``, per period."""
        ps = np.flatnonzero(scope)
        cols = [x0 + (ps[:, None] * T + np.arange(T)).ravel()]
        vals = [cost[ps].ravel()]
        ts = [np.tile(np.arange(T), len(ps))]
        if n_r:
            sel = np.flatnonzero(scope[ri_pairs])
            cols.append(r0 + (sel[:, None] * T + np.arange(T)).ravel())
            vals.append(-ri_rate[sel].ravel())
            ts.append(np.tile(np.arange(T), len(sel)))
        return np.concatenate(cols), np.concatenate(vals), np.concatenate(ts)

    clouds = np.array([loc.cloud for loc in problem.locations], dtype=object)

    # Savings plans: the plans of one region together cover at most that region's spend, and
    # all of a cloud's plans (regional and cloud-wide) at most the cloud's spend. Scopes are
    # regions nested in clouds, so these rows are exactly "no spend is covered twice".
    def covered_at_most_spend(scope: np.ndarray, mine_sp: list[int], subject: str) -> None:
        """Per period: the coverage of the plans ``mine_sp`` <= the spend in ``scope``."""
        cols, vals, ts = spend_terms(scope)
        s_cols = np.concatenate([s0 + j * T + np.arange(T) for j in mine_sp])
        s_t = np.tile(np.arange(T), len(mine_sp))
        rows.add(
            T,
            np.concatenate([s_t, ts]),
            np.concatenate([s_cols, cols]),
            np.concatenate([np.ones(len(s_cols)), -vals]),
            -np.inf,
            0.0,
        )
        coupling.extend((("savings", subject), t) for t in range(T))

    regional = sorted({(cm.cloud, cm.region) for cm in sps if cm.region is not None})
    for cloud, region in regional:
        scope = np.array(
            [
                problem.locations[k].cloud == cloud and problem.locations[k].region == region
                for k in pl
            ],
            dtype=bool,
        )
        covered_at_most_spend(
            scope,
            [j for j, cm in enumerate(sps) if (cm.cloud, cm.region) == (cloud, region)],
            Location(cloud, region).key,
        )
    for cloud in sorted({cm.cloud for cm in sps}):
        scope = clouds[pl] == cloud if P else np.zeros(0, dtype=bool)
        covered_at_most_spend(scope, [j for j, cm in enumerate(sps) if cm.cloud == cloud], cloud)
    # Quotas: sum_w v_w x[w,l,t] <= Q[l] (the tightest quota of a location wins).
    limit: dict[int, float] = {}
    for q in problem.quotas:
        if ("quota", q.location.key) in disabled or q.location not in problem.locations:
            continue
        j = problem.locations.index(q.location)
        limit[j] = min(limit.get(j, math.inf), q.vcpus)
    for j, qv in limit.items():
        at = np.flatnonzero(pl == j)
        if len(at) == 0:
            continue
        rows.add(
            T,
            np.tile(np.arange(T), len(at)),
            x0 + (at[:, None] * T + np.arange(T)).ravel(),
            np.repeat(vc[pw[at]], T),
            -np.inf,
            qv,
        )
        coupling += [(("quota", problem.locations[j].key), t) for t in range(T)]
    # Budgets over the horizon: replicas + moves - commitments at the cloud's locations.
    for nb, b in enumerate(problem.budgets):
        if ("budget", b.cloud) in disabled:
            continue
        scope = clouds[pl] == b.cloud if P else np.zeros(0, dtype=bool)
        cols, vals, _ = spend_terms(scope)
        ps = np.flatnonzero(scope)
        u_cols = u0 + (ps[:, None] * T + np.arange(T)).ravel()
        u_vals = np.repeat(mv[pw[ps]], T)
        mine_sp = [j for j, cm in enumerate(sps) if cm.cloud == b.cloud]
        s_cols = (
            np.concatenate([s0 + j * T + np.arange(T) for j in mine_sp])
            if mine_sp
            else np.array([], dtype=np.int64)
        )
        all_cols = np.concatenate([cols, u_cols, s_cols])
        all_vals = np.concatenate([vals, u_vals, -np.ones(len(s_cols))])
        rows.add(1, np.zeros(len(all_cols)), all_cols, all_vals, -np.inf, b.amount)
        coupling.append((("budget", b.cloud), -1 - nb))  # one key per budget row

    if rows.n:
        a = coo_array(
            (np.concatenate(rows.vals), (np.concatenate(rows.rows), np.concatenate(rows.cols))),
            shape=(rows.n, n_var),
        ).tocsr()
        row_lb, row_ub = np.concatenate(rows.lb), np.concatenate(rows.ub)
    else:  # pragma: no cover - demand rows always exist
        a, row_lb, row_ub = None, np.zeros(0), np.zeros(0)
    return Model(
        c,
        integrality,
        lb,
        ub,
        a,
        row_lb,
        row_ub,
        pw,
        pl,
        T,
        ha_pairs,
        n_local,
        tuple(coupling),
        ri_pairs,
        len(sps),
    )


def throttle_limit(theta: float, current: float, demand: np.ndarray) -> np.ndarray:
    """Replicas a workload may add per period: ``floor(theta * max(1, D[t-1])) + growth``.

    ``D[0]`` is the current total and ``D[t]`` the demand of period ``t``; growth
    (``max(0, D[t] - D[t-1])``) is never throttled. Measuring the throttle on the previous
    demand rather than on the previous period's (variable) replicas keeps each row a plain
    cardinality limit, which HiGHS solves far faster than rows with a fractional ``theta``
    times variables.
    """
    prev = np.concatenate([[current], demand[:-1]]).astype("float64")
    growth = np.maximum(0.0, demand - prev)
    return np.asarray(np.floor(theta * np.maximum(1.0, prev) + 1e-9) + growth)


def share_cap(share: float, demand: np.ndarray) -> np.ndarray:
    """Most replicas one location may hold per period: ``ceil(share * demand)`` (at least 1)."""
    return np.asarray(np.maximum(1.0, np.ceil(share * demand - 1e-9)))


def load(model: Model, *, integer: bool, n_rows: int | None = None) -> Any:
    """A HiGHS instance holding ``model`` (its first ``n_rows`` rows; default all), quiet.

    HiGHS's MIP presolve turns the replica columns into a form whose root LP its dual simplex
    solves 5-10x slower here (benchmarks/bench_planner.py: 50 s -> 6 s on one coupled block);
    the model is already tight (plain bounds, cardinality rows), so presolve is off.
    """
    import highspy
    from highspy._core import _Highs  # the bare solver: no console banner, no callback threads

    h = _Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("presolve", "off")
    lp = highspy.HighsLp()
    a = (model.a if n_rows is None else model.a[:n_rows]).tocsc()
    lp.num_col_ = len(model.c)
    lp.num_row_ = a.shape[0]
    lp.col_cost_ = model.c
    lp.col_lower_ = model.lb
    lp.col_upper_ = model.ub
    lp.row_lower_ = model.row_lb[: a.shape[0]]
    lp.row_upper_ = model.row_ub[: a.shape[0]]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    if integer:
        kint, kcont = highspy.HighsVarType.kInteger, highspy.HighsVarType.kContinuous
        lp.integrality_ = [kint if k else kcont for k in model.integrality.tolist()]
    h.passModel(lp)
    return h


@dataclass
class Solution:
    """A solve: status (0 optimal, 1 stopped early, 2 infeasible), replicas, gap."""

    status: int
    x: np.ndarray | None  # [W, L, T] replicas
    gap: float
    objective: float


def solve(
    problem: Problem,
    model: Model,
    *,
    gap: float,
    time_limit: float,
    relax: bool = False,
    start: np.ndarray | None = None,
) -> Solution:
    """Solve with HiGHS (``highspy``); status 0 optimal, 1 stopped early, 2 infeasible.

    ``start`` (replicas ``[W, L, T]``) is offered as a MIP start: HiGHS keeps it as the first
    incumbent when it is feasible (a previous round's plan usually is), which prunes the search
    from the first node. With ``relax`` the LP relaxation's values are returned unrounded.
    """
    import highspy

    W, L = problem.demand.shape[0], len(problem.locations)
    if len(model.c) == 0:
        ok = not np.any(problem.demand[:, : model.n_t] > 0)
        return Solution(0 if ok else 2, np.zeros((W, L, model.n_t)) if ok else None, 0.0, 0.0)
    if np.any(model.lb > model.ub + 1e-9):  # a pin that breaks a bound (e.g. the share cap)
        return Solution(2, None, math.inf, math.inf)
    h = load(model, integer=not relax)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", float(gap))
    if start is not None and not relax:
        offered = highspy.HighsSolution()
        offered.col_value = model.start(problem, start).tolist()
        offered.value_valid = True
        h.setSolution(offered)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    if status == highspy.HighsModelStatus.kOptimal:
        code = 0
    elif status in (
        highspy.HighsModelStatus.kInfeasible,
        highspy.HighsModelStatus.kUnboundedOrInfeasible,
    ):
        code = 2
    else:
        code = 1
    if code == 2 or info.primal_solution_status != 2:  # 2: a feasible solution is known
        return Solution(code, None, math.inf, math.inf)
    values = np.asarray(h.getSolution().col_value)
    T = model.n_t
    xs = values[: len(model.pw) * T].reshape(len(model.pw), T)
    if not relax:
        xs = np.rint(xs)
    out = np.zeros((W, L, T))
    out[model.pw, model.pl, :] = xs
    mip_gap = 0.0 if relax else float(info.mip_gap)
    return Solution(code, out, mip_gap, float(info.objective_function_value))


def violated(problem: Problem, x: np.ndarray, group: Group) -> bool:
    kind, subject = group
    if kind == "quota":
        loc = Location.parse(subject)
        if loc not in problem.locations:
            return False
        j = problem.locations.index(loc)
        limit = min(q.vcpus for q in problem.quotas if q.location == loc)
        vc = np.array([w.vcpus for w in problem.workloads])
        return bool((x[:, j, :] * vc[:, None]).sum(axis=0).max() > limit + 1e-6)
    amount = min(b.amount for b in problem.budgets if b.cloud == subject)
    return evaluate_cloud(problem, x, subject) > amount + 1e-6


#: Independent workloads are solved in blocks of at most this many (one MILP each).
BLOCK = 150


def _tight(problem: Problem, x: np.ndarray, group: Group, margin: float = 0.02) -> bool:
    """Whether a quota or budget is (nearly) used up by ``x`` (an LP relaxation's values)."""
    kind, subject = group
    if kind == "quota":
        loc = Location.parse(subject)
        if loc not in problem.locations:
            return False
        j = problem.locations.index(loc)
        limit = min(q.vcpus for q in problem.quotas if q.location == loc)
        vc = np.array([w.vcpus for w in problem.workloads])
        return bool((x[:, j, :] * vc[:, None]).sum(axis=0).max() >= (1 - margin) * limit)
    amount = min(b.amount for b in problem.budgets if b.cloud == subject)
    return evaluate_cloud(problem, x, subject) >= (1 - margin) * amount


def _scope(problem: Problem, rows: set[Group]) -> np.ndarray:
    """``[L]``: the locations some quota or budget of ``rows`` limits."""
    out = np.zeros(len(problem.locations), dtype=bool)
    for kind, subject in rows:
        for j, loc in enumerate(problem.locations):
            if (kind == "quota" and loc.key == subject) or (
                kind == "budget" and loc.cloud == subject
            ):
                out[j] = True
    return out


def _blocks(problem: Problem, active: set[Group]) -> list[list[int]]:
    """Workloads that share an active constraint or a commitment, packed into blocks.

    Two workloads are coupled when both may run at a location of one active quota, one active
    budget's cloud or one commitment's scope. Coupled workloads are solved together; the
    others, in blocks of at most :data:`BLOCK` (one MILP each, so the gap of every block, and
    hence of their sum, is within the target).
    """
    W = len(problem.workloads)
    parent = list(range(W))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    allowed = problem.allowed()
    scopes = [_scope(problem, {g}) for g in active]
    for cm in problem.commitments:
        scopes.append(np.array([cm.covers(loc) for loc in problem.locations]))
    for scope in scopes:
        members = np.flatnonzero(allowed[:, scope].any(axis=1))
        for k in members[1:]:
            a, b = find(int(members[0])), find(int(k))
            if a != b:
                parent[b] = a
    comps: dict[int, list[int]] = {}
    for i in range(W):
        comps.setdefault(find(i), []).append(i)
    blocks: list[list[int]] = []
    small: dict[int, list[int]] = {}
    for comp in comps.values():
        if len(comp) > 1:
            blocks.append(comp)
        else:  # by index range, so a block keeps its members when others merge
            small.setdefault(comp[0] // BLOCK, []).extend(comp)
    return blocks + [small[k] for k in sorted(small)]


#: Replica columns (allowed workload-location pairs x periods) from which a problem with
#: commitments goes to the heuristic first: 10 workloads x 9 locations x 14
#: periods (1,260) take 6.7 s exactly, 25 (3,150) 19 s against 0.6 s priced.
HEURISTIC_MIN_COLUMNS = 2_000


def solve_lazy(
    problem: Problem,
    *,
    gap: float,
    time_limit: float,
    pinned: Mapping[int, np.ndarray] | None = None,
    start: np.ndarray | None = None,
) -> Solution:
    """Solve with only the quotas and budgets that bind, in independent blocks, warm-started.

    Dense budget and quota rows slow HiGHS down even when they do not bind, and they couple
    workloads that are otherwise independent. So:

    0. The Lagrangian heuristic (:mod:`cloudbalance.plan.heuristic`) prices the quotas,
       budgets and commitments (with commitments, from :data:`HEURISTIC_MIN_COLUMNS`
       columns); when its plan is within ``gap`` of its proven bound, that plan is the answer
       (the usual case at scale). Otherwise its plan is the MIP start and its priced rows the
       ones predicted to bind, and the exact steps below follow.
    1. Without the heuristic's answer (it found no bound in time, or a small problem with
       commitments), the LP relaxation of the whole model predicts which quotas and budgets
       bind (those it uses up to within 2%); only those are added up front.
    2. Workloads that share no active row or commitment are solved apart, in blocks.
    3. A solution that breaks a row left out adds it (and merges the blocks it couples), and
       the blocks it touches are solved again from the previous solution as a MIP start;
       untouched blocks keep their solution.

    Exact, not a heuristic: dropping rows only lowers the optimum, so a solution of the rows
    kept that satisfies every other row is optimal (within the gap) for the whole problem; the
    loop ends with every constraint satisfied or with a proof of infeasibility.
    """
    import time

    from cloudbalance.plan.heuristic import lagrangian

    deadline = time.monotonic() + time_limit
    W, L, T = problem.demand.shape[0], len(problem.locations), problem.horizon
    off = {g for g in groups(problem) if g[0] in ("quota", "budget")}
    # With commitments the heuristic is for large problems only: a small one is solved
    # exactly in seconds, where the priced rounds seldom prove the gap and only add time.
    big = int(problem.allowed().sum()) * T >= HEURISTIC_MIN_COLUMNS
    coupled = big if problem.commitments else bool(off)
    priced = (
        lagrangian(problem, gap=gap, time_limit=time_limit / 2, pinned=pinned) if coupled else None
    )
    if priced is not None and priced.x is not None and priced.gap <= gap:
        return Solution(0, priced.x, priced.gap, priced.objective)
    if priced is not None:  # the priced rows are the ones that bind; its plan, a MIP start
        off -= priced.binding
        if priced.x is not None and start is None:
            start = priced.x
    elif off:
        lp = solve(
            problem, build(problem, pinned=pinned), gap=gap, time_limit=time_limit, relax=True
        )
        if lp.status == 2:
            return Solution(2, None, math.inf, math.inf)
        if lp.x is not None:
            off -= {g for g in off if _tight(problem, lp.x, g)}
    x = np.zeros((W, L, T)) if start is None else start.copy()
    known = np.full(W, start is not None)  # rows of x that hold a solution (a MIP start)
    done: dict[tuple[int, ...], Solution] = {}
    while True:
        active = {g for g in groups(problem) if g[0] in ("quota", "budget")} - off
        blocks = _blocks(problem, active)
        status, worst, objective = 0, 0.0, 0.0
        for rows in blocks:
            key = tuple(rows)
            sol = done.get(key)
            if sol is None:
                sub = problem.subset(rows)
                sub_pins = (
                    {k: pinned[i] for k, i in enumerate(rows) if i in pinned} if pinned else None
                )
                left = max(1.0, deadline - time.monotonic())
                warm = x[rows] if known[rows].all() else None
                sol = solve(
                    sub,
                    build(sub, disabled=frozenset(off), pinned=sub_pins),
                    gap=gap,
                    time_limit=left,
                    start=warm,
                )
                if sol.x is None:
                    return sol
                done[key] = sol
            assert sol.x is not None
            x[rows] = sol.x
            known[rows] = True
            status = max(status, sol.status)
            worst = max(worst, sol.gap)
            objective += sol.objective
        broken = {g for g in off if violated(problem, x, g)}
        if not broken:
            return Solution(status, x, worst, objective)
        off -= broken
        # Blocks with a workload the new rows reach are solved again (from x); others are kept.
        reach = np.asarray(np.any(problem.allowed()[:, _scope(problem, broken)], axis=1))
        done = {key: sol for key, sol in done.items() if not reach[list(key)].any()}


def feasible(problem: Problem, **kwargs: Any) -> Solution:
    """Any plan of the (cut or relaxed) problem, fast: diagnosis only asks whether one exists."""
    model = build(problem, **kwargs)
    return solve(problem, model, gap=0.05, time_limit=30.0)
