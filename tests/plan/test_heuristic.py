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

import cloudbalance.plan.heuristic as heuristic
from cloudbalance.models import Location, Workload
from cloudbalance.plan import Budget, Commitment, Problem, Quota
from cloudbalance.plan.heuristic import lagrangian, objective, satisfies
from cloudbalance.plan.milp import build, solve, solve_lazy
from cloudbalance.plan.problem import evaluate, evaluate_cloud

LOCS = (
    Location("aws", "us-east-1"),
    Location("aws", "us-west-2"),
    Location("gcp", "us-central1"),
    Location("gcp", "europe-west1"),
)


def instance(seed: int, n: int = 24, T: int = 4, tight: float = 0.9) -> Problem:
    """Random workloads; a quota and both budgets sized below what the plan without them uses."""
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
    vc = np.array([w.vcpus for w in workloads])
    cheap = int(np.argmax((sol.x * vc[:, None, None]).sum(axis=(0, 2))))
    peak = float((sol.x[:, cheap, :] * vc[:, None]).sum(axis=0).max())
    aws, gcp = (evaluate_cloud(free, sol.x, c) for c in ("aws", "gcp"))
    # aws must shed spend, and gcp may take it at a limited premium: both may bind.
    budgets = (Budget("aws", tight * aws), Budget("gcp", gcp + 1.6 * (1 - tight) * aws))
    return dataclasses.replace(
        free, quotas=(Quota(LOCS[cheap], math.floor(tight * peak)),), budgets=budgets
    )


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
    for b in problem.budgets:
        assert evaluate_cloud(problem, x, b.cloud) <= b.amount + 1e-6


def optimum(problem: Problem, pinned: dict[int, np.ndarray] | None = None) -> float:
    sol = solve(problem, build(problem, pinned=pinned), gap=1e-9, time_limit=120)
    assert sol.status == 0
    assert sol.x is not None
    return float(evaluate(problem, sol.x).sum())


@pytest.mark.parametrize("seed", range(6))
def test_priced_plan_is_feasible_and_its_gap_is_proven(seed: int) -> None:
    problem = instance(seed)
    found = lagrangian(problem, gap=0.02, time_limit=60)
    assert found is not None
    assert found.x is not None
    check(problem, found.x)
    best = optimum(problem)
    # The objective is the plan's cost; the bound is below the exact optimum; the gap is theirs.
    assert found.objective == pytest.approx(float(evaluate(problem, found.x).sum()))
    assert found.bound <= best + 1e-6 <= found.objective + 2e-6
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
    found = lagrangian(problem, gap=0.02, time_limit=60, pinned=pinned)
    assert found is not None
    assert found.x is not None
    check(problem, found.x, pinned)
    assert found.bound <= optimum(problem, pinned) + 1e-6


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


def test_commitments_leave_the_plan_to_the_exact_solve() -> None:
    problem = instance(5, n=10)
    with_ri = dataclasses.replace(problem, commitments=(Commitment("aws", "us-east-1", vcpus=4.0),))
    assert lagrangian(with_ri, gap=0.005, time_limit=60) is None
    sol = solve_lazy(with_ri, gap=1e-9, time_limit=60)
    assert sol.x is not None
    assert float(evaluate(with_ri, sol.x).sum()) == pytest.approx(optimum(with_ri), abs=1e-6)


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
    found = lagrangian(twice, gap=1e-9, time_limit=60)
    assert found is not None
    assert found.x is not None
    check(twice, found.x)
    assert found.bound <= optimum(twice) + 1e-6
