"""One function per stage of the loop: settings + store (+ overrides) -> a typed step result.

``cloudbalance run`` calls these in order; each command (``sync``, ``forecast``, ``plan``,
``apply``, ``verify``, ``report``) calls the same function for its stage, and so can Python
code. This is the only place where a stage is assembled from the settings, so a setting means
the same thing whichever way the stage is reached (the shape of dbt-core's task layer: thin
commands over tasks).

Every function takes a :class:`Context` (the settings, the open store, the run's clock, whether
to change anything) and returns a frozen :class:`StepResult` subclass carrying what later stages
need (the forecasts, the plan, what Git did). A step that cannot run says ``skipped`` and why; a
step that fails raises :class:`~cloudbalance.exceptions.CloudBalanceError`, which the run records
as ``failed`` and goes on with the steps that do not need it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cloudbalance.exceptions import CloudBalanceError

if TYPE_CHECKING:
    import pandas as pd

    from cloudbalance.budgets import BudgetStatus
    from cloudbalance.config import Settings
    from cloudbalance.gitops import ApplyResult, GitTarget
    from cloudbalance.models import Mode, Plan, Workload
    from cloudbalance.series import Forecasts
    from cloudbalance.store import Store
    from cloudbalance.sync import Freshness, ProviderSync
    from cloudbalance.verify import RevertOutcome, Verification

__all__ = [
    "STEPS",
    "ApplyStep",
    "Context",
    "ForecastStep",
    "GitTarget",
    "PlanStep",
    "ReportStep",
    "StepResult",
    "SyncStep",
    "VerifyStep",
    "apply_plan",
    "forecast",
    "git_target",
    "now",
    "plan",
    "report",
    "sync",
    "verify",
]

Status = Literal["ok", "failed", "skipped"]
STEPS: tuple[str, ...] = ("sync", "forecast", "plan", "apply", "verify", "report")


def _noop(_message: str) -> None:
    return None


def now() -> datetime:
    """The clock of a run that was given none: now, naive UTC."""
    from datetime import UTC

    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Context:
    """What every step stands on.

    Attributes:
        settings: The configuration.
        store: The open store (its lock is held by whoever opened it).
        now: The run's clock (naive UTC): a scheduler may pass another day (``--as-of``).
        dry_run: Compute and report everything, change nothing in Git.
        tell: Told one line per phase (a spinner, a log).
        run_id: Id of the run in the audit log, when the step is part of one.
    """

    settings: Settings
    store: Store
    now: datetime
    dry_run: bool = False
    tell: Callable[[str], None] = _noop
    run_id: str | None = None

    @property
    def workloads(self) -> list[Workload]:
        """The configured workloads, as planner models."""
        return self.settings.workload_models()


@dataclass(frozen=True)
class StepResult:
    """One stage's outcome: ``ok``, ``failed`` or ``skipped``, why, and what to warn about."""

    step: str
    status: Status
    detail: str = ""
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain form for reports and the audit log."""
        out: dict[str, Any] = {"step": self.step, "status": self.status, "detail": self.detail}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


# -- sync --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncStep(StepResult):
    """What each provider loaded, and what data each cloud stands on after it."""

    providers: tuple[ProviderSync, ...] = ()
    freshness: tuple[Freshness, ...] = ()


def sync(
    ctx: Context, *, names: Sequence[str] | None = None, since: datetime | None = None
) -> SyncStep:
    """Pull every configured provider (or ``names``) incrementally into the store.

    One provider failing does not lose the others: the step is ``failed`` and says which.
    """
    from cloudbalance.sync import freshness
    from cloudbalance.sync import sync as run_sync

    fresh = freshness(ctx.store, stale_after_days=ctx.settings.sync.stale_after_days, now=ctx.now)
    if not ctx.settings.providers:  # a store filled by `ingest` goes stale too: still said
        return SyncStep(
            "sync",
            "skipped",
            "no provider configured (using the store as is)",
            warnings=_stale(fresh),
            freshness=fresh,
        )

    results = tuple(
        run_sync(ctx.settings, ctx.store, names=names, since=since, progress=ctx.tell, now=ctx.now)
    )
    failed = [r for r in results if not r.ok]
    detail = "; ".join(
        f"{r.provider}: {r.rows:,} rows" if r.ok else f"{r.provider} failed: {r.error}"
        for r in results
    )
    fresh = freshness(ctx.store, stale_after_days=ctx.settings.sync.stale_after_days, now=ctx.now)
    return SyncStep(
        "sync",
        "failed" if failed else "ok",
        detail,
        warnings=_stale(fresh),
        providers=results,
        freshness=fresh,
    )


def _stale(fresh: Sequence[Freshness]) -> tuple[str, ...]:
    """A warning per cloud whose data ends more than ``sync.stale_after_days`` before the run."""
    return tuple(f.warning for f in fresh if f.warning)


# -- forecast ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForecastStep(StepResult):
    """The forecasts of every kind, the history they stand on and the anomalies found in it.

    Attributes:
        forecasts: Forecast, accuracy and spikes of every kind (``None`` when none was made).
        history: The series forecast, by kind (what the report charts).
        anomalies: Anomalies in the cost series (``unique_id, ds, y, ..., kind``).
        data_as_of: The end of the data the forecast stands on (exclusive, naive UTC).
        forecast_id: Key of the forecast in the store.
        costs: The cost lines the forecast read (up to :attr:`data_as_of`).
    """

    forecasts: Forecasts | None = None
    history: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    anomalies: pd.DataFrame | None = None
    data_as_of: datetime | None = None
    forecast_id: str | None = None
    costs: pd.DataFrame | None = None


def _digest(*frames: pd.DataFrame) -> str:
    import pandas as pd

    sha = hashlib.sha256()
    for frame in frames:
        sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return sha.hexdigest()[:12]


def forecast(ctx: Context) -> ForecastStep:
    """Forecast demand, cost per workload, cost per cloud and prices from the store; save them.

    The forecast stands on complete periods only: when one cloud's export is behind the others
    (they deliver at different hours), the periods it has not delivered yet are left out and
    the step says so, instead of forecasting a drop that is only a late file.

    Raises:
        CloudBalanceError: The store holds no cost lines.
    """
    import pandas as pd

    from cloudbalance.forecast import detect_anomalies
    from cloudbalance.forecast import forecast as run_forecast
    from cloudbalance.series import (
        PRICE_MODEL,
        Forecasts,
        complete_until,
        cost_series,
        demand_series,
        price_series,
    )

    costs = ctx.store.costs()
    if costs.empty:
        raise CloudBalanceError(
            "the store holds no cost lines; run `cloudbalance ingest` or configure providers"
        )
    fs = ctx.settings.forecast
    edge, ragged = complete_until(costs, freq=fs.freq, now=ctx.now)
    warnings = list(ragged)
    costs = costs[costs["ChargePeriodStart"] < edge].reset_index(drop=True)
    history: dict[str, pd.DataFrame] = {
        "demand": demand_series(costs, ctx.workloads, freq=fs.freq),
        "cost": cost_series(costs, by="workload", freq=fs.freq),
        "cloud_cost": cost_series(costs, by="cloud", freq=fs.freq),
        "price": price_series(ctx.store.prices()),
    }
    total = sum(int(frame["unique_id"].nunique()) for frame in history.values())
    ctx.tell(f"forecasting {total} series, {fs.horizon} periods")
    results = {}
    for kind, series in history.items():
        if series.empty:
            continue
        results[kind] = run_forecast(
            series,
            horizon=fs.horizon,
            interval=fs.interval,
            model=PRICE_MODEL if kind == "price" else fs.model,
            holidays_country=fs.country_holidays[0] if fs.country_holidays else None,
            errors="skip",
            return_accuracy=True,
        )
    forecasts = Forecasts.combine(results)
    labels = ctx.store.anomaly_feedback()  # people's YES/NO/PLANNED_ACTIVITY labels apply
    anomalies = pd.concat(
        [
            detect_anomalies(history[kind], feedback=labels).assign(kind=kind)
            for kind in ("cost", "cloud_cost")
            if not history[kind].empty
        ]
        or [pd.DataFrame()],
        ignore_index=True,
    )
    forecast_id = f"{ctx.now:%Y-%m-%d}-{_digest(*history.values())}"
    ctx.store.save_forecast(
        forecasts.forecast,
        run_id=forecast_id,
        accuracy=forecasts.accuracy,
        spikes=forecasts.spikes,
    )
    detail = f"{total} series, {len(forecasts.spikes)} predicted spike(s)"
    if forecasts.skipped:
        detail += f", {len(forecasts.skipped)} series skipped"
        warnings.extend(f"{uid}: {why}" for uid, why in sorted(forecasts.skipped.items()))
    detail += f"; data as of {edge:%Y-%m-%d}"
    return ForecastStep(
        "forecast",
        "ok",
        detail,
        warnings=tuple(warnings),
        forecasts=forecasts,
        history=history,
        anomalies=anomalies,
        data_as_of=edge,
        forecast_id=forecast_id,
        costs=costs,
    )


# -- plan --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanStep(StepResult):
    """The plan made (``None`` when the step was skipped)."""

    plan: Plan | None = None


def plan(
    ctx: Context,
    forecasts: Forecasts | None = None,
    *,
    costs: pd.DataFrame | None = None,
) -> PlanStep:
    """Place every workload's replicas over the horizon and keep the plan in the store.

    Args:
        ctx: The context.
        forecasts: The forecasts to plan from (default: the latest in the store).
        costs: The cost lines the current placement is read from (default: the store's).
    """
    from cloudbalance.series import Forecasts, current_placement

    if not ctx.workloads:
        return PlanStep("plan", "skipped", "no workload configured")
    if forecasts is None:
        forecasts = Forecasts.from_store(ctx.store)
    demand = forecasts.of("demand")
    if demand.empty:
        return PlanStep("plan", "skipped", "no demand forecast (run the forecast step first)")
    prices = ctx.store.prices()
    if prices.empty:
        return PlanStep(
            "plan", "skipped", "no prices in the store (sync a provider that has prices)"
        )
    from cloudbalance.budgets import planner_budgets
    from cloudbalance.plan import Egress
    from cloudbalance.plan import plan as make_plan

    ps = ctx.settings.plan
    freq = ctx.settings.forecast.freq
    lines = ctx.store.costs() if costs is None else costs
    made = make_plan(
        demand,
        prices,
        ctx.workloads,
        current_placement(lines, ctx.workloads, freq=freq),
        quantile=ps.quantile,
        price_forecast=forecasts.of("price"),
        accuracy=forecasts.accuracy_of("demand"),
        quotas=list(ps.quotas),
        budgets=planner_budgets(ctx.settings, now=ctx.now),
        min_saving=ctx.settings.guardrails.min_saving,
        min_saving_pct=ctx.settings.guardrails.min_saving_pct,
        hold=ps.hold,
        hold_quantile=ps.hold_quantile,
        egress=Egress.from_dict(ps.egress),
        max_gap=ps.max_gap,
        now=ctx.now,
    )
    ctx.store.save_plan(made)
    warnings: tuple[str, ...] = ()
    if made.period_start < ctx.now - timedelta(days=1):
        warnings = (
            f"the plan starts {made.period_start:%Y-%m-%d}, where the data ends, "
            f"{(ctx.now - made.period_start).days} day(s) before {ctx.now:%Y-%m-%d}",
        )
    return PlanStep(
        "plan",
        "ok",
        f"plan {made.plan_id}: {len(made.moves)} move(s), saving {made.saving:,.2f} "
        f"{made.currency}, confidence {made.confidence:.0%}",
        warnings=warnings,
        plan=made,
    )


# -- apply -------------------------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    # ``steps.GitTarget`` is gitops' own, imported when first asked for (start-up time).
    if name == "GitTarget":
        from cloudbalance.gitops import GitTarget

        return GitTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def git_target(
    settings: Settings,
    *,
    repo: Path | None = None,
    mode: Mode | None = None,
    remote: str | None = None,
    base: str | None = None,
    forge: str | None = None,
    api_url: str | None = None,
    repository: str | None = None,
    push: bool = True,
    hints: Mapping[str, str] | None = None,
    policies: bool = True,
    now: datetime | None = None,
) -> GitTarget:
    """The Git target of the settings, with a command line's overrides on top.

    Built by :func:`cloudbalance.gitops.target_from_settings`: repository, mode, remote, base,
    forge, guardrails, the workloads' stacks and the Rego policy gate, once for every writer.

    Args:
        settings: The configuration (its ``guardrails:`` carry any command-line limits).
        repo: Override of ``git.repo``.
        mode: Override of ``git.mode``.
        remote: Override of ``git.remote``.
        base: Override of ``git.base``.
        forge: ``github`` or ``gitlab`` (default: told by the API URL or the remote's host).
        api_url: Override of ``git.api_url``.
        repository: Override of ``git.github_repo``.
        push: ``False`` never pushes; ``True`` pushes when the remote exists.
        hints: More ``workload -> project/stack`` hints, over the configured ``stack``s.
        policies: Evaluate the Rego guardrails before writing.
        now: The clock the policies' freeze windows are judged by.

    Raises:
        GitOpsError: An unknown forge.
    """
    from cloudbalance.exceptions import GitOpsError
    from cloudbalance.gitops import target_from_settings

    if forge is not None and forge not in ("github", "gitlab"):
        raise GitOpsError(f"unknown forge {forge!r}; use github or gitlab")
    return target_from_settings(
        settings,
        repo=repo,
        mode=mode,
        remote=remote,
        base=base,
        kind=forge,  # type: ignore[arg-type]
        api_url=api_url,
        repository=repository,
        push=None if push else False,
        workloads=hints,
        policies=policies,
        now=now,
    )


@dataclass(frozen=True)
class ApplyStep(StepResult):
    """What Git did (``None`` when the step was skipped)."""

    applied: ApplyResult | None = None


def apply_plan(
    settings: Settings,
    made: Plan | None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    target: GitTarget | None = None,
    overwrite_edits: bool = False,
) -> ApplyStep:
    """Write the plan's first period into the stack config through Git, behind the policy gate.

    The one step that needs no store: a plan file and the settings are enough. An apply that an
    earlier run left half done (killed, push refused) is finished or undone first, even on a
    day when the plan changes nothing.

    Args:
        settings: The configuration.
        made: The plan.
        now: The clock freeze windows are judged by (default: now).
        dry_run: Force the ``dry-run`` mode.
        target: Where and how to write (default: :func:`git_target` of the settings).
        overwrite_edits: Write over values a person changed since the last plan.
    """
    where = target or git_target(settings, mode="dry-run" if dry_run else None, now=now)
    if dry_run and where.mode != "dry-run":
        where = dataclasses.replace(where, mode="dry-run")
    is_git = _is_git(where.repo)
    if made is None or not made.moves:
        why = "no plan" if made is None else "the plan changes nothing"
        healed = where.heal() if is_git and not dry_run else []
        return ApplyStep("apply", "skipped", "; ".join([why, *healed]))
    if not is_git:
        return ApplyStep("apply", "skipped", f"{where.repo} is not a Git working copy")
    applied = where.apply(made, now=now, overwrite_edits=overwrite_edits)
    at = f" {applied.commit[:10]} on {applied.branch}" if applied.commit else ""
    return ApplyStep(
        "apply",
        "ok",
        f"{applied.mode}{at}; " + ("; ".join(applied.notes) if applied.notes else "no remark"),
        applied=applied,
    )


# -- verify ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyStep(StepResult):
    """The verdict on each applied plan and the reverts proposed."""

    verified: tuple[Verification, ...] = ()
    reverts: tuple[RevertOutcome, ...] = ()


def verify(
    ctx: Context,
    *,
    target: GitTarget | None = None,
    revert: bool = True,
    mode: Mode | None = None,
    threshold: float | None = None,
    health_check: str | None = None,
) -> VerifyStep:
    """Compare each applied plan with what it expected and with not moving; propose reverts.

    A revert goes where plans go (the same repository, remote, base and forge); it is committed
    directly only where the user lets plans commit, else proposed as a pull request.
    """
    where = target or git_target(ctx.settings)
    if not _is_git(where.repo):
        return VerifyStep("verify", "skipped", f"{where.repo} is not a Git working copy")
    from cloudbalance.verify import propose_reverts, verify_applied

    rails = ctx.settings.guardrails
    checked = tuple(
        verify_applied(
            where.repo,
            ctx.store,
            now=ctx.now,
            workloads=ctx.workloads,
            threshold=threshold if threshold is not None else rails.rollback_threshold,
            health_check=health_check if health_check is not None else rails.health_check,
            run_id=ctx.run_id,
        )
    )
    reverts: tuple[RevertOutcome, ...] = ()
    if revert:
        chosen: Mode = mode or ("commit" if ctx.settings.git.mode == "commit" else "pr")
        reverts = tuple(
            propose_reverts(
                list(checked),
                where,  # its forge, remote, base and pushing
                mode="dry-run" if ctx.dry_run else chosen,
                store=ctx.store,
                run_id=ctx.run_id,
            )
        )
    if not checked:
        return VerifyStep("verify", "ok", "no applied plan to verify yet")
    counts: dict[str, int] = {}
    for v in checked:
        counts[v.status] = counts.get(v.status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    judged = [v for v in checked if v.periods]
    if judged:
        from cloudbalance.saving import money

        c = judged[0].currency
        detail += (
            f"; saved {money(sum(v.saving for v in judged), c)} vs "
            f"{money(sum(v.expected for v in judged), c)} expected over the periods with cost data"
        )
    if reverts:
        detail += "; reverts: " + ", ".join(f"{r.plan_id} {r.status}" for r in reverts)
    return VerifyStep("verify", "ok", detail, verified=checked, reverts=reverts)


# -- report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportStep(StepResult):
    """The report files written, by format."""

    paths: Mapping[str, Path] = field(default_factory=dict)


def report(
    ctx: Context,
    *,
    folder: Path | None = None,
    forecasted: ForecastStep | None = None,
    made: Plan | None = None,
    steps: Sequence[StepResult] = (),
    verified: VerifyStep | None = None,
    budgets: Sequence[BudgetStatus] | None = None,
) -> ReportStep:
    """Write the HTML, Markdown and JSON reports (assembled by ``report.build_report``).

    Args:
        ctx: The context.
        folder: Where (default: ``reports/`` next to the config).
        forecasted: This run's forecast step (default: the latest forecast in the store, with
            the history read from the store).
        made: This run's plan (default: the latest plan in the store).
        steps: This run's steps, for the run table.
        verified: This run's verify step (default: what verify last recorded per plan).
        budgets: Budget statuses (default: evaluated on the store).
    """
    from cloudbalance.report import build_report, write_reports

    ran = forecasted is not None and forecasted.forecasts is not None
    data = build_report(
        ctx.settings,
        ctx.store,
        now=ctx.now,
        forecasts=forecasted.forecasts if forecasted is not None and ran else None,
        history=forecasted.history if forecasted is not None and ran else None,
        anomalies=forecasted.anomalies if forecasted is not None and ran else None,
        data_as_of=forecasted.data_as_of if forecasted is not None and ran else None,
        plan=made if made is not None else ctx.store.latest_plan(),
        steps=[s.to_dict() for s in steps],
        verified=[v.to_dict() for v in verified.verified] if verified is not None else None,
        budgets=budgets,
    )
    paths = write_reports(data, folder or ctx.settings.resolve("reports"))
    return ReportStep("report", "ok", str(paths["html"]), paths=paths)


# -- notify ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyStep(StepResult):
    """What was told to whom (``cloudbalance.notify.NotifyResult``)."""

    told: Any = None


def notify(ctx: Context, steps: Sequence[StepResult]) -> NotifyStep:
    """Tell the configured channels what a run found, after its other steps.

    Events come from the steps' typed results (spikes, anomalies, the plan written, reverts,
    failed steps) and the budgets; each is sent once, and a channel that fails makes this step
    ``failed`` without touching the others (see docs/notifications.md).
    """
    if not ctx.settings.notifications.channels:
        return NotifyStep("notify", "skipped", "no notification channel configured")
    from cloudbalance.notify import events_from_steps, notify_run

    events = events_from_steps(ctx.settings, ctx.store, ctx.run_id or "", steps)
    told = notify_run(ctx.settings, ctx.store, events, now=ctx.now)
    return NotifyStep("notify", "failed" if told.failed else "ok", told.summary(), told=told)


# -- Git helpers -------------------------------------------------------------------------------


def _is_git(repo: Path) -> bool:
    import subprocess

    if not repo.is_dir():
        return False
    found = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() == "true"


def _has_remote(repo: Path, remote: str) -> bool:
    import subprocess

    if not repo.is_dir():
        return False
    found = subprocess.run(
        ["git", "-C", str(repo), "remote"], capture_output=True, text=True, check=False
    )
    return remote in found.stdout.split()
