"""Stack-file edit: cloudbalance's surgical edit vs a plain ruamel.yaml load/mutate/dump.

Both write the same new replicas into a hand-written stack file with many workloads (comments,
mixed flow and block placements, odd indentation, ``secure:`` values). The baseline is what a
first implementation would do: round-trip load, set the values, dump. Printed: time per edit
for each, the ratio, and how many lines each changes (the plan changes exactly ``expected``).

Run: ``python benchmarks/gitops_edit.py``
"""

from __future__ import annotations

import io
import time

from ruamel.yaml import YAML

from cloudbalance.gitops import edit_placements
from cloudbalance.gitops._diff import line_opcodes
from cloudbalance.gitops._stackfile import _validated
from cloudbalance.models import Location

WORKLOADS = 200
REPEAT = 5


def stack_file(n: int) -> str:
    lines = [
        "# Production stack: reviewed by the platform team.",
        "secretsprovider: awskms://alias/pulumi?region=us-east-1",
        "config:",
        "  aws:region: us-east-1      # home",
        "  app:db-password:",
        "    secure: AAABAKm3YlQ0rL7v/Ow0dB6bX8k5s3ZcYvH0W8v+Qe9a",
        "  cloudbalance:workloads:",
    ]
    for i in range(n):
        lines.append(f"    svc-{i}:   # owner: team-{i % 7}")
        lines.append(f"      image: 'ghcr.io/acme/svc-{i}:1.{i}'")
        lines.append("      placements:")
        if i % 2:
            lines.append("          - {cloud: aws, region: us-east-1, replicas: 4}   # primary")
            lines.append("          - {cloud: gcp,   region: us-central1, replicas: 2}")
        else:
            lines.append("      - cloud: aws")
            lines.append("        region: us-east-1")
            lines.append("        replicas: 4")
            lines.append("      - cloud: azure")
            lines.append("        region: westeurope")
            lines.append('        replicas: 1  # "warm" standby')
    return "\n".join(lines) + "\n"


def targets(n: int) -> dict[str, dict[Location, int]]:
    """Every fifth workload (flow and block styles alike) moves one replica off aws."""
    out: dict[str, dict[Location, int]] = {}
    for i in range(0, n, 5):
        other = Location("gcp", "us-central1") if i % 2 else Location("azure", "westeurope")
        out[f"svc-{i}"] = {Location("aws", "us-east-1"): 3, other: 2}
    return out


def baseline(text: str, wanted: dict[str, dict[Location, int]]) -> str:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    doc = yaml.load(text)
    node = doc["config"]["cloudbalance:workloads"]
    for name, target in wanted.items():
        for entry in node[name]["placements"]:
            entry["replicas"] = target.get(Location(entry["cloud"], entry["region"]), 0)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def ours(text: str, wanted: dict[str, dict[Location, int]]) -> str:
    _validated.cache_clear()  # measure the parse, not the cache of an earlier repeat
    return edit_placements(text, wanted)[0]


def changed(before: str, after: str) -> int:
    """Lines removed plus lines added, as the dry run's diff counts them."""
    a, b = before.splitlines(), after.splitlines()
    return sum(
        (i2 - i1) + (j2 - j1) for tag, i1, i2, j1, j2 in line_opcodes(a, b) if tag != "equal"
    )


def best_of(fn, *args) -> tuple[float, str]:
    best, result = float("inf"), ""
    for _ in range(REPEAT):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    text = stack_file(WORKLOADS)
    wanted = targets(WORKLOADS)
    expected = 2 * len(edit_placements(text, wanted)[1])  # one - and one + line per value
    base_time, base_out = best_of(baseline, text, wanted)
    ours_time, ours_out = best_of(ours, text, wanted)
    print(
        f"stack file: {WORKLOADS} workloads, {text.count(chr(10))} lines; "
        f"{len(wanted)} workloads move"
    )
    print(
        f"baseline (ruamel load/mutate/dump): {base_time * 1000:8.1f} ms, "
        f"{changed(text, base_out):5d} diff lines"
    )
    print(
        f"cloudbalance surgical edit         : {ours_time * 1000:8.1f} ms, "
        f"{changed(text, ours_out):5d} diff lines (expected {expected})"
    )
    print(f"time ratio (ours / baseline): {ours_time / base_time:.2f}x")


if __name__ == "__main__":
    main()
