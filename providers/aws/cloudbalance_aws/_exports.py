"""AWS Data Exports (FOCUS 1.0+ or CUR 2.0, Parquet) read from S3.

Data Exports write ``s3://<bucket>/<prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/*.parquet`` and
rewrite a whole billing period each time they refresh it. We list the export's objects
(``s3:ListBucket``), download only the billing periods that overlap the window (``s3:GetObject``)
into a temporary folder, and read them:

- **FOCUS** files with the core reader (:class:`cloudbalance.providers.focus.FocusReader`), so
  AWS's FOCUS dialect is read exactly like a FOCUS file on disk;
- **CUR 2.0** files with the column mapping below, in DuckDB, aggregating nothing (one row per
  line item), ``EffectiveCost`` computed the way AWS's own amortisation queries do.

``x_Source`` names the S3 object each row came from.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from cloudbalance.exceptions import CloudBalanceError, ProviderError
from cloudbalance.schema import COSTS, validate_costs
from cloudbalance_aws._costs import PROVIDER_NAME, empty_costs
from cloudbalance_aws._options import AWSOptions
from cloudbalance_aws._session import PROVIDER, AWSClients

__all__ = ["CUR2_COLUMNS", "export_costs", "list_export_objects", "read_cur2"]

_PERIOD = re.compile(r"BILLING_PERIOD=(\d{4})-(\d{2})")
_CUR2_USER = re.compile(r"^user_")
_FOCUS_USER = re.compile(r"^user:")
_SUFFIXES = (".parquet", ".snappy.parquet", ".gz.parquet")

#: CUR 2.0 column feeding each FOCUS column (SQL over the Parquet file).
CUR2_COLUMNS: dict[str, str] = {
    "ChargePeriodStart": "line_item_usage_start_date",
    "ChargePeriodEnd": "line_item_usage_end_date",
    "BillingAccountId": "bill_payer_account_id",
    "SubAccountId": "line_item_usage_account_id",
    "RegionId": "product_region_code",
    "ServiceName": "line_item_product_code",
    "ResourceId": "line_item_resource_id",
    "SkuId": "product_sku",
    "ConsumedQuantity": "line_item_usage_amount",
    "ConsumedUnit": "pricing_unit",
    "PricingQuantity": "line_item_usage_amount",
    "PricingUnit": "pricing_unit",
    "ListCost": "pricing_public_on_demand_cost",
    "BilledCost": "line_item_unblended_cost",
    "BillingCurrency": "line_item_currency_code",
}

_CHARGE_CATEGORY = """CASE
    WHEN {t} IN ('Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage') THEN 'Usage'
    WHEN {t} = 'Tax' THEN 'Tax'
    WHEN {t} IN ('Credit', 'Refund', 'EdpDiscount', 'BundledDiscount', 'PrivateRateDiscount',
                 'DistributorDiscount', 'SavingsPlanNegation') THEN 'Credit'
    WHEN {t} IN ('Fee', 'RIFee', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee')
        THEN 'Purchase'
    ELSE 'Adjustment' END"""

_EFFECTIVE_COST = """CASE
    WHEN {t} = 'SavingsPlanCoveredUsage' THEN {sp_effective}
    WHEN {t} = 'SavingsPlanRecurringFee' THEN {sp_total} - {sp_used}
    WHEN {t} IN ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') THEN 0
    WHEN {t} = 'DiscountedUsage' THEN {ri_effective}
    WHEN {t} = 'RIFee' THEN {ri_unused_upfront} + {ri_unused_recurring}
    ELSE {unblended} END"""


def _period_overlaps(key: str, first: datetime, last: datetime) -> bool:
    match = _PERIOD.search(key)
    if match is None:
        return True  # not partitioned by period: we cannot tell, so read it
    start = datetime(int(match.group(1)), int(match.group(2)), 1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start < last and first < end


def list_export_objects(
    clients: AWSClients, options: AWSOptions, first: datetime, last: datetime
) -> list[dict[str, Any]]:
    """The export's Parquet objects whose billing period overlaps ``[first, last)``."""
    prefix = f"{options.export_prefix}/" if options.export_prefix else ""
    objects: list[dict[str, Any]] = []
    for page in clients.pages(
        "s3",
        "list_objects_v2",
        token_in="ContinuationToken",
        token_out="NextContinuationToken",
        Bucket=options.export_bucket,
        Prefix=prefix,
    ):
        for item in page.get("Contents") or []:
            key = str(item["Key"])
            if key.endswith(_SUFFIXES) and _period_overlaps(key, first, last):
                objects.append(item)
    return sorted(objects, key=lambda item: str(item["Key"]))


def _download(clients: AWSClients, bucket: str, key: str, target: Path) -> None:
    def fetch() -> None:
        answer = clients.client("s3").get_object(Bucket=bucket, Key=key)
        with target.open("wb") as sink:  # streamed: export files run to gigabytes
            for chunk in answer["Body"].iter_chunks(chunk_size=8 << 20):
                sink.write(chunk)

    # A transfer cut half-way is retried like any transient error: the whole object again.
    clients.guard(fetch, "get_object")


def export_costs(
    clients: AWSClients, options: AWSOptions, first: datetime, last: datetime
) -> pd.DataFrame:
    """Cost lines of the whole days ``[first, last)`` from the configured Data Export.

    Raises:
        CredentialsError: ``s3:ListBucket`` / ``s3:GetObject`` not granted, or no credentials.
        ProviderError: A file is not a readable export of the configured format (the message
            names the S3 object).
    """
    objects = list_export_objects(clients, options, first, last)
    if not objects:
        return empty_costs()
    bucket = str(options.export_bucket)
    with tempfile.TemporaryDirectory(prefix="cloudbalance-aws-") as folder:
        files: list[Path] = []
        uris: dict[str, str] = {}
        for number, item in enumerate(objects):
            key = str(item["Key"])
            target = Path(folder) / f"{number:05d}.parquet"
            _download(clients, bucket, key, target)
            files.append(target)
            uris[str(target)] = f"s3://{bucket}/{key}"
        if options.export_format == "focus":
            frame = _read_focus(files, uris, first, last)
        else:
            frame = read_cur2(files, first, last, uris=uris)
    return frame


def _read_focus(
    files: Sequence[Path], uris: dict[str, str], first: datetime, last: datetime
) -> pd.DataFrame:
    from cloudbalance.providers.focus import FocusReader

    try:
        frame = FocusReader().read(files, start=first, end=last)
    except CloudBalanceError as err:
        raise ProviderError(_name_objects(str(err), uris), provider=PROVIDER) from err
    frame["x_Source"] = frame["x_Source"].map(lambda path: uris.get(str(path), path))
    frame["x_Cloud"] = "aws"
    frame["Tags"] = frame["Tags"].map(lambda text: _user_tags(text, _FOCUS_USER))
    # AWS's FOCUS 1.0 export writes "AWS"; one spelling keeps the store's ingest key stable
    # whichever source (API or export) loaded a day.
    frame["ProviderName"] = PROVIDER_NAME
    return validate_costs(frame)


def _name_objects(message: str, uris: dict[str, str]) -> str:
    for path, uri in uris.items():
        message = message.replace(path, uri)
    return message


def read_cur2(
    files: Sequence[Path],
    first: datetime,
    last: datetime,
    *,
    uris: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read CUR 2.0 Parquet files into a costs frame (line items starting in ``[first, last)``).

    Raises:
        ProviderError: A file is not Parquet, or lacks a column every CUR 2.0 file has (the
            message names the object and the column).
    """
    import duckdb

    uris = uris or {}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    frames: list[pd.DataFrame] = []
    for path in files:
        name = uris.get(str(path), str(path))
        try:
            relation = con.read_parquet(str(path))
        except duckdb.Error as err:
            raise ProviderError(
                f"{name}: not a readable Parquet file ({err})", provider=PROVIDER
            ) from err
        present = set(relation.columns)
        required = [
            "line_item_usage_start_date",
            "line_item_usage_end_date",
            "bill_payer_account_id",
            "line_item_unblended_cost",
            "line_item_currency_code",
            "line_item_line_item_type",
        ]
        for column in required:
            if column not in present:
                raise ProviderError(
                    f"{name}: column {column!r} is missing; is this a CUR 2.0 export "
                    "(export_format: cur2)?",
                    provider=PROVIDER,
                )
        frames.append(_cur2_frame(con, str(path), present, first, last, name))
    frame = pd.concat(frames, ignore_index=True) if frames else empty_costs()
    return validate_costs(frame) if len(frame) else empty_costs()


def _user_tags(text: object, origin: re.Pattern[str] = _CUR2_USER) -> str | None:
    """Tag keys without the prefix AWS adds to user-defined tags.

    CUR 2.0 writes ``user_team`` and FOCUS ``user:team`` for the tag ``team`` that Cost
    Explorer calls ``team``; the workload tag must be found under one name whatever the source.
    AWS-generated tags (``aws:createdBy``) keep their prefix.
    """
    if not isinstance(text, str):
        return None
    tags = json.loads(text)
    return json.dumps(
        {origin.sub("", str(key)): value for key, value in tags.items()},
        separators=(",", ":"),
    )


def _cast(target: str) -> str:
    if target.startswith("ChargePeriod"):
        return "TIMESTAMP"
    return "DOUBLE" if target.endswith(("Cost", "Quantity")) else "VARCHAR"


def _cur2_frame(
    con: Any, path: str, present: set[str], first: datetime, last: datetime, name: str
) -> pd.DataFrame:
    def col(column: str, default: str = "NULL") -> str:
        return f'"{column}"' if column in present else default

    kind = col("line_item_line_item_type")
    select = [
        f"CAST({col(source)} AS {_cast(target)}) AS {target}"
        for target, source in CUR2_COLUMNS.items()
    ]
    select.append(f"{_CHARGE_CATEGORY.format(t=kind)} AS ChargeCategory")
    effective = _EFFECTIVE_COST.format(
        t=kind,
        sp_effective=col("savings_plan_savings_plan_effective_cost", "0"),
        sp_total=col("savings_plan_total_commitment_to_date", "0"),
        sp_used=col("savings_plan_used_commitment", "0"),
        ri_effective=col("reservation_effective_cost", "0"),
        ri_unused_upfront=col("reservation_unused_amortized_upfront_fee_for_billing_period", "0"),
        ri_unused_recurring=col("reservation_unused_recurring_fee", "0"),
        unblended=col("line_item_unblended_cost"),
    )
    select.append(f"CAST({effective} AS DOUBLE) AS EffectiveCost")
    if "resource_tags" in present:
        select.append(
            "CASE WHEN resource_tags IS NULL OR cardinality(resource_tags) = 0 THEN NULL "
            "ELSE CAST(to_json(resource_tags) AS VARCHAR) END AS Tags"
        )
    sql = (
        f"SELECT {', '.join(select)} FROM read_parquet(?) "
        "WHERE line_item_usage_start_date >= ? AND line_item_usage_start_date < ?"
    )
    import duckdb

    try:
        frame = con.execute(sql, [path, first, last]).df()
    except duckdb.Error as err:
        raise ProviderError(f"{name}: cannot read as CUR 2.0 ({err})", provider=PROVIDER) from err
    frame["ProviderName"] = PROVIDER_NAME
    frame["x_Cloud"] = "aws"
    frame["x_Source"] = name
    if "Tags" in frame.columns:
        frame["Tags"] = frame["Tags"].map(_user_tags)
    for column in COSTS.names:
        if column not in frame.columns:
            frame[column] = None
    ordered: pd.DataFrame = frame[COSTS.names]
    return ordered
