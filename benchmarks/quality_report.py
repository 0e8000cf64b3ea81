"""Quality on real telemetry: the shared scorers run against the current code, with references.

Runs the two scorers of ``../shared/data/telemetry/`` (relative to the repository root), each of
which drives a command through cloudbalance's CLI contract, and their reference methods in the
same run:

- ``score_anomalies.py --cmd "cloudbalance anomalies"`` vs ``--ref zscore`` (a rolling z-score):
  window recall, false alarms per 1,000 points, precision, on NAB's labelled series;
- ``score_forecasts.py --cmd "cloudbalance forecast"`` vs ``--ref naive`` (seasonal naive):
  MASE ratio vs seasonal naive and coverage of the 80% interval, on hourly tweet volumes and
  daily pedestrian counts at rolling origins.

Prints one table: what each scorer measured for the reference and for cloudbalance, next to the
targets. The data is read in place, never copied. Spike warnings have their own benchmark
(``benchmarks/spike_warnings.py``), since it compares with plain Prophet fitted in-process.

Run: ``python benchmarks/quality_report.py [--telemetry ../shared/data/telemetry]``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

TELEMETRY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "telemetry"

TARGETS = {
    "anomalies": "recall >= 0.80, false alarms <= 2, precision >= 0.50",
    "forecasts": "ratio <= 0.85, coverage 0.78-0.85",
}


def cli() -> str:
    """The ``cloudbalance`` command of this environment (next to this Python)."""
    script = Path(sys.executable).with_name("cloudbalance")
    if not script.exists():
        sys.exit(f"no cloudbalance command next to {sys.executable}; install the project first")
    return shlex.quote(str(script))


def run(scorer: Path, *args: str) -> tuple[str, float]:
    """Run a scorer with this Python; its last line and the seconds it took."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(scorer), *args], capture_output=True, text=True, check=False
    )
    took = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return "failed: " + " | ".join(tail), took
    return lines[-1], took


def anomaly_numbers(line: str) -> str:
    m = re.search(
        r"window recall ([\d.]+).*false alarms ([\d.]+) per 1000 points; precision ([\d.]+)", line
    )
    return f"{m.group(1)} / {m.group(2)} / {m.group(3)}" if m else line


def forecast_numbers(line: str) -> str:
    m = re.search(
        r"seasonal naive ([\d.]+) over \d+ windows; 80% interval coverage ([\d.-]+)", line
    )
    return f"{m.group(1)} / {m.group(2)}" if m else line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--telemetry", type=Path, default=TELEMETRY, help="The telemetry folder.")
    args = ap.parse_args()
    folder: Path = args.telemetry
    if not (folder / "score_anomalies.py").is_file():
        sys.exit(f"no scorers in {folder}; pass --telemetry DIR")
    cmd = cli()
    rows = []
    ref, _ = run(folder / "score_anomalies.py", "--ref", "zscore")
    got, t_got = run(folder / "score_anomalies.py", "--cmd", f"{cmd} anomalies")
    rows.append(
        (
            "anomalies: recall / false alarms per 1,000 / precision",
            f"rolling z-score {anomaly_numbers(ref)}",
            anomaly_numbers(got),
            TARGETS["anomalies"],
            t_got,
        )
    )
    ref, _ = run(folder / "score_forecasts.py", "--ref", "naive")
    got, t_got = run(folder / "score_forecasts.py", "--cmd", f"{cmd} forecast")
    rows.append(
        (
            "forecasts: MASE ratio vs seasonal naive / 80% coverage",
            f"seasonal naive {forecast_numbers(ref)}",
            forecast_numbers(got),
            TARGETS["forecasts"],
            t_got,
        )
    )
    print("| scorer | reference | cloudbalance | target | seconds |")
    print("|---|---|---|---|---|")
    for scorer, reference, value, target, took in rows:
        print(f"| {scorer} | {reference} | {value} | {target} | {took:.0f} |")


if __name__ == "__main__":
    main()
