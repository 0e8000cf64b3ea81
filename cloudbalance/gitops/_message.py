"""Commit messages and pull-request bodies, and the trailers later runs read back.

The message is written for the reviewer first (a summary line, then a table of moves with the
numbers a person checks: replicas before and after, the forecast, the expected saving, the
confidence and the reason) and for machines last: Git trailers (``Cloudbalance-Plan: <id>``,
``Cloudbalance-Confidence: 0.87``) in the final paragraph, which ``git interpret-trailers`` and
:func:`parse_trailers` read. The pull-request body carries the same text plus a hidden marker so
a later run can recognise the pull request as its own.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from cloudbalance.gitops._forge import MARKER, REVERT_MARKER
from cloudbalance.gitops._stackfile import PlacementChange
from cloudbalance.models import Location, Move, Placement, Plan
from cloudbalance.saving import money, moved_replicas

__all__ = ["PLAN_TRAILER", "REVERT_TRAILER", "parse_trailers", "render", "render_revert"]

PLAN_TRAILER = "Cloudbalance-Plan"
REVERT_TRAILER = "Cloudbalance-Revert"
CONFIDENCE_TRAILER = "Cloudbalance-Confidence"
SAVING_TRAILER = "Cloudbalance-Saving"

_TRAILER = re.compile(r"^(?P<key>[A-Za-z0-9-]+):\s*(?P<value>.*?)\s*$")


def parse_trailers(message: str) -> dict[str, str]:
    """The trailers of a commit message (its last paragraph of ``Key: value`` lines).

    Keys are case-sensitive as written; when a key repeats, the last value wins.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if not paragraphs:
        return {}
    trailers: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line.strip())
        if match is None:
            return {}
        trailers[match.group("key")] = match.group("value")
    return trailers


def _wrap(text: str) -> str:
    """Prose wrapped at 72 columns, as Git tools expect; tables are left as they are."""
    return textwrap.fill(text, width=72, break_long_words=False, break_on_hyphens=False)


def _placements(placements: Sequence[Placement]) -> dict[str, dict[Location, int]]:
    out: dict[str, dict[Location, int]] = {}
    for p in placements:
        out.setdefault(p.workload, {})[p.location] = int(p.replicas)
    return out


def _moved(plan: Plan) -> dict[str, int]:
    """Replicas each workload moves in the first period (0: scaled in place, not a move)."""
    before = _placements(plan.current)
    after = {w: dict(locs) for w, locs in before.items()}
    for w, locs in _placements(plan.first_period).items():
        after.setdefault(w, {}).update(locs)
    return {w: moved_replicas(before.get(w, {}), locs) for w, locs in after.items()}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip() or "-"


def _planner_demand(plan: Plan, workload: str) -> list[int] | None:
    """The forecast demand (replicas per period) the planner solved for, when it stored it."""
    from cloudbalance.plan.problem import Problem

    problem = Problem.of(plan)
    return None if problem is None else problem.demand_of(workload)


def _forecast(plan: Plan, workload: str) -> str:
    """What the forecast asks of a workload, per period, for the reviewer to check.

    In order: ``plan.inputs["forecast"][workload]`` (text the caller chose), the demand the
    planner solved for (``Problem.of(plan).demand_of``), else the replicas the plan
    schedules per period.
    """
    given = plan.inputs.get("forecast")
    if isinstance(given, Mapping) and workload in given:
        return str(given[workload])
    totals = _planner_demand(plan, workload)
    if totals is None:
        totals = [
            sum(p.replicas for p in period if p.workload == workload) for period in plan.schedule
        ]
    if not totals:
        return "-"
    shown = totals[:6]
    more = " …" if len(totals) > len(shown) else ""
    return " → ".join(str(n) for n in shown) + more


def _moves_for(
    plan: Plan, changes: Sequence[PlacementChange]
) -> list[tuple[str, Location, int, int, Move | None]]:
    """One row per changed placement, joined with the plan's explanation of that move."""
    by_key = {(m.workload, m.location): m for m in plan.moves}
    rows = []
    for change in changes:
        move = by_key.get((change.workload, change.location))
        rows.append((change.workload, change.location, change.before or 0, change.after, move))
    return rows


def render(
    plan: Plan,
    changes: Sequence[PlacementChange],
    *,
    files: Sequence[str],
    warnings: Sequence[str] = (),
    markdown_marker: bool = False,
    extra_trailers: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """The summary line and the body (ending with trailers) for a plan's change.

    Args:
        plan: The plan written.
        changes: The placement values changed, as written to the stack files.
        files: The stack files changed.
        warnings: Policy warnings and guardrail notes, listed for the reviewer.
        markdown_marker: Add the hidden marker that identifies cloudbalance pull requests.
        extra_trailers: More trailers to append.

    Returns:
        ``(subject, body)``: a commit message is the subject, a blank line, then the body.
    """
    currency = plan.currency
    workloads = sorted({c.workload for c in changes})
    by_workload = _moved(plan)
    moved = sum(by_workload.get(w, 0) for w in workloads)
    names = ", ".join(workloads[:3]) + (" …" if len(workloads) > 3 else "")
    action = (
        f"move {moved} replica{'s' if moved != 1 else ''} of {names}"
        if moved
        else f"scale {names} in place"
    )
    # the saving is the whole horizon's; when this period only scales, it comes from the moves
    # later periods make (written by later runs), and the subject says so
    saves = f"saves {money(plan.saving, currency)}" + (
        f" over {plan.horizon} periods" if not moved and plan.saving else ""
    )
    subject = f"cloudbalance: {action} ({saves})"
    lines: list[str] = [
        _wrap(
            f"Plan {plan.plan_id}, computed {plan.created_at:%Y-%m-%d %H:%M} UTC for "
            f"{plan.horizon} period(s) of {plan.period} from "
            f"{plan.period_start:%Y-%m-%d %H:%M} UTC. Only the first period is written here; "
            "later runs re-plan the rest."
        ),
        "",
        _wrap(
            f"Expected saving: {money(plan.saving, currency)} over the horizon "
            f"({money(plan.expected_cost, currency)} planned vs "
            f"{money(plan.baseline_cost, currency)} if nothing moves). "
            f"Confidence: {plan.confidence:.2f}."
        ),
    ]
    lines.append("")
    lines.append(
        "| Workload | Location | Before | After | Forecast (replicas/period) | "
        f"Saving ({currency}) | Confidence | Reason |"
    )
    lines.append("|---|---|--:|--:|---|--:|--:|---|")
    for workload, location, before, after, move in _moves_for(plan, changes):
        # scaling in place is not a move and saves nothing: no saving shown for it
        moves = by_workload.get(workload, 0) > 0
        saving = f"{move.saving:,.2f}" if move is not None and moves else "-"
        confidence = f"{move.confidence:.2f}" if move is not None else "-"
        reason = move.reason if move is not None and move.reason else "rebalanced by the plan"
        lines.append(
            f"| {_cell(workload)} | {location.key} | {before} | {after} | "
            f"{_cell(_forecast(plan, workload))} | {saving} | {confidence} | {_cell(reason)} |"
        )
    lines.append("")
    lines.append("Stack files: " + ", ".join(files) + ".")
    if plan.notes or warnings:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"- {_cell(text)}" for text in [*plan.notes, *warnings])
    if markdown_marker:
        lines.append("")
        lines.append(MARKER)
    trailers: dict[str, Any] = {
        PLAN_TRAILER: plan.plan_id,
        CONFIDENCE_TRAILER: f"{plan.confidence:.2f}",
        SAVING_TRAILER: money(plan.saving, currency),
    }
    trailers.update(extra_trailers or {})
    lines.append("")
    lines.extend(f"{key}: {value}" for key, value in trailers.items())
    return subject, "\n".join(lines) + "\n"


def render_revert(
    plan_id: str,
    commit: str,
    changes: Sequence[PlacementChange],
    *,
    files: Sequence[str],
    markdown_marker: bool = False,
    evidence: str = "",
) -> tuple[str, str]:
    """The summary line and body of the commit that reverts plan ``plan_id`` (made in ``commit``).

    The body lists each restored value and ends with the ``Cloudbalance-Revert`` trailer, which
    later runs treat like a plan trailer: the values it wrote are the last known good ones.
    ``evidence`` (Markdown, from :mod:`cloudbalance.verify`) says why, before the trailers.
    """
    lines = [
        _wrap(
            f"Restores the placements that plan {plan_id} (commit {commit[:12]}) changed to "
            "the values they had before it."
        ),
        "",
        "| Workload | Location | Before | After |",
        "|---|---|--:|--:|",
    ]
    lines.extend(
        f"| {_cell(c.workload)} | {c.location.key} | {c.before or 0} | {c.after} |" for c in changes
    )
    lines += ["", "Stack files: " + ", ".join(files) + "."]
    if evidence.strip():
        lines += ["", evidence.strip()]
    if markdown_marker:
        lines += ["", REVERT_MARKER]
    lines += ["", f"{REVERT_TRAILER}: {plan_id}", f"Cloudbalance-Reverted-Commit: {commit}"]
    return f"cloudbalance: revert plan {plan_id}", "\n".join(lines) + "\n"
