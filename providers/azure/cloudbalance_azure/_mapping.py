"""Cost Management query rows -> the costs frame (FOCUS 1.2 names).

Kept free of the SDK and of I/O: functions over plain rows and frames, so the mapping is tested
on its own and a recorded response can be replayed through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import pandas as pd

from cloudbalance.exceptions import ProviderError
from cloudbalance.schema import COSTS, validate_costs

__all__ = [
    "PUBLISHER",
    "QueryTable",
    "billing_region",
    "costs_frame",
    "service_category",
    "usage_day",
]

_DAY = timedelta(days=1)

#: FOCUS ``ProviderName`` as Microsoft writes it in FocusCost exports.
PUBLISHER = "Microsoft"

#: Cost Management reports ``ResourceLocation`` in billing names ("US East", "EU West"); the
#: prices and the planner use ARM region names. Unknown names are lower-cased without spaces,
#: which is already right for the many values that arrive in ARM form.
_BILLING_REGIONS: dict[str, str] = {
    "us east": "eastus",
    "us east 2": "eastus2",
    "us west": "westus",
    "us west 2": "westus2",
    "us west 3": "westus3",
    "us central": "centralus",
    "us north central": "northcentralus",
    "us south central": "southcentralus",
    "us west central": "westcentralus",
    "eu west": "westeurope",
    "eu north": "northeurope",
    "uk south": "uksouth",
    "uk west": "ukwest",
    "fr central": "francecentral",
    "de west central": "germanywestcentral",
    "ch north": "switzerlandnorth",
    "no east": "norwayeast",
    "se central": "swedencentral",
    "pl central": "polandcentral",
    "it north": "italynorth",
    "ap east": "eastasia",
    "ap southeast": "southeastasia",
    "ja east": "japaneast",
    "ja west": "japanwest",
    "kr central": "koreacentral",
    "in central": "centralindia",
    "in south": "southindia",
    "au east": "australiaeast",
    "au southeast": "australiasoutheast",
    "ca central": "canadacentral",
    "ca east": "canadaeast",
    "br south": "brazilsouth",
    "za north": "southafricanorth",
    "ae north": "uaenorth",
}

_SERVICE_CATEGORIES: dict[str, str] = {
    "virtual machines": "Compute",
    "virtual machine scale sets": "Compute",
    "azure kubernetes service": "Compute",
    "container instances": "Compute",
    "azure container apps": "Compute",
    "functions": "Compute",
    "azure app service": "Compute",
    "storage": "Storage",
    "bandwidth": "Networking",
    "virtual network": "Networking",
    "load balancer": "Networking",
    "azure dns": "Networking",
    "sql database": "Databases",
    "azure cosmos db": "Databases",
    "azure database for postgresql": "Databases",
    "azure database for mysql": "Databases",
    "azure monitor": "Management and Governance",
    "log analytics": "Management and Governance",
}


def billing_region(name: object) -> str | None:
    """ARM region name for a Cost Management ``ResourceLocation`` value (None when absent)."""
    if name is None:
        return None
    text = str(name).strip().lower()
    if not text or text in {"unknown", "unassigned", "global"}:
        return None if text != "global" else "global"
    return _BILLING_REGIONS.get(text, text.replace(" ", ""))


def service_category(service: str | None) -> str | None:
    """FOCUS ``ServiceCategory`` for the common Azure services (None when we do not know)."""
    if not service:
        return None
    return _SERVICE_CATEGORIES.get(service.strip().lower())


def usage_day(value: object) -> datetime:
    """Parse ``UsageDate`` as the API sends it: ``20240131`` (a number) or ISO text.

    Raises:
        ValueError: Neither form.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, int | float):
        number = int(value)
        if number != value or not 19000101 <= number <= 29991231:
            raise ValueError(f"not a yyyymmdd date: {value!r}")
        return datetime(number // 10000, number // 100 % 100, number % 100)
    text = str(value).strip()
    if len(text) == 8 and text.isdigit():
        return usage_day(int(text))
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.normalize().to_pydatetime()


class QueryTable:
    """One query's result: its column names and rows, with checked access by column name.

    Args:
        columns: Column names in row order.
        rows: The rows.
        what: What produced it, for error messages (the scope and query type).
    """

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], what: str) -> None:
        self.columns = [str(c) for c in columns]
        self.rows = rows
        self.what = what
        self._index = {name.lower(): pos for pos, name in enumerate(self.columns)}

    def position(self, *names: str, required: bool = True) -> int | None:
        """Position of the first of ``names`` present (case-insensitive).

        Raises:
            ProviderError: None is present and ``required``.
        """
        for name in names:
            pos = self._index.get(name.lower())
            if pos is not None:
                return pos
        if required:
            raise ProviderError(
                f"{self.what}: malformed response, column {names[0]!r} is missing "
                f"(got {', '.join(self.columns) or 'no columns'})",
                provider="azure",
            )
        return None

    def records(self, **wanted: tuple[str, ...]) -> Iterable[dict[str, Any]]:
        """Rows as dicts ``{key: value}`` for ``key=(column names...)``; optional keys end in ``_``.

        Raises:
            ProviderError: A row is shorter than the columns say, or a required column is missing.
        """
        plan: dict[str, int | None] = {}
        for key, names in wanted.items():
            optional = key.endswith("_")
            plan[key.rstrip("_")] = self.position(*names, required=not optional)
        width = len(self.columns)
        for number, row in enumerate(self.rows, start=1):
            if not isinstance(row, list | tuple) or len(row) != width:
                raise ProviderError(
                    f"{self.what}: malformed response, row {number} has "
                    f"{len(row) if isinstance(row, list | tuple) else 'no'} values for "
                    f"{width} columns",
                    provider="azure",
                )
            yield {key: (None if pos is None else row[pos]) for key, pos in plan.items()}


def _number(value: object, table: QueryTable, row: int, column: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise ProviderError(
            f"{table.what}: malformed response, row {row} column {column!r} is not a number "
            f"(got {value!r})",
            provider="azure",
        ) from err


#: Days repeat on every row of a response: parse each distinct value once.
_cached_day = lru_cache(maxsize=4096, typed=True)(usage_day)


def _day(value: object, table: QueryTable, row: int) -> datetime:
    try:
        return _cached_day(value) if isinstance(value, int | float | str) else usage_day(value)
    except (TypeError, ValueError) as err:
        raise ProviderError(
            f"{table.what}: malformed response, row {row} column 'UsageDate' is not a date "
            f"(got {value!r})",
            provider="azure",
        ) from err


def cost_rows(table: QueryTable) -> dict[tuple[datetime, str, str, str], float]:
    """Sum a (ResourceId, ServiceName) cost query per (day, resource, service, currency)."""
    out: dict[tuple[datetime, str, str, str], float] = {}
    records = table.records(
        cost=("Cost", "PreTaxCost", "totalCost", "CostUSD"),
        day=("UsageDate",),
        resource_=("ResourceId",),
        service_=("ServiceName",),
        currency=("Currency", "BillingCurrency"),
    )
    for number, rec in enumerate(records, start=1):
        key = (
            _day(rec["day"], table, number),
            str(rec["resource"] or ""),
            str(rec["service"] or ""),
            str(rec["currency"] or ""),
        )
        out[key] = out.get(key, 0.0) + _number(rec["cost"], table, number, "Cost")
    return out


def attribute_rows(table: QueryTable, names: tuple[str, ...]) -> dict[tuple[datetime, str], str]:
    """(day, resource) -> the attribute's value carrying the most cost that day.

    Used for the lookups (location, one tag) that the two-grouping limit keeps out of the main
    query: a resource that reports several values in a day (rare: a global meter next to a
    regional one) gets the value with the most cost.
    """
    best: dict[tuple[datetime, str], tuple[float, str]] = {}
    records = table.records(
        cost_=("Cost", "PreTaxCost", "totalCost", "CostUSD"),
        day=("UsageDate",),
        resource=("ResourceId",),
        value=names,
    )
    for number, rec in enumerate(records, start=1):
        value = rec["value"]
        if value is None or str(value).strip() == "" or not rec["resource"]:
            continue  # charges without a resource share one empty id: nothing to attribute
        key = (_day(rec["day"], table, number), str(rec["resource"] or ""))
        cost = abs(_number(rec["cost"], table, number, "Cost")) if rec["cost"] is not None else 0
        if key not in best or cost > best[key][0]:
            best[key] = (float(cost), str(value))
    return {key: value for key, (_, value) in best.items()}


def _subscription(resource_id: str, default: str | None) -> str | None:
    parts = resource_id.split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions" and parts[2]:
        return parts[2]
    return default


def costs_frame(
    *,
    actual: Mapping[tuple[datetime, str, str, str], float],
    amortized: Mapping[tuple[datetime, str, str, str], float] | None,
    locations: Mapping[tuple[datetime, str], str],
    tags: Mapping[str, Mapping[tuple[datetime, str], str]],
    billing_account_id: str,
    subscription_id: str | None,
    source: str,
) -> pd.DataFrame:
    """Assemble the costs frame from the per-query maps.

    ``BilledCost`` is the actual cost (what the invoice shows, purchases on the day they are
    bought); ``EffectiveCost`` the amortized cost (reservations and savings plans spread over
    the days they cover). Without an amortized query both hold the actual cost.
    """
    keys = sorted(set(actual) | set(amortized or {}))
    n = len(keys)
    days = [k[0] for k in keys]
    resources = [k[1] for k in keys]
    services = [k[2] for k in keys]
    billed = [actual.get(k, 0.0) for k in keys]
    effective = billed if amortized is None else [amortized.get(k, 0.0) for k in keys]
    tag_text: list[str | None] = []
    for day, res, _, _ in keys:
        row_tags = {key: values[(day, res)] for key, values in tags.items() if (day, res) in values}
        tag_text.append(json.dumps(row_tags, sort_keys=True) if row_tags else None)
    # attributes repeat across rows: map each distinct value once
    regions: dict[str, str | None] = {v: billing_region(v) for v in set(locations.values())}
    categories = {v: service_category(v) for v in set(services)}
    subs = {r: _subscription(r, subscription_id) for r in set(resources)}
    columns: dict[str, Any] = {
        "ChargePeriodStart": days,
        "ChargePeriodEnd": [d + _DAY for d in days],
        "ProviderName": [PUBLISHER] * n,
        "BillingAccountId": [billing_account_id] * n,
        "SubAccountId": [subs[r] for r in resources],
        "RegionId": [regions.get(locations.get((k[0], k[1]), "")) for k in keys],
        "ServiceCategory": [categories[v] for v in services],
        "ServiceName": [v or None for v in services],
        "ResourceId": [r or None for r in resources],
        "ChargeCategory": ["Usage"] * n,
        "BilledCost": billed,
        "EffectiveCost": effective,
        "BillingCurrency": [k[3] or None for k in keys],
        "Tags": tag_text,
        "x_Cloud": ["azure"] * n,
        "x_Source": [source] * n,
    }
    frame = pd.DataFrame({name: columns.get(name, [None] * n) for name in COSTS.names})
    frame["ChargePeriodStart"] = pd.to_datetime(frame["ChargePeriodStart"]).astype("datetime64[us]")
    frame["ChargePeriodEnd"] = pd.to_datetime(frame["ChargePeriodEnd"]).astype("datetime64[us]")
    return validate_costs(frame)
