"""How much the AWS provider adds on top of fetching its Cost Explorer pages.

moto's Cost Explorer serves DAYS days x N groups (workload tag x region), in pages of 30 days
chained by NextPageToken. The baseline, measured in the same run, is fetching every page of the
same request through a bare boto3 client (transport + parse, no mapping); the measured run is
``AWSProvider.costs`` (the same pages, plus the mapping onto the costs frame, validated). The
ratio is the provider's overhead over the bare API.

Run: .venv/bin/python benchmarks/aws_costs.py [groups]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from typing import Any

DAYS = 90
PAGE_DAYS = 30


def _today() -> datetime:
    now = datetime.now()
    return datetime(now.year, now.month, now.day)


def pages(start: datetime, groups: int) -> list[dict[str, Any]]:
    regions = ["us-east-1", "eu-west-1", "eu-central-1", "ap-south-1"]
    out: list[dict[str, Any]] = []
    for page in range(DAYS // PAGE_DAYS):
        results = []
        for d in range(page * PAGE_DAYS, (page + 1) * PAGE_DAYS):
            day = start + timedelta(days=d)
            results.append(
                {
                    "TimePeriod": {
                        "Start": day.strftime("%Y-%m-%d"),
                        "End": (day + timedelta(days=1)).strftime("%Y-%m-%d"),
                    },
                    "Total": {},
                    "Groups": [
                        {
                            "Keys": [f"workload$w{g // 4}", regions[g % 4]],
                            "Metrics": {
                                "UnblendedCost": {"Amount": f"{1 + g / 7:.10f}", "Unit": "USD"},
                                "AmortizedCost": {"Amount": f"{1 + g / 9:.10f}", "Unit": "USD"},
                                "UsageQuantity": {"Amount": f"{g:.4f}", "Unit": "N/A"},
                            },
                        }
                        for g in range(groups)
                    ],
                    "Estimated": False,
                }
            )
        entry: dict[str, Any] = {"ResultsByTime": results, "DimensionValueAttributes": []}
        if page + 1 < DAYS // PAGE_DAYS:
            entry["NextPageToken"] = f"page-{page + 1}"
        out.append(entry)
    return out


def main() -> None:
    groups = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ[name] = value
    import boto3
    import requests
    from cloudbalance_aws import AWSProvider
    from moto import mock_aws

    start = _today() - timedelta(days=DAYS + 1)
    end = start + timedelta(days=DAYS)
    with mock_aws():
        answer = requests.post(
            "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results",
            json={"results": pages(start, groups)},
            timeout=30,
        )
        assert answer.status_code == 201
        provider = AWSProvider(billing_account_id="111122223333")
        frame = provider.costs(start, end)  # warm-up; moto now answers these requests from cache
        assert len(frame) == DAYS * groups, len(frame)

        client = boto3.client("ce", region_name="us-east-1")
        params: dict[str, Any] = {
            "TimePeriod": {"Start": start.strftime("%Y-%m-%d"), "End": end.strftime("%Y-%m-%d")},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost", "AmortizedCost", "UsageQuantity"],
            "GroupBy": [{"Type": "TAG", "Key": "workload"}, {"Type": "DIMENSION", "Key": "REGION"}],
        }

        def bare() -> int:
            rows, token = 0, None
            while True:
                page = client.get_cost_and_usage(
                    **params, **({"NextPageToken": token} if token else {})
                )
                rows += sum(len(r["Groups"]) for r in page["ResultsByTime"])
                token = page.get("NextPageToken")
                if not token:
                    return rows

        bare()
        t0 = time.perf_counter()
        rows = bare()
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        frame = provider.costs(start, end)
        measured = time.perf_counter() - t0
    assert rows == len(frame), (rows, len(frame))
    print(f"aws costs: {DAYS} days x {groups} groups = {rows:,} rows in {DAYS // PAGE_DAYS} pages")
    print(f"baseline (bare boto3 client, pages fetched and parsed): {baseline:.3f} s")
    print(f"AWSProvider.costs (same pages + costs frame, validated):  {measured:.3f} s")
    print(f"ratio provider / bare API: {measured / baseline:.2f}x")
    print(f"mapping throughput: {rows / max(measured - baseline, 1e-9):,.0f} rows/s over the API")


if __name__ == "__main__":
    main()
