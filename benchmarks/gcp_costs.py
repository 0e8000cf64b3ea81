"""Aggregating in BigQuery vs pulling the export rows: rows transferred and wall time.

Runs the GCP provider's real BigQuery client against the offline BigQuery fake (queries are
transpiled to DuckDB and answered over HTTP, 5,000 rows a page as JSON, like the real API).
Baseline, measured in the same run: select the needed columns of every export row in the window
and group them in pandas on the client, which is what a naive exporter does.

    .venv/bin/python benchmarks/gcp_costs.py [days]
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta

import pandas as pd
from cloudbalance_gcp import GCPProvider
from cloudbalance_gcp.testing import FakeBigQuery
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

TABLE = "bench-proj.billing.gcp_billing_export_v1_0A1B2C_3D4E5F_6A7B8C"
PROJECTS, SKUS = 7, 20


def export_rows(days: int) -> list[dict[str, object]]:
    start = datetime(2024, 1, 1)
    rows: list[dict[str, object]] = []
    for hour in range(days * 24):
        when = start + timedelta(hours=hour)
        for p in range(PROJECTS):
            for s in range(SKUS):
                rows.append(
                    {
                        "billing_account_id": "0A1B2C-3D4E5F-6A7B8C",
                        "service": {"id": f"S{s % 4}", "description": f"Service {s % 4}"},
                        "sku": {"id": f"SKU-{s}", "description": f"sku {s}"},
                        "usage_start_time": when.isoformat(sep=" "),
                        "usage_end_time": (when + timedelta(hours=1)).isoformat(sep=" "),
                        "project": {"id": f"project-{p}"},
                        "labels": [{"key": "workload", "value": f"w{(p + s) % 5}"}],
                        "location": {"region": ("us-central1", "europe-west1")[s % 2]},
                        "cost": 0.01 * (1 + s) * (1 + p),
                        "currency": "USD",
                        "usage": {
                            "amount": 3600.0,
                            "unit": "seconds",
                            "amount_in_pricing_units": 1.0,
                            "pricing_unit": "hour",
                        },
                        "credits": [{"name": "SUD", "amount": -0.001 * (1 + s)}]
                        if s % 3 == 0
                        else [],
                        "cost_type": "regular",
                        "cost_at_list": 0.012 * (1 + s) * (1 + p),
                        "_PARTITIONTIME": when.replace(hour=0).isoformat(sep=" "),
                    }
                )
    return rows


RAW_SQL = f"""
SELECT usage_start_time, billing_account_id, project.id AS project_id, location.region AS region,
       service.description AS service, sku.id AS sku, cost_type, currency, usage.amount AS amount,
       cost, cost_at_list,
       (SELECT l.value FROM UNNEST(labels) AS l WHERE l.key = 'workload' LIMIT 1) AS workload,
       (SELECT SUM(c.amount) FROM UNNEST(credits) AS c) AS credits
FROM `{TABLE}`
WHERE usage_start_time >= @start AND usage_start_time < @end
"""


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 14
    rows = export_rows(days)
    start, end = datetime(2024, 1, 1), datetime(2024, 1, 1) + timedelta(days=days)
    with FakeBigQuery(project="bench-proj", page_size=5000) as bq:
        bq.add_export(TABLE, rows)
        creds = AnonymousCredentials()

        provider = GCPProvider(
            billing_table=TABLE,
            labels=["workload"],
            bigquery_endpoint=bq.endpoint,
            credentials=creds,
            project="bench-proj",
        )
        provider.costs(start, start + timedelta(days=1))  # warm imports and connections
        t0 = time.perf_counter()
        ours = provider.costs(start, end)
        ours_s = time.perf_counter() - t0

        from google.api_core.client_options import ClientOptions

        client = bigquery.Client(
            project="bench-proj",
            credentials=creds,
            client_options=ClientOptions(api_endpoint=bq.endpoint),
        )
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("start", "TIMESTAMP", start),
                bigquery.ScalarQueryParameter("end", "TIMESTAMP", end),
            ]
        )
        t0 = time.perf_counter()
        raw = client.query_and_wait(
            RAW_SQL, job_config=config, retry=None, job_retry=None, page_size=5000
        )
        frame = pd.DataFrame([dict(r.items()) for r in raw])
        frame["day"] = frame["usage_start_time"].dt.floor("D")
        keys = [
            "day",
            "billing_account_id",
            "project_id",
            "region",
            "service",
            "sku",
            "cost_type",
            "currency",
            "workload",
        ]
        base = frame.groupby(keys, dropna=False)[
            ["amount", "cost", "cost_at_list", "credits"]
        ].sum()
        base_s = time.perf_counter() - t0

    usage = ours[ours["ChargeCategory"] == "Usage"]
    assert abs(usage["BilledCost"].sum() - base["cost"].sum()) < 1e-6, "totals differ"
    assert abs(ours["EffectiveCost"].sum() - base["cost"].sum() - base["credits"].sum()) < 1e-6
    print(
        f"export rows in window: {len(frame):,} "
        f"({days} days x 24 h x {PROJECTS} projects x {SKUS} SKUs)"
    )
    print(
        f"baseline (pull rows, group in pandas): {len(frame):>9,} rows transferred  {base_s:7.2f} s"
    )
    print(
        f"cloudbalance-gcp (group in BigQuery):  {len(ours):>9,} rows transferred  {ours_s:7.2f} s"
    )
    print(
        f"rows transferred: {len(frame) / len(ours):.0f}x fewer; "
        f"wall time: {base_s / ours_s:.1f}x faster"
    )


if __name__ == "__main__":
    main()
