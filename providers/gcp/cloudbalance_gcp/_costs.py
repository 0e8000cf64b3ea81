"""Run the export query on BigQuery and map its aggregated rows to the costs frame.

The query (see :mod:`cloudbalance_gcp._sql`) already groups in BigQuery; this module only sends
it with typed parameters and a bytes-billed cap, reads the pages back, and names the columns the
FOCUS way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from cloudbalance.exceptions import ProviderError
from cloudbalance.schema import COSTS, validate_costs
from cloudbalance_gcp._errors import NAME
from cloudbalance_gcp._frames import empty_frame
from cloudbalance_gcp._sql import CostQuery

__all__ = ["PROVIDER_NAME", "rows_to_costs", "run_query", "service_category"]

#: FOCUS ``ProviderName`` as Google publishes it.
PROVIDER_NAME = "Google Cloud"

#: Export ``cost_type`` -> FOCUS ``ChargeCategory``.
_CHARGE_CATEGORY = {
    "regular": "Usage",
    "tax": "Tax",
    "adjustment": "Adjustment",
    "rounding_error": "Adjustment",
}

#: Service descriptions -> FOCUS ``ServiceCategory`` (the standard export has no category).
_SERVICE_CATEGORY = {
    "compute engine": "Compute",
    "kubernetes engine": "Compute",
    "cloud run": "Compute",
    "cloud run functions": "Compute",
    "cloud functions": "Compute",
    "app engine": "Compute",
    "cloud storage": "Storage",
    "filestore": "Storage",
    "bigquery": "Analytics",
    "dataflow": "Analytics",
    "dataproc": "Analytics",
    "pub/sub": "Integration",
    "cloud pub/sub": "Integration",
    "cloud sql": "Databases",
    "cloud spanner": "Databases",
    "cloud bigtable": "Databases",
    "firestore": "Databases",
    "memorystore for redis": "Databases",
    "networking": "Networking",
    "cloud dns": "Networking",
    "cloud cdn": "Networking",
    "cloud load balancing": "Networking",
    "cloud logging": "Management and Governance",
    "cloud monitoring": "Management and Governance",
    "vertex ai": "AI and Machine Learning",
    "support": "Other",
}


def service_category(service: str | None) -> str | None:
    """FOCUS service category of a Google service description (``Other`` when unknown)."""
    if service is None:
        return None
    return _SERVICE_CATEGORY.get(service.strip().lower(), "Other")


def run_query(
    client: Any,
    query: CostQuery,
    *,
    location: str | None,
    maximum_bytes_billed: int | None,
    page_size: int | None = None,
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Run ``query`` with the BigQuery client and return every result row as a dict.

    Retries are left to the caller (:func:`cloudbalance.retry.retry_call`): the client's own
    retry and job-retry are switched off so one policy, with an injectable sleep, decides.
    ``timeout`` bounds each HTTP request (connect and read), so an endpoint that accepts and
    never answers fails instead of hanging.
    """
    from google.cloud import bigquery

    params = []
    for p in query.params:
        value: Any = p.value
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        params.append(bigquery.ScalarQueryParameter(p.name, p.type, value))
    config = bigquery.QueryJobConfig(
        query_parameters=params,
        use_legacy_sql=False,
        maximum_bytes_billed=maximum_bytes_billed,
        labels={"app": "cloudbalance", "purpose": "costs"},
    )
    rows = client.query_and_wait(
        query.sql,
        job_config=config,
        location=location,
        retry=None,
        job_retry=None,
        page_size=page_size,
        api_timeout=timeout,
    )
    return [dict(row.items()) for row in rows]


def _naive_utc(value: object, column: str, row: int) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    raise ProviderError(
        f"BigQuery returned a malformed row {row}: column {column!r} is not a timestamp "
        f"(got {value!r})",
        provider=NAME,
    )


def rows_to_costs(
    rows: Sequence[Mapping[str, Any]],
    *,
    label_keys: Sequence[str],
    granularity: str,
    source: str,
    categorise: Callable[[str | None], str | None] = service_category,
) -> pd.DataFrame:
    """Map aggregated query rows to a validated costs frame.

    Raises:
        ProviderError: A row lacks a column the query returns, or holds a wrong type.
        SchemaError: The mapped frame breaks the costs schema (names the row and column).
    """
    if not rows:
        return empty_frame(COSTS)
    step = timedelta(days=1) if granularity == "daily" else timedelta(hours=1)
    out: dict[str, list[object]] = {name: [] for name in COSTS.names}
    for i, row in enumerate(rows, start=1):
        try:
            start = _naive_utc(row["period_start"], "period_start", i)
            kind = row["line_kind"]
            charge = row["charge_kind"]
            service = row["service_name"]
            tags = {
                key: row[f"label_{k}"]
                for k, key in enumerate(label_keys)
                if row[f"label_{k}"] is not None
            }
            category = row["service_category"] or categorise(service)
            values = {
                "ChargePeriodStart": start,
                "ChargePeriodEnd": start + step,
                "ProviderName": PROVIDER_NAME,
                "BillingAccountId": row["billing_account_id"],
                "SubAccountId": row["sub_account_id"],
                "RegionId": row["region_id"],
                "ServiceCategory": category,
                "ServiceName": service,
                "ResourceId": row["resource_id"],
                "SkuId": row["sku_id"],
                "ChargeCategory": (
                    "Credit"
                    if kind == "credit"
                    else _CHARGE_CATEGORY.get(str(charge).lower(), str(charge))
                    if charge is not None
                    else "Usage"
                ),
                "ConsumedQuantity": row["consumed_quantity"],
                "ConsumedUnit": row["consumed_unit"] if kind != "credit" else None,
                "PricingQuantity": row["pricing_quantity"],
                "PricingUnit": row["pricing_unit"] if kind != "credit" else None,
                "ListCost": row["list_cost"],
                "BilledCost": row["billed_cost"],
                "EffectiveCost": row["effective_cost"],
                "BillingCurrency": row["currency"],
                "Tags": json.dumps(tags, separators=(",", ":"), sort_keys=True),
                "x_Cloud": NAME,
                "x_Workload": None,
                "x_Source": source,
                "x_IngestedAt": None,
            }
        except KeyError as err:
            raise ProviderError(
                f"BigQuery returned a malformed row {i}: column {err.args[0]!r} is missing "
                "(is the table an export of the configured kind?)",
                provider=NAME,
            ) from err
        for name, value in values.items():
            out[name].append(value)
    frame = pd.DataFrame(out).sort_values(
        ["ChargePeriodStart", "SubAccountId", "ServiceName", "SkuId", "ChargeCategory"],
        kind="stable",
        na_position="first",
    )
    return validate_costs(frame.reset_index(drop=True), file=source)
