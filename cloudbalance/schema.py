"""Column names, dtypes and validators of every frame that crosses a box of the loop.

The column names are the contract between the boxes (see the architecture page):

- **costs**: FOCUS 1.2 names, plus our own ``x_`` columns.
- **series**: ``unique_id, ds, y`` (Prophet / statsforecast).
- **forecast**: ``unique_id, ds, yhat, yhat_lower, yhat_upper, model, interval`` (+ spike columns).
- **prices**: one row per (location, SKU, kind) observation.

Every timestamp in every frame is **naive UTC** (tz-aware inputs are converted to UTC and made
naive), because Prophet refuses tz-aware ``ds`` and mixing the two silently shifts data.

Validators never change what the user gave: they return a coerced copy, and they collect every
problem (file, row, column, value) before raising one :class:`~cloudbalance.exceptions.SchemaError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from cloudbalance.exceptions import Issue, SchemaError

__all__ = [
    "ACCURACY",
    "COSTS",
    "EARLIEST",
    "FORECAST",
    "INGEST_KEY",
    "LATEST",
    "MAX_UTC_OFFSET_MINUTES",
    "NULL_STRINGS",
    "PRICES",
    "PRICE_KINDS",
    "SERIES",
    "SPIKE_COLUMNS",
    "Column",
    "FrameSchema",
    "empty_frame",
    "validate_costs",
    "validate_forecast",
    "validate_prices",
    "validate_series",
]

Kind = Literal["string", "timestamp", "float", "bool", "json"]

#: Text that FOCUS exports (and spreadsheets) write for a missing value.
NULL_STRINGS: tuple[str, ...] = ("", "NULL", "null", "Null", "None", "NaN", "nan", "N/A")

#: The ingest key: a load is authoritative for every (cloud, billing account, UTC day) it
#: contains. Loading rows for such a key first removes the rows the store held for it, so the same
#: export loaded twice, or two overlapping exports, never double-count, and a cloud's restated
#: days replace the old ones. The cloud is ``x_Cloud`` (our id) when the publisher is known, so
#: "AWS" in a FOCUS file and "Amazon Web Services" from Cost Explorer are one provider; otherwise
#: ``ProviderName`` as given. See :mod:`cloudbalance.store`.
INGEST_KEY: tuple[str, ...] = (
    "coalesce(x_Cloud, ProviderName)",
    "BillingAccountId",
    "ChargePeriodStart::date",
)

PRICE_KINDS: tuple[str, ...] = ("on_demand", "spot", "committed")

#: Every timestamp in every frame falls in ``[EARLIEST, LATEST)`` (naive UTC). Cloud billing began
#: after 2000 and no plan looks past 2100; anything outside is a mangled date (a negative year,
#: year 0000, a wrong offset) and is refused, never stored as 2026 BC.
EARLIEST = pd.Timestamp("2000-01-01")
LATEST = pd.Timestamp("2100-01-01")

#: The largest UTC offset a timestamp may carry (ISO 8601 and every real zone: -12:00..+14:00).
MAX_UTC_OFFSET_MINUTES = 14 * 60

#: Spike warnings, one row per run of consecutive spike periods (what, when, how big, how sure).
SPIKE_COLUMNS: tuple[str, ...] = (
    "unique_id",
    "start",
    "end",
    "peak_ds",
    "expected",
    "normal_level",
    "threshold",
    "ratio",
    "probability",
    "periods",
    "basis",
)


@dataclass(frozen=True)
class Column:
    """One column of a frame schema.

    Attributes:
        name: Column name.
        kind: Logical type; decides the coercion and the check.
        required: The column must be present in the input.
        nullable: Values may be missing.
    """

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class FrameSchema:
    """The columns of a frame, in order, and how to validate a frame against them."""

    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """Column names in schema order."""
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        """Names of the columns an input must have."""
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def validate(
        self,
        frame: pd.DataFrame,
        *,
        file: str | None = None,
        first_row: int = 1,
        rows: Sequence[int] | None = None,
        extra: Literal["keep", "drop"] = "keep",
    ) -> pd.DataFrame:
        """Check and coerce ``frame``; raise one SchemaError listing every problem.

        Args:
            frame: The input; it is not modified.
            file: Source file, named in every issue.
            first_row: Source row number of the frame's first row (1 = first data row).
            rows: Explicit source row numbers, one per frame row (overrides ``first_row``),
                for frames assembled from filtered or concatenated sources.
            extra: Keep or drop columns the schema does not know.

        Returns:
            A copy with the schema's columns first, in order, with coerced dtypes; optional
            columns that were absent are added as missing values.

        Raises:
            SchemaError: With an :class:`~cloudbalance.exceptions.Issue` per problem.
        """
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(
                self.name, [Issue(f"expected a pandas DataFrame, got {type(frame).__name__}")]
            )
        row_numbers = (
            np.asarray(rows)
            if rows is not None
            else np.arange(first_row, first_row + len(frame), dtype=np.int64)
        )
        issues: list[Issue] = []
        missing = [c for c in self.required if c not in frame.columns]
        for name in missing:
            issues.append(Issue("required column is missing", column=name, file=file))
        duplicated = frame.columns[frame.columns.duplicated()].tolist()
        for name in duplicated:
            issues.append(Issue("column appears more than once", column=str(name), file=file))
        if issues:
            raise SchemaError(self.name, issues)

        out: dict[str, pd.Series] = {}
        for col in self.columns:
            if col.name not in frame.columns:
                out[col.name] = _empty(col.kind, len(frame), frame.index)
                continue
            values, problems = _coerce(frame[col.name], col, file, row_numbers)
            issues.extend(problems)
            out[col.name] = values
        if issues:
            raise SchemaError(self.name, issues)
        result = pd.DataFrame(out, index=frame.index)
        if extra == "keep":
            for name in frame.columns:
                if name not in result.columns:
                    result[name] = frame[name]
        return result.reset_index(drop=True)


def _empty(kind: Kind, length: int, index: pd.Index) -> pd.Series:
    if kind == "timestamp":
        return pd.Series(pd.NaT, index=index, dtype="datetime64[us]")
    if kind == "float":
        return pd.Series(np.nan, index=index, dtype="float64")
    if kind == "bool":
        return pd.Series(pd.NA, index=index, dtype="boolean")
    return pd.Series([None] * length, index=index, dtype=object)


def _is_missing(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy(dtype=bool).copy()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        text = values.astype("string").str.strip()
        missing |= text.isin(NULL_STRINGS).fillna(True).to_numpy(dtype=bool)
    return missing


def _coerce(
    values: pd.Series, col: Column, file: str | None, rows: np.ndarray
) -> tuple[pd.Series, list[Issue]]:
    missing = _is_missing(values)
    issues: list[Issue] = []
    if col.kind == "timestamp":
        coerced = _to_naive_utc(values.where(~missing, None))
    elif col.kind == "float":
        coerced = pd.to_numeric(values.where(~missing, None), errors="coerce").astype("float64")
    elif col.kind == "bool":
        coerced = _to_bool(values.where(~missing, None))
    elif col.kind == "json":
        coerced, bad = _to_json_text(values, missing)
        for pos in bad:
            issues.append(
                Issue(
                    "is not a JSON object",
                    column=col.name,
                    row=int(rows[pos]),
                    file=file,
                    value=_short(values.iloc[pos]),
                )
            )
    else:
        coerced = values.astype(object).where(~missing, None)
        coerced = coerced.map(lambda v: v if v is None else str(v).strip())
    unparsed = coerced.isna().to_numpy() & ~missing
    if col.kind == "json":
        unparsed[:] = False  # already reported as "is not a JSON object"
    what = {"timestamp": "a date/time", "float": "a number", "bool": "true/false"}
    for pos in np.flatnonzero(unparsed)[: SchemaError.MAX_SHOWN * 4]:
        issues.append(
            Issue(
                f"is not {what.get(col.kind, 'valid')}",
                column=col.name,
                row=int(rows[pos]),
                file=file,
                value=_short(values.iloc[pos]),
            )
        )
    if not col.nullable:
        for pos in np.flatnonzero(missing)[: SchemaError.MAX_SHOWN * 4]:
            issues.append(Issue("is empty", column=col.name, row=int(rows[pos]), file=file))
    if col.kind == "float":
        infinite = np.isinf(coerced.to_numpy(dtype="float64", na_value=np.nan))
        for pos in np.flatnonzero(infinite)[: SchemaError.MAX_SHOWN]:
            issues.append(Issue("is infinite", column=col.name, row=int(rows[pos]), file=file))
    if col.kind == "timestamp":
        outside = ((coerced < EARLIEST) | (coerced >= LATEST)).to_numpy(dtype=bool)
        for pos in np.flatnonzero(outside)[: SchemaError.MAX_SHOWN]:
            issues.append(
                Issue(
                    f"is not between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}",
                    column=col.name,
                    row=int(rows[pos]),
                    file=file,
                    value=_short(values.iloc[pos]),
                )
            )
    return coerced, issues


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_naive_utc(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        converted: pd.Series = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return converted
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    return parsed.dt.tz_localize(None)


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _to_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")

    def parse(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return pd.NA
        if isinstance(v, bool | np.bool_):
            return bool(v)
        text = str(v).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else pd.NA

    return values.map(parse).astype("boolean")


def _to_json_text(values: pd.Series, missing: np.ndarray) -> tuple[pd.Series, list[int]]:
    """Normalise tags to compact JSON object text; dicts and JSON strings are accepted."""
    out: list[str | None] = []
    bad: list[int] = []
    for pos, value in enumerate(values.tolist()):
        if missing[pos]:
            out.append(None)
            continue
        if isinstance(value, dict):
            obj: object = value
        elif isinstance(value, list) and all(isinstance(kv, tuple) for kv in value):
            obj = dict(value)  # pyarrow MAP columns arrive as lists of (key, value)
        else:
            try:
                obj = json.loads(str(value))
            except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
                obj = None
        if not isinstance(obj, dict):
            bad.append(pos)
            out.append(None)
            continue
        out.append(json.dumps({str(k): v for k, v in obj.items()}, separators=(",", ":")))
    return pd.Series(out, index=values.index, dtype=object), bad


def _schema(name: str, columns: Iterable[Column]) -> FrameSchema:
    return FrameSchema(name, tuple(columns))


#: Costs: FOCUS 1.2 columns, then ours (``x_``). Required = what every FOCUS export has and what
#: the loop needs; the rest may be absent from an export and are then null.
COSTS = _schema(
    "costs",
    [
        Column("ChargePeriodStart", "timestamp"),
        Column("ChargePeriodEnd", "timestamp"),
        Column("ProviderName", "string"),
        Column("BillingAccountId", "string"),
        Column("SubAccountId", "string", required=False, nullable=True),
        Column("RegionId", "string", required=False, nullable=True),
        Column("ServiceCategory", "string", required=False, nullable=True),
        Column("ServiceName", "string", nullable=True),
        Column("ResourceId", "string", required=False, nullable=True),
        Column("SkuId", "string", required=False, nullable=True),
        Column("ChargeCategory", "string"),
        Column("ConsumedQuantity", "float", required=False, nullable=True),
        Column("ConsumedUnit", "string", required=False, nullable=True),
        Column("PricingQuantity", "float", required=False, nullable=True),
        Column("PricingUnit", "string", required=False, nullable=True),
        Column("ListCost", "float", required=False, nullable=True),
        Column("BilledCost", "float"),
        Column("EffectiveCost", "float"),
        Column("BillingCurrency", "string"),
        Column("Tags", "json", required=False, nullable=True),
        Column("x_Cloud", "string", required=False, nullable=True),
        Column("x_Workload", "string", required=False, nullable=True),
        Column("x_Source", "string", required=False, nullable=True),
        Column("x_IngestedAt", "timestamp", required=False, nullable=True),
    ],
)

SERIES = _schema(
    "series",
    [Column("unique_id", "string"), Column("ds", "timestamp"), Column("y", "float")],
)

FORECAST = _schema(
    "forecast",
    [
        Column("unique_id", "string"),
        Column("ds", "timestamp"),
        Column("yhat", "float"),
        Column("yhat_lower", "float"),
        Column("yhat_upper", "float"),
        Column("model", "string"),
        Column("interval", "float"),
        Column("spike", "bool", required=False, nullable=True),
        Column("spike_score", "float", required=False, nullable=True),
        # what the series measures (``cloudbalance.series.KINDS``): demand, cost, cloud_cost, price
        Column("kind", "string", required=False, nullable=True),
    ],
)

#: Forecast accuracy per series from rolling-origin backtests; the planner's confidence per
#: workload is the ``confidence`` column (0..1), never a constant.
ACCURACY = _schema(
    "accuracy",
    [
        Column("unique_id", "string"),
        Column("model", "string"),
        Column("mase", "float", nullable=True),
        Column("smape", "float", nullable=True),
        Column("interval", "float"),
        Column("coverage", "float", nullable=True),
        Column("coverage_calibrated", "float", nullable=True),
        Column("windows", "float"),
        Column("confidence", "float"),
        Column("reason", "string", required=False, nullable=True),
        Column("kind", "string", required=False, nullable=True),
    ],
)

PRICES = _schema(
    "prices",
    [
        Column("ProviderName", "string"),
        Column("RegionId", "string"),
        Column("SkuId", "string"),
        Column("vcpus", "float"),
        Column("memory_gib", "float"),
        Column("unit_price", "float"),
        Column("price_kind", "string"),
        Column("PricingUnit", "string"),
        Column("BillingCurrency", "string"),
        Column("observed_at", "timestamp"),
    ],
)


def empty_frame(schema: FrameSchema) -> pd.DataFrame:
    """An empty frame with the schema's columns and dtypes: what "no rows" looks like."""
    return schema.validate(pd.DataFrame({name: [] for name in schema.names}))


def validate_costs(frame: pd.DataFrame, *, file: str | None = None) -> pd.DataFrame:
    """Validate a costs frame; charge periods must be ordered (start before end).

    Negative costs are credits and refunds: data, not an error.
    """
    out = COSTS.validate(frame, file=file)
    bad = np.flatnonzero((out["ChargePeriodEnd"] <= out["ChargePeriodStart"]).to_numpy())
    if len(bad):
        raise SchemaError(
            "costs",
            [
                Issue("ends before it starts", column="ChargePeriodEnd", row=int(p) + 1, file=file)
                for p in bad
            ],
        )
    return out


def validate_series(frame: pd.DataFrame, *, file: str | None = None) -> pd.DataFrame:
    """Validate a series frame (``unique_id, ds, y``), sorted by id and time.

    Duplicated ``(unique_id, ds)`` pairs are reported, not summed: whether duplicates should
    add up (costs) or average (utilisation) is the caller's decision.
    """
    out = SERIES.validate(frame, file=file)
    dup = out.duplicated(["unique_id", "ds"], keep="first").to_numpy()
    if dup.any():
        raise SchemaError(
            "series",
            [
                Issue(
                    "duplicated (unique_id, ds)",
                    column="ds",
                    row=int(p) + 1,
                    file=file,
                    value=f"{out['unique_id'].iat[int(p)]} @ {out['ds'].iat[int(p)]}",
                )
                for p in np.flatnonzero(dup)
            ],
        )
    return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def validate_forecast(frame: pd.DataFrame, *, file: str | None = None) -> pd.DataFrame:
    """Validate a forecast frame; bounds must bracket the point forecast."""
    out = FORECAST.validate(frame, file=file)
    bad = (out["yhat_lower"] > out["yhat"] + 1e-9) | (out["yhat"] > out["yhat_upper"] + 1e-9)
    issues = [
        Issue("yhat is outside [yhat_lower, yhat_upper]", column="yhat", row=int(p) + 1, file=file)
        for p in np.flatnonzero(bad.to_numpy())
    ]
    interval = out["interval"].to_numpy()
    issues += [
        Issue("must be in (0, 1)", column="interval", row=int(p) + 1, file=file)
        for p in np.flatnonzero((interval <= 0) | (interval >= 1))
    ]
    if issues:
        raise SchemaError("forecast", issues)
    return out


def validate_prices(frame: pd.DataFrame, *, file: str | None = None) -> pd.DataFrame:
    """Validate a prices frame; kinds are on_demand, spot or committed; prices are >= 0."""
    out = PRICES.validate(frame, file=file)
    issues = [
        Issue(
            f"must be one of {', '.join(PRICE_KINDS)}",
            column="price_kind",
            row=int(p) + 1,
            file=file,
            value=str(out["price_kind"].iat[int(p)]),
        )
        for p in np.flatnonzero(~out["price_kind"].isin(PRICE_KINDS).to_numpy())
    ]
    for name in ("unit_price", "vcpus", "memory_gib"):
        issues += [
            Issue("must not be negative", column=name, row=int(p) + 1, file=file)
            for p in np.flatnonzero((out[name] < 0).to_numpy())
        ]
    if issues:
        raise SchemaError("prices", issues)
    return out
