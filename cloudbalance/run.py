"""The main job: sync -> forecast -> plan -> act -> verify -> report, in one command.

``cloudbalance run`` is meant for a scheduler (cron, GitHub Actions, a Kubernetes CronJob):

- **Locked**: the store's lock is held for the whole run, so two runs never overlap; Git has its
  own lock for the act step.
- **Audited**: every step is an entry of the store's audit log with its inputs and outputs.
- **Idempotent**: forecasts are keyed by the day and the data they were computed from, the plan
  id is a digest of its inputs, and gitops recognises a plan it already wrote, so a second run
  on the same day and the same data changes nothing.
- **Partial failure is not total failure**: a step that fails is reported, the steps that do not
  need its output still run (a failed provider still leaves a forecast from the data held, and a
  report), and the exit code says so.

Exit codes: ``0`` every step ok (or skipped for a stated reason), ``3`` some step failed but the
run went on (partial failure: look at the report), ``1`` a user error stopped the run before any
step (bad configuration), ``2`` an internal error.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudbalance import steps as stages
from cloudbalance.config import Settings
from cloudbalance.exceptions import CloudBalanceError
from cloudbalance.steps import STEPS, StepResult
from cloudbalance.store import Store

if TYPE_CHECKING:
    from cloudbalance.gitops import ApplyResult
    from cloudbalance.models import Plan
    from cloudbalance.series import Forecasts

__all__ = ["EXIT_PARTIAL", "STEPS", "RunResult", "StepResult", "run"]

EXIT_PARTIAL = 3


@dataclass
class RunResult:
    """What a run did.

    Attributes:
        run_id: Id of the run in the audit log.
        now: The run's clock.
        steps: One result per step, in order (typed: :mod:`cloudbalance.steps`).
        plan: The plan, when one was made.
        applied: What gitops did, when it acted.
        reports: Report files by format.
        forecast: The forecasts of every kind, when forecasting ran.
        data_as_of: The end of the data the forecast stood on.
    """

    run_id: str
    now: datetime
    steps: list[StepResult] = field(default_factory=list)
    plan: Plan | None = None
    applied: ApplyResult | None = None
    reports: dict[str, Path] = field(default_factory=dict)
    forecast: Forecasts | None = None
    data_as_of: datetime | None = None

    @property
    def exit_code(self) -> int:
        """0 when no step failed, :data:`EXIT_PARTIAL` otherwise."""
        return EXIT_PARTIAL if any(s.status == "failed" for s in self.steps) else 0

    @property
    def warnings(self) -> list[str]:
        """Every step's warnings, in order."""
        return [f"{s.step}: {w}" for s in self.steps for w in s.warnings]


def run(
    settings: Settings,
    *,
    dry_run: bool = False,
    skip: Sequence[str] = (),
    sync_providers: bool = True,
    report_dir: str | Path | None = None,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
    on_wait: Callable[[Path], None] | None = None,
) -> RunResult:
    """Run the loop once: the steps of :mod:`cloudbalance.steps`, in order, in the audit log.

    Args:
        settings: The configuration.
        dry_run: Compute and report everything, change nothing in Git.
        skip: Steps not to run (``sync``, ``forecast``, ``plan``, ``apply``, ``verify``,
            ``report``).
        sync_providers: Pull providers first (``False``: use the store as it is).
        report_dir: Where reports go (default: ``reports/`` next to the config).
        now: The run's clock (naive UTC; a scheduler may pass the day it runs for).
        progress: Told one line per phase.
        on_wait: Told when another run holds the store.

    Raises:
        CloudBalanceError: An unknown step in ``skip``.
    """
    tell = progress or (lambda _message: None)
    when = now or stages.now()
    folder = Path(report_dir) if report_dir is not None else settings.resolve("reports")
    unknown = sorted(set(skip) - set(STEPS))
    if unknown:
        raise CloudBalanceError(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}")
    skipped = set(skip) | ({"sync"} if not sync_providers else set())
    result = RunResult(run_id=uuid.uuid4().hex[:12], now=when)
    with Store.from_settings(settings, on_wait=on_wait) as store:
        ctx = stages.Context(
            settings, store, when, dry_run=dry_run, tell=tell, run_id=result.run_id
        )
        forecasted: stages.ForecastStep | None = None
        verified: stages.VerifyStep | None = None
        calls: dict[str, Callable[[], StepResult]] = {
            "sync": lambda: stages.sync(ctx),
            "forecast": lambda: stages.forecast(ctx),
            "plan": lambda: (
                stages.plan(
                    ctx,
                    forecasted.forecasts,
                    costs=forecasted.costs,
                )
                if forecasted is not None and forecasted.forecasts is not None
                else stages.PlanStep("plan", "skipped", "no forecast from this run")
            ),
            "apply": lambda: stages.apply_plan(settings, result.plan, now=when, dry_run=dry_run),
            "verify": lambda: stages.verify(ctx),
            "report": lambda: stages.report(
                ctx,
                folder=folder,
                forecasted=forecasted,
                made=result.plan,
                steps=result.steps,
                verified=verified,
            ),
        }
        for name in STEPS:
            tell(name)
            inputs = {"dry_run": dry_run, "now": when.isoformat()}
            try:
                with store.step(result.run_id, name, inputs) as outputs:
                    if name in skipped:
                        why = "asked to skip" if name in skip else "--no-sync: the store as it is"
                        outcome = StepResult(name, "skipped", why)
                    else:
                        outcome = calls[name]()
                    outputs.update(_audit(outcome))
            except CloudBalanceError as err:
                outcome = StepResult(name, "failed", str(err))
            result.steps.append(outcome)
            if isinstance(outcome, stages.ForecastStep):
                forecasted = outcome
                result.forecast = outcome.forecasts
                result.data_as_of = outcome.data_as_of
            elif isinstance(outcome, stages.PlanStep):
                result.plan = outcome.plan
            elif isinstance(outcome, stages.ApplyStep):
                result.applied = outcome.applied
            elif isinstance(outcome, stages.VerifyStep):
                verified = outcome
            elif isinstance(outcome, stages.ReportStep):
                result.reports = dict(outcome.paths)
        if settings.notifications.channels:
            # after every other step (the report is written first); never fatal
            tell("notify")
            try:
                with store.step(result.run_id, "notify", {"now": when.isoformat()}) as outputs:
                    outcome = stages.notify(ctx, result.steps)
                    outputs.update(_audit(outcome))
            except CloudBalanceError as err:
                outcome = StepResult("notify", "failed", str(err))
            result.steps.append(outcome)
        return result


def _audit(outcome: StepResult) -> dict[str, Any]:
    """What the audit log keeps of a step: its status, detail, warnings and key ids."""
    out = outcome.to_dict()
    if isinstance(outcome, stages.ForecastStep):
        out["forecast_id"] = outcome.forecast_id
        out["data_as_of"] = outcome.data_as_of.isoformat() if outcome.data_as_of else None
    elif isinstance(outcome, stages.PlanStep) and outcome.plan is not None:
        out.update(plan_id=outcome.plan.plan_id, saving=outcome.plan.saving)
    elif isinstance(outcome, stages.ApplyStep) and outcome.applied is not None:
        applied = outcome.applied
        out.update(mode=applied.mode, commit=applied.commit, branch=applied.branch)
    elif isinstance(outcome, stages.SyncStep):
        out["providers"] = {
            r.provider: {"ok": r.ok, "rows": r.rows, "error": r.error} for r in outcome.providers
        }
    elif isinstance(outcome, stages.VerifyStep):
        out["verified"] = {v.plan_id: v.status for v in outcome.verified}
        out["reverts"] = [r.plan_id for r in outcome.reverts]
    elif isinstance(outcome, stages.ReportStep):
        out.update({k: str(v) for k, v in outcome.paths.items()})
    return out
