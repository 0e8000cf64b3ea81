"""Periods and consumed units: the only place either is parsed or converted.

**Periods** are pandas offset aliases of a fixed length: ``1D``/``D``, ``7D``, ``W``, ``1h``/``h``,
``6h``, ``15min``. Months are not a period: their length changes, and every per-period amount
(replicas, cost of one replica) would change with it. :func:`period_length` turns an alias into
its length and refuses anything else with a message that says what would work.

**Consumed units.** The clouds write the same quantity in different units: AWS ``Hrs``, Azure
``1 Hour`` or ``10 Hours`` (a pack of ten), Google ``seconds``/``s``/``h``, FOCUS exports
``Hours``. Cost lines are normalised once, at ingest (the store calls :func:`consumed_sql` for
every load, so every provider and every FOCUS file is covered): time becomes ``Hours`` and
storage ``GB-Months``, with the quantity scaled to match. A unit we do not know is kept as it
was written (never guessed). :func:`normalise_consumed` does the same for a frame that did not
come through the store, so the series functions read hours from either.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import pandas as pd

__all__ = [
    "HOURS",
    "STORAGE",
    "consumed_factor",
    "consumed_sql",
    "normalise_consumed",
    "period_delta",
    "period_hours",
    "period_length",
]

#: The canonical time unit of ``ConsumedUnit`` after ingest.
HOURS = "Hours"
#: The canonical storage unit of ``ConsumedUnit`` after ingest.
STORAGE = "GB-Months"

_TIME: dict[str, float] = {
    **dict.fromkeys(("hours", "hour", "hrs", "hr", "h", "instance-hours", "instance hours"), 1.0),
    **dict.fromkeys(("seconds", "second", "secs", "sec", "s"), 1 / 3600),
    **dict.fromkeys(("minutes", "minute", "mins", "min"), 1 / 60),
    **dict.fromkeys(("days", "day", "d"), 24.0),
}
_STORAGE: dict[str, float] = dict.fromkeys(
    ("gb-month", "gb-months", "gb-mo", "gb month", "gb/month", "gib-month", "gib-mo", "giby.mo"),
    1.0,
)
_PACKS = (1, 10, 100, 1000)


def _spellings() -> dict[str, tuple[float, str]]:
    """Every known spelling (lower case) -> (factor to the canonical unit, canonical unit)."""
    table: dict[str, tuple[float, str]] = {}
    for names, canonical in ((_TIME, HOURS), (_STORAGE, STORAGE)):
        for name, factor in names.items():
            table[name] = (factor, canonical)
            for pack in _PACKS:  # Azure writes "10 Hours": a quantity of 1 is ten hours
                table[f"{pack} {name}"] = (factor * pack, canonical)
    return table


_UNITS = _spellings()


def consumed_factor(unit: str | None) -> tuple[float, str] | None:
    """How to turn a quantity in ``unit`` into the canonical unit: ``(factor, canonical)``.

    ``None`` for a unit we do not know (it is kept as written).
    """
    if unit is None:
        return None
    return _UNITS.get(" ".join(str(unit).strip().lower().split()))


def normalise_consumed(frame: pd.DataFrame) -> pd.DataFrame:
    """``ConsumedQuantity``/``ConsumedUnit`` of a costs frame in canonical units (a copy)."""
    out = frame.copy()
    if "ConsumedUnit" not in out.columns or out.empty:
        return out
    found = out["ConsumedUnit"].map(lambda u: consumed_factor(u) if isinstance(u, str) else None)
    known = found.notna()
    if not known.any():
        return out
    factors = found[known].map(lambda f: f[0]).astype(float)
    out["ConsumedQuantity"] = out["ConsumedQuantity"].astype(float)
    out.loc[known, "ConsumedQuantity"] = out.loc[known, "ConsumedQuantity"] * factors
    out["ConsumedUnit"] = out["ConsumedUnit"].astype(object)
    out.loc[known, "ConsumedUnit"] = found[known].map(lambda f: f[1])
    return out


def consumed_sql(quantity: str, unit: str) -> tuple[str, str]:
    """SQL expressions of the canonical quantity and unit, from the columns ``quantity``/``unit``.

    The store applies them to every load, so the units are normalised once, at ingest.
    """
    key = f"lower(regexp_replace(trim({unit}), '\\s+', ' ', 'g'))"
    factor_cases = " ".join(
        f"WHEN '{name}' THEN {factor!r}" for name, (factor, _) in _UNITS.items()
    )
    unit_cases = " ".join(f"WHEN '{name}' THEN '{canon}'" for name, (_, canon) in _UNITS.items())
    return (
        f"({quantity} * CASE {key} {factor_cases} ELSE 1.0 END)",
        f"(CASE {key} {unit_cases} ELSE {unit} END)",
    )


def period_length(period: str) -> pd.Timedelta:
    """The length of a period alias such as ``1D``, ``D``, ``7D``, ``W``, ``1h``, ``6h``.

    Raises:
        ValueError: The alias is not a fixed, positive length of time (months are not); the
            message names the alias and what would work.
    """
    text = str(period).strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            offset = pd.tseries.frequencies.to_offset(text)
        if isinstance(offset, pd.offsets.Week):
            length = pd.Timedelta(days=7 * offset.n)
        else:
            length = pd.Timedelta(offset)  # type: ignore[arg-type]  # Day is no Tick in pandas 3
    except (ValueError, TypeError, Warning) as err:
        raise ValueError(
            f"period {period!r} is not a fixed length of time; use minutes, hours, days or "
            "weeks such as 15min, 1h, 6h, 1D, 7D or W"
        ) from err
    if length <= pd.Timedelta(0):
        raise ValueError(f"period {period!r} must be positive")
    return length


def period_hours(period: str) -> float:
    """The length of a period alias in hours (see :func:`period_length`)."""
    return float(period_length(period) / pd.Timedelta(hours=1))


def period_delta(period: str) -> timedelta:
    """The length of a period alias as a :class:`datetime.timedelta`."""
    return period_length(period).to_pytimedelta()
