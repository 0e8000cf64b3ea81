"""Soak: the daily loop over 60 simulated days, and the time each simulated day takes.

Plays :class:`cloudbalance.demo.soak.Soak` (three clouds' FOCUS exports landing every day with
restatements, a cloud a day late, spot price spikes, a person's edit and a run killed during its
apply every ten days; ``cloudbalance run --as-of DAY`` each day) in a temporary folder, then
prints per day the exit code, the faults and the wall time, and at the end:

- seconds per simulated day (mean, median, slowest) and the ratio of the last ten days to the
  first ten (after day one's initial sync): a daily job must not slow down as its store grows;
- the days whose checks found a problem (infra repo not clean and pushed, store differing from
  the newest exports, saving figures that disagree).

Run: ``python benchmarks/soak.py [DAYS] [--keep FOLDER]`` (default 60 days).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from cloudbalance.demo.soak import Soak

    days = int(argv[0]) if argv and argv[0].isdigit() else 60
    keep = Path(argv[argv.index("--keep") + 1]) if "--keep" in argv else None
    with tempfile.TemporaryDirectory(prefix="cloudbalance-soak-") as tmp:
        folder = keep or Path(tmp) / "work"
        soak = Soak(folder, days=days)
        began = time.perf_counter()
        soak.prepare()
        print(f"prepared {folder} in {time.perf_counter() - began:.1f} s", flush=True)
        print(f"{'day':<10} {'exit':>4} {'s':>6}  faults / problems", flush=True)
        for index in range(days):
            result = soak.run_day(index)
            check = soak.checks[-1]
            problems = [*check.infra, *check.store[:2], *check.savings]
            flag = f" !! {len(problems)} problem(s): {problems[0][:90]}" if problems else ""
            killed = " (killed)" if result.killed else ""
            print(
                f"{result.day!s:<10} {result.exit_code:>4} {result.seconds:6.1f}  "
                f"{' '.join(result.faults)}{killed}{flag}",
                flush=True,
            )
        total = time.perf_counter() - began
    times = [r.seconds for r in soak.results]
    later = times[1:]
    print()
    print(f"{days} simulated days in {total:.1f} s")
    print(
        f"per simulated day: mean {statistics.mean(times):.2f} s, median "
        f"{statistics.median(times):.2f} s, slowest {max(times):.2f} s "
        f"({soak.results[times.index(max(times))].day})"
    )
    if len(later) >= 20:
        first, last = statistics.mean(later[:10]), statistics.mean(later[-10:])
        print(f"last 10 days / first 10 days (after day one): {last / first:.2f}x")
    exits = [r.exit_code for r in soak.results if not r.killed]
    print(
        f"runs exiting 0: {exits.count(0)}/{len(exits)} (not counting the "
        f"{sum(r.killed for r in soak.results)} killed)"
    )
    bad = [c for c in soak.checks if c.infra or c.store or c.savings]
    print(f"days with a failed check: {len(bad)}/{days}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
