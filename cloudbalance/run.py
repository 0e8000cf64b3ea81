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

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from cloudbalance.config import Settings
from cloudbalance.exceptions import CloudBalanceError
from cloudbalance.models import Plan, Workload
from cloudbalance.series import cost_series, current_placement, demand_series
from cloudbalance.store import Store

if TYPE_CHECKING:
    from cloudbalance.forecast import ForecastResult

__all__ = ["EXIT_PARTIAL", "RunResult", "StepResult", "run"]

EXIT_PARTIAL = 3
STEPS: tuple[str, ...] = ("sync", "forecast", "plan", "apply", "verify", "report")

#: Prefixes that keep the series of one forecast call apart.
_DEMAND, _COST, _CLOUD, _PRICE = "demand:", "cost:", "cloud:", "price:"


@dataclass(frozen=True)
class StepResult:
    """One step of a run: ``ok``, ``failed`` or ``skipped``, and why."""

    step: str
    status: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """Plain form for reports."""
        return {"step": self.step, "status": self.status, "detail": self.detail}


@dataclass
class RunResult:
    """What a run did.

    Attributes:
        run_id: Id of the run in the audit log.
        steps: One result per step, in order.
        plan: The plan, when one was made.
        applied: What gitops did (``cloudbalance.gitops.ApplyResult``), when it acted.
        reports: Report files by format.
        forecast: The forecast result (all series), when forecasting ran.
    """

    run_id: str
    steps: list[StepResult] = field(default_factory=list)
    plan: Plan | None = None
    applied: Any = None
    reports: dict[str, Path] = field(default_factory=dict)
    forecast: ForecastResult | None = None

    @property
    def exit_code(self) -> int:
        """0 when no step failed, :data:`EXIT_PARTIAL` otherwise."""
        return EXIT_PARTIAL if any(s.status == "failed" for s in self.steps) else 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _digest(*frames: pd.DataFrame) -> str:
    sha = hashlib.sha256()
    for frame in frames:
        sha.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return sha.hexdigest()[:12]


def strip_prefix(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The rows whose ``unique_id`` starts with ``prefix``, with the prefix removed."""
    keep = frame["unique_id"].astype(str).str.startswith(prefix)
    out = frame.loc[keep.to_numpy()].copy()
    out["unique_id"] = out["unique_id"].astype(str).str.slice(len(prefix))
    return out.reset_index(drop=True)


def _prefixed(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return frame.assign(unique_id=prefix + frame["unique_id"].astype(str))


def price_series(prices: pd.DataFrame, *, kinds: Sequence[str] = ("spot",)) -> pd.DataFrame:
    """Daily unit prices per ``cloud:region:SkuId:price_kind`` (the catalog's forecast ids)."""
    from cloudbalance.provider import cloud_id

    frame = prices[prices["price_kind"].isin(kinds)].copy()
    if frame.empty:
        return pd.DataFrame({"unique_id": [], "ds": [], "y": []})
    cloud = frame["ProviderName"].map(lambda p: cloud_id(p) or str(p).lower())
    frame["unique_id"] = (
        cloud + ":" + frame["RegionId"] + ":" + frame["SkuId"] + ":" + frame["price_kind"]
    )
    frame["ds"] = pd.to_datetime(frame["observed_at"]).dt.floor("D")
    daily = frame.rename(columns={"unit_price": "y"}).groupby(["unique_id", "ds"])["y"].mean()
    return daily.reset_index()


class _Runner:
    """Carries the state between steps; each ``step_*`` fills what later steps need."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        dry_run: bool,
        now: datetime,
        tell: Callable[[str], None],
        report_dir: Path,
        sync_providers: bool,
    ) -> None:
        self.settings = settings
        self.store = store
        self.dry_run = dry_run
        self.now = now
        self.tell = tell
        self.report_dir = report_dir
        self.sync_providers = sync_providers
        self.result = RunResult(run_id=uuid.uuid4().hex[:12])
        self.workloads: list[Workload] = settings.workload_models()
        self.costs = pd.DataFrame()
        self.anomalies = pd.DataFrame()
        self.history: dict[str, pd.DataFrame] = {}

    # -- steps -------------------------------------------------------------------------

    def step_sync(self, out: dict[str, Any]) -> StepResult:
        if not self.sync_providers or not self.settings.providers:
            return StepResult("sync", "skipped", "no provider configured (using the store as is)")
        from cloudbalance.sync import sync

        # the run's day is loaded too (restated on the next run), as of the run's clock
        day = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        results = sync(self.settings, self.store, until=day + timedelta(days=1), progress=self.tell)
        out["providers"] = {
            r.provider: {"ok": r.ok, "rows": r.rows, "error": r.error} for r in results
        }
        failed = [r for r in results if not r.ok]
        detail = "; ".join(
            f"{r.provider}: {r.rows:,} rows" if r.ok else f"{r.provider} failed: {r.error}"
            for r in results
        )
        return StepResult("sync", "failed" if failed else "ok", detail)

    def step_forecast(self, out: dict[str, Any]) -> StepResult:
        from cloudbalance.forecast import detect_anomalies, forecast

        self.costs = self.store.costs()
        if self.costs.empty:
            raise CloudBalanceError(
                "the store holds no cost lines; run `cloudbalance ingest` or configure providers"
            )
        fs = self.settings.forecast
        demand = demand_series(self.costs, self.workloads, freq=fs.freq)
        by_workload = cost_series(self.costs, by="workload", freq=fs.freq)
        by_cloud = cost_series(self.costs, by="cloud", freq=fs.freq)
        prices = price_series(self.store.prices())
        self.history = {"demand": demand, "cost": by_workload, "cloud": by_cloud}
        series = pd.concat(
            [
                _prefixed(demand, _DEMAND),
                _prefixed(by_workload, _COST),
                _prefixed(by_cloud, _CLOUD),
                _prefixed(prices, _PRICE),
            ],
            ignore_index=True,
        )
        self.tell(f"forecasting {series['unique_id'].nunique()} series, {fs.horizon} periods")
        result = forecast(
            series,
            horizon=fs.horizon,
            interval=fs.interval,
            model=fs.model,
            holidays_country=fs.country_holidays[0] if fs.country_holidays else None,
            errors="skip",
            return_accuracy=True,
        )
        assert not isinstance(result, pd.DataFrame)  # return_accuracy=True
        self.result.forecast = result
        costs_only = pd.concat(
            [_prefixed(by_workload, _COST), _prefixed(by_cloud, _CLOUD)], ignore_index=True
        )
        self.anomalies = detect_anomalies(costs_only)
        forecast_id = f"{self.now:%Y-%m-%d}-{_digest(series)}"
        self.store.save_forecast(
            result.forecast,
            run_id=forecast_id,
            accuracy=result.accuracy,
            spikes=result.spikes_frame(),
        )
        out.update(
            forecast_id=forecast_id,
            series=int(series["unique_id"].nunique()),
            spikes=len(result.spikes),
            skipped=dict(result.skipped),
        )
        detail = f"{out['series']} series, {len(result.spikes)} predicted spike(s)"
        if result.skipped:
            detail += f", {len(result.skipped)} series skipped"
        return StepResult("forecast", "ok", detail)

    def step_plan(self, out: dict[str, Any]) -> StepResult:
        from cloudbalance.planner import Budget, Quota, plan

        if self.result.forecast is None:
            return StepResult("plan", "skipped", "no forecast")
        if not self.workloads:
            return StepResult("plan", "skipped", "no workload configured")
        prices = self.store.prices()
        if prices.empty:
            return StepResult(
                "plan", "skipped", "no prices in the store (sync a provider that has prices)"
            )
        fc = self.result.forecast
        ps = self.settings.plan
        made = plan(
            strip_prefix(fc.forecast, _DEMAND),
            prices,
            self.workloads,
            current_placement(self.costs, self.workloads, freq=self.settings.forecast.freq),
            quantile=ps.quantile,
            price_forecast=strip_prefix(fc.forecast, _PRICE),
            accuracy=strip_prefix(fc.accuracy, _DEMAND),
            quotas=[Quota(_location(q.location), q.vcpus) for q in ps.quotas],
            budgets=[Budget(b.cloud, b.amount) for b in ps.budgets],
            min_saving=self.settings.guardrails.min_saving,
            min_saving_pct=self.settings.guardrails.min_saving_pct,
            max_gap=ps.max_gap,
            now=self.now,
        )
        self.store.save_plan(made)
        self.result.plan = made
        out.update(plan_id=made.plan_id, moves=len(made.moves), saving=made.saving)
        return StepResult(
            "plan",
            "ok",
            f"plan {made.plan_id}: {len(made.moves)} move(s), saving {made.saving:,.2f} "
            f"{made.currency}, confidence {made.confidence:.0%}",
        )

    def step_apply(self, out: dict[str, Any]) -> StepResult:
        plan = self.result.plan
        if plan is None:
            return StepResult("apply", "skipped", "no plan")
        if not plan.moves:
            return StepResult("apply", "skipped", "the plan moves nothing")
        repo = self.settings.resolve(self.settings.git.repo)
        if not _is_git(repo):
            return StepResult("apply", "skipped", f"{repo} is not a Git working copy")
        from cloudbalance.gitops import Guardrails, apply
        from cloudbalance.policy import policy_gate

        mode = "dry-run" if self.dry_run else self.settings.git.mode
        applied = apply(
            plan,
            repo,
            mode=mode,
            guardrails=Guardrails.from_settings(self.settings),
            workloads=self.workloads,
            remote=self.settings.git.remote,
            policy_check=policy_gate(self.settings, mode=mode),
            push=_has_remote(repo, self.settings.git.remote),
            now=self.now,
        )
        self.result.applied = applied
        out.update(mode=applied.mode, commit=applied.commit, branch=applied.branch)
        where = f" {applied.commit[:10]} on {applied.branch}" if applied.commit else ""
        return StepResult(
            "apply",
            "ok",
            f"{applied.mode}{where}; "
            + ("; ".join(applied.notes) if applied.notes else "no remark"),
        )

    def step_verify(self, out: dict[str, Any]) -> StepResult:
        """Check the plans applied earlier against the bill; propose reverts where they lost."""
        repo = self.settings.resolve(self.settings.git.repo)
        if not _is_git(repo):
            return StepResult("verify", "skipped", f"{repo} is not a Git working copy")
        from cloudbalance.verify import propose_reverts, verify_applied

        rails = self.settings.guardrails
        checked = verify_applied(
            repo,
            self.store,
            now=self.now,
            workloads=self.workloads,
            threshold=rails.rollback_threshold,
            health_check=rails.health_check,
            run_id=self.result.run_id,
        )
        # a revert is proposed for review unless the user lets plans commit directly
        revert_mode: Literal["dry-run", "commit", "pr"] = (
            "dry-run" if self.dry_run else "commit" if self.settings.git.mode == "commit" else "pr"
        )
        reverts = propose_reverts(
            checked,
            repo,
            mode=revert_mode,
            store=self.store,
            push=_has_remote(repo, self.settings.git.remote),
            run_id=self.result.run_id,
        )
        counts: dict[str, int] = {}
        for v in checked:
            counts[v.status] = counts.get(v.status, 0) + 1
        out.update(verified=counts, reverts=[r.plan_id for r in reverts])
        if not checked:
            return StepResult("verify", "ok", "no applied plan to verify yet")
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        judged = [v for v in checked if v.periods]
        if judged:
            from cloudbalance.saving import money

            c = judged[0].currency
            detail += (
                f"; saved {money(sum(v.saving for v in judged), c)} vs "
                f"{money(sum(v.expected for v in judged), c)} expected over the periods with "
                "cost data"
            )
        if reverts:
            detail += "; reverts: " + ", ".join(f"{r.plan_id} {r.status}" for r in reverts)
        return StepResult("verify", "ok", detail)

    def step_report(self, out: dict[str, Any]) -> StepResult:
        from cloudbalance.report import ChartGroup, ReportData, write_reports

        fc = self.result.forecast
        groups = []
        titles = {
            "cost": ("Cost per workload", "USD/day", _COST),
            "cloud": ("Cost per cloud", "USD/day", _CLOUD),
            "demand": ("Demand per workload", "replicas", _DEMAND),
        }
        for key, (title, unit, prefix) in titles.items():
            history = self.history.get(key)
            if history is None or history.empty:
                continue
            anomalies = (
                strip_prefix(self.anomalies, prefix)
                if not self.anomalies.empty and prefix in (_COST, _CLOUD)
                else None
            )
            groups.append(
                ChartGroup(
                    title,
                    unit,
                    history,
                    strip_prefix(fc.forecast, prefix) if fc else pd.DataFrame(),
                    anomalies,
                )
            )
        spikes = fc.spikes_frame() if fc else pd.DataFrame()
        if not spikes.empty:
            spikes = spikes[
                spikes["unique_id"].astype(str).str.startswith((_COST, _CLOUD, _DEMAND))
            ]
            spikes = spikes.assign(
                unique_id=spikes["unique_id"].astype(str).str.split(":", n=1).str[1]
            )
        accuracy = fc.accuracy if fc else pd.DataFrame()
        data = ReportData(
            title=f"cloudbalance forecast {self.now:%Y-%m-%d}",
            generated_at=self.now,
            groups=groups,
            accuracy=accuracy,
            spikes=spikes,
            plan=self.result.plan,
            steps=[s.to_dict() for s in self.result.steps],
            currency=self.result.plan.currency if self.result.plan else "USD",
        )
        self.result.reports = write_reports(data, self.report_dir)
        out.update({k: str(v) for k, v in self.result.reports.items()})
        return StepResult("report", "ok", str(self.result.reports["html"]))


def _location(text: str) -> Any:
    from cloudbalance.models import Location

    return Location.parse(text)


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

    found = subprocess.run(
        ["git", "-C", str(repo), "remote"], capture_output=True, text=True, check=False
    )
    return remote in found.stdout.split()


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
    """Run the loop once.

    Args:
        settings: The configuration.
        dry_run: Compute and report everything, change nothing in Git.
        skip: Steps not to run (``sync``, ``forecast``, ``plan``, ``apply``, ``verify``,
            ``report``).
        sync_providers: Pull providers first (``False``: use the store as it is).
        report_dir: Where reports go (default: ``reports/`` next to the config).
        now: The run's clock (naive UTC).
        progress: Told one line per phase.
        on_wait: Told when another run holds the store.
    """
    tell = progress or (lambda _message: None)
    when = now or _now()
    folder = Path(report_dir) if report_dir is not None else settings.resolve("reports")
    unknown = sorted(set(skip) - set(STEPS))
    if unknown:
        raise CloudBalanceError(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}")
    with Store.from_settings(settings, on_wait=on_wait) as store:
        runner = _Runner(
            settings,
            store,
            dry_run=dry_run,
            now=when,
            tell=tell,
            report_dir=folder,
            sync_providers=sync_providers,
        )
        for name in STEPS:
            if name in skip:
                runner.result.steps.append(StepResult(name, "skipped", "asked to skip"))
                continue
            tell(name)
            method: Callable[[dict[str, Any]], StepResult] = getattr(runner, f"step_{name}")
            inputs: Mapping[str, Any] = {"dry_run": dry_run, "now": when.isoformat()}
            try:
                with store.step(runner.result.run_id, name, inputs) as outputs:
                    outcome = method(outputs)
                    outputs["status"] = outcome.status
            except CloudBalanceError as err:
                outcome = StepResult(name, "failed", str(err))
            runner.result.steps.append(outcome)
        return runner.result
