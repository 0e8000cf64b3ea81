"""Ingest throughput: `cloudbalance ingest` vs a bare DuckDB `read_parquet` into a table.

Generates a FOCUS 1.2 Parquet export of N rows (default 5,000,000; JSON tags, several
providers, accounts, regions and services), then, in the same run and on the same file:

- baseline: ``CREATE TABLE t AS SELECT * FROM read_parquet(file)`` into a fresh DuckDB file;
- cloudbalance: ``cloudbalance ingest file`` as a user runs it (a new process, with its config:
  validation scan, typing, workload attribution from tags and rules, the idempotent replace,
  one transaction), into a fresh store.

Each is run ``--repeat`` times, alternating, and the best time of each is kept (the machines are
noisy). Prints rows/s of both and the ratio; the target is a ratio of at least 0.5.

    python benchmarks/bench_ingest.py [--rows 5000000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WORKLOADS = ["checkout", "search", "etl", "training", "auth", "payments", "media", "ads"]
PROVIDERS = [
    ("Amazon Web Services", "123456789012"),
    ("Microsoft", "8611537"),
    ("Google Cloud", "01A2B3-C4D5E6-F7A8B9"),
]
REGIONS = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "westeurope",
    "eastus",
    "us-central1",
    "europe-west1",
]
SERVICES = ["Compute", "Storage", "Networking", "Databases"]


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """Write a FOCUS Parquet export of ``rows`` rows (vectorised, a few seconds)."""
    rng = np.random.default_rng(seed)
    day = rng.integers(0, 365, rows)
    start = (np.datetime64("2025-01-01T00:00:00", "us") + day.astype("timedelta64[D]")).astype(
        "datetime64[us]"
    )
    provider = rng.integers(0, len(PROVIDERS), rows)
    workload = rng.integers(0, len(WORKLOADS) + 1, rows)  # the last index: untagged
    tags = [json.dumps({"workload": w, "env": "prod"}) for w in WORKLOADS] + [
        json.dumps({"env": "prod"})
    ]
    cost = np.round(rng.gamma(2.0, 3.0, rows), 6)

    def dictionary(values: list[str], index: np.ndarray) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(index, type=pa.int32()), pa.array(values))

    table = pa.table(
        {
            "ChargePeriodStart": pa.array(start, type=pa.timestamp("us", tz="UTC")),
            "ChargePeriodEnd": pa.array(
                start + np.timedelta64(1, "D"), type=pa.timestamp("us", tz="UTC")
            ),
            "ProviderName": dictionary([p for p, _ in PROVIDERS], provider),
            "BillingAccountId": dictionary([a for _, a in PROVIDERS], provider),
            "SubAccountId": dictionary([f"sub-{i}" for i in range(20)], rng.integers(0, 20, rows)),
            "RegionId": dictionary(REGIONS, rng.integers(0, len(REGIONS), rows)),
            "ServiceCategory": dictionary(SERVICES, rng.integers(0, len(SERVICES), rows)),
            "ServiceName": dictionary([f"svc-{i}" for i in range(40)], rng.integers(0, 40, rows)),
            "ResourceId": pa.array(np.char.add("res-", rng.integers(0, 200_000, rows).astype(str))),
            "SkuId": dictionary([f"sku-{i}" for i in range(300)], rng.integers(0, 300, rows)),
            "ChargeCategory": dictionary(
                ["Usage", "Purchase", "Credit", "Tax"],
                rng.choice(4, rows, p=[0.94, 0.03, 0.02, 0.01]),
            ),
            "ConsumedQuantity": rng.gamma(2.0, 10.0, rows),
            "ConsumedUnit": dictionary(["Hours", "GB-Month", "Requests"], rng.integers(0, 3, rows)),
            "PricingQuantity": rng.gamma(2.0, 10.0, rows),
            "PricingUnit": dictionary(["Hours", "GB-Month", "Requests"], rng.integers(0, 3, rows)),
            "ListCost": cost * 1.2,
            "BilledCost": cost,
            "EffectiveCost": cost * 0.9,
            "BillingCurrency": dictionary(["USD"], np.zeros(rows, dtype=np.int32)),
            "Tags": dictionary(tags, workload),
        }
    )
    pq.write_table(table, path, row_group_size=1_000_000)


def bare(path: Path, folder: Path) -> float:
    db = folder / "bare.duckdb"
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}')")
    con.close()
    return time.perf_counter() - started


def cloudbalance_ingest(path: Path, folder: Path) -> float:
    project = folder / "project"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    (project / "cloudbalance.yaml").write_text(
        "workloads:\n"
        + "".join(f"  {w}:\n    match: {{tags: [{w}]}}\n" for w in WORKLOADS[:4])
        + "  catch-all:\n    match: {resources: ['res-1999*']}\n"
    )
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cloudbalance.cli", "ingest", str(path)],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "focus.parquet"
        t = time.perf_counter()
        generate(path, args.rows)
        print(
            f"generated {args.rows:,} FOCUS rows ({path.stat().st_size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - t:.1f}s"
        )
        bare_times, ours = [], []
        for _ in range(args.repeat):
            bare_times.append(bare(path, folder))
            ours.append(cloudbalance_ingest(path, folder))
        b, o = min(bare_times), min(ours)
        print(f"{'':<34}{'best s':>8}{'rows/s':>14}")
        print(f"{'bare DuckDB read_parquet -> table':<34}{b:>8.2f}{args.rows / b:>14,.0f}")
        print(f"{'cloudbalance ingest (CLI)':<34}{o:>8.2f}{args.rows / o:>14,.0f}")
        print(f"ratio (cloudbalance / bare throughput): {b / o:.2f} (target >= 0.50)")


if __name__ == "__main__":
    main()
