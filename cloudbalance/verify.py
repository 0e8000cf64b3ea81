"""Closed-loop verification of applied plans, and reverts when a plan did not do what it promised.

A plan is a bet on prices and demand. Once its first period is in Git and later runs have seen
the bill, each run asks of every applied plan, over the periods that have elapsed since it
took effect (at most its horizon):

- **realised**: what the moved workloads' placements written by the plan cost at the prices
  actually observed over those periods;
- **not moving** (the counterfactual): what the placements the plan replaced would have cost at
  the *same* observed prices, so the comparison isolates the decision from the market;
- **expected**: what the plan's own cost model said those placements would cost over those
  periods (its stored problem), or, for a plan without one, not moving minus the savings its
  moves claimed, pro rata.

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
    "propose_reverts",
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
    """Expected, realised and not-moving cost of one moved workload over the verified periods."""

    workload: str
    expected: float
    realised: float
    counterfactual: float

    @property
    def excess(self) -> float:
        """Realised minus not moving: positive when moving cost more."""
        return self.realised - self.counterfactual


@dataclass(frozen=True)
class Verification:
    """What an applied plan did, measured.

    Attributes:
        plan_id: The plan.
        status: ``pending`` (no period elapsed yet), ``kept``, ``revert`` (a revert should be
            proposed) or ``unpriced`` (no observed price for a placed location).
        start: Start of the first verified period (naive UTC).
        end: End of the last verified period.
        periods: Periods verified.
        currency: Currency of the amounts.
        workloads: Per moved workload, expected, realised and not-moving cost.
        billed: What the bill shows for the moved workloads over the periods, when the costs
            frame was given (informative: it also moves with demand).
        threshold: The rollback threshold applied (``None``: cost never triggers a revert).
        health: Health-check results per moved workload.
        reasons: Why the status, in words for the audit log and the pull-request body.
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

    @property
    def expected(self) -> float:
        """Expected cost of the moved workloads over the verified periods."""
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
    def excess(self) -> float:
        """Realised minus not moving (positive: the plan made things worse)."""
        return self.realised - self.counterfactual

    @property
    def should_revert(self) -> bool:
        """Whether a revert should be proposed."""
        return self.status == "revert"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the audit log's outputs)."""
        return {
            "plan_id": self.plan_id,
            "status": self.status,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "periods": self.periods,
            "currency": self.currency,
            "expected": round(self.expected, 4),
            "realised": round(self.realised, 4),
            "counterfactual": round(self.counterfactual, 4),
            "excess": round(self.excess, 4),
            "billed": None if self.billed is None else round(self.billed, 4),
            "threshold": self.threshold,
            "workloads": [
                {
                    "workload": w.workload,
                    "expected": round(w.expected, 4),
                    "realised": round(w.realised, 4),
                    "counterfactual": round(w.counterfactual, 4),
                }
                for w in self.workloads
            ],
            "health": [
                {"workload": h.workload, "ok": h.ok, "exit_code": h.exit_code} for h in self.health
            ],
            "reasons": list(self.reasons),
        }

    def evidence(self) -> str:
        """Markdown evidence for the revert's pull-request body and commit message."""
        c = self.currency
        lines = [
            f"### Why plan {self.plan_id} is reverted",
            "",
            f"Verified over {self.periods} period(s) from {self.start:%Y-%m-%d %H:%M} to "
            f"{self.end:%Y-%m-%d %H:%M} UTC, at the prices observed in those periods.",
            "",
            f"| Workload | Expected by the plan ({c}) | Realised ({c}) | Not moving ({c}) "
            f"| Realised - not moving ({c}) |",
            "|---|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {w.workload} | {w.expected:,.2f} | {w.realised:,.2f} | {w.counterfactual:,.2f} "
            f"| {w.excess:+,.2f} |"
            for w in self.workloads
        ]
        lines.append(
            f"| **total** | {self.expected:,.2f} | {self.realised:,.2f} | "
            f"{self.counterfactual:,.2f} | {self.excess:+,.2f} |"
        )
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


def _periods(plan: Plan, now: datetime) -> tuple[list[datetime], timedelta]:
    """Starts of the plan's periods fully elapsed by ``now`` (at most its horizon); their length."""
    import pandas as pd

    from cloudbalance.units import period_length

    try:
        length = period_length(plan.period)
    except ValueError as err:
        raise PlanError(f"plan {plan.plan_id}: {err}") from err
    starts = []
    for t in range(plan.horizon):
        start = pd.Timestamp(plan.period_start) + t * length
        if start + length > pd.Timestamp(now):
            break
        starts.append(start.to_pydatetime())
    return starts, length.to_pytimedelta()


def _by_workload(placements: Iterable[Any]) -> Placements:
    result: Placements = {}
    for p in placements:
        result.setdefault(p.workload, {})[p.location] = int(p.replicas)
    return result


def _priced(
    catalog: Any,
    shapes: Mapping[str, Workload],
    placement: Mapping[Location, int],
    workload: str,
    starts: Sequence[datetime],
    period: str,
) -> float:
    """Cost of ``placement`` over ``starts`` at the catalog's observed prices (NaN: unknown)."""
    locations = sorted(loc for loc, n in placement.items() if n > 0)
    if not locations:
        return 0.0
    shape = shapes.get(workload) or Workload(workload)
    matrix = catalog.replica_cost(
        vcpus=shape.vcpus,
        memory_gib=shape.memory_gib,
        spot=shape.spot,
        periods=list(starts),
        period=period,
        locations=locations,
    )
    total = 0.0
    for i, location in enumerate(locations):
        row = matrix.cost[i]
        if any(math.isnan(v) for v in row):
            return math.nan
        total += placement[location] * float(sum(row))
    return total


def _planned(plan: Plan, workload: str, placement: Mapping[Location, int], periods: int) -> float:
    """The plan's own cost of ``placement`` over its first ``periods`` periods (NaN: unknown)."""
    from cloudbalance.plan.problem import Problem

    problem = Problem.of(plan)
    return math.nan if problem is None else problem.placement_cost(workload, placement, periods)


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
    now: datetime,
    workloads: Iterable[Workload] = (),
    costs: pd.DataFrame | None = None,
    threshold: float | None = None,
    health_check: str | Callable[[Plan, str, Sequence[Location]], HealthResult] | None = None,
) -> Verification:
    """Measure an applied plan against what it expected and against not moving.

    Args:
        plan: The applied plan (its first period is what was written).
        prices: Observed prices (the prices frame); only observations before ``now`` count.
        now: The time of the check (naive UTC).
        workloads: Shapes of the workloads (vCPUs, memory, spot) to price one replica;
            default: the shapes stored in the plan's problem, else 1 vCPU / 2 GiB.
        costs: The costs frame, to report what the bill shows for the moved workloads.
        threshold: Revert when realised exceeds not moving by more than this amount over the
            verified periods (``None``: cost never triggers a revert).
        health_check: A command (see :func:`run_health_check`) or a callable, run per moved
            workload once at least one period has elapsed.

    Raises:
        PlanError: The plan's period is not a duration.
        SchemaError: The prices frame is malformed.
    """
    import pandas as pd

    from cloudbalance.plan.catalog import Catalog

    moved = sorted({m.workload for m in plan.moves if m.after != m.before})
    starts, length = _periods(plan, now)
    start = plan.period_start
    end = starts[-1] + length if starts else start
    if not starts:
        return Verification(
            plan.plan_id,
            "pending",
            start,
            start,
            0,
            plan.currency,
            threshold=threshold,
            reasons=("no period of the plan has elapsed yet",),
        )
    from cloudbalance.plan.problem import Problem

    problem = Problem.of(plan)
    shapes: dict[str, Workload] = (
        {w.name: w for w in problem.workloads} if problem is not None else {}
    )
    shapes.update({given.name: given for given in workloads})

    observed = prices[pd.to_datetime(prices["observed_at"]) < pd.Timestamp(now)]
    before = _by_workload(plan.current)
    after = {w: dict(locs) for w, locs in before.items()}
    for w, locs in _by_workload(plan.first_period).items():
        after.setdefault(w, {}).update(locs)
    outcomes: list[WorkloadOutcome] = []
    reasons: list[str] = []
    status: Status = "kept"
    if len(observed) == 0:
        status = "unpriced"
        reasons.append(f"no price observed before {now:%Y-%m-%d %H:%M}")
    else:
        catalog = Catalog.from_frame(observed)
        claimed = {w: 0.0 for w in moved}
        for m in plan.moves:
            if m.workload in claimed:
                claimed[m.workload] += m.saving
        share = len(starts) / plan.horizon if plan.horizon else 0.0
        for w in moved:
            realised = _priced(catalog, shapes, after.get(w, {}), w, starts, plan.period)
            counter = _priced(catalog, shapes, before.get(w, {}), w, starts, plan.period)
            expected = _planned(plan, w, after.get(w, {}), len(starts))
            if math.isnan(expected):
                expected = counter - claimed[w] * share
            if math.isnan(realised) or math.isnan(counter):
                status = "unpriced"
                reasons.append(f"{w}: a placed location has no observed price for its shape")
                continue
            outcomes.append(WorkloadOutcome(w, expected, realised, counter))
    verification = Verification(
        plan.plan_id,
        status,
        start,
        end,
        len(starts),
        plan.currency,
        tuple(outcomes),
        _billed(costs, moved, start, end),
        threshold,
    )
    if status == "kept":
        c = plan.currency
        excess = verification.excess
        summary = (
            f"realised {verification.realised:,.2f} {c} vs {verification.counterfactual:,.2f} "
            f"{c} not moving ({excess:+,.2f} {c}) and {verification.expected:,.2f} {c} expected"
        )
        if threshold is not None and excess > threshold:
            status = "revert"
            reasons.append(
                f"{summary}: moving cost {excess:,.2f} {c} more than not moving, above the "
                f"rollback threshold of {threshold:,.2f} {c}"
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
    return Verification(
        plan.plan_id,
        status,
        start,
        end,
        len(starts),
        plan.currency,
        tuple(outcomes),
        verification.billed,
        threshold,
        tuple(health),
        tuple(reasons),
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
