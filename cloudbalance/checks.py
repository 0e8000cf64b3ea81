"""Pre-merge check of a stack-config change: schema, policies, moves and cost impact.

``cloudbalance check --base origin/main`` runs in CI on every pull request that touches a Pulumi
stack file, whether cloudbalance opened it or a person did. It compares the placements of
``cloudbalance:workloads`` at the merge base with those at the head, validates every changed
stack file against ``schemas/stack-config.schema.json``, evaluates the same Rego policies that
guard ``apply`` on the change (as a ``stack-diff`` input document), prices the change with the
latest prices and forecast in the store when there is one, and prints a Markdown summary for
the job summary or a pull-request comment. A deny or a schema error fails the job.

Why the merge base and not the base branch's tip: a pull request is reviewed as the change it
makes, not as the difference with whatever landed on the base branch since it was opened.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cloudbalance.exceptions import CloudBalanceError, StackConfigError
from cloudbalance.models import Location
from cloudbalance.policy import PolicyReport, PolicySet, diff_input, load_policies
from cloudbalance.saving import money, placement_saving

if TYPE_CHECKING:
    import pandas as pd

    from cloudbalance.config import Settings
    from cloudbalance.models import Workload
    from cloudbalance.store import Store

__all__ = [
    "CheckResult",
    "CostImpact",
    "StackFileCheck",
    "check_change",
    "is_stack_file",
]

_STACK_FILE = re.compile(r"(?:^|/)Pulumi\.[^/]+\.ya?ml$")
Placements = dict[str, dict[Location, int]]


def is_stack_file(path: str) -> bool:
    """Whether ``path`` names a Pulumi stack file (``Pulumi.<stack>.yaml``, not ``Pulumi.yaml``)."""
    return bool(_STACK_FILE.search(path))


@dataclass(frozen=True)
class StackFileCheck:
    """One changed stack file.

    Attributes:
        path: Relative to the repository root.
        status: ``added``, ``modified`` or ``deleted``.
        error: The schema error (``file:line: message``) when the head version is invalid.
    """

    path: str
    status: Literal["added", "modified", "deleted"]
    error: str | None = None


@dataclass(frozen=True)
class CostImpact:
    """What the change costs (positive) or saves (negative), priced from the store.

    Attributes:
        currency: Currency of the amounts.
        periods: Periods priced (the latest forecast's horizon, else 30 days).
        period: Length of one period (``1D``).
        by_workload: Cost change per workload over the periods.
        forecast_peak: Peak forecast demand per workload in those periods, when forecast.
        source: Where the numbers come from, in words.
        saving_by_workload: Saving against not moving per workload over the periods
            (:func:`cloudbalance.saving.placement_saving`: 0 for scaling in place).
        plans: Expected saving over its horizon of each cloudbalance plan the change carries
            (``Cloudbalance-Plan`` trailers of its commits), by plan id: the commit's figure.
    """

    currency: str
    periods: int
    period: str
    by_workload: Mapping[str, float]
    forecast_peak: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    saving_by_workload: Mapping[str, float] = field(default_factory=dict)
    plans: Mapping[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Cost change of the whole change over the periods."""
        return float(sum(self.by_workload.values()))


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`check_change`.

    Attributes:
        base: The base ref given.
        head: The head ref checked (``WORKTREE`` for the working copy).
        merge_base: The commit the change is compared with.
        files: The changed stack files.
        changes: The changed placement values (policy-input form).
        report: The policies' report.
        cost: The cost impact, when prices are known.
        notes: Remarks (why the cost is unknown...).
    """

    base: str
    head: str
    merge_base: str
    files: tuple[StackFileCheck, ...]
    changes: tuple[Mapping[str, Any], ...]
    report: PolicyReport
    cost: CostImpact | None = None
    notes: tuple[str, ...] = ()

    @property
    def schema_errors(self) -> list[str]:
        """Schema errors of the changed stack files."""
        return [f.error for f in self.files if f.error]

    @property
    def passed(self) -> bool:
        """No deny and no schema error: the change may merge."""
        return not self.report.denied and not self.schema_errors

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "passed": self.passed,
            "base": self.base,
            "head": self.head,
            "merge_base": self.merge_base,
            "files": [{"path": f.path, "status": f.status, "error": f.error} for f in self.files],
            "changes": [dict(c) for c in self.changes],
            "policies": self.report.to_dict(),
            "cost": None
            if self.cost is None
            else {
                "currency": self.cost.currency,
                "periods": self.cost.periods,
                "period": self.cost.period,
                "total": round(self.cost.total, 2),
                "by_workload": {k: round(v, 2) for k, v in self.cost.by_workload.items()},
                "forecast_peak": dict(self.cost.forecast_peak),
                "saving_by_workload": {
                    k: round(v, 2) for k, v in self.cost.saving_by_workload.items()
                },
                "plans": {k: round(v, 2) for k, v in self.cost.plans.items()},
                "source": self.cost.source,
            },
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        """The summary for a CI job summary or a pull-request comment."""
        verdict = "passed" if self.passed else "failed"
        lines = [
            f"## cloudbalance check: {verdict}",
            "",
            f"Stack-config change from `{self.merge_base[:12]}` (merge base with "
            f"`{self.base}`) to `{self.head}`: {len(self.files)} stack file(s), "
            f"{len(self.changes)} placement value(s) changed.",
        ]
        if self.schema_errors:
            lines += ["", "### Schema", ""]
            lines += [f"- {_md(e)}" for e in self.schema_errors]
        lines += ["", "### Moves", ""]
        if self.changes:
            lines += ["| Workload | Location | Before | After | Change |", "|---|---|--:|--:|--:|"]
            lines += [
                f"| {_md(str(c['workload']))} | {c['location']} | {c['before']} | {c['after']} "
                f"| {int(c['delta']):+d} |"
                for c in self.changes
            ]
        else:
            lines.append("No placement changes.")
        lines += ["", "### Cost impact", ""]
        if self.cost is None:
            lines.append("Not priced: " + ("; ".join(self.notes) or "no prices in the store") + ".")
        else:
            cost = self.cost
            lines.append(
                f"{money(cost.total, cost.currency, signed=True)} over {cost.periods} period(s) "
                f"of {cost.period} ({cost.source})."
            )
            lines += [
                "",
                f"| Workload | Cost change ({cost.currency}) | Saving vs not moving "
                f"({cost.currency}) | Forecast peak |",
            ]
            lines.append("|---|--:|--:|--:|")
            for workload, amount in cost.by_workload.items():
                peak = cost.forecast_peak.get(workload)
                shown = f"{peak:,.1f}" if peak is not None else "-"
                saved = cost.saving_by_workload.get(workload)
                saving = "-" if saved is None or saved != saved else f"{saved:+,.2f}"
                lines.append(f"| {_md(workload)} | {amount:+,.2f} | {saving} | {shown} |")
            for plan_id, expected in cost.plans.items():
                lines += [
                    "",
                    f"Plan {plan_id} expects to save {money(expected, cost.currency)} over its "
                    "horizon.",
                ]
        lines += ["", "### Policies", "", self.report.to_markdown()]
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------- git


def _changed_stack_files(git: Any, merge_base: str, head: str | None) -> list[tuple[str, str]]:
    args = ["diff", "--name-status", "--no-renames", merge_base]
    if head is not None:
        args.append(head)
    files = []
    for line in git.out(*args).splitlines():
        status, _, path = line.partition("\t")
        if path and is_stack_file(path):
            files.append((status[:1], path))
    if head is None:
        untracked = git.out("ls-files", "--others", "--exclude-standard")
        files += [("A", p) for p in untracked.splitlines() if is_stack_file(p)]
    return sorted(set(files), key=lambda item: item[1])


def _read_head(git: Any, head: str | None, path: str) -> str | None:
    if head is not None:
        text: str | None = git.show(head, path)
        return text
    file = Path(git.root) / path
    return file.read_text(encoding="utf-8") if file.is_file() else None


def _merge(target: Placements, source: Mapping[str, Mapping[Location, int]]) -> None:
    for workload, locations in source.items():
        target.setdefault(workload, {}).update(locations)


# ---------------------------------------------------------------------------------- costs


def _cost_inputs(
    store: Store | None,
    workloads: Sequence[Workload],
    touched: Mapping[str, set[Location]],
    now: datetime,
    period: str,
) -> tuple[dict[str, dict[Location, list[float]]], dict[str, float], str, str, int, str] | None:
    """Per-replica cost per period for each touched workload and location, from the store.

    Returns ``(costs, forecast_peak, currency, period, periods, source)`` or ``None`` when the
    store holds no prices.
    """
    if store is None:
        return None
    prices = store.prices()
    if prices is None or len(prices) == 0:
        return None
    import pandas as pd

    from cloudbalance.plan.catalog import load_catalog

    catalog = load_catalog(prices)
    forecast = store.latest_forecast()[0]
    shapes = {w.name: w for w in workloads}
    start = pd.Timestamp(now).floor("D")
    peaks: dict[str, float] = {}
    periods = 30
    source = f"prices observed up to {catalog.observed_at:%Y-%m-%d}, 30 days"
    if len(forecast):
        future = forecast[forecast["ds"] >= start]
        if len(future):
            periods = int(future["ds"].nunique())
            source = (
                f"prices observed up to {catalog.observed_at:%Y-%m-%d}, over the latest "
                f"forecast's {periods} period(s) from {future['ds'].min():%Y-%m-%d}"
            )
            for uid, group in _demand(future).groupby("unique_id"):
                peaks[str(uid)] = round(float(group["yhat"].max()), 2)
    starts = pd.date_range(start, periods=periods, freq=period)
    costs: dict[str, dict[Location, list[float]]] = {}
    for name, locations in touched.items():
        shape = shapes.get(name)
        vcpus = shape.vcpus if shape is not None else 1.0
        memory = shape.memory_gib if shape is not None else 2.0
        spot = shape.spot if shape is not None else False
        locs = sorted(locations)
        matrix = catalog.replica_cost(
            vcpus=vcpus,
            memory_gib=memory,
            spot=spot,
            periods=starts,
            period=period,
            locations=locs,
        )
        costs[name] = {loc: [float(v) for v in matrix.cost[i]] for i, loc in enumerate(locs)}
    return costs, peaks, catalog.currency, period, periods, source


_DEMAND = "demand:"


def _demand(forecast: pd.DataFrame) -> pd.DataFrame:
    """The demand series of a forecast frame, keyed by workload name.

    Forecast frames carry their kind in a ``kind`` column; forecasts stored before it have no
    kind and carry it as a ``demand:`` prefix of ``unique_id``. Both are read, so the peak is
    never lost.
    """
    ids = forecast["unique_id"].astype(str)
    kind = (
        forecast["kind"]
        if "kind" in forecast.columns
        else forecast["unique_id"].where(forecast["unique_id"].isna())
    )
    by_kind = (kind.astype(str) == "demand").to_numpy()
    by_prefix = (kind.isna() & ids.str.startswith(_DEMAND)).to_numpy()
    stripped = ids.where(~by_prefix, ids.str.slice(len(_DEMAND)))
    return forecast.assign(unique_id=stripped).loc[by_kind | by_prefix]


def _plan_savings(git: Any, merge_base: str, head: str, store: Store | None) -> dict[str, float]:
    """Expected saving of each plan the change's commits carry, as the store holds the plan."""
    if store is None:
        return {}
    from cloudbalance.exceptions import StoreError
    from cloudbalance.gitops import parse_trailers

    found: dict[str, float] = {}
    shas = git.out("rev-list", "--reverse", f"{merge_base}..{head}").split()
    for sha in shas:
        plan_id = parse_trailers(git.out("log", "-1", "--format=%B", sha)).get("Cloudbalance-Plan")
        if plan_id:
            try:
                found[plan_id] = store.load_plan(plan_id).saving
            except StoreError:
                continue
    return found


# ---------------------------------------------------------------------------------- check


def check_change(
    repo: str | Path = ".",
    *,
    base: str,
    head: str | None = "HEAD",
    settings: Settings | None = None,
    policies: PolicySet | None = None,
    store: Store | None = None,
    now: date | datetime | None = None,
    period: str = "1D",
) -> CheckResult:
    """Check the stack-config change between ``base`` and ``head`` of a Git repository.

    Args:
        repo: A directory inside the working copy.
        base: The branch the change goes into (``origin/main``); compared at the merge base.
        head: The commit checked; ``None`` checks the working copy (uncommitted edits too).
        settings: Workloads and guardrails for the policies (default: none configured).
        policies: The policy set (default: :func:`~cloudbalance.policy.load_policies`).
        store: Where the latest prices and forecast are read to price the change.
        now: The day of the check (freeze windows), default today (UTC).
        period: Length of one priced period.

    Raises:
        GitOpsError: ``base`` or ``head`` is not a commit, or ``repo`` is not a working copy.
        PolicyError: A policy does not compile.
    """
    from cloudbalance.gitops import read_placements, validate_stack_config
    from cloudbalance.gitops._git import Git

    git = Git.open(repo)
    merge_base = git.out("merge-base", base, head or "HEAD")
    head_label = head if head is not None else "WORKTREE"
    before: Placements = {}
    after: Placements = {}
    files: list[StackFileCheck] = []
    for status, path in _changed_stack_files(git, merge_base, head):
        kind: Literal["added", "modified", "deleted"] = (
            "added" if status == "A" else "deleted" if status == "D" else "modified"
        )
        old_text = git.show(merge_base, path)
        new_text = _read_head(git, head, path)
        error = None
        if old_text is not None:
            # A base that was already invalid is skipped: the change is judged on its head.
            with contextlib.suppress(StackConfigError):
                _merge(before, read_placements(old_text, file=path))
        if new_text is not None:
            try:
                validate_stack_config(path, text=new_text)
                _merge(after, read_placements(new_text, file=path))
            except StackConfigError as err:
                error = str(err)
        files.append(StackFileCheck(path, kind, error))

    notes: list[str] = []
    workloads = settings.workload_models() if settings is not None else []
    # Every workload of the changed files is priced (the monthly cap per cloud needs them all);
    # the cost impact sums only the touched ones.
    present: dict[str, set[Location]] = {
        w: set(before.get(w, {})) | set(after.get(w, {})) for w in set(before) | set(after)
    }
    touched = {
        w: locs
        for w, locs in present.items()
        if any(before.get(w, {}).get(loc, 0) != after.get(w, {}).get(loc, 0) for loc in locs)
    }
    when = now if now is not None else datetime.now()
    moment = when if isinstance(when, datetime) else datetime(when.year, when.month, when.day)
    priced = None
    try:
        priced = _cost_inputs(store, workloads, present, moment, period) if touched else None
    except (CloudBalanceError, ValueError) as err:
        notes.append(f"cannot price the change: {err}")
    if store is None:
        notes.append("no store given")
    elif priced is None and touched and not notes:
        notes.append("the store holds no prices yet (run `cloudbalance sync`)")

    unit_costs: dict[str, float] | None = None
    currency = "USD"
    cost: CostImpact | None = None
    if priced is not None:
        costs, peaks, currency, period, periods, source = priced
        unit_costs = {
            f"{w}@{loc.key}": values[0]
            for w, locs in costs.items()
            for loc, values in locs.items()
            if values and values[0] == values[0]  # NaN: no SKU fits the shape there
        }
        by_workload: dict[str, float] = {}
        for workload in sorted(touched):
            old, new = before.get(workload, {}), after.get(workload, {})
            total = 0.0
            for loc, values in costs.get(workload, {}).items():
                delta = new.get(loc, 0) - old.get(loc, 0)
                if delta:
                    total += delta * sum(v for v in values if v == v)
            by_workload[workload] = total
        peak = {w: p for w, p in peaks.items() if w in touched}
        shapes = {w.name: w for w in workloads}
        saving = {
            w: placement_saving(
                before.get(w, {}),
                after.get(w, {}),
                costs.get(w, {}),
                move_cost=shapes[w].move_cost if w in shapes else 0.0,
            )[0]
            for w in sorted(touched)
        }
        cost = CostImpact(
            currency,
            periods,
            period,
            by_workload,
            peak,
            source,
            saving,
            _plan_savings(git, merge_base, head or "HEAD", store),
        )

    document = diff_input(
        before,
        after,
        files=[f.path for f in files],
        base=base,
        head=head_label,
        settings=settings,
        mode="check",
        now=now,
        unit_costs=unit_costs,
        currency=currency,
        period=period,
    )
    policy_set = policies if policies is not None else load_policies(settings)
    report = policy_set.evaluate(document)
    return CheckResult(
        base=base,
        head=head_label,
        merge_base=merge_base,
        files=tuple(files),
        changes=tuple(document["changes"]),
        report=report,
        cost=cost,
        notes=tuple(notes),
    )
