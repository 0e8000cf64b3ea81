"""Solve a problem, apply the guardrails, explain the result and package the Plan.

Baseline, saving, confidence and guardrails
-------------------------------------------
The baseline ("never move") keeps each workload in its current locations, scaled in proportion
to serve the same demand; it is priced with the same costs, move costs and commitments. The
saving of a workload is its baseline cost minus its planned cost over the horizon (move costs
included). Its uncertainty is ``(1 - confidence_w) * stake_w``, where ``stake_w`` is the cost of
the replica-periods the plan places where the baseline would not (what is lost if the forecast
behind the move is wrong), plus the half-width of the price forecast's interval on every
replica-period placed differently from the baseline. A workload whose saving does not exceed its
uncertainty keeps its baseline first period (its moves are not made) and the rest is
re-optimised: with confidence 0.9 a move must save more than 10% of what it puts at stake.
Confidence per workload is the ``confidence`` column of the forecast backtests (accuracy frame);
without one it is derived from the width of the forecast interval. If the plan's total saving is
below ``min_saving`` (currency) or ``min_saving_pct`` (percent of the baseline), no relocation is
written: the plan holds the current locations (scaled to the demand).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cloudbalance.exceptions import PlanError
from cloudbalance.models import Move, Placement, Plan, Workload
from cloudbalance.plan.catalog import Catalog, load_catalog
from cloudbalance.plan.diagnose import diagnose
from cloudbalance.plan.explain import explain_moves, money
from cloudbalance.plan.milp import solve_lazy
from cloudbalance.plan.problem import (
    PLANNER_VERSION,
    Budget,
    Commitment,
    Problem,
    Quota,
    baseline,
    build_problem,
    evaluate,
)

__all__ = ["plan", "reproduce_plan", "solve_problem"]


def _placements(problem: Problem, x: np.ndarray) -> tuple[Placement, ...]:
    return tuple(
        Placement(problem.workloads[i].name, problem.locations[j], int(x[i, j]))
        for i in range(x.shape[0])
        for j in range(x.shape[1])
        if x[i, j] > 0
    )


def solve_problem(
    problem: Problem,
    *,
    quantile: float = 0.8,
    min_saving: float = 0.0,
    min_saving_pct: float = 0.0,
    max_gap: float = 0.005,
    time_limit: float = 120.0,
    notes: Sequence[str] = (),
    now: datetime | None = None,
    extra_inputs: Mapping[str, Any] | None = None,
) -> Plan:
    """Solve a :class:`Problem`, apply the guardrails, explain it and package the Plan.

    Raises:
        InfeasiblePlanError: When the constraints cannot all hold (diagnosed).
        PlanError: When the solver finds no plan in ``time_limit`` seconds.
    """
    notes = list(notes)
    sol = solve_lazy(problem, gap=max_gap, time_limit=time_limit)
    if sol.x is None:
        if sol.status == 2:
            raise diagnose(problem) from None
        raise PlanError(
            f"the solver found no plan within {time_limit:g} s (status {sol.status}); "
            "raise the time limit or the optimality gap"
        )
    if sol.status == 1:
        notes.append(f"stopped at the time limit with an optimality gap of {sol.gap:.2%}")
    x = sol.x
    base, own = baseline(problem, x)
    if own:
        shown = ", ".join(problem.workloads[i].name for i in own[:5])
        notes.append(f"no priced current placement for {shown}: no saving counted for them")
    confidence = problem.confidence
    pinned: dict[int, np.ndarray] = {}
    for _round in range(3):
        plan_w = evaluate(problem, x)
        base_w = evaluate(
            problem, np.where(np.isin(np.arange(len(x)), own)[:, None, None], x, base)
        )
        saving = base_w - plan_w
        band = (np.nan_to_num(problem.cost_upper - problem.cost_lower) / 2.0)[:, :, : x.shape[2]]
        price_unc = (np.abs(x - base) * band).sum(axis=(1, 2))
        placed = np.nan_to_num(problem.cost[:, :, : x.shape[2]], nan=0.0)
        stake = (np.maximum(0.0, x - base) * placed).sum(axis=(1, 2))
        uncertainty = (1.0 - confidence) * stake + price_unc
        reject = [
            i
            for i in range(len(x))
            if i not in own
            and i not in pinned
            and not np.array_equal(x[i, :, 0], base[i, :, 0])
            and saving[i] <= uncertainty[i]
            and _movable(problem, i, base)
        ]
        if not reject:
            break
        trial = dict(pinned)
        trial.update({i: base[i, :, 0] for i in reject})
        # First re-plan only the held workloads, the others keeping their schedule; when the
        # shared constraints do not allow that, re-plan everyone.
        others = {i: x[i] for i in range(len(x)) if i not in trial}
        retry = solve_lazy(problem, pinned={**others, **trial}, gap=max_gap, time_limit=time_limit)
        if retry.x is None:
            retry = solve_lazy(problem, pinned=trial, gap=max_gap, time_limit=time_limit)
        if retry.x is None:
            names = ", ".join(problem.workloads[i].name for i in reject[:5])
            notes.append(
                f"guardrail not applied to {names}: keeping them in place breaks the constraints"
            )
            break
        for i in reject:
            w = problem.workloads[i]
            notes.append(
                f"{w.name}: moves not made, saving {money(float(saving[i]), problem.currency)} "
                f"is within the forecast uncertainty "
                f"({money(float(uncertainty[i]), problem.currency)}, confidence "
                f"{confidence[i]:.0%})"
            )
        pinned = trial
        x = retry.x
    plan_w = evaluate(problem, x)
    base_full = np.where(np.isin(np.arange(len(x)), own)[:, None, None], x, base)
    base_w = evaluate(problem, base_full)
    total_plan, total_base = float(plan_w.sum()), float(base_w.sum())
    total_saving = total_base - total_plan
    relocates = any(not np.array_equal(x[i, :, 0], base_full[i, :, 0]) for i in range(len(x)))
    threshold = max(min_saving, min_saving_pct / 100.0 * abs(total_base))
    outcome = "optimised"
    if relocates and total_saving < threshold:
        hold = {i: base_full[i, :, 0] for i in range(len(x)) if i not in own}
        held = solve_lazy(problem, pinned=hold, gap=max_gap, time_limit=time_limit)
        if held.x is None:
            notes.append(
                f"saving {money(total_saving, problem.currency)} is below the minimum "
                f"{money(threshold, problem.currency)}, but the current placement breaks the "
                "constraints: the moves are required"
            )
        else:
            notes.append(
                f"saving {money(total_saving, problem.currency)} is below the minimum "
                f"{money(threshold, problem.currency)}: no relocation written"
            )
            outcome = "below_minimum_saving"
            x = held.x
            plan_w = evaluate(problem, x)
            total_plan = float(plan_w.sum())
    saving_w = base_w - plan_w
    reasons = explain_moves(problem, x, base_full, saving_w, quantile)
    moves: list[Move] = []
    for (i, j), reason in sorted(reasons.items()):
        w = problem.workloads[i]
        before, after = int(problem.current[i, j]), int(x[i, j, 0])
        added_total = float(np.maximum(0, x[i, :, 0] - problem.current[i]).sum())
        share = max(0, after - before) / added_total if added_total else 0.0
        moves.append(
            Move(
                workload=w.name,
                location=problem.locations[j],
                before=before,
                after=after,
                saving=round(float(saving_w[i]) * share, 6),
                confidence=round(float(confidence[i]), 6),
                reason=reason,
            )
        )
    moved = sorted({m.workload for m in moves})
    idx = [i for i, w in enumerate(problem.workloads) if w.name in moved]
    weights = x[idx, :, 0].sum(axis=1) if idx else x[:, :, 0].sum(axis=1)
    conf_source = confidence[idx] if idx else confidence
    plan_conf = float(np.average(conf_source, weights=weights)) if float(weights.sum()) > 0 else 0.0
    inputs: dict[str, Any] = {
        "planner_version": PLANNER_VERSION,
        "quantile": quantile,
        "max_gap": max_gap,
        "time_limit": time_limit,
        "min_saving": min_saving,
        "min_saving_pct": min_saving_pct,
        "solver": "HiGHS (highspy)",
        "solver_gap": sol.gap,
        "outcome": outcome,
        "problem_digest": problem.digest(),
        "problem": problem.to_dict(),
    }
    if extra_inputs:
        inputs.update(extra_inputs)
    plan_id = hashlib.sha256(
        json.dumps(
            {k: v for k, v in inputs.items() if k not in ("problem", "solver_gap")},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:12]
    created = now or pd.Timestamp.now("UTC").tz_localize(None).to_pydatetime()
    return Plan(
        plan_id=plan_id,
        created_at=created,
        period_start=problem.period_start,
        period=problem.period,
        horizon=problem.horizon,
        current=_placements(problem, problem.current),
        schedule=tuple(_placements(problem, x[:, :, t]) for t in range(x.shape[2])),
        moves=tuple(moves),
        expected_cost=round(total_plan, 6),
        baseline_cost=round(float(base_w.sum()), 6),
        currency=problem.currency,
        confidence=round(plan_conf, 6),
        inputs=inputs,
        notes=tuple(notes),
    )


def _movable(problem: Problem, i: int, base: np.ndarray) -> bool:
    """Whether the baseline's first period is possible for the workload on its own."""
    allowed = problem.allowed()[i]
    return bool(np.all(allowed[base[i, :, 0] > 0]))


def plan(
    demand: pd.DataFrame,
    prices: pd.DataFrame | Catalog,
    workloads: Sequence[Workload],
    current: Sequence[Placement] = (),
    *,
    quantile: float = 0.8,
    price_forecast: pd.DataFrame | None = None,
    accuracy: pd.DataFrame | None = None,
    quotas: Sequence[Quota] = (),
    budgets: Sequence[Budget] = (),
    commitments: Sequence[Commitment] = (),
    horizon: int | None = None,
    start: datetime | None = None,
    period: str | None = None,
    min_saving: float = 0.0,
    min_saving_pct: float = 0.0,
    max_gap: float = 0.005,
    time_limit: float = 120.0,
    now: datetime | None = None,
) -> Plan:
    """Plan every workload's replicas per location and period over the forecast horizon.

    Args:
        demand: Forecast frame (:data:`~cloudbalance.schema.FORECAST`); ``unique_id`` is the
            workload name, values are in the workload's demand units.
        prices: Prices frame (:data:`~cloudbalance.schema.PRICES`) or a built catalog.
        workloads: The workload specs.
        current: Where the replicas run now.
        quantile: Demand quantile to serve (0.5 = ``yhat``; see :func:`demand_replicas`).
        price_forecast: Optional forecast of unit prices (``cloud:region:SkuId:price_kind``).
        accuracy: Optional accuracy frame; its ``confidence`` per workload drives guardrails.
        quotas: vCPU quotas per location.
        budgets: Spend caps per cloud over the horizon.
        commitments: Capacity already paid for (reserved, committed-use, savings plans).
        horizon: Plan at most this many periods (default: every forecast period).
        start: Ignore forecast rows before this instant.
        period: Period length (default: inferred from the forecast's ``ds``).
        min_saving: Minimum total saving (currency) for a relocation to be written.
        min_saving_pct: Minimum total saving in percent of the baseline cost.
        max_gap: Relative optimality gap at which the solver may stop.
        time_limit: Solver time limit in seconds.
        now: ``created_at`` of the plan (default: now).

    Returns:
        The :class:`~cloudbalance.models.Plan`; ``inputs["problem"]`` reproduces it with
        :func:`reproduce_plan`.

    Raises:
        SchemaError: A frame breaks its schema.
        PlanError: Bad workload specs, or no plan found in time.
        InfeasiblePlanError: The constraints conflict (which, where, and what to change).
    """
    catalog = (
        prices
        if isinstance(prices, Catalog)
        else load_catalog(prices, price_forecast=price_forecast)
    )
    problem, notes = build_problem(
        demand,
        catalog,
        workloads,
        current,
        quantile=quantile,
        accuracy=accuracy,
        quotas=quotas,
        budgets=budgets,
        commitments=commitments,
        horizon=horizon,
        start=start,
        period=period,
    )
    return solve_problem(
        problem,
        quantile=quantile,
        min_saving=min_saving,
        min_saving_pct=min_saving_pct,
        max_gap=max_gap,
        time_limit=time_limit,
        notes=notes,
        now=now,
        extra_inputs={
            "prices_digest": catalog.digest,
            "prices_observed_at": str(catalog.observed_at),
        },
    )


def reproduce_plan(stored: Plan, *, now: datetime | None = None) -> Plan:
    """Solve again from the inputs a plan carries; the result has the same id and schedule."""
    data = stored.inputs.get("problem")
    if not isinstance(data, Mapping):
        raise PlanError(f"plan {stored.plan_id} does not carry its problem; cannot reproduce it")
    problem = Problem.from_dict(data)
    extra = {
        k: stored.inputs[k] for k in ("prices_digest", "prices_observed_at") if k in stored.inputs
    }
    return solve_problem(
        problem,
        quantile=float(stored.inputs.get("quantile", 0.8)),
        min_saving=float(stored.inputs.get("min_saving", 0.0)),
        min_saving_pct=float(stored.inputs.get("min_saving_pct", 0.0)),
        max_gap=float(stored.inputs.get("max_gap", 0.005)),
        time_limit=float(stored.inputs.get("time_limit", 120.0)),
        now=now or stored.created_at,
        extra_inputs=extra,
    )
