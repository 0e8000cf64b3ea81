"""The BigQuery SQL that aggregates a billing export into cost lines, in BigQuery's dialect.

The billing export holds one row per SKU, project, resource and hour (millions a day for a large
account), so the query aggregates in BigQuery and returns one row per day (or hour) and grouping
key: the bytes BigQuery scans are the columns named here, and the rows that travel back are the
aggregates. Every value the user chooses (window, label keys, billing account) is a query
parameter; the table name cannot be one, so it is checked against a strict pattern first.

Three sources share one shape, a ``base`` CTE that normalises columns and an outer ``SELECT``
that groups:

- ``standard``: ``gcp_billing_export_v1_<ACCOUNT>`` (ingestion-time partitioned).
- ``detailed``: ``gcp_billing_export_resource_v1_<ACCOUNT>``, which adds ``resource.*``.
- ``focus``: a FOCUS view over the export (Google's FOCUS BigQuery view), already in FOCUS names.

Credits (sustained-use and committed-use discounts, promotions, free tier) are an array on each
export row; they come back as their own lines (``line_kind = 'credit'``), like ``Credit`` rows of
FOCUS, so ``BilledCost`` of usage lines is the cost before credits and the sum of all lines is
what the invoice says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from cloudbalance.exceptions import ConfigError

__all__ = ["EXPORTS", "CostQuery", "Param", "build_cost_query", "check_table_id"]

Export = Literal["standard", "detailed", "focus"]
EXPORTS: tuple[str, ...] = ("standard", "detailed", "focus")

_TABLE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_$-]{1,1024}$"
)


@dataclass(frozen=True)
class Param:
    """One BigQuery query parameter (name, BigQuery type, value)."""

    name: str
    type: Literal["STRING", "TIMESTAMP", "DATE"]
    value: object


@dataclass(frozen=True)
class CostQuery:
    """A query and its parameters; ``label_keys[i]`` is returned in column ``label_<i>``."""

    sql: str
    params: tuple[Param, ...]
    label_keys: tuple[str, ...]


def check_table_id(table: str, *, key: str = "providers.gcp.billing_table") -> str:
    """Validate ``project.dataset.table`` so it can be quoted into SQL safely.

    Raises:
        ConfigError: Not three dot-separated BigQuery identifiers.
    """
    text = str(table).strip().strip("`")
    if not _TABLE.match(text):
        raise ConfigError(
            f"{table!r} is not a BigQuery table id; expected `project.dataset.table`, e.g. "
            "my-billing-project.billing.gcp_billing_export_v1_012345_6789AB_CDEF01",
            key=key,
        )
    return text


def _labels_sql(array: str, count: int) -> list[str]:
    return [
        f"(SELECT l.value FROM UNNEST({array}) AS l WHERE l.key = @label_{i} LIMIT 1) AS label_{i}"
        for i in range(count)
    ]


def build_cost_query(
    *,
    table: str,
    export: Export,
    start: datetime,
    end: datetime,
    granularity: Literal["daily", "hourly"] = "daily",
    label_keys: tuple[str, ...] = (),
    billing_account_id: str | None = None,
    resources: bool = False,
    list_cost: bool = True,
    partition_filter: bool = True,
    partition_slack_days: int = 1,
) -> CostQuery:
    """Build the aggregation query over ``[start, end)`` (naive UTC).

    Args:
        table: ``project.dataset.table`` of the export or FOCUS view (checked).
        export: Which schema the table has.
        start: Inclusive window start.
        end: Exclusive window end.
        granularity: One row per day or per hour and key.
        label_keys: Label (tag) keys to group by; each becomes a ``label_<i>`` column.
        billing_account_id: Keep only this billing account (exports can hold several).
        resources: Group by resource too (``detailed`` and ``focus`` only): many more rows.
        list_cost: Read ``cost_at_list`` (exports created before 2023 may lack it).
        partition_filter: Prune ``_PARTITIONTIME`` partitions (exports only; a view has none).
        partition_slack_days: Partitions hold rows by export time, which is after usage time,
            so only a lower bound is safe; it starts this many days before ``start``.

    Returns:
        The SQL and its parameters.
    """
    table = check_table_id(table)
    unit = "DAY" if granularity == "daily" else "HOUR"
    params: list[Param] = [
        Param("start", "TIMESTAMP", start),
        Param("end", "TIMESTAMP", end),
    ]
    params += [Param(f"label_{i}", "STRING", key) for i, key in enumerate(label_keys)]
    where: list[str] = []
    if export == "focus":
        time_col = "t.ChargePeriodStart"
        where += [f"{time_col} >= @start", f"{time_col} < @end"]
        if billing_account_id is not None:
            where.append("t.BillingAccountId = @billing_account_id")
        base = [
            f"TIMESTAMP_TRUNC({time_col}, {unit}) AS period_start",
            "t.BillingAccountId AS billing_account_id",
            "t.SubAccountId AS sub_account_id",
            "t.RegionId AS region_id",
            "t.ServiceCategory AS service_category",
            "t.ServiceName AS service_name",
            "t.SkuId AS sku_id",
            f"{'t.ResourceId' if resources else 'CAST(NULL AS STRING)'} AS resource_id",
            "t.ChargeCategory AS charge_kind",
            "t.ConsumedUnit AS consumed_unit",
            "t.PricingUnit AS pricing_unit",
            "t.BillingCurrency AS currency",
            *_labels_sql("t.Tags", len(label_keys)),
            "t.ConsumedQuantity AS consumed_quantity",
            "t.PricingQuantity AS pricing_quantity",
            "t.BilledCost AS billed_cost",
            "t.EffectiveCost AS effective_cost",
            "t.ListCost AS list_cost",
        ]
    else:
        time_col = "t.usage_start_time"
        where += [f"{time_col} >= @start", f"{time_col} < @end"]
        if partition_filter:
            where.append(
                f"_PARTITIONTIME >= TIMESTAMP_SUB(TIMESTAMP_TRUNC(@start, DAY), "
                f"INTERVAL {int(partition_slack_days) * 24} HOUR)"
            )
        if billing_account_id is not None:
            where.append("t.billing_account_id = @billing_account_id")
        base = [
            f"TIMESTAMP_TRUNC({time_col}, {unit}) AS period_start",
            "t.billing_account_id AS billing_account_id",
            "t.project.id AS sub_account_id",
            "t.location.region AS region_id",
            "CAST(NULL AS STRING) AS service_category",
            "t.service.description AS service_name",
            "t.sku.id AS sku_id",
            f"{'t.resource.global_name' if resources else 'CAST(NULL AS STRING)'} AS resource_id",
            "t.cost_type AS charge_kind",
            "t.usage.unit AS consumed_unit",
            "t.usage.pricing_unit AS pricing_unit",
            "t.currency AS currency",
            *_labels_sql("t.labels", len(label_keys)),
            "t.usage.amount AS consumed_quantity",
            "t.usage.amount_in_pricing_units AS pricing_quantity",
            "t.cost AS billed_cost",
            "t.cost AS effective_cost",
            f"{'t.cost_at_list' if list_cost else 'CAST(NULL AS FLOAT64)'} AS list_cost",
            "t.credits AS credits",
        ]
    if billing_account_id is not None:
        params.append(Param("billing_account_id", "STRING", billing_account_id))
    keys = [
        "period_start",
        "billing_account_id",
        "sub_account_id",
        "region_id",
        "service_category",
        "service_name",
        "sku_id",
        "resource_id",
        "charge_kind",
        "consumed_unit",
        "pricing_unit",
        "currency",
        *(f"label_{i}" for i in range(len(label_keys))),
    ]
    group = ", ".join(keys)
    indent = ",\n    "
    sql = (
        f"WITH base AS (\n  SELECT\n    {indent.join(base)}\n"
        f"  FROM `{table}` AS t\n  WHERE {' AND '.join(where)}\n)\n"
        f"SELECT\n    {indent.join(keys)},\n    'usage' AS line_kind,\n"
        "    SUM(consumed_quantity) AS consumed_quantity,\n"
        "    SUM(pricing_quantity) AS pricing_quantity,\n"
        "    SUM(billed_cost) AS billed_cost,\n"
        "    SUM(effective_cost) AS effective_cost,\n"
        "    SUM(list_cost) AS list_cost\n"
        f"FROM base\nGROUP BY {group}"
    )
    if export != "focus":
        sql += (
            f"\nUNION ALL\nSELECT\n    {indent.join(keys)},\n    'credit' AS line_kind,\n"
            "    CAST(NULL AS FLOAT64) AS consumed_quantity,\n"
            "    CAST(NULL AS FLOAT64) AS pricing_quantity,\n"
            "    SUM(c.amount) AS billed_cost,\n"
            "    SUM(c.amount) AS effective_cost,\n"
            "    CAST(NULL AS FLOAT64) AS list_cost\n"
            f"FROM base, UNNEST(base.credits) AS c\nGROUP BY {group}"
        )
    return CostQuery(sql=sql, params=tuple(params), label_keys=tuple(label_keys))
