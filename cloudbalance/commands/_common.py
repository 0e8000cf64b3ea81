"""What every command shares: the option declarations, opening config and store, progress, output.

Commands take ``-c/--config`` (default: the nearest ``cloudbalance.yaml``) and ``--store``
(default: the store the config names, else ``.cloudbalance/store.duckdb`` in the working
directory), so a user can start with ``cloudbalance ingest export.parquet`` before writing any
configuration. Output goes to ``-o/--output`` and ``-f/--format`` is always a validated choice.
List options take commas and repeats alike (``--skip sync,plan`` = ``--skip sync --skip plan``).

This module is imported by ``cloudbalance --help``: pandas, DuckDB and rich load only when a
command prints or opens something.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, cast

import typer

from cloudbalance.models import MODES, Mode

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from cloudbalance.config import Settings
    from cloudbalance.store import Store

__all__ = [
    "ConfigOption",
    "Format",
    "FormatOption",
    "OutputFormat",
    "Steps",
    "StoreOption",
    "comma_choices",
    "comma_list",
    "console",
    "emit_frame",
    "err_console",
    "frame_suffix",
    "literal",
    "open_store",
    "output_file",
    "parse_day",
    "parse_mode_option",
    "progress",
    "settings_for",
    "working",
    "write_frame",
]


class _LazyConsole:
    """A rich console created on first use (rich costs start-up time ``--help`` must not pay).

    Emoji codes are off: a message such as ``cloudbalance.yaml:100:`` is printed as written.
    """

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def get(self) -> Console:
        """The console itself (rich's live displays need the object, not a stand-in)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True, emoji=False)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


console = cast("Console", _LazyConsole(stderr=False))
err_console = cast("Console", _LazyConsole(stderr=True))

T = TypeVar("T")


def literal(value: object) -> str:
    """``value`` as text that rich prints as written (``[prod]`` stays, never read as markup)."""
    from rich.markup import escape

    return escape(str(value))


def comma_list(values: list[T] | None) -> list[T] | None:
    """Option callback: ``--x a,b --x c`` -> ``[a, b, c]`` (each part keeps the item's type)."""
    if values is None:
        return None
    out: list[T] = []
    for value in values:
        kind = type(value)
        out.extend(kind(part.strip()) for part in str(value).split(",") if part.strip())  # type: ignore[call-arg]
    return out


def comma_choices(*choices: str) -> Callable[[list[str] | None], list[str] | None]:
    """Option callback: :func:`comma_list`, then each item must be one of ``choices``."""

    def check(values: list[str] | None) -> list[str] | None:
        items = comma_list(values)
        unknown = [item for item in items or () if item not in choices]
        if unknown:
            raise typer.BadParameter(
                f"{', '.join(map(repr, unknown))} is not one of {', '.join(choices)}"
            )
        return items

    return check


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
    typer.Option(
        "--store",
        help="Store file (default: the one the config names, else .cloudbalance/store.duckdb).",
        dir_okay=False,
    ),
]
Format = Literal["table", "csv", "json"]
FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="Output: a table, CSV or JSON records.")
]
OutputFormat = Literal["text", "json"]

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")


def frame_suffix(path: Path) -> str:
    """The data-file suffix of ``path`` (``.csv.gz`` counts as one), lower case."""
    name = path.name.lower()
    for suffix in (*PARQUET_SUFFIXES, *CSV_SUFFIXES):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def output_file(path: Path | None) -> Path | None:
    """Option callback: refuse an output type we cannot write before any work is done."""
    if path is not None and frame_suffix(path) not in (*PARQUET_SUFFIXES, *CSV_SUFFIXES):
        raise typer.BadParameter(
            f"{path}: unknown output type; use .csv, .csv.gz, .tsv or .parquet",
            param_hint="'-o' / '--output'",
        )
    return path


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV or Parquet by suffix; the parent folder is created."""
    output_file(path)
    suffix = frame_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in PARQUET_SUFFIXES:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")


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


def settings_for(
    config: Path | None, *, required: bool = False, store: Path | None = None
) -> Settings:
    """The settings from ``config`` or the nearest file; defaults when none and not required.

    ``store`` (the ``--store`` option) replaces the configured store, so every step of the
    command, ``cloudbalance run`` included, uses the store the user named.
    """
    from cloudbalance.config import Settings, find_config, load_config

    settings = (
        load_config(config)
        if config is not None or required or find_config() is not None
        else Settings()
    )
    if store is not None:
        where = str(store.expanduser().resolve())
        settings = dataclasses.replace(
            settings, store=dataclasses.replace(settings.store, path=where)
        )
    return settings


@contextmanager
def open_store(
    settings: Settings, store: Path | None = None, *, read_only: bool = False
) -> Iterator[Store]:
    """Open the store, telling the user when another run holds it.

    Args:
        settings: Where the store is and how long to wait for its lock.
        store: The ``--store`` option, when given (wins over the settings).
        read_only: The command only reads: a missing store is an error, never created.

    Raises:
        StoreError: ``read_only`` and there is no store at the path yet.
    """
    from cloudbalance.exceptions import StoreError
    from cloudbalance.store import Store

    def waiting(path: Path) -> None:
        err_console.print(
            f"waiting for another cloudbalance run to release {path} ...", markup=False
        )

    path = store if store is not None else settings.store_path
    if read_only and not path.exists():
        raise StoreError(
            f"no store at {path}; run `cloudbalance ingest` or `cloudbalance sync` first",
            path=path,
        )
    with Store(path, lock_timeout=settings.store.lock_timeout, on_wait=waiting) as opened:
        yield opened


class Steps:
    """What a long command is doing, on stderr (stdout stays clean for data).

    On a terminal it is a transient rich spinner with elapsed time. Piped or in a log, a step
    that lasts longer than ``delay`` seconds gets one plain line (``   12s forecasting ...``),
    so a scheduled job's log shows where time went while quick commands print nothing.
    """

    def __init__(self, *, delay: float = 1.0, tty: bool | None = None) -> None:
        self._tty = sys.stderr.isatty() if tty is None else tty
        self._delay = delay
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None
        self._printed: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None

    def __enter__(self) -> Steps:
        if self._tty:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=cast("_LazyConsole", err_console).get(),
                transient=True,
                # data on stdout goes where stdout goes (a file, a pipe), never to the spinner's
                # stderr; only when both are the terminal is it printed above the spinner
                redirect_stdout=sys.stdout.isatty(),
            )
            self._bar.__enter__()
        else:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def add_task(self, description: str, total: float | None = None) -> int:
        """Start a step (the spinner's task); returns its id for :meth:`update`."""
        if self._bar is not None:
            return int(self._bar.add_task(description, total=total))
        self._set(description)
        return 0

    def update(self, task: int, *, description: str) -> None:
        """Say what the step does now."""
        if self._bar is not None:
            self._bar.update(task, description=description)
            return
        self._set(description)

    def _set(self, description: str) -> None:
        with self._lock:
            self._current = (description, time.monotonic())

    def _watch(self) -> None:
        while not self._stop.wait(min(0.2, self._delay)):
            with self._lock:
                current = self._current
                if current is None or current[0] == self._printed:
                    continue
                if time.monotonic() - current[1] < self._delay:
                    continue
                self._printed = current[0]
            elapsed = time.monotonic() - self._start
            sys.stderr.write(f"{elapsed:6.0f}s {current[0]} ...\n")
            sys.stderr.flush()


@contextmanager
def progress(*, delay: float = 1.0) -> Iterator[Steps]:
    """A spinner on a terminal, plain lines for slow steps otherwise (see :class:`Steps`)."""
    with Steps(delay=delay) as steps:
        yield steps


F = TypeVar("F", bound=Callable[..., Any])


def working(description: str) -> Callable[[F], F]:
    """Decorate a command that can take more than a second: a spinner while it runs.

    The command keeps its signature (Typer reads it through ``__wrapped__``); commands that can
    say more about each step use :func:`progress` inside instead.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            with progress() as steps:
                steps.add_task(description)
                return command(*args, **kwargs)

        return cast(F, run)

    return decorate


def emit_frame(frame: pd.DataFrame, fmt: str, *, title: str | None = None) -> None:
    """Print a frame as a rich table, CSV or JSON records (dates as ISO text)."""
    import json

    import pandas as pd

    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
        return
    if fmt == "json":
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    if fmt != "table":
        raise typer.BadParameter(f"unknown format {fmt!r}: use table, csv or json")
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[name])
        table.add_column(Text(str(name)), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(Text(_cell(v)) for v in row))  # data is text, never markup
    console.print(table)


def _cell(value: object) -> str:
    import pandas as pd

    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    return str(value)
