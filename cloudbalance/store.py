"""The embedded store: one DuckDB file holding costs, prices, forecasts, plans and an audit log.

**The ingest key.** A load is authoritative for every (``ProviderName``, ``BillingAccountId``,
UTC day of ``ChargePeriodStart``) it contains: before its rows become visible, the rows the store
held for those keys are removed, in the same transaction. Hence

- loading the same export twice leaves the store as after the first load;
- two overlapping exports never double-count: the overlapping days come from the later load;
- a cloud's restated days (clouds revise recent days) replace the old ones;
- two billing accounts, or two providers, never overwrite each other.

Within one load of several files (a folder of exports, a glob), a key present in more than one
file is taken from the newest file only (modification time, then path), because clouds re-deliver
whole billing periods as new files.

**Transactions.** Every write is one transaction: an ingest interrupted by an error, Ctrl-C or a
crash leaves the store as it was (DuckDB's write-ahead log discards the uncommitted load).

**Locking.** A store is opened by one process at a time: :class:`Store` takes an exclusive lock
file beside the database (``store.duckdb.lock``) and waits up to ``lock_timeout`` seconds for a
concurrent run, then raises :class:`~cloudbalance.exceptions.StoreLockedError` naming the file.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
from filelock import FileLock, Timeout

from cloudbalance.attribution import Attribution, cloud_case_sql, exact_cloud_case_sql
from cloudbalance.exceptions import Issue, SchemaError, StoreError, StoreLockedError
from cloudbalance.models import Plan, RunRecord
from cloudbalance.schema import (
    ACCURACY,
    COSTS,
    FORECAST,
    PRICES,
    SPIKE_COLUMNS,
    FrameSchema,
    validate_costs,
    validate_prices,
)
from cloudbalance.units import consumed_sql

if TYPE_CHECKING:
    from cloudbalance.config import Settings
    from cloudbalance.forecast.feedback import AnomalyFeedback

__all__ = ["IngestResult", "Store", "first_row"]

SCHEMA_VERSION = 1

_SQL_TYPES = {
    "string": "VARCHAR",
    "json": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
}


def _columns_sql(schema: FrameSchema, *, extra: Sequence[str] = ()) -> str:
    cols = [
        f'"{c.name}" {_SQL_TYPES[c.kind]}{"" if c.nullable else " NOT NULL"}'
        for c in schema.columns
    ]
    return ",\n  ".join([*extra, *cols])


_DDL = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS costs (
  {_columns_sql(COSTS)},
  x_LoadId VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS prices (
  {_columns_sql(PRICES)},
  x_Source VARCHAR,
  x_IngestedAt TIMESTAMP
);
CREATE TABLE IF NOT EXISTS forecasts (
  {_columns_sql(FORECAST, extra=["run_id VARCHAR NOT NULL", "created_at TIMESTAMP NOT NULL"])}
);
CREATE TABLE IF NOT EXISTS accuracy (
  {_columns_sql(ACCURACY, extra=["run_id VARCHAR NOT NULL", "created_at TIMESTAMP NOT NULL"])}
);
CREATE TABLE IF NOT EXISTS spikes (
  run_id VARCHAR NOT NULL,
  created_at TIMESTAMP NOT NULL,
  unique_id VARCHAR NOT NULL,
  start TIMESTAMP,
  "end" TIMESTAMP,
  peak_ds TIMESTAMP,
  expected DOUBLE,
  normal_level DOUBLE,
  threshold DOUBLE,
  ratio DOUBLE,
  probability DOUBLE,
  periods INTEGER,
  basis VARCHAR,
  kind VARCHAR
);
CREATE TABLE IF NOT EXISTS plans (
  plan_id VARCHAR PRIMARY KEY,
  created_at TIMESTAMP NOT NULL,
  confidence DOUBLE,
  saving DOUBLE,
  currency VARCHAR,
  body JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_state (
  provider VARCHAR PRIMARY KEY,
  synced_until TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  run_id VARCHAR NOT NULL,
  step VARCHAR NOT NULL,
  status VARCHAR NOT NULL,
  started_at TIMESTAMP NOT NULL,
  finished_at TIMESTAMP NOT NULL,
  inputs JSON,
  outputs JSON,
  error VARCHAR
);
CREATE TABLE IF NOT EXISTS anomaly_feedback (
  anomaly_id VARCHAR NOT NULL,
  unique_id VARCHAR NOT NULL,
  start TIMESTAMP NOT NULL,
  label VARCHAR NOT NULL,
  impact DOUBLE,
  note VARCHAR,
  labelled_at TIMESTAMP NOT NULL
);
"""

#: The columns a load's relation must provide (x_Cloud, x_Workload may be NULL and are derived).
_LOAD_COLUMNS = [c for c in COSTS.names if c not in ("x_Cloud", "x_Workload", "x_IngestedAt")]


#: Consumed quantities and units in canonical units: normalised once, here, for every load.
_CONSUMED = dict(
    zip(
        ("ConsumedQuantity", "ConsumedUnit"),
        consumed_sql('src."ConsumedQuantity"', 'src."ConsumedUnit"'),
        strict=True,
    )
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive(value: Any) -> datetime:
    """A DuckDB date or timestamp as a naive datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


@dataclass(frozen=True)
class IngestResult:
    """What one load did.

    Attributes:
        rows: Rows added.
        replaced: Rows of earlier loads removed because this load is authoritative for their
            (provider, billing account, day).
        days: Distinct (provider, billing account, day) keys loaded.
        sources: Where the rows came from (files or provider calls).
        seconds: Wall time of the load.
        load_id: Id stored in every row of the load (``x_LoadId``).
        superseded: Rows dropped from older files of the same load that a newer file restates.
    """

    rows: int
    replaced: int
    days: int
    sources: tuple[str, ...]
    seconds: float
    load_id: str
    superseded: int = 0
    currencies: tuple[str, ...] = field(default=())


class Store:
    """The embedded DuckDB store. Use as a context manager; it holds the lock while open.

    Args:
        path: The database file (created with its folder when missing); ``":memory:"`` for a
            throw-away store (no lock).
        lock_timeout: Seconds to wait for another run to release the store.
        on_wait: Called once when the lock is busy, before waiting (the CLI prints a message).
    """

    def __init__(
        self,
        path: str | Path = ".cloudbalance/store.duckdb",
        *,
        lock_timeout: float = 60.0,
        on_wait: Callable[[Path], None] | None = None,
    ) -> None:
        self.memory = str(path) == ":memory:"
        self.path = Path(path) if not self.memory else Path(":memory:")
        self._lock: FileLock | None = None
        if not self.memory:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"cannot create the store folder {self.path.parent}: {err.strerror}",
                    path=self.path,
                ) from err
            self._lock = FileLock(str(self.path) + ".lock")
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                if on_wait is not None:
                    on_wait(self.path)
                try:
                    self._lock.acquire(timeout=lock_timeout)
                except Timeout as err:
                    raise StoreLockedError(
                        f"another cloudbalance run is using the store {self.path} "
                        f"(waited {lock_timeout:g}s for {self.path}.lock); "
                        "try again when it has finished",
                        path=self.path,
                    ) from err
        try:
            self.con = duckdb.connect(str(self.path) if not self.memory else ":memory:")
        except duckdb.IOException as err:
            self._release()
            if "lock" in str(err).lower():
                raise StoreLockedError(
                    f"the store {self.path} is open in another program: {err}", path=self.path
                ) from err
            raise StoreError(f"cannot open the store {self.path}: {err}", path=self.path) from err
        except duckdb.Error as err:
            self._release()
            raise StoreError(
                f"{self.path} is not a cloudbalance store (DuckDB file): {err}", path=self.path
            ) from err
        self.con.execute("SET TimeZone = 'UTC'")
        self._migrate()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_wait: Callable[[Path], None] | None = None
    ) -> Store:
        """Open the store the configuration names."""
        return cls(settings.store_path, lock_timeout=settings.store.lock_timeout, on_wait=on_wait)

    def _migrate(self) -> None:
        self.con.execute(_DDL)
        # stores written before forecasts carried their kind as data
        for table in ("forecasts", "accuracy", "spikes"):
            self.con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS kind VARCHAR")
        row = first_row(self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'"))
        if row is None:
            self.con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} was written by a newer cloudbalance "
                f"(schema {row[0]} > {SCHEMA_VERSION}); upgrade cloudbalance",
                path=self.path,
            )

    def _release(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()

    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        con = getattr(self, "con", None)
        if con is not None:
            con.close()
            self.con = None  # type: ignore[assignment]
        self._release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One all-or-nothing unit of work: rolled back on any exception, Ctrl-C included."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # ------------------------------------------------------------------ costs

    def ingest_costs(
        self,
        frame: pd.DataFrame,
        *,
        source: str,
        attribution: Attribution | None = None,
    ) -> IngestResult:
        """Validate a costs frame and load it (see the ingest key in the module docstring).

        Raises:
            SchemaError: The frame breaks the costs schema (row and column named).
        """
        checked = validate_costs(frame, file=source)
        if "x_Source" in frame.columns:
            checked["x_Source"] = checked["x_Source"].fillna(source)
        else:
            checked["x_Source"] = source
        view = f"incoming_{uuid.uuid4().hex}"
        self.con.register(view, checked[[*_LOAD_COLUMNS, "x_Cloud", "x_Workload"]])
        names = sorted({str(n) for n in checked["ProviderName"].dropna().unique()})
        try:
            return self.load_relation(
                f"SELECT * FROM {view}",
                attribution=attribution,
                keep_given_labels=True,
                provider_names=names,
            )
        finally:
            self.con.unregister(view)

    def load_relation(
        self,
        select_sql: str,
        *,
        attribution: Attribution | None = None,
        source_order: Sequence[str] | None = None,
        keep_given_labels: bool = False,
        params: Sequence[Any] | None = None,
        provider_names: Sequence[str] | None = None,
    ) -> IngestResult:
        """Load rows from a SQL relation that yields the costs columns, typed.

        This is the fast path the FOCUS reader uses: rows go from the source files to the
        table inside DuckDB, with attribution, in one transaction.

        Args:
            select_sql: A query yielding every costs column except ``x_Cloud``, ``x_Workload``
                and ``x_IngestedAt`` (extra columns are ignored).
            attribution: Workload rules for ``x_Workload``.
            source_order: ``x_Source`` values oldest first; a key found in several sources
                of this load is kept from the last one only.
            keep_given_labels: Keep non-null ``x_Cloud``/``x_Workload`` given by the relation.
            params: Parameters of ``select_sql``.
            provider_names: The distinct ``ProviderName`` values of the relation, when known:
                ``x_Cloud`` is then mapped by exact match instead of a case-folding
                comparison per row (several times cheaper on large loads).
        """
        started = time.perf_counter()
        load_id = uuid.uuid4().hex
        rules = attribution or Attribution()
        workload = rules.sql(tag_value="src.__workload_tag")
        cloud = (
            cloud_case_sql("src.ProviderName")
            if provider_names is None
            else exact_cloud_case_sql(provider_names, "src.ProviderName")
        )
        if keep_given_labels:
            workload = f"coalesce(src.x_Workload, {workload})"
            cloud = f"coalesce(src.x_Cloud, {cloud})"
        columns = ", ".join(f'"{c}"' for c in COSTS.names)
        projection = ", ".join(
            [_CONSUMED.get(c, f'src."{c}"') for c in COSTS.names if c in _LOAD_COLUMNS[:-1]]
        )
        # COSTS column order: ... Tags, x_Cloud, x_Workload, x_Source, x_IngestedAt
        insert = (
            f"INSERT INTO costs ({columns}, x_LoadId) "
            f"SELECT {projection}, {cloud}, {workload}, src.x_Source, ?::TIMESTAMP, ? "
            f"FROM (SELECT *, {rules.tag_sql()} AS __workload_tag FROM ({select_sql})) AS src"
        )
        with self.transaction() as con:
            try:
                # the statement's own placeholders come before those of ``select_sql``
                con.execute(insert, [_now(), load_id, *(params or [])])
            except duckdb.ConstraintException as err:
                raise SchemaError(
                    "costs", [Issue(f"a required value is missing: {_first_line(err)}")]
                ) from err
            except duckdb.ConversionException as err:
                raise SchemaError("costs", [Issue(_first_line(err))]) from err
            superseded = self._drop_superseded(load_id, source_order)
            rows, days, sources, currencies, backwards = self._load_summary(load_id)
            if backwards:
                raise SchemaError(
                    "costs",
                    [Issue(f"{backwards} rows end before they start", column="ChargePeriodEnd")],
                )
            replaced = self._replace_keys(load_id)
        return IngestResult(
            rows=rows,
            replaced=replaced,
            days=days,
            sources=sources,
            seconds=time.perf_counter() - started,
            load_id=load_id,
            superseded=superseded,
            currencies=currencies,
        )

    def _drop_superseded(self, load_id: str, source_order: Sequence[str] | None) -> int:
        if not source_order or len(source_order) < 2:
            return 0
        rank = {s: i for i, s in enumerate(source_order)}
        keys = self.con.execute(
            "SELECT coalesce(x_Cloud, ProviderName), BillingAccountId, "
            "CAST(ChargePeriodStart AS DATE) AS day, "
            "list(DISTINCT x_Source) FROM costs WHERE x_LoadId = ? GROUP BY ALL "
            "HAVING count(DISTINCT x_Source) > 1",
            [load_id],
        ).fetchall()
        losers = [
            (provider, account, day, source)
            for provider, account, day, sources in keys
            for source in sorted(sources, key=lambda s: rank.get(s, -1))[:-1]
        ]
        if not losers:
            return 0
        frame = pd.DataFrame(losers, columns=["p", "a", "d", "s"])
        self.con.register("superseded_keys", frame)
        try:
            row = first_row(
                self.con.execute(
                    "DELETE FROM costs WHERE x_LoadId = ? AND "
                    "(coalesce(x_Cloud, ProviderName), BillingAccountId, "
                    "CAST(ChargePeriodStart AS DATE), x_Source) "
                    "IN (SELECT p, a, d, s FROM superseded_keys)",
                    [load_id],
                )
            )
        finally:
            self.con.unregister("superseded_keys")
        return int(row[0]) if row else 0

    def _load_summary(self, load_id: str) -> tuple[int, int, tuple[str, ...], tuple[str, ...], int]:
        """Rows, keys, sources, currencies and backwards periods of one load, in one scan."""
        row = first_row(
            self.con.execute(
                "SELECT count(*), count(DISTINCT (coalesce(x_Cloud, ProviderName), "
                "BillingAccountId, CAST(ChargePeriodStart AS DATE))), "
                "list(DISTINCT x_Source ORDER BY x_Source), "
                "list(DISTINCT BillingCurrency ORDER BY BillingCurrency), "
                "count(*) FILTER (WHERE ChargePeriodEnd <= ChargePeriodStart) "
                "FROM costs WHERE x_LoadId = ?",
                [load_id],
            )
        )
        assert row is not None  # an aggregate always yields one row
        return int(row[0]), int(row[1]), tuple(row[2] or ()), tuple(row[3] or ()), int(row[4])

    def _replace_keys(self, load_id: str) -> int:
        row = first_row(
            self.con.execute(
                "DELETE FROM costs WHERE x_LoadId <> ? AND "
                "(coalesce(x_Cloud, ProviderName), BillingAccountId, "
                "CAST(ChargePeriodStart AS DATE)) IN ("
                "  SELECT DISTINCT coalesce(x_Cloud, ProviderName), BillingAccountId, "
                "  CAST(ChargePeriodStart AS DATE) "
                "  FROM costs WHERE x_LoadId = ?)",
                [load_id, load_id],
            )
        )
        return int(row[0]) if row else 0

    def reattribute(self, attribution: Attribution) -> int:
        """Recompute ``x_Workload`` for every stored row (after the workload rules changed)."""
        with self.transaction() as con:
            row = first_row(con.execute(f"UPDATE costs SET x_Workload = {attribution.sql()}"))
        return int(row[0]) if row else 0

    def costs(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Stored cost lines charged in ``[start, end)`` as a costs frame."""
        where, params = _window(start, end)
        columns = ", ".join(f'"{c}"' for c in COSTS.names)
        return self.con.execute(
            f"SELECT {columns} FROM costs {where} ORDER BY ChargePeriodStart", params
        ).df()

    def coverage(self) -> pd.DataFrame:
        """Per provider and billing account: first and last day held, rows (for sync)."""
        return self.con.execute(
            "SELECT ProviderName, BillingAccountId, x_Cloud, "
            "min(ChargePeriodStart) AS first, max(ChargePeriodStart) AS last, "
            "count(*) AS rows FROM costs GROUP BY ALL ORDER BY ALL"
        ).df()

    def data_as_of(self, *, now: datetime | None = None) -> dict[str, datetime]:
        """Per cloud, the end (exclusive, naive UTC) of the latest complete day of cost data.

        What every result stands on: a report, a forecast or a plan says "data as of" this,
        not the day it ran.

        A day is complete when the cloud's charges reach its end (a daily line, or hourly lines
        up to midnight) and the day is over (before ``now``'s day; default: today). A cloud whose
        latest day is still running, or that delivers a day late, is as of the day before.
        Lines longer than a day (a monthly fee, a purchase) say nothing about freshness.

        Args:
            now: The run's time (naive UTC); days from it on are never complete.
        """
        today = (now or _now()).replace(hour=0, minute=0, second=0, microsecond=0)
        rows = self.con.execute(
            "SELECT coalesce(x_Cloud, ProviderName), max(ChargePeriodEnd) FROM costs "
            "WHERE ChargePeriodEnd - ChargePeriodStart <= INTERVAL 1 DAY GROUP BY ALL"
        ).fetchall()
        out: dict[str, datetime] = {}
        for cloud, end in rows:
            if end is not None:
                whole_days = _naive(end).replace(hour=0, minute=0, second=0, microsecond=0)
                out[str(cloud)] = min(whole_days, today)
        return dict(sorted(out.items()))

    def last_charge(self, *, source_prefix: str | None = None) -> datetime | None:
        """Start of the latest charge held (optionally only rows whose ``x_Source`` starts so)."""
        sql = "SELECT max(ChargePeriodStart) FROM costs"
        params: list[Any] = []
        if source_prefix is not None:
            sql += " WHERE starts_with(x_Source, ?)"
            params.append(source_prefix)
        row = first_row(self.con.execute(sql, params))
        value = row[0] if row else None
        return value if isinstance(value, datetime) else None

    def summary(
        self,
        by: Sequence[str],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        measure: str = "EffectiveCost",
        rates: Mapping[str, float] | None = None,
        report_currency: str | None = None,
    ) -> pd.DataFrame:
        """Totals of ``measure`` grouped by ``by`` and by currency, never summed across them.

        ``by`` takes ``provider``, ``cloud``, ``account``, ``region``, ``service``,
        ``workload``, ``day``, ``month`` or a costs column name. With ``report_currency``
        and ``rates`` (1 unit of a currency = rate units of the report currency), amounts are
        converted and summed in the report currency; a currency without a rate is an error.
        """
        if measure not in ("EffectiveCost", "BilledCost", "ListCost", "ConsumedQuantity"):
            raise StoreError(f"cannot total {measure!r}")
        exprs = [_GROUPS[name] if name in _GROUPS else _quoted_costs_column(name) for name in by]
        select = [f"{expr} AS {_ident(name)}" for expr, name in zip(exprs, by, strict=True)]
        where, params = _window(start, end)
        if report_currency:
            seen = [
                r[0]
                for r in self.con.execute(
                    f"SELECT DISTINCT BillingCurrency FROM costs {where}", params
                ).fetchall()
            ]
            known = {report_currency: 1.0, **(rates or {})}
            missing = sorted(c for c in seen if c not in known)
            if missing:
                from cloudbalance.exceptions import ConfigError

                raise ConfigError(
                    f"no rate to convert {', '.join(missing)} into {report_currency}; "
                    "add them under currency.rates",
                    key="currency.rates",
                )
            case = " ".join(f"WHEN '{c}' THEN {float(r)!r}" for c, r in known.items())
            amount = f"sum({measure} * CASE BillingCurrency {case} END)"
            currency = f"'{report_currency}' AS currency"
            group = ", ".join(exprs)
        else:
            amount = f"sum({measure})"
            currency = "BillingCurrency AS currency"
            group = ", ".join([*exprs, "BillingCurrency"])
        sql = (
            f"SELECT {', '.join([*select, currency])}, {amount} AS amount, count(*) AS lines "
            f"FROM costs {where} "
            + (f"GROUP BY {group} " if group else "")
            + "ORDER BY "
            + ", ".join([*(str(i + 1) for i in range(len(by))), "currency"])
        )
        return self.con.execute(sql, params).df()

    def sync_state(self, provider: str) -> datetime | None:
        """End (exclusive) of the last successful sync of ``provider``, if any."""
        row = first_row(
            self.con.execute("SELECT synced_until FROM sync_state WHERE provider = ?", [provider])
        )
        return row[0] if row else None

    def set_sync_state(self, provider: str, synced_until: datetime) -> None:
        """Remember how far ``provider`` has been synced."""
        self.con.execute(
            "INSERT OR REPLACE INTO sync_state VALUES (?, ?, ?)", [provider, synced_until, _now()]
        )

    # ------------------------------------------------------------------ prices

    def ingest_prices(self, frame: pd.DataFrame, *, source: str) -> int:
        """Upsert prices; one row per (provider, region, SKU, kind, observed_at)."""
        checked = validate_prices(frame, file=source)
        view = f"prices_{uuid.uuid4().hex}"
        self.con.register(view, checked[PRICES.names])
        key = "ProviderName, RegionId, SkuId, price_kind, observed_at"
        try:
            with self.transaction() as con:
                con.execute(f"DELETE FROM prices WHERE ({key}) IN (SELECT {key} FROM {view})")
                con.execute(f"INSERT INTO prices SELECT *, ?, ? FROM {view}", [source, _now()])
        finally:
            self.con.unregister(view)
        return len(checked)

    def prices(self, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Stored price observations in ``[start, end)`` as a prices frame."""
        where, params = _window(start, end, column="observed_at")
        cols = ", ".join(PRICES.names)
        return self.con.execute(
            f"SELECT {cols} FROM prices {where} ORDER BY observed_at", params
        ).df()

    # ------------------------------------------------------------------ forecasts

    def save_forecast(
        self,
        frame: pd.DataFrame,
        *,
        run_id: str,
        accuracy: pd.DataFrame | None = None,
        spikes: pd.DataFrame | None = None,
    ) -> None:
        """Store a forecast (with its accuracy and spike warnings) under ``run_id``.

        Saving the same ``run_id`` again replaces it, so re-running a day changes nothing.
        """
        now = _now()
        tables: list[tuple[str, pd.DataFrame | None]] = [
            ("forecasts", FORECAST.validate(frame)[FORECAST.names]),
            ("accuracy", None if accuracy is None else ACCURACY.validate(accuracy)[ACCURACY.names]),
            (
                "spikes",
                None
                if spikes is None or spikes.empty
                else spikes.reindex(columns=[*SPIKE_COLUMNS, "kind"]),
            ),
        ]
        with self.transaction() as con:
            for table, data in tables:
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                if data is None:
                    continue
                view = f"{table}_{uuid.uuid4().hex}"
                con.register(view, data)
                try:
                    con.execute(f"INSERT INTO {table} SELECT ?, ?, * FROM {view}", [run_id, now])
                finally:
                    con.unregister(view)

    def latest_forecast(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """The most recent forecast frame, its accuracy and its spikes (empty when none)."""
        row = first_row(
            self.con.execute("SELECT run_id FROM forecasts ORDER BY created_at DESC LIMIT 1")
        )
        if row is None:
            return (
                pd.DataFrame(columns=FORECAST.names),
                pd.DataFrame(columns=ACCURACY.names),
                pd.DataFrame(columns=[*SPIKE_COLUMNS, "kind"]),
            )
        forecast = self.con.execute(
            f"SELECT {', '.join(FORECAST.names)} FROM forecasts WHERE run_id = ? "
            "ORDER BY kind, unique_id, ds",
            [row[0]],
        ).df()
        accuracy = self.con.execute(
            f"SELECT {', '.join(ACCURACY.names)} FROM accuracy WHERE run_id = ? "
            "ORDER BY kind, unique_id",
            [row[0]],
        ).df()
        columns = ", ".join(f'"{c}"' for c in (*SPIKE_COLUMNS, "kind"))
        spikes = self.con.execute(
            f"SELECT {columns} FROM spikes WHERE run_id = ? ORDER BY kind, unique_id, start",
            [row[0]],
        ).df()
        return forecast, accuracy, spikes

    # ------------------------------------------------------------------ plans

    def save_plan(self, plan: Plan) -> None:
        """Store a plan (idempotent: the same plan id is written once)."""
        with self.transaction() as con:
            con.execute("DELETE FROM plans WHERE plan_id = ?", [plan.plan_id])
            con.execute(
                "INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?)",
                [
                    plan.plan_id,
                    plan.created_at,
                    plan.confidence,
                    plan.saving,
                    plan.currency,
                    plan.to_json(indent=None),
                ],
            )

    def load_plan(self, plan_id: str) -> Plan:
        """The stored plan ``plan_id``.

        Raises:
            StoreError: No such plan (the message lists the latest ids).
        """
        row = first_row(self.con.execute("SELECT body FROM plans WHERE plan_id = ?", [plan_id]))
        if row is None:
            recent = [
                r[0]
                for r in self.con.execute(
                    "SELECT plan_id FROM plans ORDER BY created_at DESC LIMIT 5"
                ).fetchall()
            ]
            listed = ", ".join(recent) or "none stored yet"
            raise StoreError(f"no plan {plan_id!r} in the store (latest: {listed})", path=self.path)
        return Plan.from_json(row[0])

    def plans(self) -> pd.DataFrame:
        """Stored plans, newest first (id, created_at, confidence, saving, currency)."""
        return self.con.execute(
            "SELECT plan_id, created_at, confidence, saving, currency FROM plans "
            "ORDER BY created_at DESC"
        ).df()

    def latest_plan(self) -> Plan | None:
        """The newest plan kept, or ``None``."""
        row = self.con.execute(
            "SELECT plan_id FROM plans ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        return self.load_plan(str(row[0])) if row else None

    # ------------------------------------------------------------------ audit log

    def record(self, entry: RunRecord) -> None:
        """Append one entry to the audit log."""
        self.con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                entry.run_id,
                entry.step,
                entry.status,
                entry.started_at,
                entry.finished_at,
                json.dumps(dict(entry.inputs), default=str),
                json.dumps(dict(entry.outputs), default=str),
                entry.error,
            ],
        )

    @contextmanager
    def step(
        self, run_id: str, step: str, inputs: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Record one step in the audit log, ``ok`` or ``failed`` with its error.

        Yields a dict the step fills with its outputs.
        """
        outputs: dict[str, Any] = {}
        started = _now()
        try:
            yield outputs
        except BaseException as err:
            self.record(
                RunRecord(
                    run_id,
                    step,
                    "failed",
                    started,
                    _now(),
                    dict(inputs or {}),
                    outputs,
                    _first_line(err) or type(err).__name__,
                )
            )
            raise
        status = str(outputs.get("status", "ok"))
        self.record(RunRecord(run_id, step, status, started, _now(), dict(inputs or {}), outputs))

    def runs(self, limit: int = 50) -> pd.DataFrame:
        """The latest audit-log entries, newest first."""
        return self.con.execute("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", [limit]).df()

    # ------------------------------------------------------------------ anomaly feedback

    def add_anomaly_feedback(self, feedback: AnomalyFeedback) -> None:
        """Append a label on an anomaly; the history is kept (the newest label applies)."""
        self.con.execute(
            "INSERT INTO anomaly_feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                feedback.anomaly_id,
                feedback.unique_id,
                feedback.start.to_pydatetime(),
                str(feedback.label),
                None if math.isnan(feedback.impact) else feedback.impact,
                feedback.note,
                feedback.labelled_at or _now(),
            ],
        )

    def anomaly_feedback(self) -> pd.DataFrame:
        """Every label given on anomalies, oldest first (``FEEDBACK_COLUMNS``)."""
        return self.con.execute(
            "SELECT anomaly_id, unique_id, start, label, impact, note, labelled_at "
            "FROM anomaly_feedback ORDER BY labelled_at, rowid"
        ).df()


_GROUPS: dict[str, str] = {
    "provider": "ProviderName",
    "cloud": "coalesce(x_Cloud, ProviderName)",
    "account": "BillingAccountId",
    "subaccount": "SubAccountId",
    "region": "RegionId",
    "service": "ServiceName",
    "category": "ChargeCategory",
    "workload": "x_Workload",
    "day": "CAST(ChargePeriodStart AS DATE)",
    "month": "strftime(ChargePeriodStart, '%Y-%m')",
}

GROUP_NAMES: tuple[str, ...] = tuple(_GROUPS)


def _quoted_costs_column(name: str) -> str:
    if name not in COSTS.names:
        allowed = ", ".join([*_GROUPS, *COSTS.names])
        raise StoreError(f"cannot group by {name!r}; choose from {allowed}")
    return f'"{name}"'


def _ident(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def _window(
    start: datetime | None, end: datetime | None, column: str = "ChargePeriodStart"
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(pd.Timestamp(start).to_pydatetime())
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(pd.Timestamp(end).to_pydatetime())
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def first_row(result: duckdb.DuckDBPyConnection) -> Any:
    """The first row of a statement's result, reading the result to its end.

    ``fetchone()`` leaves the result open, and DuckDB then refuses the connection's next
    ``register`` ("unfinished result from execute()"): the bug that broke every sync after the
    first. Every single-row read of the store goes through here.
    """
    rows = result.fetchall()
    return rows[0] if rows else None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
