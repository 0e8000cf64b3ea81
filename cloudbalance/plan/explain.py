"""Words a reviewer can check: the reason of each move and the plan's notes.

Every amount is shown with :func:`money` (no "-$0.00"); a move's reason names what it gains over
the whole horizon, net of every move cost it pays, and where its confidence comes from.
"""

from __future__ import annotations

import numpy as np

from cloudbalance.plan.catalog import period_hours
from cloudbalance.plan.problem import Problem

__all__ = ["explain_moves", "money", "span", "trend"]


def money(value: float, currency: str) -> str:
    """An amount with its currency symbol; ``-0.00`` and other near-zero values print unsigned."""
    sign = "-" if value <= -0.005 else ""  # what rounds to zero is shown as zero, unsigned
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency)
    amount = f"{abs(value):,.0f}" if abs(value) >= 100 else f"{abs(value):,.2f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def span(problem: Problem) -> str:
    """The horizon in words (``7 days``, ``36 hours``)."""
    hours = period_hours(problem.period) * problem.horizon
    if hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day" + ("s" if days != 1 else "")
    return f"{hours:g} hours"


def trend(problem: Problem, i: int, j: int) -> str | None:
    """Words like 'aws:us-east-1 spot forecast +38% from Thu' when a price rises ahead."""
    c = problem.cost[i, j]
    if np.isnan(c[0]) or c[0] <= 0:
        return None
    rise = np.flatnonzero(c >= c[0] * 1.1)
    if not len(rise):
        return None
    t = int(rise[0])
    peak = float(np.nanmax(c[t:]))
    kind = str(problem.kind[i, j, t]).replace("_", "-") if problem.kind.size else "price"
    source = "forecast" if problem.forecast_price.size and problem.forecast_price[i, j, t] else ""
    when = problem.period_starts()[t]
    day = f"{when:%a}" if period_hours(problem.period) >= 24 else f"{when:%a %H:%M}"
    words = " ".join(x for x in (problem.locations[j].key, kind, source) if x)
    return f"{words} {peak / c[0] - 1:+.0%} from {day} (period {t + 1})"


def explain_moves(
    problem: Problem,
    x: np.ndarray,
    base: np.ndarray,
    saving: np.ndarray,
    quantile: float,
    *,
    required: np.ndarray | None = None,
    total_saving: float = 0.0,
) -> dict[tuple[int, int], str]:
    """A reason for every (workload, location) that changes in the first period.

    Args:
        problem: The problem.
        x: The schedule ``[W, L, T]``.
        base: The baseline schedule.
        saving: ``[W]`` saving of each workload over the horizon (net of every move cost).
        quantile: The demand quantile served.
        required: ``[W]`` whether staying breaks the workload's own constraints.
        total_saving: The whole plan's saving (a move that costs more on its own is made for
            the plan as a whole).
    """
    out: dict[tuple[int, int], str] = {}
    cur = problem.current
    mv = np.array([w.move_cost for w in problem.workloads])
    allowed = problem.allowed()
    T = x.shape[2]
    prev = np.concatenate([cur[:, :, None].astype("float64"), x[:, :, :-1]], axis=2)
    moved_in = np.maximum(0.0, x - prev).sum(axis=(1, 2)) * mv  # [W] over the horizon
    extra = (problem.gravity() + problem.preference_cost())[:, :, :T]
    ongoing = ((x - base) * extra).sum(axis=(1, 2))  # [W] plan minus baseline
    for i, w in enumerate(problem.workloads):
        first = x[i, :, 0]
        delta = first - cur[i]
        changed = np.flatnonzero(delta != 0)
        if not len(changed):
            continue
        relocation = not np.array_equal(first, base[i, :, 0])
        added = [int(j) for j in changed if delta[j] > 0]
        removed = [int(j) for j in changed if delta[j] < 0]
        if not relocation:
            text = (
                f"scale in place to {int(first.sum())} replicas to serve the forecast demand "
                f"(quantile {quantile:g}; was {int(cur[i].sum())})"
            )
            for k in changed:
                out[(i, int(k))] = text
            continue
        parts: list[str] = []
        for j in removed:
            if not allowed[i, j]:
                parts.append(f"{problem.locations[j].key} is not allowed for {w.name}")
            rising = trend(problem, i, j)
            if rising:
                parts.append(rising)
        move_paid = float(moved_in[i])
        dest = [problem.locations[j].key for j in added] or ["the remaining locations"]
        c = problem.currency
        gain = money(float(saving[i]), c)
        after = f" after {money(move_paid, c)} of move costs over the horizon" if move_paid else ""
        if abs(ongoing[i]) >= 0.005:
            more = "more" if ongoing[i] > 0 else "less"
            after += (
                f"; ongoing costs (data egress, location preference) "
                f"{money(abs(float(ongoing[i])), c)} {more}"
            )
        if saving[i] > 0:
            parts.append(f"{', '.join(dest)} cheaper by {gain} over {span(problem)}{after}")
        elif required is not None and required[i]:
            parts.append(
                f"required by the constraints (costs {money(-float(saving[i]), c)}"
                f" more over {span(problem)}{after})"
            )
        else:
            parts.append(
                f"costs {money(-float(saving[i]), c)} more on its own over {span(problem)}"
                f"{after}, and frees capacity or commitments the rest of the plan uses (the "
                f"whole plan saves {money(total_saving, c)})"
            )
        text = "; ".join(parts)
        for k in changed:
            out[(i, int(k))] = text
    return out
