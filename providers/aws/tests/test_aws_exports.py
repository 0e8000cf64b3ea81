"""Data Exports in S3 (moto): FOCUS through the core reader, CUR 2.0 through our mapping."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import boto3
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cloudbalance_aws import AWSProvider
from cloudbalance_aws._exports import read_cur2

from cloudbalance.exceptions import CredentialsError, ProviderError
from cloudbalance.schema import validate_costs

BUCKET = "billing-exports"
PREFIX = "cur/focus-daily"


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def focus_table(days: list[datetime], cost: float) -> pa.Table:
    """A small FOCUS 1.0 file as AWS writes it (tz-aware timestamps, Tags as a MAP)."""
    rows = [(d, service, cost) for d in days for service in ("AmazonEC2", "AmazonS3")]
    return pa.table(
        {
            "BillingAccountId": ["111122223333"] * len(rows),
            "SubAccountId": ["444455556666"] * len(rows),
            "ChargePeriodStart": pa.array([r[0] for r in rows], pa.timestamp("ms", tz="UTC")),
            "ChargePeriodEnd": pa.array(
                [r[0] + pd.Timedelta(days=1) for r in rows], pa.timestamp("ms", tz="UTC")
            ),
            "ProviderName": ["AWS"] * len(rows),
            "ServiceName": [r[1] for r in rows],
            "RegionId": ["us-east-1"] * len(rows),
            "ChargeCategory": ["Usage"] * len(rows),
            "BilledCost": [r[2] for r in rows],
            "EffectiveCost": [r[2] * 0.8 for r in rows],
            "BillingCurrency": ["USD"] * len(rows),
            "Tags": pa.array(
                [[("user:workload", "checkout"), ("aws:createdBy", "ci")]] * len(rows),
                pa.map_(pa.string(), pa.string()),
            ),
        }
    )


def cur2_table() -> pa.Table:
    """CUR 2.0 line items: usage, Savings-Plan-covered usage and its negation, a tax line."""
    start = datetime(2024, 3, 5)
    kinds = ["Usage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "Tax"]
    n = len(kinds)
    return pa.table(
        {
            "bill_payer_account_id": ["111122223333"] * n,
            "line_item_usage_account_id": ["444455556666"] * n,
            "line_item_usage_start_date": pa.array([start] * n, pa.timestamp("ms")),
            "line_item_usage_end_date": pa.array(
                [start + pd.Timedelta(hours=1)] * n, pa.timestamp("ms")
            ),
            "line_item_line_item_type": kinds,
            "line_item_product_code": ["AmazonEC2"] * n,
            "line_item_resource_id": ["i-0abc", "i-0def", "i-0def", ""],
            "product_region_code": ["eu-west-1", "eu-west-1", "eu-west-1", None],
            "product_sku": ["SKU1", "SKU2", "SKU2", None],
            "line_item_usage_amount": [1.0, 1.0, 1.0, 0.0],
            "pricing_unit": ["Hrs", "Hrs", "Hrs", None],
            "pricing_public_on_demand_cost": [0.2, 0.2, 0.0, 0.0],
            "line_item_unblended_cost": [0.2, 0.2, -0.2, 0.05],
            "savings_plan_savings_plan_effective_cost": [0.0, 0.12, 0.0, 0.0],
            "line_item_currency_code": ["USD"] * n,
            "resource_tags": pa.array(
                [[("user_workload", "batch")], [], [], []], pa.map_(pa.string(), pa.string())
            ),
        }
    )


@pytest.fixture
def s3(moto: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_focus_export_is_read_for_the_billing_periods_of_the_window(s3: Any) -> None:
    march = [datetime(2024, 3, d) for d in (4, 5, 6)]
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}/data/BILLING_PERIOD=2024-03/focus-00001.snappy.parquet",
        Body=_parquet(focus_table(march, 2.0)),
    )
    # Outside the window: never downloaded, so its broken content cannot matter.
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}/data/BILLING_PERIOD=2024-01/focus-00001.snappy.parquet",
        Body=b"not parquet",
    )
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/metadata/manifest.json", Body=b"{}")
    provider = AWSProvider(source="export", export_bucket=BUCKET, export_prefix=PREFIX)
    frame = validate_costs(provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 7)))
    assert len(frame) == 4
    assert sorted(frame["ChargePeriodStart"].dt.day.unique()) == [5, 6]
    assert set(frame["ProviderName"]) == {"Amazon Web Services"}
    assert set(frame["BillingAccountId"]) == {"111122223333"}
    assert frame["EffectiveCost"].sum() == pytest.approx(6.4)
    # user-defined tags under the name Cost Explorer uses; AWS-generated ones keep their prefix
    assert json.loads(frame["Tags"].iloc[0]) == {"workload": "checkout", "aws:createdBy": "ci"}
    assert set(frame["x_Source"]) == {
        f"s3://{BUCKET}/{PREFIX}/data/BILLING_PERIOD=2024-03/focus-00001.snappy.parquet"
    }
    assert set(frame["x_Cloud"]) == {"aws"}


def test_export_without_files_for_the_window_is_empty(s3: Any) -> None:
    provider = AWSProvider(source="export", export_bucket=BUCKET, export_prefix=PREFIX)
    assert len(provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 7))) == 0


def test_broken_export_file_names_the_s3_object(s3: Any) -> None:
    key = f"{PREFIX}/data/BILLING_PERIOD=2024-03/focus-00001.snappy.parquet"
    table = focus_table([datetime(2024, 3, 5)], 1.0).drop_columns(["BilledCost"])
    s3.put_object(Bucket=BUCKET, Key=key, Body=_parquet(table))
    provider = AWSProvider(source="export", export_bucket=BUCKET, export_prefix=PREFIX)
    with pytest.raises(ProviderError, match=rf"s3://{BUCKET}/{key}"):
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))


def test_missing_bucket_is_a_provider_error(moto: None) -> None:
    provider = AWSProvider(source="export", export_bucket="nowhere", export_prefix=PREFIX)
    with pytest.raises(ProviderError, match="list_objects_v2 failed \\(NoSuchBucket\\)"):
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))


def test_denied_download_names_s3_get_object(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.stub import Stubber

    s3.put_object(
        Bucket=BUCKET,
        Key=f"{PREFIX}/data/BILLING_PERIOD=2024-03/part-1.parquet",
        Body=_parquet(focus_table([datetime(2024, 3, 5)], 1.0)),
    )
    provider = AWSProvider(source="export", export_bucket=BUCKET, export_prefix=PREFIX)
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    listing.pop("ResponseMetadata")
    client = boto3.client("s3", region_name="us-east-1")
    provider.clients.register("s3", "us-east-1", client)
    stubber = Stubber(client)
    stubber.add_response("list_objects_v2", listing)
    stubber.add_client_error("get_object", "AccessDenied", http_status_code=403)
    stubber.activate()
    with pytest.raises(CredentialsError, match="grant s3:GetObject"):
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))


def test_cur2_export_maps_line_items_and_amortises_savings_plans(s3: Any) -> None:
    key = f"{PREFIX}/data/BILLING_PERIOD=2024-03/cur2-00001.snappy.parquet"
    s3.put_object(Bucket=BUCKET, Key=key, Body=_parquet(cur2_table()))
    provider = AWSProvider(
        source="export", export_bucket=BUCKET, export_prefix=PREFIX, export_format="cur2"
    )
    frame = validate_costs(provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6)))
    assert list(frame["ChargeCategory"]) == ["Usage", "Usage", "Credit", "Tax"]
    assert frame["BilledCost"].sum() == pytest.approx(0.25)
    # Usage 0.2 + SP-covered at its effective rate 0.12 + negation 0 + tax 0.05.
    assert frame["EffectiveCost"].tolist() == pytest.approx([0.2, 0.12, 0.0, 0.05])
    assert frame["ListCost"].iloc[0] == pytest.approx(0.2)
    assert json.loads(frame["Tags"].iloc[0]) == {"workload": "batch"}
    assert frame["Tags"].iloc[1] is None
    assert frame["RegionId"].iloc[0] == "eu-west-1"
    assert frame["SubAccountId"].iloc[0] == "444455556666"
    assert set(frame["x_Source"]) == {f"s3://{BUCKET}/{key}"}


def test_cur2_reader_names_the_file_and_missing_column(tmp_path: Any) -> None:
    path = tmp_path / "focus.parquet"
    pq.write_table(focus_table([datetime(2024, 3, 5)], 1.0), path)
    with pytest.raises(ProviderError, match="'line_item_usage_start_date' is missing"):
        read_cur2([path], datetime(2024, 3, 1), datetime(2024, 4, 1))


def test_cur2_reader_rejects_a_file_that_is_not_parquet(tmp_path: Any) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(ProviderError, match=r"broken\.parquet: not a readable Parquet file"):
        read_cur2([path], datetime(2024, 3, 1), datetime(2024, 4, 1))


def test_check_lists_the_export_bucket(s3: Any) -> None:
    provider = AWSProvider(source="export", export_bucket=BUCKET, export_prefix=PREFIX)
    result = provider.check()
    assert result.ok, result
    assert f"export s3://{BUCKET}/{PREFIX}" in result.detail


def test_check_reports_a_missing_export_bucket(moto: None) -> None:
    result = AWSProvider(source="export", export_bucket="nowhere").check()
    assert not result.ok
    assert "NoSuchBucket" in result.missing
