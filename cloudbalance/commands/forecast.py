"""Forecast commands: ``cloudbalance forecast`` and ``cloudbalance anomalies``.

Both read a series file (CSV or Parquet with ``unique_id, ds, y``) or, for ``forecast``, the cost
series of the store, and write CSV or Parquet (chosen by the output file's suffix). What was done
to the input (duplicates combined, gaps, series skipped) is reported on stderr, never silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from cloudbalance.commands._common import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    ConfigOption,
    StoreOption,
    err_console,
    frame_suffix,
    output_file,
    working,
    write_frame,
)
from cloudbalance.exceptions import ForecastError, Issue, SchemaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Kind", "read_series_file", "register", "write_frame"]

#: What a forecast is of, written to the ``kind`` column of the forecast file (one of
#: ``cloudbalance.series.KINDS``; costs grouped by cloud are written as ``cloud_cost``).
Kind = Literal["demand", "cost", "price"]

AggregateOption = Annotated[
    Literal["sum", "mean", "max", "last"],
    typer.Option(help="How duplicated timestamps combine: sum, mean, max or last."),
]

_PARQUET = PARQUET_SUFFIXES
_CSV = CSV_SUFFIXES
_suffix = frame_suffix


def read_series_file(path: Path) -> pd.DataFrame:
    """Read a ``unique_id, ds, y`` file (CSV or Parquet) as text-typed columns for validation.

    Raises:
        SchemaError: The file is missing, unreadable, or not CSV/Parquet (naming the file).
    """
    import pandas as pd

    suffix = _suffix(path)
    if not path.is_file():
        raise SchemaError("series", [Issue("file not found", file=str(path))])
    try:
        if suffix in _PARQUET:
            return _from_costs_table(pd.read_parquet(path))
        if suffix in _CSV:
            return _from_costs_table(
                pd.read_csv(
                    path, dtype=str, keep_default_na=False, sep="\t" if suffix == ".tsv" else ","
                )
            )
    except (OSError, ValueError) as err:
        raise SchemaError("series", [Issue(f"cannot be read: {err}", file=str(path))]) from err
    raise SchemaError(
        "series",
        [Issue("unknown file type; use .csv, .csv.gz, .tsv or .parquet", file=str(path))],
    )


_COSTS_VALUES = ("currency", "amount", "lines")


def _from_costs_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``cloudbalance costs --by KEY,day -f csv`` output, read as a series frame.

    The group columns name the series (``aws:checkout``), ``day`` or ``month`` is ``ds`` and
    ``amount`` is ``y``; a currency is added to the name when the file holds several, so
    amounts in different currencies are never summed. Any other frame is returned unchanged.
    """
    import pandas as pd

    columns = list(frame.columns)
    period = next((c for c in ("day", "month") if c in columns), None)
    if "ds" in columns or "y" in columns or period is None or "amount" not in columns:
        return frame
    keys = [c for c in columns if c not in (period, *_COSTS_VALUES)]
    if keys:
        names = frame[keys].astype(str).agg(":".join, axis=1)
    else:
        names = pd.Series("total", index=frame.index)
    if "currency" in columns and frame["currency"].nunique() > 1:
        names = names + " (" + frame["currency"].astype(str) + ")"
    return pd.DataFrame({"unique_id": names, "ds": frame[period], "y": frame["amount"]})


def _report_notes(notes: dict[str, tuple[str, ...]], skipped: dict[str, str]) -> None:
    for uid, lines in sorted(notes.items()):
        for line in lines:
            err_console.print(f"note: {uid}: {line}", markup=False, highlight=False)
    for why in sorted(skipped.values()):
        err_console.print(f"skipped: {why}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``forecast`` and ``anomalies`` to ``app``."""

    @app.command("forecast")
    @working("forecasting")
    def forecast_cmd(
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Forecast file to write (.csv or .parquet).",
                dir_okay=False,
                callback=output_file,
            ),
        ],
        horizon: Annotated[
            int,
            typer.Option("--horizon", "-n", min=1, help="Periods ahead, in the data's frequency."),
        ],
        input_: Annotated[
            Path | None,
            typer.Option(
                "--input",
                "-i",
                help="Series file (.csv or .parquet) with unique_id, ds, y. "
                "Without it, the cost series of the store are forecast.",
                dir_okay=False,
            ),
        ] = None,
        interval: Annotated[float, typer.Option(help="Interval coverage, in (0, 1).")] = 0.8,
        model: Annotated[
            str | None,
            typer.Option(
                help="auto (choose per series by backtests), prophet, prophet_flexible, theta, "
                "seasonal_naive, level, spot or ensemble (default: auto; spot for --kind price)."
            ),
        ] = None,
        windows: Annotated[int, typer.Option(min=0, help="Backtest windows per series.")] = 3,
        freq: Annotated[
            str | None,
            typer.Option(help="Force a frequency (D, h, 15min); default: inferred per series."),
        ] = None,
        aggregate: AggregateOption = "sum",
        holidays: Annotated[
            str | None,
            typer.Option(help="Country code whose public holidays Prophet models (US, DE, ...)."),
        ] = None,
        spike_margin: Annotated[
            float, typer.Option(help="A spike is this far above the recent median (0.25 = +25%).")
        ] = 0.25,
        spike_threshold: Annotated[
            float | None, typer.Option(help="Absolute spike threshold (replaces --spike-margin).")
        ] = None,
        spike_budget: Annotated[
            float | None,
            typer.Option(help="Budget per period: a spike is a period expected over it."),
        ] = None,
        spike_probability: Annotated[
            float | None,
            typer.Option(
                help="Warn when P(above threshold) reaches this; default: a cut chosen per "
                "series from its backtests."
            ),
        ] = None,
        accuracy_out: Annotated[
            Path | None,
            typer.Option(
                "--accuracy",
                help="Also write the accuracy frame (backtests, confidence).",
                dir_okay=False,
            ),
        ] = None,
        spikes_out: Annotated[
            Path | None,
            typer.Option("--spikes", help="Also write the spike warnings.", dir_okay=False),
        ] = None,
        skip_short: Annotated[
            bool,
            typer.Option(help="Skip (and report) series too short to forecast instead of failing."),
        ] = False,
        jobs: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
        dask_address: Annotated[
            str | None, typer.Option(help="Run on this Dask scheduler (tcp://host:8786).")
        ] = None,
        kind: Annotated[
            Kind,
            typer.Option(
                "--kind",
                "-k",
                help="What is forecast, written to the kind column: demand (replicas per "
                "workload, what `plan --demand` reads), cost (money) or price (unit prices). "
                "Without --input, that series of the store.",
            ),
        ] = "cost",
        by: Annotated[
            Literal["workload", "provider", "cloud", "region", "service", "account"],
            typer.Option(help="Store cost input: group costs by this."),
        ] = "workload",
        config: ConfigOption = None,
        store: StoreOption = None,
    ) -> None:
        """Forecast series with calibrated intervals and spike warnings."""
        from cloudbalance.forecast import ForecastResult, SpikeRule, forecast

        if spike_threshold is not None and spike_budget is not None:
            raise ForecastError("give --spike-threshold or --spike-budget, not both")
        if spike_budget is not None:
            rule = SpikeRule("budget", value=spike_budget, probability=spike_probability)
        elif spike_threshold is not None:
            rule = SpikeRule("absolute", value=spike_threshold, probability=spike_probability)
        else:
            rule = SpikeRule("relative", margin=spike_margin, probability=spike_probability)
        if input_ is not None:
            series = read_series_file(input_)
            source = str(input_)
        else:
            series = _store_series(config, store, by, kind)
            source = f"the store's {kind} series"
        if model is None:
            from cloudbalance.series import PRICE_MODEL

            model = PRICE_MODEL if kind == "price" else "auto"
        result = forecast(
            _with_file(series, source),
            horizon=horizon,
            interval=interval,
            model=model,
            windows=windows,
            spikes=rule,
            holidays_country=holidays,
            freq=freq,
            aggregate=aggregate,
            errors="skip" if skip_short else "raise",
            n_jobs=jobs,
            address=dask_address,
            return_accuracy=True,
        )
        assert isinstance(result, ForecastResult)
        _report_notes(dict(result.notes), dict(result.skipped))
        written = "cloud_cost" if kind == "cost" and by == "cloud" and input_ is None else kind
        write_frame(result.forecast.assign(kind=written), output)
        if accuracy_out is not None:
            write_frame(result.accuracy, accuracy_out)
        if spikes_out is not None:
            write_frame(result.spikes_frame(), spikes_out)
        chosen = result.accuracy["model"].value_counts().to_dict()
        models = ", ".join(f"{k} {v}" for k, v in sorted(chosen.items()))
        err_console.print(
            f"forecast {result.accuracy.shape[0]} series from {source}, {horizon} periods ahead "
            f"({models}); {len(result.spikes)} spike warning(s); wrote {output}",
            markup=False,
            highlight=False,
        )
        for warning in result.spikes[:10]:
            err_console.print(f"spike: {warning}", markup=False, highlight=False)

    anomalies_app = typer.Typer(
        help="Flag anomalous incidents in history; label them (feedback) so later runs learn.",
        invoke_without_command=True,
    )

    @anomalies_app.callback()
    @working("looking for anomalies")
    def anomalies_cmd(
        ctx: typer.Context,
        input_: Annotated[
            Path | None,
            typer.Option("--input", "-i", dir_okay=False, help="Series file (.csv or .parquet)."),
        ] = None,
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                dir_okay=False,
                help="File to write (.csv or .parquet).",
                callback=output_file,
            ),
        ] = None,
        events: Annotated[
            Path | None,
            typer.Option(
                "--events",
                dir_okay=False,
                callback=output_file,
                help="Also write one row per incident, by impact.",
            ),
        ] = None,
        threshold: Annotated[
            float | None,
            typer.Option(
                help="Highest robust z-score bar at which a point starts an incident; quieter "
                "series get a calibrated lower one [default: 6]."
            ),
        ] = None,
        freq: Annotated[str | None, typer.Option(help="Force a frequency (D, h, 15min).")] = None,
        aggregate: AggregateOption = "sum",
        config: ConfigOption = None,
        store: StoreOption = None,
    ) -> None:
        """Flag anomalous incidents: unique_id, ds, y, anomaly, score, expected, anomaly_id, ..."""
        if ctx.invoked_subcommand is not None:
            return
        from cloudbalance.forecast import anomaly_events, detect_anomalies
        from cloudbalance.forecast.anomalies import DEFAULT_THRESHOLD

        if input_ is None or output is None:
            raise ForecastError("anomalies needs --input and --output (or the feedback subcommand)")
        series = read_series_file(input_)
        result = detect_anomalies(
            _with_file(series, str(input_)),
            threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
            freq=freq,
            aggregate=aggregate,
            feedback=_stored_feedback(config, store),
        )
        write_frame(result, output)
        ranked = anomaly_events(result)
        if events is not None:
            write_frame(ranked, events)
        flagged = ranked[ranked["anomaly"]]
        err_console.print(
            f"{len(flagged)} anomal{'y' if len(flagged) == 1 else 'ies'} "
            f"({int(result['anomaly'].sum())} point(s)) in {result['unique_id'].nunique()} "
            f"series; {len(ranked) - len(flagged)} expected by feedback; wrote {output}",
            markup=False,
            highlight=False,
        )
        for row in flagged.head(10).itertuples(index=False):
            err_console.print(
                f"anomaly: {row.anomaly_id}: {row.anomaly_kind}, impact {row.impact:+,.2f} over "
                f"{row.points} "
                f"point(s), peak score {row.peak_score:+.1f}",
                markup=False,
                highlight=False,
            )

    @anomalies_app.command("feedback")
    def feedback_cmd(
        anomaly_id: Annotated[
            str, typer.Argument(help="The anomaly_id of an incident (<series>@<start>).")
        ],
        label: Annotated[
            str,
            typer.Option(
                "--label",
                "-l",
                help="yes (a real anomaly), no (a false alarm) or planned (planned activity).",
            ),
        ],
        note: Annotated[str, typer.Option(help="Why, for the people after you.")] = "",
        impact: Annotated[
            float | None,
            typer.Option(
                help="The incident's impact; a later one of the same pattern up to 1.5x this "
                "is suppressed too (default: any size)."
            ),
        ] = None,
        config: ConfigOption = None,
        store: StoreOption = None,
    ) -> None:
        """Label an anomaly YES, NO or PLANNED_ACTIVITY; later runs respect it."""
        import math

        from cloudbalance.commands._common import open_store, settings_for
        from cloudbalance.forecast.feedback import AnomalyFeedback, Label, parse_anomaly_id

        parse_anomaly_id(anomaly_id)
        entry = AnomalyFeedback(
            anomaly_id=anomaly_id,
            label=Label.parse(label),
            impact=math.nan if impact is None else impact,
            note=note,
        )
        with open_store(settings_for(config), store) as opened:
            opened.add_anomaly_feedback(entry)
            total = len(opened.anomaly_feedback())
        err_console.print(
            f"labelled {anomaly_id} {entry.label}; {total} label(s) in the store",
            markup=False,
            highlight=False,
        )

    app.add_typer(anomalies_app, name="anomalies")


def _stored_feedback(config: Path | None, store: Path | None) -> pd.DataFrame | None:
    """The store's anomaly labels, when a store exists (never creates one)."""
    from cloudbalance.commands._common import open_store, settings_for

    settings = settings_for(config)
    path = store if store is not None else settings.store_path
    if not path.is_file():
        return None
    with open_store(settings, path) as opened:
        return opened.anomaly_feedback()


def _with_file(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validate the series columns here, so errors name the file, row and column."""
    from cloudbalance.forecast.prepare import SERIES_INPUT

    SERIES_INPUT.validate(frame, file=source, extra="drop")
    return frame


def _store_series(config: Path | None, store: Path | None, by: str, kind: Kind) -> pd.DataFrame:
    """The store's series of ``kind``: demand per workload, cost per ``by``, or unit prices."""
    from cloudbalance.commands._common import open_store, settings_for
    from cloudbalance.series import cost_series, demand_series

    settings = settings_for(config)
    if kind == "demand" and by != "workload":
        raise ForecastError("--kind demand is per workload; leave out --by")
    with open_store(settings, store, read_only=True) as opened:
        if kind == "price":
            from cloudbalance.series import price_series

            prices = price_series(opened.prices(), kinds=("on_demand", "spot", "committed"))
            if prices.empty:
                raise ForecastError("the store holds no prices yet; run `cloudbalance sync` first")
            return prices
        costs = opened.costs()
    if costs.empty:
        raise ForecastError("the store holds no costs yet; run `cloudbalance ingest` first")
    if kind == "cost":
        return cost_series(costs, by=by)
    workloads = settings.workload_models()
    if not workloads:
        raise ForecastError(
            "--kind demand needs the workloads of cloudbalance.yaml (workloads:) to count "
            "their replicas"
        )
    demand = demand_series(costs, workloads, freq=settings.forecast.freq)
    if demand.empty:
        raise ForecastError(
            "no compute hours of the configured workloads in the store: nothing to count "
            "replicas from"
        )
    return demand
