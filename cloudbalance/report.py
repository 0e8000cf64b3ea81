"""Reports for people and machines: HTML with charts, Markdown, JSON, kept in step.

- **HTML**: one self-contained page (charts are inline SVG drawn by matplotlib, styles inline; no
  script, font or image is fetched), readable on a laptop screen and in print, in the order a
  FinOps lead reads it: what the data stands on ("data as of"), spend over time stacked by
  cloud with the forecast band, budgets with their projection, realised savings of applied plans
  (the figures ``verify`` recorded), cost no workload owns, each workload's cost by location,
  commitment coverage, the top anomalies by money, then history and forecast per workload and
  per cloud, predicted spikes (spot prices included), the plan and forecast accuracy.
  Every section says plainly when it has nothing to show and why ("no forecast yet" is not "no
  spike predicted"). Legends sit outside the plotting area; cost bands never go below zero.
- **Markdown**: the same facts as tables, for pull requests and CI job summaries.
- **JSON**: for machines; its schema is ``cloudbalance/schemas/report.schema.json`` (versioned by
  ``schema_version``).
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cloudbalance._version import __version__
from cloudbalance.models import Plan

if TYPE_CHECKING:
    from cloudbalance.budgets import BudgetStatus
    from cloudbalance.config import Settings
    from cloudbalance.series import Forecasts
    from cloudbalance.store import Store

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "ChartGroup",
    "ReportData",
    "build_report",
    "render_html",
    "render_json",
    "render_markdown",
    "report_schema",
    "write_reports",
]

REPORT_SCHEMA_VERSION = 1

#: Days of history drawn before the forecast (the rest is in the JSON and the store).
HISTORY_DAYS = 120

#: Days (ending at "data as of") behind the per-location, unattributed and commitment tables.
RECENT_DAYS = 30

#: Anomalies listed, largest money impact first.
TOP_ANOMALIES = 10


@dataclass(frozen=True)
class ChartGroup:
    """Series drawn together, one small chart each (e.g. cost per workload).

    Attributes:
        title: Section title.
        unit: Unit of ``y`` (``USD/day``, ``replicas``).
        history: Series frame (``unique_id, ds, y``).
        forecast: Forecast frame for the same ids (may be empty).
        anomalies: ``unique_id, ds, y, anomaly, score`` (only anomalous rows are drawn).
        kind: What the series measure (``cost``, ``cloud``, ``demand``): only spikes of the
            same kind are shaded on these charts.
        money: Whether ``y`` is money (intervals are then drawn from zero up, never below).
    """

    title: str
    unit: str
    history: pd.DataFrame
    forecast: pd.DataFrame
    anomalies: pd.DataFrame | None = None
    kind: str = ""
    money: bool = False


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows.

    Attributes:
        title: Page title.
        generated_at: Naive UTC.
        groups: Chart groups, in page order.
        accuracy: Accuracy frame (``cloudbalance.schema.ACCURACY``).
        spikes: Spike warnings frame (``unique_id, start, end, peak_ds, expected,
            normal_level, ratio, probability`` and ``kind``: demand, cost, cloud or price).
            Every warning of the forecast, spot prices included: the one count shown.
        plan: The plan, when one was made.
        steps: What the run did, one mapping per step (``step``, ``status``, ``detail``).
        notes: Remarks shown at the top (guardrails applied, failed providers...).
        currency: Currency of money amounts.
        data_as_of: End of the latest charge in the store (what the report stands on).
        forecast_made: Whether a forecast exists (``None``: inferred from the frames).
        horizon: Periods forecast (for the empty states' wording).
        spend: Daily spend per cloud (``ds, cloud, y``).
        spend_forecast: Forecast of the total daily spend (``ds, yhat, yhat_lower,
            yhat_upper, interval``).
        budgets: Budget statuses (``cloudbalance.budgets.BudgetStatus``).
        verified: What ``verify`` recorded per applied plan (``Verification.to_dict()``).
        unattributed: Cost without a workload (``cloud, service, category, amount,
            recent``), ``recent`` over the last :data:`RECENT_DAYS` days.
        locations: Per workload and location, cost over the last :data:`RECENT_DAYS` days
            (``workload, location, amount, share``).
        commitments: Per cloud, usage at list price and effective cost over the last
            :data:`RECENT_DAYS` days (``cloud, list_cost, effective_cost, coverage``).
        top_anomalies: Largest anomalies by money (``series, kind, anomaly_kind, ds, actual,
            expected, impact``; ``anomaly_kind`` is ``spike`` or ``shift``).
    """

    title: str
    generated_at: datetime
    groups: Sequence[ChartGroup] = ()
    accuracy: pd.DataFrame = field(default_factory=pd.DataFrame)
    spikes: pd.DataFrame = field(default_factory=pd.DataFrame)
    plan: Plan | None = None
    steps: Sequence[Mapping[str, Any]] = ()
    notes: Sequence[str] = ()
    currency: str = "USD"
    data_as_of: datetime | None = None
    forecast_made: bool | None = None
    horizon: int | None = None
    spend: pd.DataFrame = field(default_factory=pd.DataFrame)
    spend_forecast: pd.DataFrame = field(default_factory=pd.DataFrame)
    budgets: Sequence[BudgetStatus] = ()
    verified: Sequence[Mapping[str, Any]] = ()
    unattributed: pd.DataFrame = field(default_factory=pd.DataFrame)
    locations: pd.DataFrame = field(default_factory=pd.DataFrame)
    commitments: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_anomalies: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def has_forecast(self) -> bool:
        """Whether a forecast exists at all (else "no spike" would be a false comfort)."""
        if self.forecast_made is not None:
            return self.forecast_made
        return (
            not self.spikes.empty
            or not self.accuracy.empty
            or not self.spend_forecast.empty
            or any(not g.forecast.empty for g in self.groups)
        )

    @property
    def spike_count(self) -> int:
        """Predicted spikes, every kind: the tile, the table and the run step agree."""
        return len(self.spikes)


# ---------------------------------------------------------------------------------- charts

_COLORS = {
    "history": "#1f4e79",
    "forecast": "#d9822b",
    "band": "#f5c89a",
    "spike": "#c0392b",
    "anomaly": "#8e44ad",
}


def _svg(fig: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    # No date and stable ids: the same data gives the same page (reports diff cleanly).
    with matplotlib.rc_context({"svg.hashsalt": "cloudbalance"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _chart(
    uid: str,
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    anomalies: pd.DataFrame | None,
    spikes: pd.DataFrame,
    unit: str,
    *,
    money: bool = False,
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import dates as mdates
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 2.6), dpi=96)
    try:
        if not history.empty:
            end = history["ds"].max()
            recent = history[history["ds"] > end - pd.Timedelta(days=HISTORY_DAYS)]
            ax.plot(recent["ds"], recent["y"], color=_COLORS["history"], lw=1.2, label="history")
        if not forecast.empty:
            ax.fill_between(
                forecast["ds"],
                _band_lower(forecast, money=money),
                forecast["yhat_upper"],
                color=_COLORS["band"],
                alpha=0.6,
                lw=0,
                label=f"{forecast['interval'].iloc[0]:.0%} interval",
            )
            ax.plot(
                forecast["ds"],
                forecast["yhat"],
                color=_COLORS["forecast"],
                lw=1.4,
                label="forecast",
            )
        if anomalies is not None and not anomalies.empty:
            flagged = anomalies[anomalies["anomaly"].astype(bool)]
            if not history.empty:
                flagged = flagged[
                    flagged["ds"] > history["ds"].max() - pd.Timedelta(days=HISTORY_DAYS)
                ]
            ax.scatter(
                flagged["ds"],
                flagged["y"],
                marker="x",
                s=28,
                color=_COLORS["anomaly"],
                label="anomaly",
                zorder=3,
            )
        half_day = pd.Timedelta(hours=12)
        date2num: Any = mdates.date2num  # untyped in matplotlib's stubs
        for spike in spikes.to_dict("records"):
            ax.axvspan(
                float(date2num(pd.Timestamp(spike["start"]) - half_day)),
                float(date2num(pd.Timestamp(spike["end"]) + half_day)),
                color=_COLORS["spike"],
                alpha=0.12,
                lw=0,
            )
            ax.annotate(
                f"spike {float(spike['ratio']):.1f}x, p={float(spike['probability']):.0%}",
                xy=(
                    float(date2num(pd.Timestamp(spike["peak_ds"]))),
                    float(spike["expected"]),
                ),
                fontsize=7,
                color=_COLORS["spike"],
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
            )
        if money:
            drawn = history[history["ds"] > history["ds"].max() - pd.Timedelta(days=HISTORY_DAYS)]
            ax.set_ylim(bottom=min(0.0, float(drawn["y"].min()) if not drawn.empty else 0.0))
        ax.set_title(uid, fontsize=10, loc="left")
        ax.set_ylabel(unit, fontsize=8)
        _style(ax, fig)
        return _svg(fig)
    finally:
        plt.close(fig)


def _band_lower(forecast: pd.DataFrame, *, money: bool) -> pd.Series:
    """The lower edge of a drawn interval: money is never drawn below zero."""
    lower = forecast["yhat_lower"].astype(float)
    return lower.clip(lower=0) if money else lower


def _style(ax: Any, fig: Any) -> None:
    """Grid, light frame and the legend above the plotting area, right-aligned: never on data."""
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25, lw=0.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            fontsize=7,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
            ncol=5,
            borderaxespad=0.2,
        )
    fig.autofmt_xdate()


_CLOUD_COLORS = {"aws": "#e8912d", "azure": "#2f7fc1", "gcp": "#3aa757"}


def _spend_chart(spend: pd.DataFrame, band: pd.DataFrame, currency: str) -> str:
    """Daily spend stacked by cloud over the recent history, then the total's forecast band."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 3.0), dpi=96)
    try:
        wide = spend.pivot_table(index="ds", columns="cloud", values="y", aggfunc="sum").fillna(0)
        wide = wide[wide.index > wide.index.max() - pd.Timedelta(days=HISTORY_DAYS)]
        clouds = [str(c) for c in wide.columns]
        ax.stackplot(
            wide.index,
            *[wide[c].to_numpy() for c in wide.columns],
            labels=clouds,
            colors=[_CLOUD_COLORS.get(c, "#9aa3ad") for c in clouds],
            alpha=0.85,
            lw=0,
        )
        if not band.empty:
            ax.fill_between(
                band["ds"],
                _band_lower(band, money=True),
                band["yhat_upper"],
                color=_COLORS["band"],
                alpha=0.6,
                lw=0,
                label=f"{float(band['interval'].iloc[0]):.0%} interval",
            )
            ax.plot(band["ds"], band["yhat"], color=_COLORS["forecast"], lw=1.4, label="forecast")
        ax.set_ylim(bottom=0)
        ax.set_title("Total daily spend by cloud", fontsize=10, loc="left")
        ax.set_ylabel(f"{currency}/day", fontsize=8)
        _style(ax, fig)
        return _svg(fig)
    finally:
        plt.close(fig)


def _plan_chart(plan: Plan) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    moves = list(plan.moves)
    fig, ax = plt.subplots(figsize=(7.2, 0.45 * max(len(moves), 2) + 0.8), dpi=96)
    try:
        labels = [f"{m.workload} @ {m.location.key}" for m in moves]
        ax.barh(labels, [m.before for m in moves], color="#b0b7c3", label="before")
        ax.barh(
            labels,
            [m.after for m in moves],
            color=_COLORS["forecast"],
            alpha=0.7,
            height=0.45,
            label="after",
        )
        ax.invert_yaxis()
        ax.set_xlabel("replicas", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2)
        ax.set_title("Moves of the first period", fontsize=10, loc="left")
        return _svg(fig)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------- helpers


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    text = frame.to_json(orient="records", date_format="iso")
    records: list[dict[str, Any]] = json.loads(text)
    return records


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else str(value)
    return str(value)


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.0%}"


_SPIKE_HEADERS = ("series", "from", "to", "peak", "expected", "normal", "ratio", "probability")


def _series_label(row: Mapping[Any, Any]) -> str:
    kind = row.get("label") if isinstance(row.get("label"), str) else row.get("kind")
    name = str(row["unique_id"])
    return f"{name} ({kind})" if isinstance(kind, str) and kind else name


def _spike_rows(spikes: pd.DataFrame) -> list[list[str]]:
    """One table row per spike warning (shared by the HTML and Markdown reports)."""
    return [
        [
            _series_label(s),
            _fmt(pd.Timestamp(s["start"])),
            _fmt(pd.Timestamp(s["end"])),
            _fmt(pd.Timestamp(s["peak_ds"])),
            _fmt(float(s["expected"])),
            _fmt(float(s["normal_level"])),
            f"{float(s['ratio']):.2f}x",
            _pct(s["probability"]),
        ]
        for s in spikes.to_dict("records")
    ]


_MOVE_HEADERS = ("workload", "location", "before", "after", "saving", "confidence", "reason")
_ACCURACY_HEADERS = (
    "series",
    "model",
    "MASE",
    "sMAPE",
    "coverage",
    "calibrated",
    "confidence",
    "why",
)


def _move_rows(plan: Plan) -> list[list[str]]:
    return [
        [
            m.workload,
            m.location.key,
            str(m.before),
            str(m.after),
            _fmt(m.saving),
            _pct(m.confidence),
            m.reason,
        ]
        for m in plan.moves
    ]


def _accuracy_rows(data: ReportData) -> list[list[str]]:
    return [
        [
            str(a["unique_id"]),
            str(a["model"]),
            _fmt(a["mase"]),
            _fmt(a["smape"]),
            _pct(a["coverage"]),
            _pct(a["coverage_calibrated"]),
            _pct(a["confidence"]),
            a["reason"] if isinstance(a.get("reason"), str) else "",
        ]
        for a in data.accuracy.to_dict("records")
    ]


def _spikes_of(data: ReportData, group: ChartGroup, uid: str) -> pd.DataFrame:
    """The spikes of one chart: same series and same kind (no demand spike on a cost chart)."""
    if data.spikes.empty or "unique_id" not in data.spikes:
        return pd.DataFrame(columns=["start", "end", "peak_ds", "expected", "ratio", "probability"])
    mask = data.spikes["unique_id"].astype(str) == uid
    if "kind" in data.spikes:
        mask &= data.spikes["kind"].fillna("").astype(str) == group.kind
    return data.spikes[mask]


@dataclass(frozen=True)
class _Section:
    """One table section, the same in HTML and Markdown."""

    anchor: str
    title: str
    intro: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: Sequence[int]
    empty: str


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _budget_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for b in data.budgets:
        probabilities = ", ".join(f">{t:.0%}: {p:.0%}" for t, p in b.probabilities.items())
        rows.append(
            [
                b.budget.label,
                f"{b.start:%Y-%m-%d} to {b.end - pd.Timedelta(days=1):%Y-%m-%d}",
                _fmt(float(b.budget.amount)),
                f"{_fmt(b.actual)} ({b.used:.0%})",
                f"{_fmt(b.projected)} ({b.projected_share:.0%})",
                f"{_fmt(b.lower)} - {_fmt(b.upper)}",
                probabilities,
                b.basis,
            ]
        )
    return rows


def _verified_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for v in data.verified:
        realised, counterfactual = float(v["realised"]), float(v["counterfactual"])
        # the realised saving as verify recorded it (cloudbalance.saving), not recomputed
        saved = float(v["saving"]) if "saving" in v else counterfactual - realised
        rows.append(
            [
                str(v["plan_id"]),
                str(v["status"]),
                f"{str(v['start'])[:10]} to {str(v['end'])[:10]}",
                str(v["periods"]),
                _fmt(float(v["expected"])),
                _fmt(realised),
                _fmt(counterfactual),
                _fmt(saved),
            ]
        )
    return rows


def _frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[list[str]]:
    if frame.empty:
        return []
    out = []
    for row in frame.to_dict("records"):
        cells = []
        for column in columns:
            value = row[column]
            if column in ("share", "coverage"):
                cells.append(_pct(value))
            elif isinstance(value, pd.Timestamp | datetime):
                cells.append(f"{value:%Y-%m-%d}")
            else:
                cells.append(_fmt(float(value)) if isinstance(value, int | float) else str(value))
        out.append(cells)
    return out


def _sections(data: ReportData) -> list[_Section]:
    """The table sections, in page order (HTML and Markdown render the same list)."""
    c = data.currency
    unattributed_total = (
        float(data.unattributed["amount"].sum()) if not data.unattributed.empty else 0.0
    )
    spikes_empty = (
        f"No spike predicted over the horizon ({data.horizon} periods)."
        if data.has_forecast and data.horizon
        else "No spike predicted over the horizon."
        if data.has_forecast
        else "No forecast yet, so no spike can be predicted: run `cloudbalance run` "
        "(or `cloudbalance forecast`)."
    )
    return [
        _Section(
            "budgets",
            "Budgets",
            f"Spent this period, projected end of the period with its interval and the "
            f"probability of ending above each threshold ({c}).",
            ("budget", "period", "amount", "spent", "projected", "range", "probability", "basis"),
            _budget_rows(data),
            (2, 3, 4, 5),
            "No budget configured: add `budgets:` to cloudbalance.yaml (docs/budgets.md).",
        ),
        _Section(
            "savings",
            "Realised savings of applied plans",
            f"As `cloudbalance verify` measured them, over the periods with cost data: the "
            f"saving the plan expected for those periods, the realised cost against not moving "
            f"(the same replicas scaled in place) at the same observed prices ({c}).",
            (
                "plan",
                "status",
                "verified",
                "periods",
                "expected saving",
                "realised",
                "not moving",
                "realised saving",
            ),
            _verified_rows(data),
            (3, 4, 5, 6, 7),
            "No applied plan has been verified yet.",
        ),
        _Section(
            "unattributed",
            "Cost no workload owns",
            f"{_money(unattributed_total, c)} in the store carries no workload "
            "(support, credits, shared services): attribute it with workload tags or rules."
            if unattributed_total
            else "",
            ("cloud", "service", "category", "in the store", f"last {RECENT_DAYS} days"),
            _frame_rows(data.unattributed, ("cloud", "service", "category", "amount", "recent")),
            (3, 4),
            "Every cost line is attributed to a workload."
            if data.data_as_of is not None
            else "No cost data in the store yet.",
        ),
        _Section(
            "locations",
            "Workload cost by location",
            f"Last {RECENT_DAYS} days of data ({c}).",
            ("workload", "location", "cost", "share of the workload"),
            _frame_rows(data.locations, ("workload", "location", "amount", "share")),
            (2, 3),
            "No workload cost in the last days of data.",
        ),
        _Section(
            "commitments",
            "Commitment coverage",
            f"Usage over the last {RECENT_DAYS} days at list price and as paid (commitments and "
            f"discounts applied); coverage is the share saved against list ({c}).",
            ("cloud", "list cost", "effective cost", "coverage"),
            _frame_rows(data.commitments, ("cloud", "list_cost", "effective_cost", "coverage")),
            (1, 2, 3),
            "No usage with a list price in the last days of data: coverage cannot be computed.",
        ),
        _Section(
            "anomalies",
            "Top anomalies by money",
            f"Days whose cost was far from its seasonal level, largest gap first ({c}).",
            ("series", "anomaly", "day", "cost", "expected", "gap"),
            _frame_rows(
                data.top_anomalies.assign(
                    series=data.top_anomalies["series"] + " (" + data.top_anomalies["kind"] + ")"
                )
                if not data.top_anomalies.empty
                else data.top_anomalies,
                ("series", "anomaly_kind", "ds", "actual", "expected", "impact"),
            ),
            (3, 4, 5),
            "No anomaly in the cost history."
            if data.data_as_of is not None
            else "No cost history to look for anomalies in.",
        ),
        _Section(
            "spikes",
            "Predicted spikes",
            "Every spike warning of the forecast: demand, cost and spot prices.",
            _SPIKE_HEADERS,
            _spike_rows(data.spikes) if not data.spikes.empty else [],
            (4, 5, 6, 7),
            spikes_empty,
        ),
    ]


def _as_of_line(data: ReportData) -> str:
    if data.data_as_of is None:
        return "No cost data in the store yet."
    last_day = data.data_as_of - pd.Timedelta(microseconds=1)
    return (
        f"Data as of {data.data_as_of:%Y-%m-%d %H:%M} UTC (the end of the latest charge in the "
        f"store; last day with data {last_day:%Y-%m-%d})."
    )


# ---------------------------------------------------------------------------------- JSON


def report_schema() -> dict[str, Any]:
    """The JSON schema of :func:`render_json` output."""
    path = Path(__file__).parent / "schemas" / "report.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def render_json(data: ReportData) -> dict[str, Any]:
    """The report as JSON-ready data (schema: :func:`report_schema`)."""
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generator": f"cloudbalance {__version__}",
        "title": data.title,
        "generated_at": data.generated_at.isoformat(),
        "currency": data.currency,
        "notes": list(data.notes),
        "steps": [dict(step) for step in data.steps],
        "groups": [
            {
                "title": group.title,
                "unit": group.unit,
                "series": sorted(group.history["unique_id"].unique().tolist())
                if not group.history.empty
                else [],
                "forecast": _records(group.forecast),
                "anomalies": _records(
                    group.anomalies[group.anomalies["anomaly"].astype(bool)]
                    if group.anomalies is not None and not group.anomalies.empty
                    else None
                ),
            }
            for group in data.groups
        ],
        "spikes": _records(data.spikes),
        "accuracy": _records(data.accuracy),
        "plan": data.plan.to_dict() if data.plan is not None else None,
        "data_as_of": data.data_as_of.isoformat() if data.data_as_of is not None else None,
        "forecast_made": data.has_forecast,
        "spike_count": data.spike_count,
        "spend": _records(data.spend),
        "spend_forecast": _records(data.spend_forecast),
        "budgets": [b.to_dict() for b in data.budgets],
        "verified": [dict(v) for v in data.verified],
        "unattributed": _records(data.unattributed),
        "locations": _records(data.locations),
        "commitments": _records(data.commitments),
        "top_anomalies": _records(data.top_anomalies),
    }


def _spend_rows(data: ReportData) -> list[list[str]]:
    """Per cloud, spend over the last days of data; the total's forecast over the horizon."""
    if data.spend.empty:
        return []
    end = pd.Timestamp(data.spend["ds"].max())
    recent = data.spend[pd.to_datetime(data.spend["ds"]) > end - pd.Timedelta(days=RECENT_DAYS)]
    rows = [
        [str(cloud), _fmt(float(amount)), ""]
        for cloud, amount in recent.groupby("cloud")["y"].sum().items()
    ]
    total = f"{_fmt(float(recent['y'].sum()))}"
    if data.spend_forecast.empty:
        ahead = "no forecast yet"
    else:
        band = data.spend_forecast
        low = float(_band_lower(band, money=True).sum())
        ahead = (
            f"{_fmt(float(band['yhat'].sum()))} ({_fmt(low)} - "
            f"{_fmt(float(band['yhat_upper'].sum()))}) over {len(band)} days"
        )
    rows.append(["total", total, ahead])
    return rows


_SPEND_HEADERS = ("cloud", f"last {RECENT_DAYS} days", "forecast (range)")


# ---------------------------------------------------------------------------------- Markdown


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: ReportData) -> str:
    """The report as Markdown (GitHub-flavoured tables), for PRs and CI job summaries."""
    out = [
        f"# {data.title}",
        "",
        f"{_as_of_line(data)} Generated {data.generated_at:%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    out += [f"> {note}" for note in data.notes]
    if data.steps:
        out += [
            "",
            "## Run",
            "",
            _md_table(
                ["step", "status", "detail"],
                [
                    [str(s.get("step", "")), str(s.get("status", "")), str(s.get("detail", ""))]
                    for s in data.steps
                ],
            ),
        ]
    out += ["", f"## Spend ({data.currency})", ""]
    spend = _spend_rows(data)
    out.append(_md_table(_SPEND_HEADERS, spend) if spend else "No cost data in the store yet.")
    for section in _sections(data):
        out += _md_section(section)
    out += ["", "## Plan", ""]
    if data.plan is None:
        out.append("No plan was made in this run.")
    else:
        plan = data.plan
        out.append(
            f"Plan `{plan.plan_id}`: expected {_fmt(plan.expected_cost)} {plan.currency} vs "
            f"{_fmt(plan.baseline_cost)} without moving, saving **{_fmt(plan.saving)} "
            f"{plan.currency}** over {plan.horizon} periods, confidence {_pct(plan.confidence)}."
        )
        if plan.moves:
            out += [
                "",
                _md_table(_MOVE_HEADERS, _move_rows(plan)),
            ]
        else:
            out += ["", "No move: the current placement is already the best one."]
        out += [f"- {note}" for note in plan.notes]
    out += ["", "## Forecast accuracy (backtests)", ""]
    if data.accuracy.empty:
        out.append("No backtest results." if data.has_forecast else "No forecast yet.")
    else:
        out.append(_md_table(_ACCURACY_HEADERS[:-1], [r[:-1] for r in _accuracy_rows(data)]))
    return "\n".join(out) + "\n"


def _md_section(section: _Section) -> list[str]:
    out = ["", f"## {section.title}", ""]
    if section.intro and section.rows:
        out += [section.intro, ""]
    out.append(_md_table(section.headers, section.rows) if section.rows else section.empty)
    return out


# ---------------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;
margin:0 auto;max-width:1180px;padding:24px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dde1e6}
.muted{color:#5b6573}
.note{background:#fff6e5;border-left:4px solid #d9822b;padding:6px 10px;margin:6px 0}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.kpi{border:1px solid #dde1e6;border-radius:6px;padding:8px 14px;min-width:150px}
.kpi b{display:block;font-size:20px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:10px}
figure{margin:0;border:1px solid #eef0f3;border-radius:6px;padding:6px;break-inside:avoid}
figure svg{width:100%;height:auto}
figure.plan{max-width:760px}figure.wide{max-width:1100px}
.asof{font-weight:600;margin:2px 0}.empty{color:#5b6573;font-style:italic}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #eef0f3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f7f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1e7e34}.failed{color:#c0392b}
@media print{body{max-width:none;padding:0;font-size:11px}.grid{grid-template-columns:1fr 1fr}
h2{break-after:avoid}table,figure{break-inside:avoid}}
"""


def _html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(c)}</td>'
            if i in numeric
            else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_section(section: _Section) -> str:
    esc = html.escape
    parts = [f"<section id='{section.anchor}'><h2>{esc(section.title)}</h2>"]
    if section.rows:
        if section.intro:
            parts.append(f"<p class='muted'>{esc(section.intro)}</p>")
        parts.append(_html_table(section.headers, section.rows, numeric=section.numeric))
    else:
        parts.append(f"<p class='empty'>{esc(section.empty)}</p>")
    parts.append("</section>")
    return "".join(parts)


def _kpis(data: ReportData) -> list[tuple[str, str, str]]:
    """``(id, label, value)`` of the tiles at the top."""
    c = data.currency
    kpis = [
        (
            "spikes",
            "Predicted spikes",
            str(data.spike_count) if data.has_forecast else "no forecast yet",
        )
    ]
    if not data.unattributed.empty:
        kpis.append(
            (
                "unattributed",
                "Unattributed cost",
                _money(float(data.unattributed["amount"].sum()), c),
            )
        )
    if data.budgets:
        at_risk = sum(1 for b in data.budgets if b.probabilities.get(1.0, 0.0) >= 0.5)
        kpis.append(("budgets", "Budgets likely over", f"{at_risk} of {len(data.budgets)}"))
    if data.verified:
        realised = sum(float(v["counterfactual"]) - float(v["realised"]) for v in data.verified)
        kpis.append(("realised", "Realised saving", _money(realised, c)))
    if data.plan is not None:
        kpis += [
            ("saving", "Expected saving", f"{_fmt(data.plan.saving)} {data.plan.currency}"),
            ("moves", "Moves", str(len(data.plan.moves))),
            ("confidence", "Plan confidence", _pct(data.plan.confidence)),
        ]
    if not data.accuracy.empty:
        kpis.append(("mase", "Median MASE", _fmt(float(data.accuracy["mase"].median()))))
    return kpis


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(data.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(data.title)}</h1>",
        f"<div class='asof' id='data-as-of'>{esc(_as_of_line(data))}</div>",
        f"<div class='muted'>Generated {data.generated_at:%Y-%m-%d %H:%M} UTC by cloudbalance "
        f"{esc(__version__)}</div>",
    ]
    parts += [f"<div class='note'>{esc(n)}</div>" for n in data.notes]
    parts.append(
        "<div class='kpis'>"
        + "".join(
            f"<div class='kpi' data-kpi='{key}'><span class='muted'>{esc(k)}</span>"
            f"<b>{esc(v)}</b></div>"
            for key, k, v in _kpis(data)
        )
        + "</div>"
    )
    if data.steps:
        parts.append("<section id='run'><h2>Run</h2>")
        parts.append(
            _html_table(
                ["step", "status", "detail"],
                [
                    [str(s.get("step", "")), str(s.get("status", "")), str(s.get("detail", ""))]
                    for s in data.steps
                ],
            )
        )
        parts.append("</section>")
    parts.append(f"<section id='spend'><h2>Spend ({esc(data.currency)})</h2>")
    if data.spend.empty:
        parts.append("<p class='empty'>No cost data in the store yet.</p>")
    else:
        chart = _spend_chart(data.spend, data.spend_forecast, data.currency)
        parts.append(f"<figure class='wide' data-series='spend'>{chart}</figure>")
        parts.append(_html_table(_SPEND_HEADERS, _spend_rows(data), numeric=(1,)))
    parts.append("</section>")
    sections = _sections(data)
    parts += [_html_section(section) for section in sections[:-1]]
    for group in data.groups:
        parts.append(f"<section><h2>{esc(group.title)}</h2><div class='grid'>")
        ids = sorted(set(group.history["unique_id"]) | set(group.forecast.get("unique_id", [])))
        for uid in ids:
            history = group.history[group.history["unique_id"] == uid]
            forecast = (
                group.forecast[group.forecast["unique_id"] == uid]
                if not group.forecast.empty
                else group.forecast
            )
            anomalies = (
                group.anomalies[group.anomalies["unique_id"] == uid]
                if group.anomalies is not None and not group.anomalies.empty
                else None
            )
            svg = _chart(
                str(uid),
                history,
                forecast,
                anomalies,
                _spikes_of(data, group, str(uid)),
                group.unit,
                money=group.money,
            )
            parts.append(f"<figure data-series='{esc(str(uid))}'>{svg}</figure>")
        parts.append("</div></section>")
    parts.append(_html_section(sections[-1]))
    parts.append("<section id='plan'><h2>Plan</h2>")
    if data.plan is None:
        parts.append("<p class='empty'>No plan was made in this run.</p>")
    else:
        plan = data.plan
        parts.append(
            f"<p>Plan <code>{esc(plan.plan_id)}</code>: expected {_fmt(plan.expected_cost)} "
            f"{esc(plan.currency)} against {_fmt(plan.baseline_cost)} without moving: "
            f"<b>saving {_fmt(plan.saving)} {esc(plan.currency)}</b> over {plan.horizon} "
            f"periods from {plan.period_start:%Y-%m-%d}, confidence {_pct(plan.confidence)}.</p>"
        )
        if plan.moves:
            parts.append(f"<figure class='plan' data-series='plan'>{_plan_chart(plan)}</figure>")
            parts.append(_html_table(_MOVE_HEADERS, _move_rows(plan), numeric=(2, 3, 4, 5)))
        else:
            parts.append("<p>No move: the current placement is already the best one.</p>")
        parts += [f"<div class='note'>{esc(n)}</div>" for n in plan.notes]
    parts.append("</section>")
    parts.append("<section id='accuracy'><h2>Forecast accuracy (rolling-origin backtests)</h2>")
    if data.accuracy.empty:
        empty = "No backtest results." if data.has_forecast else "No forecast yet."
        parts.append(f"<p class='empty'>{empty}</p>")
    else:
        parts.append(_html_table(_ACCURACY_HEADERS, _accuracy_rows(data), numeric=(2, 3, 4, 5, 6)))
    parts.append("</section></body></html>")
    return "\n".join(parts)


def write_reports(data: ReportData, folder: str | Path, *, stem: str = "report") -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``report.json`` into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out / f"{stem}.html",
        "markdown": out / f"{stem}.md",
        "json": out / f"{stem}.json",
    }
    paths["html"].write_text(render_html(data), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(data), encoding="utf-8")
    paths["json"].write_text(
        json.dumps(render_json(data), indent=2, default=str) + "\n", encoding="utf-8"
    )
    return paths


# ---------------------------------------------------------------------------------- building

#: Chart groups of money per day, by series kind (``cloudbalance.series.KINDS``).
_MONEY_GROUPS: dict[str, str] = {"cost": "Cost per workload", "cloud_cost": "Cost per cloud"}

#: How a series kind reads next to a series name.
_KIND_LABELS: dict[str, str] = {
    "cost": "workload cost",
    "cloud_cost": "cloud cost",
    "demand": "demand",
    "price": "price",
}


def _of_kind(frame: pd.DataFrame | None, kind: str) -> pd.DataFrame:
    """The rows of one kind, without the ``kind`` column (empty when there are none)."""
    if frame is None or frame.empty or "kind" not in frame:
        return pd.DataFrame()
    return frame[frame["kind"] == kind].drop(columns="kind").reset_index(drop=True)


def _verified_from_log(store: Store) -> list[dict[str, Any]]:
    """What ``verify`` recorded, the latest entry per plan (the same figures, not recomputed)."""
    runs = store.runs(limit=100_000)
    if len(runs) == 0:
        return []
    latest: dict[str, dict[str, Any]] = {}
    for row in runs[(runs["step"] == "verify") & (runs["status"] == "ok")].to_dict("records"):
        outputs = json.loads(row["outputs"]) if isinstance(row["outputs"], str) else {}
        if "plan_id" in outputs and "realised" in outputs and outputs["plan_id"] not in latest:
            latest[str(outputs["plan_id"])] = outputs  # newest first
    return list(latest.values())


def _currency(settings: Settings, costs: pd.DataFrame) -> str:
    if settings.currency.report:
        return str(settings.currency.report)
    seen = sorted(set(costs["BillingCurrency"].dropna().astype(str))) if not costs.empty else []
    return seen[0] if len(seen) == 1 else "USD"


def _cost_tables(costs: pd.DataFrame, as_of: datetime) -> dict[str, pd.DataFrame]:
    """Unattributed cost, cost per workload and location, commitment coverage."""
    cloud = costs["x_Cloud"].fillna(costs["ProviderName"].str.lower()).astype(str)
    since = pd.Timestamp(as_of) - pd.Timedelta(days=RECENT_DAYS)
    recent_mask = pd.to_datetime(costs["ChargePeriodStart"]) >= since
    frame = costs.assign(cloud=cloud, recent=costs["EffectiveCost"].where(recent_mask, 0.0))
    orphan = frame[frame["x_Workload"].isna()]
    unattributed = (
        orphan.assign(
            service=orphan["ServiceName"].fillna("-").astype(str),
            category=orphan["ChargeCategory"].astype(str),
        )
        .groupby(["cloud", "service", "category"], as_index=False)
        .agg(amount=("EffectiveCost", "sum"), recent=("recent", "sum"))
        .sort_values("amount", ascending=False, key=abs)
        .reset_index(drop=True)
    )
    recent = frame[recent_mask.to_numpy()]
    owned = recent[recent["x_Workload"].notna()]
    locations = (
        owned.assign(
            workload=owned["x_Workload"].astype(str),
            location=owned["cloud"] + ":" + owned["RegionId"].fillna("global").astype(str),
        )
        .groupby(["workload", "location"], as_index=False)
        .agg(amount=("EffectiveCost", "sum"))
    )
    if not locations.empty:
        totals = locations.groupby("workload")["amount"].transform("sum")
        locations["share"] = (locations["amount"] / totals.where(totals != 0)).fillna(0.0)
        locations = locations.sort_values(["workload", "amount"], ascending=[True, False])
    usage = recent[(recent["ChargeCategory"] == "Usage") & recent["ListCost"].notna()]
    commitments = (
        usage.groupby("cloud", as_index=False)
        .agg(list_cost=("ListCost", "sum"), effective_cost=("EffectiveCost", "sum"))
        .reset_index(drop=True)
    )
    commitments = commitments[commitments["list_cost"] > 0]
    if not commitments.empty:
        commitments = commitments.assign(
            coverage=1 - commitments["effective_cost"] / commitments["list_cost"]
        )
    return {
        "unattributed": unattributed,
        "locations": locations.reset_index(drop=True),
        "commitments": commitments.reset_index(drop=True),
    }


def _top_anomalies(anomalies: pd.DataFrame | None) -> pd.DataFrame:
    if anomalies is None or anomalies.empty or "kind" not in anomalies:
        return pd.DataFrame()
    flagged = anomalies[anomalies["anomaly"].astype(bool)]
    flagged = flagged[flagged["kind"].isin(list(_MONEY_GROUPS)) & flagged["expected"].notna()]
    if flagged.empty:
        return pd.DataFrame()
    top = flagged.assign(
        series=flagged["unique_id"].astype(str),
        kind=flagged["kind"].map(_KIND_LABELS),
        actual=flagged["y"].astype(float),
        impact=(flagged["y"] - flagged["expected"]).abs(),
    )
    top = top.sort_values("impact", ascending=False).head(TOP_ANOMALIES)
    if "anomaly_kind" not in top:
        top = top.assign(anomaly_kind="")
    columns = ["series", "kind", "anomaly_kind", "ds", "actual", "expected", "impact"]
    return top[columns].reset_index(drop=True)


def _history(settings: Settings, costs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from cloudbalance.series import cost_series, demand_series

    freq = settings.forecast.freq
    workloads = settings.workload_models()
    return {
        "cost": cost_series(costs, by="workload", freq=freq),
        "cloud_cost": cost_series(costs, by="cloud", freq=freq),
        "demand": demand_series(costs, workloads, freq=freq) if workloads else pd.DataFrame(),
    }


def build_report(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    forecasts: Forecasts | None = None,
    history: Mapping[str, pd.DataFrame] | None = None,
    anomalies: pd.DataFrame | None = None,
    data_as_of: datetime | None = None,
    plan: Plan | None = None,
    steps: Sequence[Mapping[str, Any]] = (),
    verified: Sequence[Mapping[str, Any]] | None = None,
    budgets: Sequence[BudgetStatus] | None = None,
    notes: Sequence[str] = (),
) -> ReportData:
    """Everything the report shows, from the store and what this run computed.

    The one place a report is assembled (``steps.report`` calls it): a run passes what it has
    just computed, ``cloudbalance report`` passes nothing and the latest of each is read from
    the store.

    Args:
        settings: The configuration (workloads, budgets, currency, horizon).
        store: The store.
        now: When the report is generated (naive UTC); the title's date is the data's.
        forecasts: The forecasts of every kind (default: the latest stored).
        history: The series they were made from, by kind (default: computed from the store).
        anomalies: ``detect_anomalies`` output with a ``kind`` column (``cost``,
            ``cloud_cost``; default: detected here on the store's costs).
        data_as_of: The end of the data (default: the store's newest day of any cloud).
        plan: The plan to show.
        steps: What the run did.
        verified: ``Verification.to_dict()`` of the applied plans (default: the latest each
            ``verify`` recorded in the audit log).
        budgets: Budget statuses (default: evaluated on the store).
        notes: Remarks for the top of the page.
    """
    from cloudbalance.budgets import evaluate_budgets
    from cloudbalance.exceptions import CloudBalanceError
    from cloudbalance.series import Forecasts

    if forecasts is None:
        forecasts = Forecasts.from_store(store)
    if data_as_of is None:
        ends = store.data_as_of()
        data_as_of = max(ends.values()) if ends else None
    costs = store.costs(end=data_as_of) if data_as_of is not None else store.costs()
    currency = _currency(settings, costs)
    groups: list[ChartGroup] = []
    spend = pd.DataFrame(columns=["ds", "cloud", "y"])
    tables: dict[str, pd.DataFrame] = {}
    top = pd.DataFrame()
    if not costs.empty and data_as_of is not None:
        series = dict(history) if history is not None else _history(settings, costs)
        if anomalies is None:
            from cloudbalance.forecast import detect_anomalies

            found = [
                detect_anomalies(series[kind]).assign(kind=kind)
                for kind in _MONEY_GROUPS
                if kind in series and not series[kind].empty
            ]
            anomalies = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
        unit = f"{currency}/day" if settings.forecast.freq == "D" else currency
        for kind, title in (*_MONEY_GROUPS.items(), ("demand", "Demand per workload")):
            past = series.get(kind)
            if past is None or past.empty:
                continue
            money = kind in _MONEY_GROUPS
            flagged = _of_kind(anomalies, kind) if money else pd.DataFrame()
            groups.append(
                ChartGroup(
                    title,
                    unit if money else "replicas",
                    past,
                    forecasts.of(kind),
                    flagged if not flagged.empty else None,
                    kind=kind,
                    money=money,
                )
            )
        clouds = series.get("cloud_cost", pd.DataFrame())
        if not clouds.empty:
            spend = clouds.rename(columns={"unique_id": "cloud"})[["ds", "cloud", "y"]]
        tables = _cost_tables(costs, data_as_of)
        top = _top_anomalies(anomalies)
    ahead = forecasts.of("cloud_cost")
    spend_forecast = (
        ahead.groupby("ds", as_index=False)
        .agg(
            yhat=("yhat", "sum"),
            yhat_lower=("yhat_lower", "sum"),
            yhat_upper=("yhat_upper", "sum"),
            interval=("interval", "first"),
        )
        .sort_values("ds")
        if not ahead.empty
        else pd.DataFrame()
    )
    if budgets is None:
        try:
            budgets = evaluate_budgets(settings, store) if data_as_of is not None else []
        except CloudBalanceError as err:
            notes = [*notes, f"budgets: {err}"]
            budgets = []
    spikes = forecasts.spikes
    if not spikes.empty and "kind" in spikes:
        spikes = spikes.assign(label=spikes["kind"].map(_KIND_LABELS).fillna(spikes["kind"]))
    title = (
        f"cloudbalance report, data as of {data_as_of:%Y-%m-%d}"
        if data_as_of is not None
        else "cloudbalance report (no cost data yet)"
    )
    return ReportData(
        title=title,
        generated_at=now,
        groups=groups,
        accuracy=forecasts.accuracy,
        spikes=spikes,
        plan=plan,
        steps=steps,
        notes=notes,
        currency=currency,
        data_as_of=data_as_of,
        forecast_made=not forecasts.empty,
        horizon=settings.forecast.horizon,
        spend=spend,
        spend_forecast=spend_forecast,
        budgets=budgets,
        verified=list(verified) if verified is not None else _verified_from_log(store),
        unattributed=tables.get("unattributed", pd.DataFrame()),
        locations=tables.get("locations", pd.DataFrame()),
        commitments=tables.get("commitments", pd.DataFrame()),
        top_anomalies=top,
    )
