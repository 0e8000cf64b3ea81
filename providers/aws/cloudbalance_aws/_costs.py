"""Cost Explorer ``GetCostAndUsage`` into the costs frame.

What the API gives and how it lands in FOCUS columns:

================  ==============================================================
``BilledCost``    ``UnblendedCost`` (what the invoice shows)
``EffectiveCost`` ``AmortizedCost`` (upfront fees of RIs and Savings Plans spread)
``ConsumedQuantity`` ``UsageQuantity`` (only when its unit is not ``N/A``)
``ServiceName``   ``SERVICE`` group; ``RegionId`` the ``REGION`` group; ``SkuId`` the
                  ``USAGE_TYPE`` or ``INSTANCE_TYPE`` group; ``SubAccountId`` the
                  ``LINKED_ACCOUNT`` group; ``ChargeCategory`` the ``RECORD_TYPE`` group
``Tags``          ``{"<key>": "<value>"}`` of a ``tag:<key>`` group
================  ==============================================================

Windows are reduced to whole UTC days (the store replaces whole days), to what Cost Explorer can
answer (``lookback_months`` back; 14 days for hourly data) and to today. Pages are followed until
``NextPageToken`` is absent; a page that keeps failing fails the whole call, so a partial day is
never returned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import pandas as pd

from cloudbalance.exceptions import ProviderError
from cloudbalance.schema import COSTS, validate_costs
from cloudbalance_aws._options import DIMENSIONS, AWSOptions, GroupKey
from cloudbalance_aws._session import PROVIDER, AWSClients

__all__ = [
    "METRICS",
    "PROVIDER_NAME",
    "ce_window",
    "cost_explorer_costs",
    "costs_from_results",
    "empty_costs",
]

#: FOCUS ``ProviderName`` as AWS writes it in its own FOCUS exports.
PROVIDER_NAME = "Amazon Web Services"
METRICS = ("UnblendedCost", "AmortizedCost", "UsageQuantity")
HOURLY_DAYS = 14

_SERVICE_CATEGORIES: dict[str, str] = {
    "Amazon Elastic Compute Cloud - Compute": "Compute",
    "EC2 - Other": "Compute",
    "AWS Lambda": "Compute",
    "Amazon Elastic Container Service": "Compute",
    "Amazon Elastic Container Service for Kubernetes": "Compute",
    "Amazon Elastic Kubernetes Service": "Compute",
    "AWS Fargate": "Compute",
    "Amazon Simple Storage Service": "Storage",
    "Amazon Elastic File System": "Storage",
    "Amazon Elastic Block Store": "Storage",
    "Amazon Relational Database Service": "Databases",
    "Amazon DynamoDB": "Databases",
    "Amazon ElastiCache": "Databases",
    "Amazon CloudFront": "Networking",
    "Amazon Virtual Private Cloud": "Networking",
    "Elastic Load Balancing": "Networking",
    "AWS Data Transfer": "Networking",
    "Amazon Route 53": "Networking",
    "AmazonCloudWatch": "Management and Governance",
    "Tax": "Other",
}
_NO_VALUE = {"", "NoRegion", "NoUsageType", "NoInstanceType", "NoService", "No tag key"}


def _day(value: datetime) -> datetime:
    return datetime(value.year, value.month, value.day)


def _ceil_day(value: datetime) -> datetime:
    floor = _day(value)
    return floor if floor == value else floor + timedelta(days=1)


def _months_back(day: datetime, months: int) -> datetime:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    last = (datetime(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)).day
    return datetime(year, month, min(day.day, last))


def ce_window(
    start: datetime, end: datetime, *, granularity: str, lookback_months: int, now: datetime
) -> tuple[datetime, datetime] | None:
    """The whole days of ``[start, end)`` Cost Explorer can answer; ``None`` when none.

    A day counts when it starts inside the window (``ChargePeriodStart`` in ``[start, end)``);
    with hourly data its hours must all be inside too, so the end is rounded down instead.
    """
    start, end = _naive(start), _naive(end)
    today = _day(now)
    first = _ceil_day(start)
    last = _ceil_day(end) if granularity == "DAILY" else _day(end)
    if granularity == "HOURLY":
        earliest = today - timedelta(days=HOURLY_DAYS - 1)
    else:
        earliest = _months_back(today, lookback_months)
    first = max(first, earliest)
    last = min(last, today + timedelta(days=1))
    return (first, last) if first < last else None


def _naive(value: datetime) -> datetime:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return datetime(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)


def _format(value: datetime, granularity: str) -> str:
    if granularity == "DAILY":
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def empty_costs() -> pd.DataFrame:
    """A costs frame without rows."""
    return validate_costs(pd.DataFrame({name: [] for name in COSTS.names}))


def cost_explorer_costs(
    clients: AWSClients,
    options: AWSOptions,
    start: datetime,
    end: datetime,
    *,
    billing_account_id: str,
    now: datetime,
) -> pd.DataFrame:
    """Cost lines of ``[start, end)`` from Cost Explorer, every page followed.

    Raises:
        CredentialsError: The credentials are missing, expired, or lack ``ce:GetCostAndUsage``.
        ThrottledError: Cost Explorer kept throttling after the retries.
        ProviderError: Cost Explorer is not enabled, refused the request, or answered in a
            shape we cannot read (the message names the field).
    """
    window = ce_window(
        start,
        end,
        granularity=options.granularity,
        lookback_months=options.lookback_months,
        now=now,
    )
    if window is None:
        return empty_costs()
    first, last = window
    params: dict[str, Any] = {
        "TimePeriod": {
            "Start": _format(first, options.granularity),
            "End": _format(last, options.granularity),
        },
        "Granularity": options.granularity,
        "Metrics": list(METRICS),
    }
    if options.group_by:
        params["GroupBy"] = [key.request() for key in options.group_by]
    pages = clients.pages(
        "ce",
        "get_cost_and_usage",
        token_in="NextPageToken",
        token_out="NextPageToken",
        **params,
    )
    source = f"aws:cost-explorer:{billing_account_id}"
    frame = costs_from_results(
        pages, group_by=options.group_by, billing_account_id=billing_account_id, source=source
    )
    keep = (frame["ChargePeriodStart"] >= first) & (frame["ChargePeriodStart"] < last)
    return frame[keep].reset_index(drop=True)


class _Malformed(Exception):
    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        super().__init__(f"{where} {problem}")


def _get(obj: object, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _Malformed(f"{where}.{key}", "is missing")
    return obj[key]


def _amount(metrics: object, name: str, where: str) -> tuple[float, str | None]:
    metric = _get(metrics, name, where)
    raw = _get(metric, "Amount", f"{where}.{name}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _Malformed(f"{where}.{name}.Amount", f"is not a number ({raw!r})") from None
    unit = metric.get("Unit") if isinstance(metric, dict) else None
    return value, (str(unit) if unit not in (None, "", "N/A") else None)


def _metrics(metrics: Any, where: str) -> tuple[float, str, float, float, str | None]:
    """Billed cost, currency, effective cost, quantity and unit of one group's metrics."""
    try:  # the well-formed answer, without building a path for each field
        unblended, usage = metrics["UnblendedCost"], metrics["UsageQuantity"]
        billed, currency = float(unblended["Amount"]), unblended["Unit"]
        effective = float(metrics["AmortizedCost"]["Amount"])
        quantity, unit = float(usage["Amount"]), usage.get("Unit")
        known = isinstance(currency, str) and currency not in ("", "N/A")
        if known and (unit is None or isinstance(unit, str)):
            return billed, currency, effective, quantity, None if unit in ("", "N/A") else unit
    except (KeyError, TypeError, ValueError):
        pass
    # Something is off: walk the fields in order so the error names the first bad one.
    billed, money = _amount(metrics, "UnblendedCost", where)
    effective, _ = _amount(metrics, "AmortizedCost", where)
    quantity, measure = _amount(metrics, "UsageQuantity", where)
    if money is None:
        raise _Malformed(f"{where}.UnblendedCost.Unit", "is missing")
    return billed, money, effective, quantity, measure


def _timestamp(text: object, where: str) -> datetime:
    try:
        stamp = pd.Timestamp(str(text))
    except ValueError:
        raise _Malformed(where, f"is not a date ({text!r})") from None
    if pd.isna(stamp):
        raise _Malformed(where, f"is not a date ({text!r})")
    return _naive(stamp.to_pydatetime())


def charge_category(record_type: str) -> str:
    """FOCUS ``ChargeCategory`` of a Cost Explorer ``RECORD_TYPE`` value."""
    lowered = record_type.lower()
    if "tax" in lowered:
        return "Tax"
    if "credit" in lowered or "discount" in lowered or "refund" in lowered:
        return "Credit"
    if "fee" in lowered or "upfront" in lowered or "recurring" in lowered:
        return "Purchase"
    if "usage" in lowered:
        return "Usage"
    return "Adjustment"


def _group_columns(keys: list[str], group_by: tuple[GroupKey, ...], where: str) -> dict[str, Any]:
    if len(keys) != len(group_by):
        raise _Malformed(f"{where}.Keys", f"has {len(keys)} values for {len(group_by)} groups")
    return _columns_of(tuple(str(k) for k in keys), group_by)


@lru_cache(maxsize=65536)
def _columns_of(keys: tuple[str, ...], group_by: tuple[GroupKey, ...]) -> dict[str, Any]:
    """The columns one group's keys fill; cached, as the same groups recur every day."""
    columns: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for key, value in zip(group_by, keys, strict=True):
        if key.type == "TAG":
            _, _, tag_value = str(value).partition("$")
            if tag_value:
                tags[key.key] = tag_value
            continue
        text = str(value)
        column = DIMENSIONS[key.key]
        if key.key == "RECORD_TYPE":
            columns[column] = charge_category(text)
        else:
            columns[column] = None if text in _NO_VALUE else text
    columns["Tags"] = json.dumps(tags, separators=(",", ":")) if tags else None
    return columns


def costs_from_results(
    pages: Iterable[dict[str, Any]],
    *,
    group_by: tuple[GroupKey, ...],
    billing_account_id: str,
    source: str,
) -> pd.DataFrame:
    """Map the pages of ``GetCostAndUsage`` answers onto the costs frame.

    Raises:
        ProviderError: A page is not shaped like Cost Explorer's answer; the message names the
            page and field (``page 2: ResultsByTime[3].Groups[0].Metrics.UnblendedCost.Amount``).
    """
    rows: list[dict[str, Any]] = []
    for number, page in enumerate(pages, start=1):
        try:
            rows.extend(_page_rows(page, group_by))
        except _Malformed as err:
            raise ProviderError(
                f"get_cost_and_usage answered in an unexpected shape: page {number}: {err}",
                provider=PROVIDER,
            ) from err
    if not rows:
        return empty_costs()
    frame = pd.DataFrame(rows)
    frame["ProviderName"] = PROVIDER_NAME
    frame["BillingAccountId"] = billing_account_id
    frame["x_Cloud"] = "aws"
    frame["x_Source"] = source
    if "ChargeCategory" not in frame.columns:
        frame["ChargeCategory"] = "Usage"
    for column in COSTS.names:
        if column not in frame.columns:
            frame[column] = None
    frame["ServiceCategory"] = frame["ServiceName"].map(
        lambda name: _SERVICE_CATEGORIES.get(name) if isinstance(name, str) else None
    )
    return validate_costs(frame, file=source)


def _page_rows(page: dict[str, Any], group_by: tuple[GroupKey, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    results = _get(page, "ResultsByTime", "")
    if not isinstance(results, list):
        raise _Malformed("ResultsByTime", "is not a list")
    for i, result in enumerate(results):
        where = f"ResultsByTime[{i}]"
        period = _get(result, "TimePeriod", where)
        start = _timestamp(
            _get(period, "Start", f"{where}.TimePeriod"), f"{where}.TimePeriod.Start"
        )
        end = _timestamp(_get(period, "End", f"{where}.TimePeriod"), f"{where}.TimePeriod.End")
        groups = result.get("Groups") or []
        if group_by:
            entries = [
                (f"{where}.Groups[{j}]", group.get("Keys", []), _get(group, "Metrics", where))
                for j, group in enumerate(groups)
            ]
        else:
            total = result.get("Total") or {}
            entries = [(f"{where}.Total", [], total)] if total else []
        for at, keys, metrics in entries:
            billed, currency, effective, quantity, unit = _metrics(metrics, f"{at}.Metrics")
            row: dict[str, Any] = {
                "ChargePeriodStart": start,
                "ChargePeriodEnd": end,
                "BilledCost": billed,
                "EffectiveCost": effective,
                "ConsumedQuantity": quantity if unit else None,
                "ConsumedUnit": unit,
                "BillingCurrency": currency,
            }
            row.update(_group_columns(list(keys), group_by, at))
            rows.append(row)
    return rows
