"""Solve a problem, apply the guardrails, explain the result and package the Plan.

Baseline, saving, confidence and guardrails
-------------------------------------------
The baseline ("never move") keeps each workload in its current locations, scaled in proportion
to serve the same demand (:func:`cloudbalance.models.proportional`); it is priced with the same
costs, move costs, ongoing costs and commitments. The plan's expected saving
(:attr:`cloudbalance.models.Plan.expected_saving`) is the baseline's cost minus the plan's over
the horizon; a workload's saving is its share of that. What counts as a move is defined once, by
:meth:`cloudbalance.models.Plan.moved_workloads`: scaling in place is not one and saves nothing.

Uncertainty: a workload's uncertainty is ``(1 - confidence_w) * stake_w``, where ``stake_w`` is
the cost of the replica-periods the plan places where the baseline would not (what is lost if
the forecast behind the move is wrong), plus the half-width of the price forecast's interval on
every replica-period placed differently from the baseline. Confidence per workload is the
``confidence`` column of the forecast backtests (accuracy frame); without one it is derived
from the width of the forecast interval (the notes say which).

The uncertainty above is the half-width of an 80% band: a saving that exceeds it has its
lower 10% quantile above zero. ``hold_quantile`` says which quantile of the saving must be
positive: the uncertainty is scaled by ``z(hold_quantile) / z(0.9)`` (normal quantiles), so 0.9
applies it whole and 0.5 asks only that the forecast (median) saving, net of every move cost
over the horizon, be positive. The default (0.5) is what the planner backtest
(``benchmarks/backtest_planner.py --grid``) chose on the bundled 90-day replay: larger values
held every relocation there, the spot moves that pay included.

The guardrail, in ONE place and judged on the WHOLE plan (``hold="plan"``, the default): the
plan's relocations are written only when its total saving exceeds both its (scaled) total
uncertainty and the minimum saving, ``max(min_saving, min_saving_pct * baseline)`` where
``min_saving`` is in the billing currency and ``min_saving_pct`` a FRACTION of the baseline
cost (0.02 = 2%). Otherwise every workload keeps its current locations in the first period
(scaled to its demand, so in-place scale-ups are still written) and the later periods are
re-optimised. The whole plan is judged because moves interact: a move that saves nothing on
its own may free a commitment or a quota another workload then uses. ``hold="workload"``
(asked for per workload by the user) also holds each workload whose own saving does not
exceed its own uncertainty.
A workload whose current locations break its own constraints (the share cap, HA) moves as
required while the others are held; a hold that breaks a shared constraint (a quota) is not
applied, and the note says the moves are required. A moved workload whose own saving is
within the solver's gap is kept in place when no other workload loses by it (no churn between
locations of equal cost).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from cloudbalance.exceptions import PlanError
from cloudbalance.models import Move, Placement, Plan, Workload
from cloudbalance.plan.catalog import Catalog, load_catalog
from cloudbalance.plan.diagnose import diagnose
from cloudbalance.plan.explain import explain_moves, money
from cloudbalance.plan.milp import share_cap, solve_lazy
from cloudbalance.plan.problem import (
    PLANNER_VERSION,
    Budget,
    Commitment,
    Egress,
    Problem,
    Quota,
    baseline,
    build_problem,
    evaluate,
)

__all__ = ["HOLD_QUANTILE", "Hold", "plan", "reproduce_plan", "solve_problem"]

#: How the uncertainty guardrail judges: the whole plan, or also each workload on its own.
Hold = Literal["plan", "workload"]

#: Savings at or below this (in the billing currency) are nothing.
_EPS = 1e-6
#: The default ``hold_quantile``: chosen by the planner backtest (see the module docstring).
HOLD_QUANTILE = 0.5
#: The quantile of the saving at which the uncertainty is computed (lower end of 80%).
_BAND_QUANTILE = 0.9


def _placements(problem: Problem, x: np.ndarray) -> tuple[Placement, ...]:
    return tuple(
        Placement(problem.workloads[i].name, problem.locations[j], int(x[i, j]))
        for i in range(x.shape[0])
        for j in range(x.shape[1])
        if x[i, j] > 0
    )


@dataclass(frozen=True)
class _Assessment:
    """Saving and uncertainty of a schedule against the baseline, per workload."""

    base: np.ndarray  # [W, L, T] baseline (the plan itself for workloads without one)
    plan_cost: np.ndarray  # [W]
    base_cost: np.ndarray  # [W]
    stake: np.ndarray  # [W]
    price_band: np.ndarray  # [W]
    uncertainty: np.ndarray  # [W]
    moved: np.ndarray  # [W] bool: first period relocates (not a scale in place)
    scale: float  # weight of the uncertainty (hold_quantile)

    @property
    def saving(self) -> np.ndarray:
        """``[W]`` baseline cost minus plan cost."""
        out: np.ndarray = self.base_cost - self.plan_cost
        return out


def _assess(problem: Problem, x: np.ndarray, scale: float) -> tuple[_Assessment, list[int]]:
    """Saving and uncertainty of ``x``; ``scale`` weighs the uncertainty (``hold_quantile``)."""
    base, own = baseline(problem, x)
    mask = np.isin(np.arange(len(x)), own)[:, None, None]
    base = np.where(mask, x, base)
    T = x.shape[2]
    band = (np.nan_to_num(problem.cost_upper - problem.cost_lower) / 2.0)[:, :, :T]
    price_band = (np.abs(x - base) * band).sum(axis=(1, 2))
    placed = np.nan_to_num(problem.unit_cost()[:, :, :T], nan=0.0)
    stake = (np.maximum(0.0, x - base) * placed).sum(axis=(1, 2))
    moved = np.array([not np.array_equal(x[i, :, 0], base[i, :, 0]) for i in range(len(x))])
    return (
        _Assessment(
            base=base,
            plan_cost=evaluate(problem, x),
            base_cost=evaluate(problem, base),
            stake=stake,
            price_band=price_band,
            uncertainty=scale * ((1.0 - problem.confidence) * stake + price_band),
            moved=moved,
            scale=scale,
        ),
        own,
    )


def _holdable(problem: Problem, i: int, base: np.ndarray) -> bool:
    """Whether the baseline's first period keeps the workload's own constraints.

    Residency, the share cap and the HA minimum; shared constraints (quotas, budgets) are
    checked by solving with the hold.
    """
    w = problem.workloads[i]
    first = base[i, :, 0]
    if not np.all(problem.allowed()[i][first > 0]):
        return False
    if w.max_share < 1 and first.max() > share_cap(w.max_share, problem.demand[i, :1])[0]:
        return False
    return (
        not (w.min_locations > 1 and problem.demand[i, 0] >= 1)
        or int((first > 0).sum()) >= w.min_locations
    )


def _why_uncertain(problem: Problem, a: _Assessment, idx: Sequence[int]) -> str:
    """Where an uncertainty comes from, in words: confidence (and its source) and price band."""
    parts = []
    stake = float(a.stake[list(idx)].sum())
    if stake > 0:
        sources = {problem.confidence_source[i] for i in idx if problem.confidence_source}
        source = {"backtest": "from backtests", "interval": "from the forecast interval"}
        said = " and ".join(source.get(s, s) for s in sorted(sources) if s != "none")
        conf = [float(problem.confidence[i]) for i in idx]
        level = f"{conf[0]:.0%}" if len(conf) == 1 else f"{min(conf):.0%}-{max(conf):.0%}"
        parts.append(
            f"confidence {level}{' ' + said if said else ''} on "
            f"{money(stake, problem.currency)} at stake"
        )
    band = float(a.price_band[list(idx)].sum())
    if band > 0:
        parts.append(f"{money(band, problem.currency)} of price forecast band")
    return "; ".join(parts) or "nothing at stake"


def solve_problem(
    problem: Problem,
    *,
    quantile: float = 0.8,
    min_saving: float = 0.0,
    min_saving_pct: float = 0.0,
    hold: Hold = "plan",
    hold_quantile: float = HOLD_QUANTILE,
    max_gap: float = 0.005,
    time_limit: float = 120.0,
    notes: Sequence[str] = (),
    now: datetime | None = None,
    extra_inputs: Mapping[str, Any] | None = None,
) -> Plan:
    """Solve a :class:`Problem`, apply the guardrails, explain it and package the Plan.

    Args:
        problem: The problem.
        quantile: The demand quantile the problem was built at (recorded, explained).
        min_saving: Minimum saving of the whole plan, in the billing currency.
        min_saving_pct: Minimum saving of the whole plan as a fraction of the baseline cost
            (0.02 = 2%).
        hold: ``plan`` judges the uncertainty on the whole plan; ``workload`` also per workload.
        hold_quantile: Quantile of the saving that must be positive for a relocation, in
            [0.5, 1): 0.5 = the forecast saving, 0.9 = the uncertainty whole.
        max_gap: Relative optimality gap at which the solver may stop.
        time_limit: Solver time limit in seconds.
        notes: Notes to carry (from building the problem).
        now: ``created_at`` of the plan.
        extra_inputs: More inputs to record.

    Raises:
        InfeasiblePlanError: When the constraints cannot all hold (diagnosed).
        PlanError: When the solver finds no plan in ``time_limit`` seconds, or bad guardrails.
    """
    if hold not in ("plan", "workload"):
        raise PlanError(f"hold must be 'plan' or 'workload', got {hold!r}")
    if min_saving < 0 or not 0 <= min_saving_pct < 1:
        raise PlanError(
            "min_saving must be >= 0 and min_saving_pct a fraction in [0, 1) (0.02 = 2%), "
            f"got {min_saving} and {min_saving_pct}"
        )
    if not 0.5 <= hold_quantile < 1:
        raise PlanError(f"hold_quantile must be in [0.5, 1), got {hold_quantile}")
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
    scale = float(special.ndtri(hold_quantile) / special.ndtri(_BAND_QUANTILE))
    a, own = _assess(problem, x, scale)
    if own:
        shown = ", ".join(problem.workloads[i].name for i in own[:5])
        notes.append(f"no priced current placement for {shown}: no saving counted for them")
    cur = problem.currency
    if hold == "workload":
        x, a = _hold_workloads(problem, x, a, own, max_gap, time_limit, notes)
    outcome = "optimised"
    total_base = float(a.base_cost.sum())
    total_saving = float(a.saving.sum())
    threshold = max(min_saving, min_saving_pct * abs(total_base))
    movers = [int(i) for i in np.flatnonzero(a.moved) if int(i) not in own]
    uncertainty = float(a.uncertainty.sum())
    why: str | None = None
    if movers and total_saving < threshold:
        why = (
            f"the plan's saving {money(total_saving, cur)} is below the minimum "
            f"{money(threshold, cur)}"
        )
        outcome = "below_minimum_saving"
    elif movers and total_saving <= uncertainty:
        why = (
            f"the plan's saving {money(total_saving, cur)} is within its forecast uncertainty "
            f"{money(uncertainty, cur)} ({_why_uncertain(problem, a, movers)})"
        )
        outcome = "within_uncertainty"
    if why is not None:
        x, a, outcome = _hold_plan(
            problem, x, a, own, movers, (why, outcome), threshold, max_gap, time_limit, notes
        )
    elif movers:
        x, a = _drop_idle_moves(problem, x, a, movers, max_gap, time_limit, notes)
    saving_w = a.saving
    required = np.array([not _holdable(problem, i, a.base) for i in range(len(x))])
    reasons = explain_moves(
        problem,
        x,
        a.base,
        saving_w,
        quantile,
        required=required,
        total_saving=float(saving_w.sum()),
    )
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
                # Only a relocation saves (Plan.moved_workloads); scaling in place does not.
                saving=round(float(saving_w[i]) * share, 6) if a.moved[i] else 0.0,
                confidence=round(float(problem.confidence[i]), 6),
                reason=reason,
            )
        )
    idx = [i for i in range(len(x)) if a.moved[i] and i not in own]
    weights = x[idx, :, 0].sum(axis=1) if idx else x[:, :, 0].sum(axis=1)
    conf_source = problem.confidence[idx] if idx else problem.confidence
    plan_conf = float(np.average(conf_source, weights=weights)) if float(weights.sum()) > 0 else 0.0
    inputs: dict[str, Any] = {
        "planner_version": PLANNER_VERSION,
        "quantile": quantile,
        "max_gap": max_gap,
        "time_limit": time_limit,
        "min_saving": min_saving,
        "min_saving_pct": min_saving_pct,
        "hold": hold,
        "hold_quantile": hold_quantile,
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
        expected_cost=round(float(a.plan_cost.sum()), 6),
        baseline_cost=round(float(a.base_cost.sum()), 6),
        currency=problem.currency,
        confidence=round(plan_conf, 6),
        inputs=inputs,
        notes=tuple(notes),
    )


def _hold_plan(
    problem: Problem,
    x: np.ndarray,
    a: _Assessment,
    own: list[int],
    movers: list[int],
    verdict: tuple[str, str],
    threshold: float,
    max_gap: float,
    time_limit: float,
    notes: list[str],
) -> tuple[np.ndarray, _Assessment, str]:
    """Keep every workload that can stay in its current locations; the others move as required.

    A workload whose current locations break its own constraints (share cap, HA, residency) is
    left free: its move is required whatever the guard says, and holding it must not release
    the others (one required move used to write every move of the plan). ``verdict`` is the
    guard's reason and outcome; the outcome is ``optimised`` when nothing can be held.
    Beside required moves the baseline is no reference (it breaks constraints): the other
    moves are judged by what they save over the plan that holds them, against ``threshold``
    (the minimum saving) and their uncertainty.
    """
    why, outcome = verdict
    keep = {
        i: a.base[i, :, 0] for i in range(len(x)) if i not in own and _holdable(problem, i, a.base)
    }
    required = [i for i in movers if i not in keep]
    held = solve_lazy(problem, pinned=keep, gap=max_gap, time_limit=time_limit)
    if held.x is None:
        notes.append(f"{why}, but staying breaks the constraints: the moves are required")
        return x, a, "optimised"
    b, _ = _assess(problem, held.x, a.scale)
    if not required:
        notes.append(f"{why}: no relocation written")
        return held.x, b, outcome
    names = ", ".join(problem.workloads[i].name for i in required[:5])
    if len(required) == len(movers):
        notes.append(f"{why}, but staying breaks the constraints: the moves are required")
        return held.x, b, "optimised"
    # Against the required moves (not the baseline, which breaks constraints), the others are
    # judged by what they add: written when that clears the same bar.
    optional = [i for i in movers if i not in required]
    gain = float(b.plan_cost.sum() - a.plan_cost.sum())
    if gain > max(threshold, float(a.uncertainty[optional].sum())):
        notes.append(
            f"{why}, but beside the required moves of {names} the others save "
            f"{money(gain, problem.currency)} more: the moves are written"
        )
        return x, a, "optimised"
    notes.append(
        f"{why}: no relocation written but for {names}, whose moves are required "
        "(staying breaks their constraints)"
    )
    return held.x, b, outcome


def _drop_idle_moves(
    problem: Problem,
    x: np.ndarray,
    a: _Assessment,
    movers: list[int],
    max_gap: float,
    time_limit: float,
    notes: list[str],
) -> tuple[np.ndarray, _Assessment]:
    """Keep in place each moved workload that saves nothing itself, unless the plan needs it.

    Between locations of equal cost the solver is indifferent (and stops within its gap), so a
    workload may be "moved" for no saving of its own: written daily, that is churn paid in move
    costs. A moved workload whose own saving is at most the solver's gap on its own cost keeps
    its current locations scaled (the baseline) when the others lose nothing by it; when they
    do, its move frees something another workload uses (a commitment, a quota) and stays: the
    whole plan is judged, not each move alone.
    """
    # A saving within the solver's optimality gap of the workload's own cost is solver slack.
    idle = [
        i
        for i in movers
        if a.saving[i] <= max(_EPS, max_gap * abs(float(a.base_cost[i])))
        and _holdable(problem, i, a.base)
    ]
    if not idle:
        return x, a
    others = {i: x[i] for i in range(len(x)) if i not in idle}
    trial = solve_lazy(
        problem,
        pinned={**others, **{i: a.base[i] for i in idle}},
        gap=max_gap,
        time_limit=time_limit,
    )
    if trial.x is None:
        trial = solve_lazy(
            problem,
            pinned={**others, **{i: a.base[i, :, 0] for i in idle}},
            gap=max_gap,
            time_limit=time_limit,
        )
    if trial.x is None:
        return x, a
    b, _ = _assess(problem, trial.x, a.scale)
    # Their own (negligible) saving is given up; anything more lost was another workload's.
    slack = float(np.maximum(0.0, a.saving[idle]).sum())
    if float(b.plan_cost.sum()) > float(a.plan_cost.sum()) + slack + _EPS:
        return x, a
    names = ", ".join(problem.workloads[i].name for i in idle[:5])
    notes.append(f"{names}: kept in place, moving saves nothing")
    return trial.x, b


def _hold_workloads(
    problem: Problem,
    x: np.ndarray,
    a: _Assessment,
    own: list[int],
    max_gap: float,
    time_limit: float,
    notes: list[str],
) -> tuple[np.ndarray, _Assessment]:
    """Per-workload hold: keep in place each workload whose saving is within its uncertainty.

    The others are re-optimised around them (at most three rounds).
    """
    cur = problem.currency
    pinned: dict[int, np.ndarray] = {}
    for _round in range(3):
        reject = [
            i
            for i in range(len(x))
            if i not in own
            and i not in pinned
            and a.moved[i]
            and a.saving[i] <= a.uncertainty[i]
            and _holdable(problem, i, a.base)
        ]
        if not reject:
            break
        trial = dict(pinned)
        trial.update({i: a.base[i, :, 0] for i in reject})
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
            notes.append(
                f"{problem.workloads[i].name}: moves not made, its saving "
                f"{money(float(a.saving[i]), cur)} is within its forecast uncertainty "
                f"{money(float(a.uncertainty[i]), cur)} ({_why_uncertain(problem, a, [i])})"
            )
        pinned = trial
        x = retry.x
        a, _ = _assess(problem, x, a.scale)
    return x, a


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
    egress: Egress | None = None,
    horizon: int | None = None,
    start: datetime | None = None,
    period: str | None = None,
    min_saving: float = 0.0,
    min_saving_pct: float = 0.0,
    hold: Hold = "plan",
    hold_quantile: float = HOLD_QUANTILE,
    max_gap: float = 0.005,
    time_limit: float = 120.0,
    now: datetime | None = None,
) -> Plan:
    """Plan every workload's replicas per location and period over the forecast horizon.

    Args:
        demand: Forecast frame (:data:`~cloudbalance.schema.FORECAST`); ``unique_id`` is the
            workload name, values are replicas (what ``series.demand_series`` counts).
        prices: Prices frame (:data:`~cloudbalance.schema.PRICES`) or a built catalog.
        workloads: The workload specs.
        current: Where the replicas run now.
        quantile: Demand quantile to serve (0.5 = ``yhat``; see :func:`demand_replicas`).
        price_forecast: Optional forecast of unit prices (``cloud:region:SkuId:price_kind``).
        accuracy: Optional accuracy frame; its ``confidence`` per workload drives guardrails.
        quotas: vCPU quotas per location.
        budgets: Spend caps per cloud over the horizon.
        commitments: Capacity already paid for (reserved, committed-use, savings plans).
        egress: Egress rates that price data gravity (default: list prices).
        horizon: Plan at most this many periods (default: every forecast period).
        start: Ignore forecast rows before this instant.
        period: Period length (default: inferred from the forecast's ``ds``).
        min_saving: Minimum saving of the whole plan (billing currency) for a relocation to be
            written.
        min_saving_pct: The same as a fraction of the baseline cost (0.02 = 2%).
        hold: ``plan`` (default) judges the forecast uncertainty on the whole plan;
            ``workload`` also holds each workload whose own saving is within its uncertainty.
        hold_quantile: Quantile of the saving that must be positive for a relocation, in
            [0.5, 1): 0.5 (default, chosen by backtest) = the forecast saving net of every move
            cost; 0.9 = its lower 10% quantile (the uncertainty whole).
        max_gap: Relative optimality gap at which the solver may stop.
        time_limit: Solver time limit in seconds.
        now: ``created_at`` of the plan (default: now).

    Returns:
        The :class:`~cloudbalance.models.Plan`; :meth:`Problem.of` reads its problem back and
        :func:`reproduce_plan` solves it again.

    Raises:
        SchemaError: A frame breaks its schema.
        PlanError: Bad workload specs or guardrails, or no plan found in time.
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
        egress=egress,
    )
    return solve_problem(
        problem,
        quantile=quantile,
        min_saving=min_saving,
        min_saving_pct=min_saving_pct,
        hold=hold,
        hold_quantile=hold_quantile,
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
    problem = Problem.of(stored)
    if problem is None:
        raise PlanError(f"plan {stored.plan_id} does not carry its problem; cannot reproduce it")
    extra = {
        k: stored.inputs[k] for k in ("prices_digest", "prices_observed_at") if k in stored.inputs
    }
    hold = str(stored.inputs.get("hold", "plan"))
    return solve_problem(
        problem,
        quantile=float(stored.inputs.get("quantile", 0.8)),
        min_saving=float(stored.inputs.get("min_saving", 0.0)),
        min_saving_pct=float(stored.inputs.get("min_saving_pct", 0.0)),
        hold="workload" if hold == "workload" else "plan",
        # Plans made before hold_quantile existed applied the uncertainty whole.
        hold_quantile=float(stored.inputs.get("hold_quantile", _BAND_QUANTILE)),
        max_gap=float(stored.inputs.get("max_gap", 0.005)),
        time_limit=float(stored.inputs.get("time_limit", 120.0)),
        now=now or stored.created_at,
        extra_inputs=extra,
    )
