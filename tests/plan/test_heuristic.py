"""The Lagrangian heuristic: feasible under every constraint type, an honest gap, a fallback.

Instances are random, with binding quotas and budgets, HA minimums, share caps, throttles,
residency and held placements. A plan is checked here row by row from the formulation on the
architecture page (not with the planner's own matrix), and its objective and bound against the
exact optimum that HiGHS proves on the whole model.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime

import numpy as np
import pytest
from scipy.optimize import linprog

import cloudbalance.plan.heuristic as heuristic
from cloudbalance.models import Location, Workload
from cloudbalance.plan import Budget, Commitment, Problem, Quota
from cloudbalance.plan.heuristic import Priced, lagrangian, objective, satisfies
from cloudbalance.plan.milp import build, solve, solve_lazy
from cloudbalance.plan.problem import evaluate, evaluate_cloud

LOCS = (
    Location("aws", "us-east-1"),
    Location("aws", "us-west-2"),
    Location("gcp", "us-central1"),
    Location("gcp", "europe-west1"),
)


def instance(
    seed: int, n: int = 24, T: int = 4, tight: float = 0.9, committed: bool = False
) -> Problem:
    """Random workloads; a quota and both budgets sized below what the plan without them uses.

    With ``committed``: reserved vCPUs and savings plans too (:func:`commitments`), and the
    quota and budgets sized on the plan that uses them.
    """
    rng = np.random.default_rng(seed)
    L = len(LOCS)
    workloads = []
    for i in range(n):
        allowed = (
            tuple(LOCS[j] for j in sorted(rng.choice(L, size=3, replace=False)))
            if rng.random() < 0.3
            else ()
        )
        workloads.append(
            Workload(
                f"w{i}",
                vcpus=float(rng.choice([1.0, 2.0, 4.0])),
                memory_gib=1.0,
                allowed=allowed,
                min_locations=2 if rng.random() < 0.3 else 1,
                max_share=0.6 if rng.random() < 0.3 else 1.0,
                max_change=0.5 if rng.random() < 0.4 else None,
                move_cost=float(rng.choice([0.0, 0.5, 2.0])),
            )
        )
    cost = rng.uniform(2, 12, size=(n, L, T)).round(2)
    demand = rng.integers(1, 7, size=(n, T))
    current = np.zeros((n, L), dtype=np.int64)
    for i, w in enumerate(workloads):
        ok = [j for j in range(L) if not w.allowed or LOCS[j] in w.allowed]
        for k, j in enumerate(rng.choice(ok, size=2, replace=False)):
            current[i, j] = max(1, int(demand[i, 0]) // 2 + k)
    free = Problem(
        workloads=tuple(workloads),
        locations=LOCS,
        period_start=datetime(2026, 11, 23),
        period="1D",
        demand=demand,
        cost=cost,
        cost_lower=cost,
        cost_upper=cost,
        current=current,
        confidence=np.full(n, 0.8),
    )
    sol = solve(free, build(free), gap=1e-9, time_limit=60)
    assert sol.x is not None
    if committed:
        free = dataclasses.replace(free, commitments=commitments(free, sol.x))
        sol = solve(free, build(free), gap=1e-9, time_limit=60)
    assert sol.x is not None
    vc = np.array([w.vcpus for w in workloads])
    cheap = int(np.argmax((sol.x * vc[:, None, None]).sum(axis=(0, 2))))
    peak = float((sol.x[:, cheap, :] * vc[:, None]).sum(axis=0).max())
    aws, gcp = (evaluate_cloud(free, sol.x, c) for c in ("aws", "gcp"))
    # aws must shed spend, and gcp may take it at a limited premium: both may bind.
    budgets = (Budget("aws", tight * aws), Budget("gcp", gcp + 1.6 * (1 - tight) * aws))
    return dataclasses.replace(
        free, quotas=(Quota(LOCS[cheap], math.floor(tight * peak)),), budgets=budgets
    )


def commitments(free: Problem, x: np.ndarray) -> tuple[Commitment, ...]:
    """Reserved vCPUs where ``x`` runs the most and the least, and a savings plan per scope kind.

    The first covers part of a load that runs there anyway; the second more than runs there (it
    pulls workloads in); aws gets a cloud-wide savings plan, gcp a regional one, each a share of
    the spend ``x`` has in its scope in its cheapest period (so both are used up).
    """
    vc = np.array([w.vcpus for w in free.workloads])
    low = (x * vc[:, None, None]).sum(axis=0).min(axis=1)  # [L] vCPUs in the lowest period
    most, least = int(np.argmax(low)), int(np.argmin(low))
    spend = free.cost * x
    aws = [j for j, loc in enumerate(free.locations) if loc.cloud == "aws"]
    return (
        Commitment(
            LOCS[most].cloud, LOCS[most].region, vcpus=max(2.0, math.floor(0.5 * low[most]))
        ),
        Commitment(LOCS[least].cloud, LOCS[least].region, vcpus=max(4.0, float(low.mean()) // 2)),
        Commitment("aws", amount=round(0.3 * float(spend[:, aws].sum(axis=(0, 1)).min()), 2)),
        Commitment("gcp", "us-central1", amount=round(0.3 * float(spend[:, 2].sum(0).min()), 2)),
    )


def covered(problem: Problem, x: np.ndarray) -> dict[str, float]:
    """Per cloud, the most the commitments take off the spend of ``x``: an LP written out here.

    Variables: vCPUs ``r[i, j, t]`` of a replica cell under a reserved commitment (at most the
    cell's vCPUs; per location and period at most the reserved vCPUs there), and spend
    ``s[k, t]`` covered by savings plan ``k`` (at most its amount; a region's plans at most the
    region's spend net of reserved coverage, a cloud's plans at most the cloud's).
    """
    W, L, T = x.shape
    vc = np.array([w.vcpus for w in problem.workloads])
    starts = problem.period_starts()
    cost = np.nan_to_num(problem.cost[:, :, :T])
    rate = cost / vc[:, None, None]
    cap = np.array(
        [
            [
                sum(
                    c.vcpus
                    for c in problem.commitments
                    if c.vcpus > 0 and c.covers(loc) and c.active(starts[t])
                )
                for t in range(T)
            ]
            for loc in problem.locations
        ]
    )
    plans = [c for c in problem.commitments if c.amount > 0]
    n_r = W * L * T
    n = n_r + len(plans) * T
    gain = np.concatenate([rate.ravel(), np.ones(len(plans) * T)])
    upper = np.concatenate(
        [(vc[:, None, None] * x * (cap[None] > 0)).ravel(), np.repeat([c.amount for c in plans], T)]
    )
    rows, rhs = [], []

    def r_at(i: int, j: int, t: int) -> int:
        return int((i * L + j) * T + t)

    for j in range(L):
        for t in range(T):
            row = np.zeros(n)
            for i in range(W):
                row[r_at(i, j, t)] = 1.0
            rows.append(row)
            rhs.append(cap[j, t])
    scopes = {(c.cloud, c.region) for c in plans} | {(c.cloud, None) for c in plans}
    for cloud, region in scopes:
        inside = [
            j
            for j, loc in enumerate(problem.locations)
            if loc.cloud == cloud and region in (None, loc.region)
        ]
        mine = [k for k, c in enumerate(plans) if c.cloud == cloud and region in (None, c.region)]
        for t in range(T):
            row = np.zeros(n)
            for k in mine:
                row[n_r + k * T + t] = 1.0
            for i in range(W):
                for j in inside:
                    row[r_at(i, j, t)] = rate[i, j, t]
            rows.append(row)
            rhs.append(float(sum(cost[i, j, t] * x[i, j, t] for i in range(W) for j in inside)))
    res = linprog(
        -gain,
        A_ub=np.array(rows),
        b_ub=np.array(rhs),
        bounds=list(zip(np.zeros(n), upper, strict=True)),
    )
    assert res.status == 0, res.message
    out = {cloud: 0.0 for cloud in {loc.cloud for loc in problem.locations}}
    value = gain * res.x
    for i in range(W):
        for j, loc in enumerate(problem.locations):
            out[loc.cloud] += float(value[(i * L + j) * T : (i * L + j + 1) * T].sum())
    for k, c in enumerate(plans):
        out[c.cloud] += float(value[n_r + k * T : n_r + (k + 1) * T].sum())
    return out


def cost_of(problem: Problem, x: np.ndarray) -> tuple[float, dict[str, float]]:
    """The plan's cost and each cloud's net spend (budgets), written out with :func:`covered`."""
    assert not (problem.gravity() + problem.preference_cost()).any()  # no ongoing costs here
    T = x.shape[2]
    cost = np.nan_to_num(problem.cost[:, :, :T])
    mv = np.array([w.move_cost for w in problem.workloads])
    prev = np.concatenate([problem.current[:, :, None], x[:, :, :-1]], axis=2)
    gross = cost * x + mv[:, None, None] * np.maximum(0, x - prev)
    off = covered(problem, x)
    net = {
        cloud: float(
            gross[:, [j for j, loc in enumerate(problem.locations) if loc.cloud == cloud]].sum()
        )
        - off[cloud]
        for cloud in off
    }
    return sum(net.values()), net


def check(problem: Problem, x: np.ndarray, pinned: dict[int, np.ndarray] | None = None) -> None:
    """Every constraint of the formulation, written out here, holds for replicas ``x``."""
    assert np.all(x >= 0)
    assert np.all(x == np.rint(x))
    vc = np.array([w.vcpus for w in problem.workloads])
    for i, w in enumerate(problem.workloads):
        d = problem.demand[i]
        assert np.all(x[i].sum(axis=0) >= d), w.name
        if w.allowed:
            outside = [j for j, loc in enumerate(problem.locations) if loc not in w.allowed]
            assert not x[i, outside].any(), w.name
        if w.max_share < 1:
            assert np.all(x[i] <= np.maximum(1, np.ceil(w.max_share * d - 1e-9))), w.name
        if w.min_locations > 1:
            assert np.all((x[i] > 0).sum(axis=0)[d >= 1] >= w.min_locations), w.name
        if w.max_change is not None:
            prev_x = np.concatenate([problem.current[i][:, None], x[i, :, :-1]], axis=1)
            added = np.maximum(0, x[i] - prev_x).sum(axis=0)
            prev_d = np.concatenate([[problem.current[i].sum()], d[:-1]])
            limit = np.floor(w.max_change * np.maximum(1, prev_d) + 1e-9)
            assert np.all(added <= limit + np.maximum(0, d - prev_d)), w.name
        if pinned and i in pinned:
            assert np.array_equal(x[i, :, 0], pinned[i]), w.name
    for q in problem.quotas:
        j = problem.locations.index(q.location)
        assert (x[:, j, :] * vc[:, None]).sum(axis=0).max() <= q.vcpus + 1e-9
    if problem.commitments:  # net spend with the commitments' best coverage, written out
        net = cost_of(problem, x)[1]
        for b in problem.budgets:
            assert net[b.cloud] <= b.amount + 1e-6
    for b in problem.budgets:
        assert evaluate_cloud(problem, x, b.cloud) <= b.amount + 1e-6


def optimum(problem: Problem, pinned: dict[int, np.ndarray] | None = None) -> float:
    sol = solve(problem, build(problem, pinned=pinned), gap=1e-9, time_limit=120)
    assert sol.status == 0
    assert sol.x is not None
    return float(evaluate(problem, sol.x).sum())


def priced(
    problem: Problem,
    *,
    gap: float = 0.02,
    pinned: dict[int, np.ndarray] | None = None,
) -> tuple[Priced, float]:
    """The heuristic's plan, checked row by row, its bound below the exact optimum (returned)."""
    found = lagrangian(problem, gap=gap, time_limit=60, pinned=pinned)
    assert found is not None
    assert found.x is not None
    check(problem, found.x, pinned)
    best = optimum(problem, pinned)
    assert found.bound <= best + 1e-6
    return found, best


@pytest.mark.parametrize("seed", range(6))
def test_priced_plan_is_feasible_and_its_gap_is_proven(seed: int) -> None:
    problem = instance(seed)
    found, best = priced(problem)
    assert found.x is not None
    # The objective is the plan's cost; the bound is below the exact optimum; the gap is theirs.
    assert found.objective == pytest.approx(float(evaluate(problem, found.x).sum()))
    assert best + 1e-6 <= found.objective + 2e-6
    assert found.gap == pytest.approx((found.objective - found.bound) / found.objective)
    # The aws budget binds: the heuristic had to price it.
    assert ("budget", "aws") in found.binding


@pytest.mark.parametrize("seed", range(6, 10))
def test_solve_lazy_is_within_the_target_gap_of_the_exact_optimum(seed: int) -> None:
    problem = instance(seed, n=30)
    sol = solve_lazy(problem, gap=0.005, time_limit=60)
    assert sol.status == 0
    assert sol.x is not None
    check(problem, sol.x)
    cost, best = float(evaluate(problem, sol.x).sum()), optimum(problem)
    true_gap = (cost - best) / cost
    assert true_gap <= 0.005 + 1e-9
    assert sol.gap >= true_gap - 1e-9  # the reported gap is a bound on the true one


def test_held_placements_stay_where_they_are() -> None:
    problem = instance(11)
    pinned = {0: problem.current[0].astype("float64"), 5: problem.current[5].astype("float64")}
    priced(problem, pinned=pinned)


def test_the_exact_repair_of_flipping_workloads_keeps_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two price rounds cannot settle the prices: the plan comes from re-solving the workloads
    # the prices flipped, exactly, around the others.
    monkeypatch.setattr(heuristic, "ROUNDS", 2)
    problem = instance(3, tight=0.9)
    monkeypatch.setattr(heuristic, "FIX", 0)  # without the repair: no plan in two rounds
    without = lagrangian(problem, gap=1e-9, time_limit=60)
    assert without is not None
    assert without.x is None
    monkeypatch.setattr(heuristic, "FIX", 400)
    found = lagrangian(problem, gap=1e-9, time_limit=60)
    assert found is not None
    assert found.x is not None
    check(problem, found.x)
    assert found.bound <= optimum(problem) + 1e-6 <= found.objective + 2e-6


def test_an_unreachable_gap_falls_back_to_the_exact_solve() -> None:
    problem = instance(4)
    found = lagrangian(problem, gap=0.0, time_limit=60)
    assert found is not None
    assert found.gap > 0
    sol = solve_lazy(problem, gap=0.0, time_limit=60)
    assert sol.x is not None
    check(problem, sol.x)
    assert float(evaluate(problem, sol.x).sum()) == pytest.approx(optimum(problem), abs=1e-6)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_priced_plan_with_commitments_is_feasible_and_its_gap_is_proven(seed: int) -> None:
    problem = instance(seed, n=16, committed=True)
    found, best = priced(problem)
    assert found.x is not None
    # The objective is the plan's cost with the commitments' best coverage (written out here).
    assert found.objective == pytest.approx(cost_of(problem, found.x)[0], abs=1e-6)
    assert best + 1e-6 <= found.objective + 2e-6
    assert found.gap == pytest.approx((found.objective - found.bound) / found.objective)


@pytest.mark.parametrize("seed", [1, 6])
def test_solve_lazy_with_commitments_is_within_the_target_gap(seed: int) -> None:
    # Small instances: the priced plan's proven gap misses the target, so the exact path runs
    # with it as MIP start; the answer must still be within the target of the true optimum.
    problem = instance(seed, n=16, committed=True)
    sol = solve_lazy(problem, gap=0.005, time_limit=60)
    assert sol.status == 0
    assert sol.x is not None
    check(problem, sol.x)
    cost, best = cost_of(problem, sol.x)[0], optimum(problem)
    true_gap = (cost - best) / cost
    assert true_gap <= 0.005 + 1e-9
    assert sol.gap >= true_gap - 1e-9  # the reported gap is a bound on the true one


def test_two_commitments_of_each_kind_on_one_region() -> None:
    # Two reserved commitments on one region add up; two savings plans on it together cover at
    # most its spend (never twice).
    problem = instance(7, n=16, committed=True)
    loc = LOCS[0]
    twice = dataclasses.replace(
        problem,
        commitments=(
            *problem.commitments,
            Commitment(loc.cloud, loc.region, vcpus=6.0),
            Commitment(loc.cloud, loc.region, vcpus=3.0),
            Commitment(loc.cloud, loc.region, amount=20.0),
            Commitment(loc.cloud, loc.region, amount=15.0),
        ),
    )
    found, best = priced(twice)
    assert found.x is not None
    assert found.objective == pytest.approx(cost_of(twice, found.x)[0], abs=1e-6)
    assert best + 1e-6 <= found.objective + 2e-6


def test_commitments_where_no_workload_may_run_cover_nothing() -> None:
    # A region outside every workload's reach: no reserved columns, no spend for a plan to
    # cover there. The bound must not count them (their price settles at "worth nothing").
    problem = instance(6, n=16, committed=True)
    far = dataclasses.replace(
        problem,
        commitments=(
            *problem.commitments,
            Commitment("aws", "eu-west-1", vcpus=50.0),
            Commitment("aws", "eu-west-1", amount=500.0),
        ),
    )
    found, best = priced(far)
    assert found.x is not None
    assert found.objective == pytest.approx(cost_of(problem, found.x)[0], abs=1e-6)
    assert best + 1e-6 <= found.objective + 2e-6


def test_satisfies_counts_what_the_commitments_cover() -> None:
    # A plan that meets a budget only thanks to its commitments is feasible, and its objective
    # is its cost net of them (the commitment columns are their optimum for the plan).
    problem = instance(7, n=16, committed=True)
    model = build(problem)
    sol = solve(problem, model, gap=1e-9, time_limit=60)
    assert sol.x is not None
    cost, net = cost_of(problem, sol.x)
    assert objective(model, problem, sol.x) == pytest.approx(cost, abs=1e-6)
    exact = dataclasses.replace(problem, budgets=tuple(Budget(c, net[c]) for c in ("aws", "gcp")))
    assert satisfies(build(exact), exact, sol.x)
    under = dataclasses.replace(
        problem, budgets=tuple(Budget(c, net[c] - 0.01) for c in ("aws", "gcp"))
    )
    assert not satisfies(build(under), under, sol.x)


def test_satisfies_rejects_a_plan_that_breaks_any_row() -> None:
    problem = instance(7)
    model = build(problem)
    sol = solve(problem, model, gap=1e-9, time_limit=60)
    assert sol.x is not None
    assert satisfies(model, problem, sol.x)
    assert objective(model, problem, sol.x) == pytest.approx(sol.objective)
    short = sol.x.copy()
    short[0, :, 1] = 0  # demand not served
    assert not satisfies(model, problem, short)
    dear = sol.x.copy()
    dear[:, 0, :] += 3  # over the aws budget (and maybe the quota)
    assert not satisfies(model, problem, dear)
    half = sol.x.copy()
    half[0, 0, 0] += 0.5  # not a whole replica
    assert not satisfies(model, problem, half)


def test_allowed_is_a_copy_callers_may_change() -> None:
    problem = instance(8)
    first = problem.allowed()
    first[:] = False
    assert problem.allowed().any()


def test_two_budgets_on_one_cloud_are_two_rows() -> None:
    # Each budget row has its own price. Merged into one, the bound would price both rows'
    # spend against one amount: the bound of a tighter problem, above the true optimum.
    problem = instance(2)
    aws = next(b for b in problem.budgets if b.cloud == "aws")
    twice = dataclasses.replace(
        problem, budgets=(Budget("aws", 1.2 * aws.amount), *problem.budgets)
    )
    priced(twice, gap=1e-9)
