"""FOCUS exports from any cloud: CSV, CSV.gz and Parquet; single files, globs or folders.

The clouds write FOCUS in slightly different dialects, all read here:

- **AWS Data Exports** (FOCUS 1.0/1.2, Parquet or CSV.gz, ``Tags`` as a Parquet ``MAP``);
- **Azure FocusCost exports** (CSV or Parquet, ``Tags`` as JSON text, ``x_`` extension columns);
- **GCP** BigQuery FOCUS view exported to files (Parquet or CSV, timestamps with offsets).

Files are read by DuckDB, so a multi-gigabyte export is checked and loaded at columnar speed and
never materialised in pandas. Reading is two passes over the files:

1. one aggregate scan that counts, per column, the values that cannot be parsed (dates, numbers,
   JSON tags), the missing mandatory values and the periods that end before they start;
2. when the scan is clean, the typed load (``Store.load_relation``) in one transaction.

Only when the scan finds problems are the offending files read again with pandas, to name the
file, row and column of each problem (the slow path is paid by bad files only).

Column names are matched case-insensitively, and older names are accepted: ``ChargeType`` ->
``ChargeCategory``, ``Region`` -> ``RegionId``, ``AmortizedCost`` -> ``EffectiveCost``,
``UsageQuantity`` -> ``ConsumedQuantity`` (FOCUS 0.5), ``ServiceProviderName`` -> ``ProviderName``
(FOCUS 1.3 naming).
"""

from __future__ import annotations

import glob as globlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from cloudbalance.attribution import Attribution, sql_literal
from cloudbalance.exceptions import ConfigError, Issue, ProviderError, SchemaError
from cloudbalance.models import Location
from cloudbalance.provider import EXPORT_REVISION_DAYS, ProviderCheck
from cloudbalance.schema import (
    COSTS,
    EARLIEST,
    LATEST,
    MAX_UTC_OFFSET_MINUTES,
    NULL_STRINGS,
    Column,
    FrameSchema,
)
from cloudbalance.store import IngestResult, Store, first_row

__all__ = ["DEFAULT_REVISION_DAYS", "FocusProvider", "FocusReader", "discover_files"]

_SUFFIXES = (".parquet", ".csv", ".csv.gz")

#: Trailing days a ``sync`` of FOCUS files reads again (exports rewrite whole months).
DEFAULT_REVISION_DAYS = EXPORT_REVISION_DAYS
MAX_REVISION_DAYS = 400

#: Rows named per problem when a file is refused (the count of the rest is given).
_ROWS_SHOWN = 20

#: A text timestamp ending in a UTC offset beyond +-14:00 or with minutes past 59: DuckDB would
#: wrap ``+99:00`` into a real instant, so it is refused before the cast.
_BAD_OFFSET = r"[+-]([0-9]{2}):?([0-9]{2})$"

#: Older or newer FOCUS names -> the FOCUS 1.2 name we store.
ALIASES: dict[str, str] = {
    "servicecategory": "ServiceCategory",
    "chargetype": "ChargeCategory",
    "region": "RegionId",
    "amortizedcost": "EffectiveCost",
    "usagequantity": "ConsumedQuantity",
    "usageunit": "ConsumedUnit",
    "serviceprovidername": "ProviderName",
    "billingaccountname": "BillingAccountId",
}

#: Columns every FOCUS file must have (FOCUS mandatory and needed by the loop).
REQUIRED: tuple[str, ...] = tuple(
    c.name for c in COSTS.columns if c.required and not c.name.startswith("x_")
)

_SOURCE_COLUMNS: tuple[Column, ...] = tuple(c for c in COSTS.columns if not c.name.startswith("x_"))


def _suffix_ok(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(_SUFFIXES)


def discover_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files, globs and folders (recursively) into FOCUS files, oldest first.

    Order matters: when several files restate the same day, the newest wins (see the store).

    Raises:
        ConfigError: A path matches nothing, or a file has an unknown extension.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        text = str(raw)
        path = Path(text).expanduser()
        if path.is_dir():
            matches = [p for p in path.rglob("*") if p.is_file() and _suffix_ok(p)]
            if not matches:
                raise ConfigError(f"{path}: folder holds no .parquet, .csv or .csv.gz file")
        elif any(ch in text for ch in "*?["):
            matches = [Path(p) for p in globlib.glob(text, recursive=True) if Path(p).is_file()]
            if not matches:
                raise ConfigError(f"{text}: pattern matches no file")
            matches = [p for p in matches if _suffix_ok(p)]
        elif path.is_file():
            if not _suffix_ok(path):
                raise ConfigError(
                    f"{path}: not a FOCUS export (expected .parquet, .csv or .csv.gz)"
                )
            matches = [path]
        else:
            raise ConfigError(f"{path}: no such file or folder")
        for match in matches:
            found[match] = None
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(".parquet")


def _null_list() -> str:
    return "[" + ", ".join(sql_literal(s) for s in NULL_STRINGS) + "]"


def _groups(files: Sequence[Path]) -> list[list[Path]]:
    """Files split by format: each format is scanned (and typed) on its own, then unioned."""
    parquet = [f for f in files if _is_parquet(f)]
    csv = [f for f in files if not _is_parquet(f)]
    return [group for group in (parquet, csv) if group]


def _scan_sql(files: Sequence[Path]) -> str:
    """A relation over files of one format, with their own column names, plus ``filename``."""
    listed = ", ".join(sql_literal(str(f)) for f in files)
    if _is_parquet(files[0]):
        return f"SELECT * FROM read_parquet([{listed}], union_by_name=true, filename=true)"
    return (
        f"SELECT * FROM read_csv([{listed}], header=true, all_varchar=true, "
        f"union_by_name=true, filename=true, nullstr={_null_list()})"
    )


def _describe(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE {sql}").fetchall()
    return {str(r[0]): str(r[1]).upper() for r in rows}


def _resolve_columns(names: Iterable[str]) -> dict[str, str]:
    """FOCUS column -> the file's column name (case-insensitive, with aliases)."""
    by_lower = {n.lower(): n for n in names}
    resolved: dict[str, str] = {}
    for col in _SOURCE_COLUMNS:
        if col.name.lower() in by_lower:
            resolved[col.name] = by_lower[col.name.lower()]
    for alias, target in ALIASES.items():
        if target not in resolved and alias in by_lower:
            resolved[target] = by_lower[alias]
    return resolved


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_NUMERIC = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "BIGINT", "INTEGER", "SMALLINT", "HUGEINT")


def _already_typed(col: Column, source_type: str) -> bool:
    """Whether the file already stores the column in a type that cannot fail to convert."""
    if col.kind == "timestamp":
        return source_type.startswith("TIMESTAMP") or source_type == "DATE"
    if col.kind == "float":
        return source_type.startswith(_NUMERIC)
    if col.kind == "json":
        return source_type.startswith(("MAP", "STRUCT"))
    return True


def _parse_expr(col: Column, source: str | None, source_type: str | None) -> str:
    """SQL turning the file's column into the stored type; NULL when absent or unparseable."""
    if source is None or source_type is None:
        return {"timestamp": "NULL::TIMESTAMP", "float": "NULL::DOUBLE"}.get(
            col.kind, "NULL::VARCHAR"
        )
    ref = _quote(source)
    text = source_type.startswith("VARCHAR")
    if col.kind == "timestamp":
        if text:
            return f"make_timestamp(epoch_us(TRY_CAST({ref} AS TIMESTAMPTZ)))"
        if "WITH TIME ZONE" in source_type:  # the UTC instant, exactly (and ~200x cheaper)
            return f"make_timestamp(epoch_us({ref}))"
        return f"TRY_CAST({ref} AS TIMESTAMP)"
    if col.kind == "float":
        return f"TRY_CAST({ref} AS DOUBLE)"
    if col.kind == "json":
        if source_type.startswith(("MAP", "STRUCT")):  # objects by construction
            return f"CAST(to_json({ref}) AS VARCHAR)"
        value = ref if text else f"CAST(to_json({ref}) AS VARCHAR)"
        # valid JSON whose first character is '{' is an object: cheaper than json_type()
        return f"CASE WHEN json_valid({value}) AND ltrim({value}) LIKE '{{%' THEN {value} END"
    return ref if text else f"CAST({ref} AS VARCHAR)"


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _duplicated(names: Sequence[str]) -> list[str]:
    """Columns the file has twice: DuckDB renames the second ``Cost`` (any case) ``Cost_1``."""
    lower = {n.lower() for n in names}
    found = []
    for name in names:
        stem, sep, number = name.rpartition("_")
        if sep and number.isdigit() and stem.lower() in lower:
            found.append(next(n for n in names if n.lower() == stem.lower()))
    return found


def _read_issue(err: duckdb.Error, file: Path) -> Issue:
    """One line from DuckDB's (multi-line) reading error, with the line number when it has one."""
    text = str(err)
    first = text.splitlines()[0] if text else type(err).__name__
    for prefix in ("Invalid Input Error: ", "IO Error: ", "Conversion Error: "):
        first = first.removeprefix(prefix)
    line = re.search(r"\bLine: (\d+)", text)
    where = f" (line {line.group(1)})" if line else ""
    return Issue(f"cannot be read{where}: {_short(first)}", file=str(file))


@dataclass(frozen=True)
class _Check:
    """One rule the aggregate scan counts: where, what is wrong, and the SQL that finds it."""

    column: str
    problem: str
    condition: str
    raw: str


_RANGE = f"between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"


def _checks(plan: _Plan) -> list[_Check]:
    """The rules of a FOCUS file, as SQL conditions over one batch's scan (true = a problem).

    The same rules as :mod:`cloudbalance.schema`'s validators (finite numbers, dates in
    ``[EARLIEST, LATEST)``, tags that are JSON objects, mandatory values), said in SQL so a
    multi-gigabyte export is checked at columnar speed.
    """
    checks: list[_Check] = []
    for col in _SOURCE_COLUMNS:
        source = plan.sources.get(col.name)
        if source is None:
            continue
        raw = _quote(source)
        parsed = plan.exprs[col.name]
        source_type = plan.types.get(source, "")
        typed = _already_typed(col, source_type)
        if col.kind == "float":
            value = f"CAST({raw if typed else parsed} AS DOUBLE)"
            unparsed = "" if typed else f"{parsed} IS NULL OR "
            checks.append(
                _Check(
                    col.name,
                    "is not a number",
                    f"{raw} IS NOT NULL AND ({unparsed}isnan({value}))",
                    raw,
                )
            )
            checks.append(_Check(col.name, "is infinite", f"isinf({value})", raw))
        elif col.kind == "timestamp":
            if not typed:
                checks.append(
                    _Check(
                        col.name,
                        "is not a date/time",
                        f"{raw} IS NOT NULL AND {parsed} IS NULL",
                        raw,
                    )
                )
                hours = f"TRY_CAST(regexp_extract({raw}, '{_BAD_OFFSET}', 1) AS INTEGER)"
                minutes = f"TRY_CAST(regexp_extract({raw}, '{_BAD_OFFSET}', 2) AS INTEGER)"
                checks.append(
                    _Check(
                        col.name,
                        "has a UTC offset beyond +-14:00",
                        f"{parsed} IS NOT NULL AND regexp_matches({raw}, '{_BAD_OFFSET}') AND "
                        f"({hours} * 60 + {minutes} > {MAX_UTC_OFFSET_MINUTES} OR {minutes} > 59)",
                        raw,
                    )
                )
            checks.append(
                _Check(
                    col.name,
                    f"is not {_RANGE}",
                    f"{parsed} < TIMESTAMP '{EARLIEST}' OR {parsed} >= TIMESTAMP '{LATEST}'",
                    raw,
                )
            )
        elif col.kind == "json" and not typed:
            checks.append(
                _Check(
                    col.name, "is not a JSON object", f"{raw} IS NOT NULL AND {parsed} IS NULL", raw
                )
            )
        if not col.nullable:
            checks.append(_Check(col.name, "is empty", f"{raw} IS NULL", raw))
    if "ChargePeriodStart" in plan.sources and "ChargePeriodEnd" in plan.sources:
        checks.append(
            _Check(
                "ChargePeriodEnd",
                "ends before it starts",
                f"{plan.exprs['ChargePeriodEnd']} <= {plan.exprs['ChargePeriodStart']}",
                _quote(plan.sources["ChargePeriodEnd"]),
            )
        )
    return checks


@dataclass(frozen=True)
class _Plan:
    """How to read one batch of files: the typed projection and the checks."""

    scan: str
    exprs: dict[str, str]
    sources: dict[str, str]
    types: dict[str, str]


class FocusReader:
    """Reads FOCUS files into the store or into a costs frame.

    Args:
        con: A DuckDB connection to read with (the store's, so loads stay in one transaction).
        progress: Told a short message at each phase (the CLI shows it).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection | None = None,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.con = con if con is not None else duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.progress = progress or (lambda _message: None)

    def _check_files(self, files: Sequence[Path]) -> None:
        """Each file is readable, has a header and every mandatory column exactly once."""
        issues: list[Issue] = []
        for file in files:
            try:
                names = [n for n in _describe(self.con, _scan_sql([file])) if n != "filename"]
            except duckdb.Error as err:
                issues.append(_read_issue(err, file))
                continue
            if names == ["column0"]:
                issues.append(Issue("is empty or has no header row", file=str(file)))
                continue
            for name in _duplicated(names):
                issues.append(Issue("column appears more than once", column=name, file=str(file)))
            resolved = _resolve_columns(names)
            for name in REQUIRED:
                if name not in resolved:
                    issues.append(
                        Issue("mandatory FOCUS column is missing", column=name, file=str(file))
                    )
        if issues:
            raise SchemaError("costs", issues)

    def _plan(self, files: Sequence[Path]) -> _Plan:
        scan = _scan_sql(files)
        types = _describe(self.con, scan)
        sources = _resolve_columns(types)
        exprs = {
            col.name: _parse_expr(col, sources.get(col.name), types.get(sources.get(col.name, "")))
            for col in _SOURCE_COLUMNS
        }
        return _Plan(scan=scan, exprs=exprs, sources=sources, types=types)

    def _validate(self, plan: _Plan, files: Sequence[Path]) -> list[str]:
        """The aggregate scan; on any problem, the per-file diagnosis.

        Returns:
            The distinct provider names, so the load can map them to cloud ids exactly.
        """
        checks = _checks(plan)
        counts = [f"count(*) FILTER (WHERE {check.condition})" for check in checks]
        names = f"list(DISTINCT {plan.exprs['ProviderName']})"
        try:
            row = first_row(
                self.con.execute(f"SELECT {', '.join([*counts, names])} FROM ({plan.scan})")
            )
        except duckdb.Error as err:
            raise SchemaError("costs", self._unreadable(files, err)) from err
        assert row is not None  # an aggregate always yields one row
        bad = [check for check, n in zip(checks, row, strict=False) if n]
        if bad:
            try:
                issues = self._diagnose(plan, bad)
            except duckdb.Error as err:  # a file that reads in a batch but not alone
                issues = self._unreadable(files, err)
            raise SchemaError("costs", issues)
        return [str(name) for name in row[-1] or () if name is not None]

    def _unreadable(self, files: Sequence[Path], err: duckdb.Error) -> list[Issue]:
        """Which files DuckDB cannot read through (a scan of the batch failed)."""
        issues = []
        for file in files:
            try:
                first_row(self.con.execute(f"SELECT count(*) FROM ({_scan_sql([file])})"))
            except duckdb.Error as file_err:
                issues.append(_read_issue(file_err, file))
        return issues or [_read_issue(err, files[0])]

    def _diagnose(self, plan: _Plan, bad: list[_Check]) -> list[Issue]:
        """Name file, row, column and value of each problem the aggregate scan counted.

        The offending files are found in SQL, then each is scanned alone with the same checks
        and a row number, so the rows named are exactly the rows the scan refused.
        """
        issues: list[Issue] = []
        counts = ", ".join(f"count(*) FILTER (WHERE {check.condition})" for check in bad)
        per_file = self.con.execute(
            f"SELECT filename, {counts} FROM ({plan.scan}) GROUP BY filename ORDER BY filename"
        ).fetchall()
        wanted = {(check.column, check.problem) for check in bad}
        for filename, *file_counts in per_file:
            if not any(file_counts):
                continue
            file = Path(filename)
            file_plan = self._plan([file])
            for check in _checks(file_plan):
                if (check.column, check.problem) not in wanted:
                    continue
                rows = self.con.execute(
                    f"SELECT rn, CAST({check.raw} AS VARCHAR) FROM "
                    f"(SELECT row_number() OVER () AS rn, * FROM ({file_plan.scan})) "
                    f"WHERE {check.condition} ORDER BY rn LIMIT {_ROWS_SHOWN}"
                ).fetchall()
                issues += [
                    Issue(
                        check.problem,
                        column=check.column,
                        row=int(rn),
                        file=str(file),
                        value=None if value is None else _short(value),
                    )
                    for rn, value in rows
                ]
        if not issues:  # pragma: no cover - the per-file scans see what the batch saw
            issues = [Issue(check.problem, column=check.column) for check in bad]
        return issues

    def select_sql(self, paths: Iterable[str | Path]) -> tuple[str, list[Path], list[str]]:
        """Validate the files and return a typed SQL relation over them.

        The relation yields every costs column except ``x_Cloud``, ``x_Workload`` and
        ``x_IngestedAt``; ``x_Source`` is the file path.

        Returns:
            The SQL, the files in load order, and the distinct provider names found.
        """
        files = discover_files(paths)
        self.progress(f"checking {len(files)} file(s)")
        self._check_files(files)
        parts = []
        providers: set[str] = set()
        for group in _groups(files):
            plan = self._plan(group)
            providers.update(self._validate(plan, group))
            projection = ", ".join(f"{expr} AS {_quote(name)}" for name, expr in plan.exprs.items())
            parts.append(f"SELECT {projection}, filename AS x_Source FROM ({plan.scan})")
        return " UNION ALL ".join(parts), files, sorted(providers)

    def ingest(
        self,
        store: Store,
        paths: Iterable[str | Path],
        *,
        attribution: Attribution | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> IngestResult:
        """Load FOCUS files into ``store`` (idempotently; see the store's ingest key).

        Args:
            store: Where to load; the reader must use its connection.
            paths: Files, globs or folders.
            attribution: Workload rules.
            start: Only charges from this instant (a day boundary: the store replaces days).
            end: Only charges before this instant (exclusive).
        """
        if store.con is not self.con:
            raise ValueError("the reader must use the store's connection")
        sql, files, providers = self.select_sql(paths)
        where, params = _window_sql(start, end)
        self.progress(f"loading {len(files)} file(s)")
        return store.load_relation(
            f"SELECT * FROM ({sql}){where}",
            attribution=attribution,
            source_order=[str(f) for f in files],
            provider_names=providers,
            params=params,
        )

    def read(
        self,
        paths: Iterable[str | Path],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """Read FOCUS files into a costs frame (optionally only charges in ``[start, end)``).

        The frame is what :meth:`ingest` would store: a (provider, billing account, day) found
        in several files is taken from the newest file only, never summed (exports re-deliver
        whole months as new files), and consumed units are normalised. It is read through a
        throw-away in-memory store so that the rule has one home. ``x_Workload`` is left empty:
        the store that loads the frame attributes it with its own rules.
        """
        with Store(":memory:") as scratch:
            FocusReader(scratch.con, progress=self.progress).ingest(
                scratch, paths, start=start, end=end
            )
            frame = scratch.costs()
        frame["x_Workload"] = None
        frame["x_IngestedAt"] = pd.NaT
        return frame


class FocusProvider:
    """The built-in ``focus`` provider: FOCUS exports already on disk (or a mounted bucket).

    Options (``providers.focus`` in cloudbalance.yaml):
        paths: Files, globs or folders (a string or a list).
        revision_days: Trailing days every ``sync`` reads again (default
            :data:`DEFAULT_REVISION_DAYS`): AWS Data Exports rewrite the whole month, Azure
            restates days, and a day found in several files is taken from the newest one.
    """

    name = "focus"

    def __init__(
        self, paths: str | Sequence[str] = (), revision_days: int = DEFAULT_REVISION_DAYS
    ) -> None:
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise ConfigError(
                "providers.focus.paths: give the FOCUS files, globs or folders to read",
                key="providers.focus.paths",
            )
        if isinstance(revision_days, bool) or not isinstance(revision_days, int):
            raise ConfigError(
                f"providers.focus.revision_days: expected a whole number of days, "
                f"got {revision_days!r}",
                key="providers.focus.revision_days",
            )
        if not 0 <= revision_days <= MAX_REVISION_DAYS:
            raise ConfigError(
                f"providers.focus.revision_days: expected 0..{MAX_REVISION_DAYS}, "
                f"got {revision_days}",
                key="providers.focus.revision_days",
            )
        self.revision_days = revision_days

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Charges in ``[start, end)`` from the configured files."""
        try:
            frame = FocusReader().read(self.paths, start=start, end=end)
        except ConfigError as err:
            raise ProviderError(str(err), provider=self.name) from err
        return frame

    def prices(self, locations: Sequence[Location] | None = None) -> pd.DataFrame:
        """FOCUS files carry charges, not price lists: always empty."""
        from cloudbalance.schema import PRICES

        return PRICES.validate(pd.DataFrame({name: [] for name in PRICES.names}))

    def check(self) -> ProviderCheck:
        """Whether the configured paths exist; an existing folder may still await its exports."""
        try:
            files = discover_files(self.paths)
        except ConfigError as err:
            waiting = [p for p in self.paths if Path(p).expanduser().is_dir()]
            if len(waiting) == len(self.paths):
                return ProviderCheck(
                    self.name, ok=True, detail=f"{', '.join(waiting)}: no FOCUS file yet"
                )
            return ProviderCheck(self.name, ok=False, detail=str(err), missing="FOCUS files")
        return ProviderCheck(self.name, ok=True, detail=f"{len(files)} file(s)")


def _window_sql(start: datetime | None, end: datetime | None) -> tuple[str, list[datetime]]:
    where, params = [], []
    if start is not None:
        where.append("ChargePeriodStart >= ?")
        params.append(start)
    if end is not None:
        where.append("ChargePeriodStart < ?")
        params.append(end)
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


def required_schema() -> FrameSchema:
    """The columns a FOCUS file must provide (for documentation and error messages)."""
    return FrameSchema("focus", tuple(c for c in _SOURCE_COLUMNS if c.name in REQUIRED))
