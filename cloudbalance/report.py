"""Forecasting reports for people and machines: HTML with charts, Markdown, JSON.

- **HTML**: one self-contained page (charts are inline SVG drawn by matplotlib, styles inline; no
  script, font or image is fetched), readable on a laptop screen and in print: history and
  forecast with interval bands per workload and per cloud, predicted spikes and historical
  anomalies marked, the plan's moves and savings, and forecast accuracy from the backtests.
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
from typing import Any

import pandas as pd

from cloudbalance._version import __version__
from cloudbalance.models import Plan

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "ChartGroup",
    "ReportData",
    "render_html",
    "render_json",
    "render_markdown",
    "report_schema",
    "write_reports",
]

REPORT_SCHEMA_VERSION = 1

#: Days of history drawn before the forecast (the rest is in the JSON and the store).
HISTORY_DAYS = 120


@dataclass(frozen=True)
class ChartGroup:
    """Series drawn together, one small chart each (e.g. cost per workload).

    Attributes:
        title: Section title.
        unit: Unit of ``y`` (``USD/day``, ``replicas``).
        history: Series frame (``unique_id, ds, y``).
        forecast: Forecast frame for the same ids (may be empty).
        anomalies: ``unique_id, ds, y, anomaly, score`` (only anomalous rows are drawn).
    """

    title: str
    unit: str
    history: pd.DataFrame
    forecast: pd.DataFrame
    anomalies: pd.DataFrame | None = None


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows.

    Attributes:
        title: Page title.
        generated_at: Naive UTC.
        groups: Chart groups, in page order.
        accuracy: Accuracy frame (``cloudbalance.schema.ACCURACY``).
        spikes: Spike warnings frame (``unique_id, start, end, peak_ds, expected,
            normal_level, ratio, probability``).
        plan: The plan, when one was made.
        steps: What the run did, one mapping per step (``step``, ``status``, ``detail``).
        notes: Remarks shown at the top (guardrails applied, failed providers...).
        currency: Currency of money amounts.
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
                forecast["yhat_lower"],
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
        ax.set_title(uid, fontsize=10, loc="left")
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25, lw=0.5)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.legend(fontsize=7, loc="upper left", frameon=False, ncol=4)
        fig.autofmt_xdate()
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
        ax.legend(fontsize=7, frameon=False)
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


def _spike_rows(spikes: pd.DataFrame) -> list[list[str]]:
    """One table row per spike warning (shared by the HTML and Markdown reports)."""
    return [
        [
            str(s["unique_id"]),
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


def _spikes_of(data: ReportData, uid: str) -> pd.DataFrame:
    if data.spikes.empty or "unique_id" not in data.spikes:
        return pd.DataFrame(columns=["start", "end", "peak_ds", "expected", "ratio", "probability"])
    return data.spikes[data.spikes["unique_id"] == uid]


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
    }


# ---------------------------------------------------------------------------------- Markdown


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: ReportData) -> str:
    """The report as Markdown (GitHub-flavoured tables), for PRs and CI job summaries."""
    out = [f"# {data.title}", "", f"Generated {data.generated_at:%Y-%m-%d %H:%M} UTC.", ""]
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
    out += ["", "## Predicted spikes", ""]
    if data.spikes.empty:
        out.append("No spike predicted over the horizon.")
    else:
        out.append(_md_table(_SPIKE_HEADERS, _spike_rows(data.spikes)))
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
        out.append("No backtest results.")
    else:
        out.append(_md_table(_ACCURACY_HEADERS[:-1], [r[:-1] for r in _accuracy_rows(data)]))
    return "\n".join(out) + "\n"


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
figure.plan{max-width:760px}
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


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(data.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(data.title)}</h1>",
        f"<div class='muted'>Generated {data.generated_at:%Y-%m-%d %H:%M} UTC by cloudbalance "
        f"{esc(__version__)}</div>",
    ]
    parts += [f"<div class='note'>{esc(n)}</div>" for n in data.notes]
    kpis = [("Predicted spikes", str(len(data.spikes)))]
    if data.plan is not None:
        kpis += [
            ("Expected saving", f"{_fmt(data.plan.saving)} {data.plan.currency}"),
            ("Moves", str(len(data.plan.moves))),
            ("Plan confidence", _pct(data.plan.confidence)),
        ]
    if not data.accuracy.empty:
        kpis.append(("Median MASE", _fmt(float(data.accuracy["mase"].median()))))
    parts.append(
        "<div class='kpis'>"
        + "".join(
            f"<div class='kpi'><span class='muted'>{esc(k)}</span><b>{esc(v)}</b></div>"
            for k, v in kpis
        )
        + "</div>"
    )
    if data.steps:
        parts.append("<h2>Run</h2>")
        parts.append(
            _html_table(
                ["step", "status", "detail"],
                [
                    [str(s.get("step", "")), str(s.get("status", "")), str(s.get("detail", ""))]
                    for s in data.steps
                ],
            )
        )
    for group in data.groups:
        parts.append(f"<h2>{esc(group.title)}</h2><div class='grid'>")
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
                str(uid), history, forecast, anomalies, _spikes_of(data, str(uid)), group.unit
            )
            parts.append(f"<figure data-series='{esc(str(uid))}'>{svg}</figure>")
        parts.append("</div>")
    parts.append("<h2>Predicted spikes</h2>")
    if data.spikes.empty:
        parts.append("<p>No spike predicted over the horizon.</p>")
    else:
        parts.append(_html_table(_SPIKE_HEADERS, _spike_rows(data.spikes), numeric=(4, 5, 6, 7)))
    parts.append("<h2>Plan</h2>")
    if data.plan is None:
        parts.append("<p>No plan was made in this run.</p>")
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
    parts.append("<h2>Forecast accuracy (rolling-origin backtests)</h2>")
    if data.accuracy.empty:
        parts.append("<p>No backtest results.</p>")
    else:
        parts.append(_html_table(_ACCURACY_HEADERS, _accuracy_rows(data), numeric=(2, 3, 4, 5, 6)))
    parts.append("</body></html>")
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
