"""Policy evaluation of a 5,000-move plan with the whole starter library (target: < 1 s).

Baseline, measured in the same run: the bare engine evaluating a trivial policy (one ``deny``
rule that reads the whole input and never fires) on the same input document, i.e. the cost of
handing the whole document to rego-cpp. The starter library reads only the fields it needs
(placements, settings, summary, costs, plan), which is why it can beat that baseline.

Times are medians of wall-clock and of process CPU time: on a shared machine the wall clock
includes waiting for a core, so both are printed, with the load average.

Run: ``python benchmarks/bench_policy.py``
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from datetime import date, datetime

from cloudbalance.config import FreezeWindow, GuardrailSettings, Settings
from cloudbalance.models import Location, Move, Placement, Plan, Workload
from cloudbalance.policy import PolicySet, plan_input

WORKLOADS = 1_000
LOCATIONS = (
    Location("aws", "us-east-1"),
    Location("aws", "eu-west-1"),
    Location("azure", "westeurope"),
    Location("gcp", "us-central1"),
    Location("gcp", "europe-west1"),
)
REPEAT = 3


def build() -> tuple[Plan, Settings]:
    current, first, moves = [], [], []
    for i in range(WORKLOADS):
        name = f"w{i:04d}"
        for j, loc in enumerate(LOCATIONS):
            before = 4 + (i + j) % 3
            after = before + (1 if (i + j) % 2 else -1)
            current.append(Placement(name, loc, before))
            first.append(Placement(name, loc, after))
            moves.append(Move(name, loc, before, after, saving=0.5, confidence=0.9))
    # A handful of workloads are EU-only: their US replicas break residency (10 denies).
    eu = tuple(Location.parse(t) for t in ("aws:eu-west-1", "azure:westeurope", "gcp:europe-west1"))
    workloads = {
        f"w{i:04d}": Workload(f"w{i:04d}", allowed=eu if i % 100 == 0 else (), min_locations=2)
        for i in range(WORKLOADS)
    }
    settings = Settings(
        workloads=workloads,
        guardrails=GuardrailSettings(
            max_share_moved=0.5,
            max_moves=10_000,
            freeze=(FreezeWindow(date(2026, 12, 20), date(2027, 1, 2), "year end"),),
            max_monthly_cost={"aws": 1e9, "azure": 1e9, "gcp": 1e9},
        ),
    )
    unit_costs = {loc.key: 1.0 + k / 10 for k, loc in enumerate(LOCATIONS)}
    plan = Plan(
        plan_id="bench",
        created_at=datetime(2026, 11, 23),
        period_start=datetime(2026, 11, 24),
        period="1D",
        horizon=14,
        current=tuple(current),
        schedule=(tuple(first),),
        moves=tuple(moves),
        expected_cost=1.0,
        baseline_cost=2.0,
        confidence=0.9,
        inputs={"unit_costs": unit_costs},
    )
    return plan, settings


def timed(fn: Callable[[], object], repeat: int = REPEAT) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of ``fn``."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    plan, settings = build()
    starter = PolicySet.load(starter=True)
    whole = PolicySet.from_sources(
        {"whole.rego": "package whole\n\nimport rego.v1\n\ndeny contains 1 if input == null\n"}
    )
    today = date(2026, 11, 23)
    document = plan_input(plan, settings=settings, mode="pr", now=today)
    report = starter.evaluate(document)
    print(
        f"plan: {len(plan.moves):,} moves over {WORKLOADS:,} workloads; "
        f"input document {len(json.dumps(document)) / 1e6:.1f} MB"
    )
    print(f"starter policies: {len(report.denies)} deny, {len(report.warnings)} warn")

    baseline = timed(lambda: whole.evaluate(document))
    evaluate = timed(lambda: starter.evaluate(document))
    end_to_end = timed(
        lambda: starter.evaluate(plan_input(plan, settings=settings, mode="pr", now=today))
    )
    print(
        f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    print(f"{'':44s} {'wall':>8s} {'cpu':>8s}  ratio (cpu) to baseline")
    rows = (
        ("baseline: trivial policy, whole input", baseline),
        ("starter library, input document prepared", evaluate),
        ("starter library, plan -> input -> report", end_to_end),
    )
    for label, (wall, cpu) in rows:
        print(f"{label:44s} {wall:7.3f}s {cpu:7.3f}s  {cpu / baseline[1]:.2f}x")
    verdict = "OK" if end_to_end[1] < 1.0 else "TOO SLOW"
    print(f"target < 1 s (cpu) for 5,000 moves, plan to report: {verdict}")


if __name__ == "__main__":
    main()
