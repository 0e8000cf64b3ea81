"""What every command shares: the config and store options, opening them, progress and output.

Commands take ``--config`` (default: the nearest ``cloudbalance.yaml``) and ``--store`` (default:
the store the config names, else ``.cloudbalance/store.duckdb`` in the working directory), so a
user can start with ``cloudbalance ingest export.parquet`` before writing any configuration.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cloudbalance.config import Settings, find_config, load_config
from cloudbalance.models import MODES, Mode
from cloudbalance.store import Store

__all__ = [
    "ConfigOption",
    "FormatOption",
    "StoreOption",
    "console",
    "emit_frame",
    "open_store",
    "parse_day",
    "parse_mode_option",
    "progress",
    "settings_for",
]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="cloudbalance.yaml to use (default: the nearest one in this folder or a parent).",
        dir_okay=False,
    ),
]
StoreOption = Annotated[
    Path | None,
    typer.Option("--store", help="Store file (default: the one the config names)."),
]
Format = Literal["table", "csv", "json"]
FormatOption = Annotated[str, typer.Option("--format", "-f", help="Output: table, csv or json.")]


def parse_day(value: str | None, option: str) -> datetime | None:
    """A ``YYYY-MM-DD`` option as naive UTC midnight (``None`` stays ``None``).

    Raises:
        ConfigError: Not a date, naming the option.
    """
    from cloudbalance.exceptions import ConfigError

    if value is None:
        return None
    try:
        day = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise ConfigError(f"{option}: expected a date like 2025-01-31, got {value!r}") from err
    if day.tzinfo is not None:
        from datetime import UTC

        day = day.astimezone(UTC).replace(tzinfo=None)
    return day


def parse_mode_option(value: str, allowed: tuple[Mode, ...] = MODES) -> Mode:
    """A ``--mode`` value as the one :data:`~cloudbalance.models.Mode` type.

    Raises:
        ConfigError: Not one of ``allowed``, listing them.
    """
    from cloudbalance.exceptions import ConfigError
    from cloudbalance.models import parse_mode

    try:
        return parse_mode(value, allowed)
    except ValueError as err:
        raise ConfigError(f"--mode: {err}") from err


def settings_for(config: Path | None, *, required: bool = False) -> Settings:
    """The settings from ``config`` or the nearest file; defaults when none and not required."""
    if config is not None or required or find_config() is not None:
        return load_config(config)
    return Settings()


@contextmanager
def open_store(settings: Settings, store: Path | None = None) -> Iterator[Store]:
    """Open the store, telling the user when another run holds it."""

    def waiting(path: Path) -> None:
        err_console.print(f"waiting for another cloudbalance run to release {path} ...")

    path = store if store is not None else settings.store_path
    with Store(path, lock_timeout=settings.store.lock_timeout, on_wait=waiting) as opened:
        yield opened


@contextmanager
def progress() -> Iterator[Progress]:
    """A transient spinner with elapsed time, on stderr (stdout stays clean for data)."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with bar:
        yield bar


def emit_frame(frame: pd.DataFrame, fmt: str, *, title: str | None = None) -> None:
    """Print a frame as a rich table, CSV or JSON records (dates as ISO text)."""
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
        return
    if fmt == "json":
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    if fmt != "table":
        raise typer.BadParameter(f"unknown format {fmt!r}: use table, csv or json")
    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[name])
        table.add_column(str(name), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    return str(value)
