"""Start-up time of the command line, against a bare ``python -c pass`` measured in the same run.

``cloudbalance --version`` and ``--help`` must answer in under 0.3 s in a fresh process: the
version without the command-line framework, the help without pandas, numpy, DuckDB or rich.
Each command is started ``--repeat`` times; the median wall time and the median CPU time
(user + system of the child) are printed, with the ratio to the interpreter's own start-up.
On a shared, loaded machine the wall time mostly measures the queue for a core: the budget is
then judged on CPU time, which the load changes much less.

    python -m uv run --no-sync python benchmarks/startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

_BUDGET = 0.3  # seconds, per the CLI contract

CASES: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "cloudbalance --version": [sys.executable, "-m", "cloudbalance.cli", "--version"],
    "cloudbalance --help": [sys.executable, "-m", "cloudbalance.cli", "--help"],
    "cloudbalance costs --help": [sys.executable, "-m", "cloudbalance.cli", "costs", "--help"],
    "import pandas (for scale)": [sys.executable, "-c", "import pandas"],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeat`` fresh processes (after one warm-up run)."""
    subprocess.run(argv, check=True, capture_output=True)
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, start = _children_cpu(), time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    """Print one line per case; exit 1 when --version or --help is over the budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    base = measure(CASES["python -c pass"], args.repeat)
    over = []
    print(f"{'case':<28} {'wall s':>8} {'x python':>9} {'cpu s':>7} {'x python':>9}")
    for name, argv in CASES.items():
        wall, cpu = base if name == "python -c pass" else measure(argv, args.repeat)
        print(
            f"{name:<28} {wall:8.3f} {wall / base[0]:9.1f} {cpu:7.3f} "
            f"{cpu / max(base[1], 1e-3):9.1f}"
        )
        if name in ("cloudbalance --version", "cloudbalance --help") and cpu > _BUDGET:
            over.append(name)
    if over:
        print(f"over the {_BUDGET} s budget: {', '.join(over)}")
        return 1
    print(f"--version and --help within the {_BUDGET} s budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
