"""Forecast commands: ``cloudbalance forecast`` and ``cloudbalance anomalies``.

Both read a series file (CSV or Parquet with ``unique_id, ds, y``) or, for ``forecast``, the cost
series of the store, and write CSV or Parquet (chosen by the output file's suffix). What was done
to the input (duplicates combined, gaps, series skipped) is reported on stderr, never silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudbalance.commands._common import err_console
from cloudbalance.exceptions import ForecastError, Issue, SchemaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_series_file", "register", "write_frame"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".tsv")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (*_PARQUET, *_CSV):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


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
            return pd.read_parquet(path)
        if suffix in _CSV:
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, sep="\t" if suffix == ".tsv" else ","
            )
    except (OSError, ValueError) as err:
        raise SchemaError("series", [Issue(f"cannot be read: {err}", file=str(path))]) from err
    raise SchemaError(
        "series",
        [Issue("unknown file type; use .csv, .csv.gz, .tsv or .parquet", file=str(path))],
    )


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet by suffix; the parent folder is created."""
    suffix = _suffix(path)
    if suffix not in (*_PARQUET, *_CSV):
        raise ForecastError(f"{path}: unknown output type; use .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in _PARQUET:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")


def _report_notes(notes: dict[str, tuple[str, ...]], skipped: dict[str, str]) -> None:
    for uid, lines in sorted(notes.items()):
        for line in lines:
            err_console.print(f"note: {uid}: {line}", highlight=False)
    for why in sorted(skipped.values()):
        err_console.print(f"skipped: {why}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``forecast`` and ``anomalies`` to ``app``."""

    @app.command("forecast")
    def forecast_cmd(
        output: Annotated[
            Path,
            typer.Option(
                "--output", "-o", help="Forecast file to write (.csv or .parquet).", dir_okay=False
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
            str,
            typer.Option(
                help="auto (choose per series by backtests), prophet, prophet_flexible, theta, "
                "seasonal_naive or ensemble."
            ),
        ] = "auto",
        windows: Annotated[int, typer.Option(min=0, help="Backtest windows per series.")] = 3,
        freq: Annotated[
            str | None,
            typer.Option(help="Force a frequency (D, h, 15min); default: inferred per series."),
        ] = None,
        aggregate: Annotated[
            str, typer.Option(help="How duplicated timestamps combine: sum, mean, max or last.")
        ] = "sum",
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
            float, typer.Option(help="Warn when P(above threshold) reaches this.")
        ] = 0.5,
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
        by: Annotated[
            str,
            typer.Option(
                help="Store input: group costs by workload, provider, "
                "cloud, region, service or account."
            ),
        ] = "workload",
        config: Annotated[
            Path | None,
            typer.Option("--config", "-c", dir_okay=False, help="cloudbalance.yaml (store input)."),
        ] = None,
        store: Annotated[Path | None, typer.Option(help="Store file (store input).")] = None,
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
            series = _store_series(config, store, by)
            source = "the store"
        result = forecast(
            _with_file(series, source),
            horizon=horizon,
            interval=interval,
            model=model,
            windows=windows,
            spikes=rule,
            holidays_country=holidays,
            freq=freq,
            aggregate=aggregate,  # type: ignore[arg-type]
            errors="skip" if skip_short else "raise",
            n_jobs=jobs,
            address=dask_address,
            return_accuracy=True,
        )
        assert isinstance(result, ForecastResult)
        _report_notes(dict(result.notes), dict(result.skipped))
        write_frame(result.forecast, output)
        if accuracy_out is not None:
            write_frame(result.accuracy, accuracy_out)
        if spikes_out is not None:
            write_frame(result.spikes_frame(), spikes_out)
        chosen = result.accuracy["model"].value_counts().to_dict()
        models = ", ".join(f"{k} {v}" for k, v in sorted(chosen.items()))
        err_console.print(
            f"forecast {result.accuracy.shape[0]} series from {source}, {horizon} periods ahead "
            f"({models}); {len(result.spikes)} spike warning(s); wrote {output}",
            highlight=False,
        )
        for warning in result.spikes[:10]:
            err_console.print(f"spike: {warning}", highlight=False)

    @app.command("anomalies")
    def anomalies_cmd(
        input_: Annotated[
            Path,
            typer.Option("--input", "-i", dir_okay=False, help="Series file (.csv or .parquet)."),
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output", "-o", dir_okay=False, help="File to write (.csv or .parquet)."
            ),
        ],
        threshold: Annotated[
            float, typer.Option(help="Robust z-score above which a point is anomalous.")
        ] = 3.5,
        freq: Annotated[str | None, typer.Option(help="Force a frequency (D, h, 15min).")] = None,
        aggregate: Annotated[
            str, typer.Option(help="How duplicated timestamps combine: sum, mean, max or last.")
        ] = "sum",
    ) -> None:
        """Flag anomalous points in cost history: unique_id, ds, y, anomaly, score."""
        from cloudbalance.forecast import detect_anomalies

        series = read_series_file(input_)
        result = detect_anomalies(
            _with_file(series, str(input_)),
            threshold=threshold,
            freq=freq,
            aggregate=aggregate,  # type: ignore[arg-type]
        )
        write_frame(result, output)
        flagged = int(result["anomaly"].sum())
        err_console.print(
            f"{flagged} anomalous point(s) in {result['unique_id'].nunique()} series; "
            f"wrote {output}",
            highlight=False,
        )


def _with_file(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Validate the series columns here, so errors name the file, row and column."""
    from cloudbalance.schema import SERIES

    SERIES.validate(frame, file=source, extra="drop")
    return frame


def _store_series(config: Path | None, store: Path | None, by: str) -> pd.DataFrame:
    from cloudbalance.commands._common import open_store, settings_for
    from cloudbalance.series import cost_series

    settings = settings_for(config)
    with open_store(settings, store) as opened:
        costs = opened.costs()
    if costs.empty:
        raise ForecastError("the store holds no costs yet; run `cloudbalance ingest` first")
    return cost_series(costs, by=by)
