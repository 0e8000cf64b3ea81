"""How much the Azure provider adds on top of fetching its query pages.

A local Cost Management fake serves 31 days x N resources (paged with nextLink, 5,000 rows a
page). The baseline, measured in the same run, is fetching and JSON-decoding every page of the
same two queries through the same SDK client (transport + parse, no mapping); the measured run
is ``AzureProvider.costs`` (the same pages, plus the join of regions and the costs frame,
validated). The ratio is the provider's overhead over the bare API.

Run: .venv/bin/python benchmarks/azure_costs.py [resources]
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime, timedelta

from cloudbalance_azure import AzureProvider
from cloudbalance_azure._costs import CostQuery
from cloudbalance_azure.testing import SUB, AzureServer, FakeCredential, Usage, resource

DAYS = 31
START = datetime(2024, 3, 1)
END = START + timedelta(days=DAYS)


def build(server: AzureServer, resources: int) -> None:
    server.page_size = 5000
    server.usage = [
        Usage(
            date(2024, 3, 1) + timedelta(days=d),
            resource(f"vm-{r}", f"rg-{r % 20}"),
            "Virtual Machines",
            "EU West" if r % 2 else "US East",
            1.0 + (r % 7) + d / 10,
            1.0 + (r % 5),
            {"workload": f"w{r % 9}"},
        )
        for d in range(DAYS)
        for r in range(resources)
    ]


def main() -> None:
    resources = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    server = AzureServer()
    try:
        build(server, resources)
        provider = AzureProvider(
            subscription_id=SUB,
            credential=FakeCredential(),
            endpoint=server.url,
            amortized=False,
        )
        provider.costs(START, START + timedelta(days=1))  # warm-up: imports, client, token
        provider.costs(START, END)  # let the fake compute and cache its answers

        query = CostQuery(
            client=provider._cost_client(),
            scope=provider.scope,  # type: ignore[arg-type]
            endpoint=server.url,
            tag_keys=(),
            amortized=False,
            chunk_days=31,
            policy=provider.policy,
            sleep=provider.sleep,
        )
        by_service = [
            {"type": "Dimension", "name": "ResourceId"},
            {"type": "Dimension", "name": "ServiceName"},
        ]
        by_location = [
            {"type": "Dimension", "name": "ResourceId"},
            {"type": "Dimension", "name": "ResourceLocation"},
        ]
        t0 = time.perf_counter()
        rows = len(query._table("ActualCost", START, END, by_service).rows)
        rows += len(query._table("ActualCost", START, END, by_location).rows)
        baseline = time.perf_counter() - t0

        t0 = time.perf_counter()
        frame = provider.costs(START, END)
        measured = time.perf_counter() - t0
    finally:
        server.close()
    print(f"resources={resources} days={DAYS} cost rows={len(frame)} rows fetched={rows}")
    print(f"baseline (fetch + decode pages of both queries): {baseline:.3f} s")
    print(f"AzureProvider.costs (same pages + join + frame):  {measured:.3f} s")
    print(f"ratio measured/baseline: {measured / baseline:.2f}x")
    print(f"throughput: {len(frame) / measured:,.0f} cost rows/s")


if __name__ == "__main__":
    main()
