"""Closed-loop verification of applied plans, and reverts when a plan did not do what it promised.

A plan is a bet on prices and demand. Once its first period is in Git and later runs have seen
the bill, each run asks of every applied plan, over the periods that have elapsed since it took
effect (at most its horizon) **and that the cost data covers** (a period whose bill is not in
yet is never judged: the plan stays ``pending``), for each workload the plan *moved* (what a
move is, and what it saves, is defined once in :mod:`cloudbalance.saving`):

- **realised**: what the placement the plan wrote cost at the prices actually observed over
  those periods;
- **not moving** (the counterfactual): the same replicas in the workload's previous locations
  (scaled in place), at the *same* observed prices, so the comparison isolates the decision
  from the market and from demand;
- **saved** (the realised saving): not moving minus realised, net of move costs;
- **expected**: the saving the plan's own cost model (its stored problem) gave the same
  placements over the same periods, or, for a plan without one, the savings its moves claimed,
  pro rata. The plan's saving over its whole horizon (the figure of its commit) is shown too.

When a plan's realised cost exceeds not moving by more than ``guardrails.rollback_threshold``
(currency units over the verified periods), or a user-supplied health check fails for a moved
workload, the run proposes the revert through the same Git path as any change (a pull request,
or a commit where the user allows it) with the evidence in the body. A plan is never reverted
twice (the ``Cloudbalance-Revert`` trailer and the audit log both say so), and a person's change
of the values the plan wrote blocks the automatic revert: it is reported instead.

Each verification and each revert, proposed or blocked, is written to the store's audit log.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cloudbalance.exceptions import CloudBalanceError, ConflictError, GitOpsError, PlanError
from cloudbalance.models import Location, Mode, Plan, RunRecord, Workload
from cloudbalance.saving import is_move, money, placement_saving

if TYPE_CHECKING:
    import pandas as pd

    from cloudbalance.gitops import ApplyResult, Forge, GitTarget
    from cloudbalance.store import Store

__all__ = [
    "HealthResult",
    "RevertOutcome",
    "Verification",
    "WorkloadOutcome",
    "applied_plan_ids",
    "data_end",
    "propose_reverts",
    "realised_savings",
    "run_health_check",
    "verify_applied",
    "verify_plan",
]

Status = Literal["pending", "kept", "revert", "unpriced"]
Placements = dict[str, dict[Location, int]]


@dataclass(frozen=True)
class HealthResult:
    """The outcome of the health check command for one moved workload."""

    workload: str
    ok: bool
    exit_code: int | None
    output: str


@dataclass(frozen=True)
class WorkloadOutcome:
    """One moved workload over the verified periods: its saving expected and realised.

    Attributes:
        workload: The workload.
        expected: The saving the plan's own cost model expected over the verified periods.
        realised: What the placement the plan wrote cost at the observed prices (with its
            move costs).
        counterfactual: What not moving (scaling in place) would have cost at the same prices.
    """

    workload: str
    expected: float
    realised: float
    counterfactual: float

    @property
    def saving(self) -> float:
        """Realised saving: not moving minus realised (positive: the move paid off)."""
        return self.counterfactual - self.realised

    @property
    def excess(self) -> float:
        """Realised minus not moving: positive when moving cost more."""
        return self.realised - self.counterfactual


@dataclass(frozen=True)
class Verification:
    """What an applied plan did, measured.

    Attributes:
        plan_id: The plan.
        status: ``pending`` (no period of the plan both elapsed and has cost data yet),
            ``kept``, ``revert`` (a revert should be proposed) or ``unpriced`` (no observed
            price for a placed location).
        start: Start of the first verified period (naive UTC).
        end: End of the last verified period.
        periods: Periods verified (elapsed and covered by cost data).
        currency: Currency of the amounts.
        workloads: Per moved workload, expected and realised saving.
        billed: What the bill shows for the moved workloads over the periods, when the costs
            frame was given (informative: it also moves with demand).
        threshold: The rollback threshold applied (``None``: cost never triggers a revert).
        health: Health-check results per moved workload.
        reasons: Why the status, in words for the audit log and the pull-request body.
        plan_saving: The plan's expected saving over its whole horizon
            (:attr:`~cloudbalance.models.Plan.saving`, the figure of its commit).
        data_end: Where the cost data of the clouds the plan touches ends (the earliest of
            them); no period after it is judged.
    """

    plan_id: str
    status: Status
    start: datetime
    end: datetime
    periods: int
    currency: str
    workloads: tuple[WorkloadOutcome, ...] = ()
    billed: float | None = None
    threshold: float | None = None
    health: tuple[HealthResult, ...] = ()
    reasons: tuple[str, ...] = ()
    plan_saving: float = 0.0
    data_end: datetime | None = None

    @property
    def expected(self) -> float:
        """Saving the plan expected over the verified periods."""
        return sum(w.expected for w in self.workloads)

    @property
    def realised(self) -> float:
        """Realised cost of the moved workloads over the verified periods."""
        return sum(w.realised for w in self.workloads)

    @property
    def counterfactual(self) -> float:
        """Cost of not moving, at the same realised prices."""
        return sum(w.counterfactual for w in self.workloads)

    @property
    def saving(self) -> float:
        """Realised saving over the verified periods (positive: moving paid off)."""
        return sum(w.saving for w in self.workloads)

    @property
    def excess(self) -> float:
        """Realised minus not moving (positive: the plan made things worse)."""
        return -self.saving

    @property
    def should_revert(self) -> bool:
        """Whether a revert should be proposed."""
        return self.status == "revert"

    def summary(self) -> str:
        """One line: the status and the saving figures, as ``verify`` and the run print them."""
        c = self.currency
        head = f"{self.plan_id}: {self.status}"
        committed = f"expected {money(self.plan_saving, c)} over the plan's horizon"
        if self.periods == 0:
            return f"{head}; {committed}; " + "; ".join(self.reasons)
        return (
            f"{head} over {self.periods} period(s) with cost data ({self.start:%Y-%m-%d} to "
            f"{self.end:%Y-%m-%d}): saved {money(self.saving, c)} vs "
            f"{money(self.expected, c)} expected for those periods; {committed}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the audit log's outputs); :meth:`from_dict` reads it back."""
        return {
            "plan_id": self.plan_id,
            "status": self.status,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "periods": self.periods,
            "currency": self.currency,
            "plan_saving": round(self.plan_saving, 2),
            "expected": round(self.expected, 2),
            "saving": round(self.saving, 2),
            "realised": round(self.realised, 4),
            "counterfactual": round(self.counterfactual, 4),
            "excess": round(self.excess, 4),
            "billed": None if self.billed is None else round(self.billed, 4),
            "threshold": self.threshold,
            "data_end": None if self.data_end is None else self.data_end.isoformat(),
            "workloads": [
                {
                    "workload": w.workload,
                    "expected": w.expected,
                    "realised": w.realised,
                    "counterfactual": w.counterfactual,
                }
                for w in self.workloads
            ],
            "health": [
                {"workload": h.workload, "ok": h.ok, "exit_code": h.exit_code} for h in self.health
            ],
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verification:
        """Inverse of :meth:`to_dict` (health output is not kept in the audit log)."""
        end = data.get("data_end")
        return cls(
            plan_id=str(data["plan_id"]),
            status=data["status"],
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            periods=int(data["periods"]),
            currency=str(data["currency"]),
            workloads=tuple(
                WorkloadOutcome(
                    str(w["workload"]),
                    float(w["expected"]),
                    float(w["realised"]),
                    float(w["counterfactual"]),
                )
                for w in data.get("workloads", [])
            ),
            billed=data.get("billed"),
            threshold=data.get("threshold"),
            health=tuple(
                HealthResult(h["workload"], bool(h["ok"]), h.get("exit_code"), "")
                for h in data.get("health", [])
            ),
            reasons=tuple(data.get("reasons", ())),
            plan_saving=float(data.get("plan_saving", 0.0)),
            data_end=datetime.fromisoformat(end) if end else None,
        )

    def evidence(self) -> str:
        """Markdown evidence for the revert's pull-request body and commit message."""
        c = self.currency
        lines = [
            f"### Why plan {self.plan_id} is reverted",
            "",
            f"Verified over {self.periods} period(s) with cost data from "
            f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC, at the prices "
            "observed in those periods. Not moving is the same replicas in the locations the "
            "plan replaced (scaled in place).",
            "",
            f"| Workload | Realised ({c}) | Not moving ({c}) | Saved ({c}) "
            f"| Expected saving ({c}) |",
            "|---|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {w.workload} | {w.realised:,.2f} | {w.counterfactual:,.2f} | {w.saving:+,.2f} "
            f"| {w.expected:+,.2f} |"
            for w in self.workloads
        ]
        lines.append(
            f"| **total** | {self.realised:,.2f} | {self.counterfactual:,.2f} | "
            f"{self.saving:+,.2f} | {self.expected:+,.2f} |"
        )
        lines += ["", f"The plan expected to save {money(self.plan_saving, c)} over its horizon."]
        if self.billed is not None:
            lines += ["", f"Billed for these workloads over the periods: {self.billed:,.2f} {c}."]
        lines += ["", *[f"- {r}" for r in self.reasons]]
        failed = [h for h in self.health if not h.ok]
        for h in failed:
            tail = "\n".join(h.output.strip().splitlines()[-5:])
            lines += [
                "",
                f"Health check output for {h.workload} (exit {h.exit_code}):",
                "",
                "```",
                tail or "(no output)",
                "```",
            ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RevertOutcome:
    """What happened to a verification that called for a revert.

    Attributes:
        plan_id: The plan.
        status: ``proposed`` (commit or pull request made), ``dry-run``, ``blocked`` (a person
            changed the values since: reported, not reverted), ``already-reverted``,
            ``superseded`` (a later plan rewrote the values) or ``failed``.
        detail: The reason or the error, in one line.
        evidence: The Markdown evidence.
        result: What gitops did, when it acted.
    """

    plan_id: str
    status: Literal["proposed", "dry-run", "blocked", "already-reverted", "superseded", "failed"]
    detail: str
    evidence: str
    result: ApplyResult | None = None


# ---------------------------------------------------------------------------------- pricing


def _length(plan: Plan) -> timedelta:
    from cloudbalance.units import period_length

    try:
        length = period_length(plan.period)
    except ValueError as err:
        raise PlanError(f"plan {plan.plan_id}: {err}") from err
    return length.to_pytimedelta()


def _periods(plan: Plan, now: datetime, data_end: datetime | None) -> list[datetime]:
    """Starts of the plan's periods that have elapsed by ``now`` and that the cost data covers.

    At most the plan's horizon. A period the cost data does not reach yet is not judged: the
    bill for it is not in, so nothing may be claimed about it (``data_end`` ``None``: no cost
    data at all, nothing is judged).
    """
    if data_end is None:
        return []
    length = _length(plan)
    limit = min(now, data_end)
    starts = []
    for t in range(plan.horizon):
        start = plan.period_start + t * length
        if start + length > limit:
            break
        starts.append(start)
    return starts


def data_end(costs: pd.DataFrame, clouds: Iterable[str]) -> datetime | None:
    """End of the cost data every one of ``clouds`` has delivered (the earliest of their ends).

    ``None`` when one of them has no cost line at all (nothing can be judged yet).
    """
    wanted = sorted(set(clouds))
    if len(costs) == 0 or not wanted:
        return None
    import pandas as pd

    from cloudbalance.provider import cloud_id

    cloud = costs["x_Cloud"] if "x_Cloud" in costs else pd.Series([None] * len(costs))
    provider = costs["ProviderName"].map(lambda p: cloud_id(p) or str(p).lower())
    ids = cloud.where(cloud.notna(), provider).astype(str).str.lower().to_numpy()
    ends = pd.to_datetime(costs["ChargePeriodEnd"])
    found: list[datetime] = []
    for name in wanted:
        mine = ends[ids == name]
        if len(mine) == 0:
            return None
        found.append(pd.Timestamp(mine.max()).to_pydatetime())
    return min(found)


def _by_workload(placements: Iterable[Any]) -> Placements:
    result: Placements = {}
    for p in placements:
        result.setdefault(p.workload, {})[p.location] = int(p.replicas)
    return result


def _observed_unit_costs(
    catalog: Any,
    shape: Workload,
    locations: Iterable[Location],
    starts: Sequence[datetime],
    period: str,
) -> dict[Location, list[float]]:
    """Cost of one replica per period and location at the catalog's observed prices."""
    locs = sorted(set(locations))
    if not locs:
        return {}
    matrix = catalog.replica_cost(
        vcpus=shape.vcpus,
        memory_gib=shape.memory_gib,
        spot=shape.spot,
        periods=list(starts),
        period=period,
        locations=locs,
    )
    return {loc: [float(v) for v in matrix.cost[i]] for i, loc in enumerate(locs)}


def _planned_unit_costs(
    plan: Plan, workload: str, locations: Iterable[Location], periods: int
) -> dict[Location, list[float]] | None:
    """The plan's own cost of one replica over its first ``periods`` periods, per location.

    ``None`` when the plan did not store its problem; NaN where the problem has no price.
    """
    from cloudbalance.plan.problem import Problem

    problem = Problem.of(plan)
    if problem is None:
        return None
    return {loc: [problem.placement_cost(workload, {loc: 1}, periods)] for loc in set(locations)}


def _billed(
    costs: pd.DataFrame | None, workloads: Iterable[str], start: datetime, end: datetime
) -> float | None:
    if costs is None or len(costs) == 0 or "x_Workload" not in costs:
        return None
    import pandas as pd

    rows = costs[
        costs["x_Workload"].isin(list(workloads))
        & (pd.to_datetime(costs["ChargePeriodStart"]) >= pd.Timestamp(start))
        & (pd.to_datetime(costs["ChargePeriodStart"]) < pd.Timestamp(end))
    ]
    return float(rows["EffectiveCost"].sum()) if len(rows) else None


# ---------------------------------------------------------------------------------- health


def run_health_check(
    command: str, *, plan: Plan, workload: str, locations: Sequence[Location], timeout: float = 60
) -> HealthResult:
    """Run the user's health-check command for one moved workload.

    ``command`` is split like a shell line (no shell is started) after replacing ``{workload}``,
    ``{plan_id}`` and ``{locations}`` (comma-separated ``cloud:region``); the same values are
    in the environment as ``CLOUDBALANCE_WORKLOAD``, ``CLOUDBALANCE_PLAN`` and
    ``CLOUDBALANCE_LOCATIONS``. Exit code 0 is healthy; anything else, a timeout or a command
    that cannot start is not.
    """
    keys = ",".join(loc.key for loc in locations)
    try:
        argv = [
            part.replace("{workload}", workload)
            .replace("{plan_id}", plan.plan_id)
            .replace("{locations}", keys)
            for part in shlex.split(command)
        ]
    except ValueError as err:
        return HealthResult(workload, False, None, f"cannot parse the command: {err}")
    env = {
        **os.environ,
        "CLOUDBALANCE_WORKLOAD": workload,
        "CLOUDBALANCE_PLAN": plan.plan_id,
        "CLOUDBALANCE_LOCATIONS": keys,
    }
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except FileNotFoundError:
        return HealthResult(workload, False, None, f"command not found: {argv[0]}")
    except subprocess.TimeoutExpired as err:
        out = err.stdout if isinstance(err.stdout, str) else ""
        return HealthResult(workload, False, None, f"{out}\ntimed out after {timeout:g} s")
    return HealthResult(workload, done.returncode == 0, done.returncode, done.stdout + done.stderr)


# ---------------------------------------------------------------------------------- verify


def verify_plan(
    plan: Plan,
    *,
    prices: pd.DataFrame,
    costs: pd.DataFrame,
    now: datetime,
    workloads: Iterable[Workload] = (),
    threshold: float | None = None,
    health_check: str | Callable[[Plan, str, Sequence[Location]], HealthResult] | None = None,
) -> Verification:
    """Measure an applied plan's realised saving against what it expected.

    Only the plan's periods that have elapsed by ``now`` *and* that the cost data of every
    cloud the plan touches covers are judged: a plan whose periods have no cost data yet is
    ``pending``, whatever the date. A workload counts only when the plan moved it
    (:func:`cloudbalance.saving.is_move`); scaling in place saves nothing by definition.

    Args:
        plan: The applied plan (its first period is what was written).
        prices: Observed prices (the prices frame); only observations before ``now`` count.
        costs: The costs frame (the bill): which periods have cost data, and what was billed.
        now: The time of the check (naive UTC).
        workloads: Shapes of the workloads (vCPUs, memory, spot, move cost) to price one
            replica; by default the shapes stored in the plan's problem.
        threshold: Revert when realised exceeds not moving by more than this amount over the
            verified periods (``None``: cost never triggers a revert).
        health_check: A command (see :func:`run_health_check`) or a callable, run per moved
            workload once at least one period has been judged.

    Raises:
        PlanError: The plan's period is not a duration.
        SchemaError: The prices frame is malformed.
    """
    import pandas as pd

    from cloudbalance.plan.catalog import Catalog

    before = _by_workload(plan.current)
    after = {w: dict(locs) for w, locs in before.items()}
    for w, locs in _by_workload(plan.first_period).items():
        after.setdefault(w, {}).update(locs)
    moved = sorted(w for w in after if is_move(before.get(w, {}), after[w]))
    # the clouds whose bill the judgement stands on: the moved workloads', else all the plan's
    clouds = {
        loc.cloud
        for w in (moved or list(after))
        for loc, n in [*before.get(w, {}).items(), *after[w].items()]
        if n > 0
    }
    covered = data_end(costs, clouds)
    starts = _periods(plan, now, covered)
    length = _length(plan)
    start = plan.period_start
    end = starts[-1] + length if starts else start

    def verification(status: Status, reasons: Sequence[str], **more: Any) -> Verification:
        return Verification(
            plan.plan_id,
            status,
            start,
            end,
            len(starts),
            plan.currency,
            threshold=threshold,
            reasons=tuple(reasons),
            plan_saving=plan.saving,
            data_end=covered,
            **more,
        )

    if not starts:
        if plan.period_start + length > now:
            why = "no period of the plan has elapsed yet"
        elif covered is None:
            why = "no cost data yet for " + (", ".join(sorted(clouds)) or "any cloud")
        else:
            last = covered - timedelta(microseconds=1)
            why = (
                f"no period of the plan has cost data yet (the cost data ends with "
                f"{last:%Y-%m-%d}, the plan starts {plan.period_start:%Y-%m-%d})"
            )
        return verification("pending", [why])
    from cloudbalance.plan.problem import Problem

    problem = Problem.of(plan)
    shapes: dict[str, Workload] = (
        {w.name: w for w in problem.workloads} if problem is not None else {}
    )
    shapes.update({given.name: given for given in workloads})

    observed = prices[pd.to_datetime(prices["observed_at"]) < pd.Timestamp(now)]
    outcomes: list[WorkloadOutcome] = []
    reasons: list[str] = []
    status: Status = "kept"
    if moved and len(observed) == 0:
        status = "unpriced"
        reasons.append(f"no price observed before {now:%Y-%m-%d %H:%M}")
    elif moved:
        catalog = Catalog.from_frame(observed)
        claimed = {w: 0.0 for w in moved}
        for m in plan.moves:
            if m.workload in claimed:
                claimed[m.workload] += m.saving
        share = len(starts) / plan.horizon if plan.horizon else 0.0
        for w in moved:
            shape = shapes.get(w) or Workload(w)
            old, new = before.get(w, {}), after[w]
            places = [loc for loc, n in [*old.items(), *new.items()] if n > 0]
            observed_cost = _observed_unit_costs(catalog, shape, places, starts, plan.period)
            saved, realised, counter = placement_saving(
                old, new, observed_cost, move_cost=shape.move_cost
            )
            planned_cost = _planned_unit_costs(plan, w, places, len(starts))
            expected = (
                placement_saving(old, new, planned_cost, move_cost=shape.move_cost)[0]
                if planned_cost is not None
                else math.nan
            )
            if math.isnan(expected):
                expected = claimed[w] * share
            if math.isnan(saved):
                status = "unpriced"
                reasons.append(f"{w}: a placed location has no observed price for its shape")
                continue
            outcomes.append(WorkloadOutcome(w, expected, realised, counter))
    billed = _billed(costs, moved, start, end)
    measured = verification(status, reasons, workloads=tuple(outcomes), billed=billed)
    if status == "kept":
        c = plan.currency
        if not moved:
            reasons.append("the plan moved no workload (scaling in place saves nothing)")
        else:
            summary = (
                f"saved {money(measured.saving, c)} ({money(measured.realised, c)} realised vs "
                f"{money(measured.counterfactual, c)} not moving) against "
                f"{money(measured.expected, c)} expected"
            )
            if threshold is not None and measured.excess > threshold:
                status = "revert"
                reasons.append(
                    f"{summary}: moving cost {money(measured.excess, c)} more than not moving, "
                    f"above the rollback threshold of {money(threshold, c)}"
                )
            else:
                reasons.append(summary)
    health: list[HealthResult] = []
    if health_check is not None:
        for w in moved:
            locations = sorted(loc for loc, n in after.get(w, {}).items() if n > 0)
            if callable(health_check):
                result = health_check(plan, w, locations)
            else:
                result = run_health_check(health_check, plan=plan, workload=w, locations=locations)
            health.append(result)
            if not result.ok:
                status = "revert"
                reasons.append(
                    f"health check failed for {w} (exit {result.exit_code}) on "
                    + ", ".join(loc.key for loc in locations)
                )
    return verification(
        status, reasons, workloads=tuple(outcomes), billed=billed, health=tuple(health)
    )


def applied_plan_ids(repo: str | Path) -> list[tuple[str, str]]:
    """``(plan_id, commit)`` of plans committed on the current branch, newest first.

    A plan is applied when its commit (``Cloudbalance-Plan`` trailer) is in the branch's
    history: committed directly, or merged from its pull request.
    """
    from cloudbalance.gitops import parse_trailers
    from cloudbalance.gitops._git import Git

    git = Git.open(repo)
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for sha, message in git.log_messages("HEAD", grep="^Cloudbalance-Plan: "):
        plan_id = parse_trailers(message).get("Cloudbalance-Plan")
        if plan_id and plan_id not in seen:
            seen.add(plan_id)
            found.append((plan_id, sha))
    return found


def _reverted_ids(repo: str | Path) -> set[str]:
    from cloudbalance.gitops import parse_trailers
    from cloudbalance.gitops._git import Git

    git = Git.open(repo)
    ids = set()
    for _, message in git.log_messages("HEAD", grep="^Cloudbalance-Revert: "):
        plan_id = parse_trailers(message).get("Cloudbalance-Revert")
        if plan_id:
            ids.add(plan_id)
    return ids


def verify_applied(
    repo: str | Path,
    store: Store,
    *,
    now: datetime | None = None,
    workloads: Iterable[Workload] = (),
    threshold: float | None = None,
    health_check: str | Callable[[Plan, str, Sequence[Location]], HealthResult] | None = None,
    run_id: str | None = None,
) -> list[Verification]:
    """Verify every plan applied on the repository's current branch and not yet reverted.

    Plans are read from the store by the ids in the commit trailers; a plan missing from the
    store is skipped with a note in the audit log. Each verification is recorded in the audit
    log as a ``verify`` step whose outputs are :meth:`Verification.to_dict`.
    """
    import pandas as pd

    from cloudbalance.exceptions import StoreError

    when = now or pd.Timestamp.now("UTC").tz_localize(None).to_pydatetime()
    run = run_id or uuid.uuid4().hex[:12]
    reverted = _reverted_ids(repo)
    prices = store.prices(end=when)
    costs = store.costs(end=when)
    results = []
    for plan_id, commit in applied_plan_ids(repo):
        if plan_id in reverted:
            continue
        started = datetime.now()
        try:
            plan = store.load_plan(plan_id)
        except StoreError as err:
            store.record(
                RunRecord(
                    run,
                    "verify",
                    "skipped",
                    started,
                    datetime.now(),
                    {"plan_id": plan_id, "commit": commit},
                    {},
                    str(err),
                )
            )
            continue
        verification = verify_plan(
            plan,
            prices=prices,
            now=when,
            workloads=workloads,
            costs=costs,
            threshold=threshold,
            health_check=health_check,
        )
        store.record(
            RunRecord(
                run,
                "verify",
                "ok",
                started,
                datetime.now(),
                {"plan_id": plan_id, "commit": commit},
                verification.to_dict(),
            )
        )
        results.append(verification)
    return results


def realised_savings(store: Store, *, run_id: str | None = None) -> list[Verification]:
    """The latest verification of each plan, as ``verify`` recorded it in the audit log.

    Reports call this rather than measuring again, so the figures they show are the ones
    ``verify`` printed, to the cent. Newest plan first.

    Args:
        store: The store whose audit log is read.
        run_id: Only this run's verifications (default: the latest of each plan, any run).
    """
    import json

    runs = store.runs(limit=100_000)
    if len(runs) == 0:
        return []
    rows = runs[(runs["step"] == "verify") & (runs["status"] == "ok")]
    if run_id is not None:
        rows = rows[rows["run_id"] == run_id]
    found: dict[str, Verification] = {}
    for outputs in rows.sort_values("started_at", ascending=False, kind="stable")["outputs"]:
        try:
            data = json.loads(outputs) if isinstance(outputs, str) else dict(outputs or {})
            if "plan_id" not in data or data["plan_id"] in found:
                continue
            found[data["plan_id"]] = Verification.from_dict(data)
        except (TypeError, ValueError, KeyError):
            continue
    return list(found.values())


# ---------------------------------------------------------------------------------- revert


def _already_reverted(store: Store | None, plan_id: str) -> bool:
    """Whether the audit log holds a proposed revert of ``plan_id`` (never revert twice)."""
    if store is None:
        return False
    import json

    runs = store.runs(limit=100_000)
    if len(runs) == 0:
        return False
    for outputs in runs.loc[runs["step"] == "revert", "outputs"]:
        try:
            data = json.loads(outputs) if isinstance(outputs, str) else dict(outputs or {})
        except (TypeError, ValueError):
            continue
        if data.get("plan_id") == plan_id and data.get("status") == "proposed":
            return True
    return False


def _later_writers(repo: str | Path, plan_id: str) -> tuple[bool, bool]:
    """Who changed the plan's stack files since its commit: ``(a person, a later plan)``."""
    from cloudbalance.gitops import parse_trailers
    from cloudbalance.gitops._git import Git

    git = Git.open(repo)
    commit = next((sha for pid, sha in applied_plan_ids(repo) if pid == plan_id), None)
    if commit is None:
        return False, False
    files = git.out("diff-tree", "--no-commit-id", "--name-only", "-r", commit).splitlines()
    if not files:
        return False, False
    log = git.out("log", "--format=%H", f"{commit}..HEAD", "--", *files).splitlines()
    human = later_plan = False
    for sha in log:
        trailers = parse_trailers(git.out("log", "-1", "--format=%B", sha))
        if "Cloudbalance-Plan" in trailers or "Cloudbalance-Revert" in trailers:
            later_plan = True
        else:
            human = True
    return human, later_plan


def propose_reverts(
    verifications: Iterable[Verification],
    repo: str | Path | GitTarget,
    *,
    mode: Mode = "pr",
    store: Store | None = None,
    forge: Forge | None = None,
    push: bool | None = None,
    remote: str | None = None,
    run_id: str | None = None,
) -> list[RevertOutcome]:
    """Propose the revert of every verification that calls for one.

    Args:
        verifications: From :func:`verify_applied` or :func:`verify_plan`.
        repo: Where to write: the :class:`~cloudbalance.gitops.GitTarget` of the configuration
            (``cloudbalance.gitops.target_from_settings``: its forge, remote, base and pushing),
            or a bare repository path (GitHub from the remote URL, ``origin``).
        mode: ``pr`` (default: a person merges it), ``commit`` (where the policies allow direct
            commits), ``branch`` or ``dry-run``.
        store: Audit log: each outcome is recorded as a ``revert`` step, and a plan whose revert
            was already proposed is not proposed again.
        forge: Override of the target's forge.
        push: Override of the target's pushing (a bare path pushes when the remote exists).
        remote: Override of the target's remote.
        run_id: Audit-log run id.

    Returns:
        One outcome per verification that called for a revert. A person's change since the plan
        gives ``blocked`` (reported, nothing written); errors give ``failed`` and do not stop the
        other reverts.
    """
    import dataclasses

    from cloudbalance.gitops import GitTarget

    target = repo if isinstance(repo, GitTarget) else GitTarget(Path(repo))
    overrides: dict[str, Any] = {"forge": forge, "push": push, "remote": remote}
    target = dataclasses.replace(target, **{k: v for k, v in overrides.items() if v is not None})
    run = run_id or uuid.uuid4().hex[:12]
    outcomes: list[RevertOutcome] = []
    for verification in verifications:
        if not verification.should_revert:
            continue
        plan_id = verification.plan_id
        evidence = verification.evidence()
        started = datetime.now()
        outcome: RevertOutcome
        if _already_reverted(store, plan_id):
            outcome = RevertOutcome(
                plan_id, "already-reverted", "a revert of this plan was already proposed", evidence
            )
        else:
            try:
                human, later_plan = _later_writers(target.repo, plan_id)
                if human:
                    raise ConflictError(
                        file="stack config",
                        key=f"placements written by plan {plan_id}",
                        expected="the values the plan wrote",
                        found="a person's later commit",
                    )
                result = target.revert(plan_id, mode=mode, evidence=evidence)
                if not result.diff:
                    status: Literal["superseded", "dry-run", "proposed"] = "superseded"
                    detail = "nothing to revert: " + "; ".join(result.notes)
                elif mode == "dry-run":
                    status, detail = "dry-run", "revert computed, nothing written (dry run)"
                else:
                    where = (
                        f"pull request #{result.pull_request.number}"
                        if result.pull_request is not None
                        else f"commit {result.commit[:12] if result.commit else '?'}"
                    )
                    status, detail = "proposed", f"revert proposed in {where}"
                if later_plan and status == "superseded":
                    detail = "a later plan rewrote the values; nothing to revert"
                outcome = RevertOutcome(plan_id, status, detail, evidence, result)
            except ConflictError as err:
                outcome = RevertOutcome(
                    plan_id,
                    "blocked",
                    f"not reverted automatically: a person changed the placements since the "
                    f"plan ({err}); review the evidence and decide",
                    evidence,
                )
            except GitOpsError as err:
                text = str(err)
                kind: Literal["already-reverted", "failed"] = (
                    "already-reverted" if "already reverted" in text else "failed"
                )
                outcome = RevertOutcome(plan_id, kind, text, evidence)
            except CloudBalanceError as err:
                outcome = RevertOutcome(plan_id, "failed", str(err), evidence)
        if store is not None:
            store.record(
                RunRecord(
                    run,
                    "revert",
                    "ok" if outcome.status != "failed" else "failed",
                    started,
                    datetime.now(),
                    {"plan_id": plan_id, "mode": mode},
                    {
                        "plan_id": plan_id,
                        "status": outcome.status,
                        "detail": outcome.detail,
                        "commit": outcome.result.commit if outcome.result else None,
                        "evidence": evidence,
                    },
                    outcome.detail if outcome.status == "failed" else None,
                )
            )
        outcomes.append(outcome)
    return outcomes
