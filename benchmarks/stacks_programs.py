"""How the stack templates scale, measured against baselines taken in the same run.

1. ``cloudbalance stack init``: generating and validating a project, against a bare copy of the
   template directory (``shutil.copytree``), so the ratio is the cost of the checks.
2. The service and batch programs under the Pulumi mocks (what ``pulumi preview`` runs, minus the
   engine and the clouds): a stack of many workloads against a stack of one, per workload, so a
   ratio near 1 means declaring stays linear in the number of workloads.

Run: ``.venv/bin/python benchmarks/stacks_programs.py``.
"""

from __future__ import annotations

import json
import runpy
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings as pulumi_settings

from cloudbalance.stacks import TEMPLATES, init_stack, template_dir

REPO = Path(__file__).resolve().parents[1]
SDK_WARNINGS = r"pulumi_(aws|azure_native|gcp)(\..*)?$"
MANY = 20


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.count = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.count += 1
        outputs = dict(args.inputs)
        outputs.setdefault("name", args.name)
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {"id": "vpc-1", "ids": ["subnet-a"], "value": "ami-1"}


def best_of(repeats: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_program(project: str, workloads: dict[str, Any]) -> int:
    directory = REPO / "stacks" / project
    modules = {p.stem for p in directory.glob("*.py")}
    for module in modules:
        sys.modules.pop(module, None)
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    pulumi_settings.ROOT.set(None)
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project=project, stack="bench", preview=False)
    pulumi.runtime.set_all_config({"cloudbalance:workloads": json.dumps(workloads)}, [])

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(directory / "__main__.py"), run_name="__main__")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=SDK_WARNINGS)
        program()
    sys.path.remove(str(directory))
    return mocks.count


def workloads(project: str, count: int) -> dict[str, Any]:
    placements = [
        {"cloud": "aws", "region": "us-east-1", "replicas": 4},
        {"cloud": "azure", "region": "westeurope", "replicas": 2},
        {"cloud": "gcp", "region": "us-central1", "replicas": 0},
    ]
    if project == "service":
        spec: dict[str, Any] = {"image": "ghcr.io/acme/app:1", "cpu": 0.5, "memory_gib": 1}
        spec["dns"] = {"zone_id": "Z0EXAMPLE", "name": "app.example.com"}
    else:
        spec = {"image": "ghcr.io/acme/worker:1", "spot": True, "azure": {"ssh_public_key": "k"}}
    return {f"w{i:03d}": {**spec, "placements": placements} for i in range(count)}


def bench_init() -> None:
    print("stack init (generate + validate) vs bare copy of the template")
    for template in TEMPLATES:
        with tempfile.TemporaryDirectory() as tmp:
            targets = (Path(tmp) / f"p{i}" for i in range(10_000))
            copy = partial(_copy, template_dir(template), targets)
            init = partial(_init, template, targets)
            init()  # warm the schema caches, as a second run would
            baseline = best_of(15, copy)
            measured = best_of(15, init)
        print(
            f"  {template:8s} copytree {baseline * 1e3:7.2f} ms   init {measured * 1e3:7.2f} ms"
            f"   ratio {measured / baseline:5.2f}x"
        )


def _copy(source: Path, targets: Iterator[Path]) -> None:
    shutil.copytree(source, next(targets))


def _init(template: str, targets: Iterator[Path]) -> None:
    init_stack(template, next(targets))


def bench_programs() -> None:
    print(f"program under mocks: {MANY} workloads x 3 placements vs 1 workload, per workload")
    for project in ("service", "batch"):
        one_workload = partial(run_program, project, workloads(project, 1))
        many_workloads = partial(run_program, project, workloads(project, MANY))
        one_workload()  # imports the SDK modules once
        resources_one = one_workload()
        one = best_of(3, one_workload)
        resources_many = many_workloads()
        many = best_of(2, many_workloads)
        per_workload = many / MANY
        print(
            f"  {project:8s} 1 workload {one * 1e3:8.1f} ms ({resources_one} resources)   "
            f"{MANY} workloads {many * 1e3:8.1f} ms ({resources_many} resources)   "
            f"per workload {per_workload * 1e3:7.1f} ms   ratio {per_workload / one:5.2f}x"
        )


if __name__ == "__main__":
    bench_init()
    bench_programs()
