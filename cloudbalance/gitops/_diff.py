"""The change a plan makes to stack files, and its diff as a reviewer reads it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cloudbalance.gitops._stackfile import PlacementChange, StackFile
from cloudbalance.models import Location, replicas_relocated

__all__ = ["FileChange", "StackDiff", "line_opcodes", "three_way", "unified_diff"]


def line_opcodes(a: Sequence[str], b: Sequence[str]) -> list[tuple[str, int, int, int, int]]:
    """``SequenceMatcher``-style opcodes that stay minimal for stack-file edits.

    ``difflib`` matches the longest common block first; in a file of repeated lines
    (``- cloud: aws``, ``replicas: 4``) that block can be shifted by a few lines and the diff
    then shows unchanged lines as removed and added. Like Git, the common prefix and suffix are
    set aside first; what is left is compared line by line when the edit kept the line count
    (cloudbalance's value edits always do), else with ``difflib``.
    """
    limit = min(len(a), len(b))
    head = 0
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    ops: list[tuple[str, int, int, int, int]] = []
    if head:
        ops.append(("equal", 0, head, 0, head))
    mid_a, mid_b = a[head : len(a) - tail], b[head : len(b) - tail]
    if len(mid_a) == len(mid_b):
        i = 0
        while i < len(mid_a):
            same = mid_a[i] == mid_b[i]
            j = i
            while j < len(mid_a) and (mid_a[j] == mid_b[j]) == same:
                j += 1
            tag = "equal" if same else "replace"
            ops.append((tag, head + i, head + j, head + i, head + j))
            i = j
    else:
        matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            ops.append((tag, head + i1, head + i2, head + j1, head + j2))
    if tail:
        ops.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return ops


def _regions(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """The changed regions ``(a1, a2, b1, b2)`` turning ``a`` into ``b``."""
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in line_opcodes(a, b) if tag != "equal"]


def _overlap(t1: int, t2: int, o1: int, o2: int) -> bool:
    """Whether two changes of the same base lines touch the same lines (adjacent is fine)."""
    if t1 == t2 and o1 == o2:
        return t1 == o1  # two insertions at one place: their order is unknown
    if t1 == t2:
        return o1 < t1 < o2
    if o1 == o2:
        return t1 < o1 < t2
    return t1 < o2 and o1 < t2


def three_way(base: str, ours: str, theirs: str) -> str | None:
    """Apply the change ``base`` -> ``theirs`` to ``ours``; None when the two changes collide.

    A line-based three-way merge like ``git merge-file``, except that changes to adjacent
    lines do not collide: in a stack file the placements of one workload are adjacent lines,
    and reverting a plan's ``aws`` line must not be refused because a person has since
    changed the ``gcp`` line under it. Changes to the same lines collide, unless both sides made
    the same change. When ``ours`` is ``base`` the result is ``theirs`` byte for byte.
    """
    if ours == base:
        return theirs
    b = base.splitlines(keepends=True)
    o = ours.splitlines(keepends=True)
    t = theirs.splitlines(keepends=True)
    our_changes = _regions(b, o)
    their_changes = []
    for t1, t2, j1, j2 in _regions(b, t):
        same = [c for c in our_changes if (c[0], c[1]) == (t1, t2) and o[c[2] : c[3]] == t[j1:j2]]
        if same:
            continue  # both sides made this very change (a later plan wrote the old value back)
        if any(_overlap(t1, t2, o1, o2) for o1, o2, _, _ in our_changes):
            return None
        their_changes.append((t1, t2, j1, j2))
    result = list(o)
    for t1, t2, j1, j2 in reversed(their_changes):
        # Where the base lines t1..t2 are in ``ours``: shifted by our changes before them
        # (an insertion of ours exactly at t1 comes before theirs).
        shift = sum((k2 - k1) - (a2 - a1) for a1, a2, k1, k2 in our_changes if a2 <= t1)
        start = t1 + shift
        result[start : start + (t2 - t1)] = t[j1:j2]
    return "".join(result)


class _StackFileMatcher(difflib.SequenceMatcher[str]):
    """A matcher whose opcodes come from :func:`line_opcodes` (grouping is difflib's)."""

    def __init__(self, a: Sequence[str], b: Sequence[str]) -> None:
        super().__init__(None, a, b, autojunk=False)
        self._ops = line_opcodes(a, b)

    def get_opcodes(self) -> list[tuple[str, int, int, int, int]]:  # type: ignore[override]
        return list(self._ops)


def _hunk_range(start: int, stop: int) -> str:
    length = stop - start
    first = start + 1 if length else start
    return str(first) if length == 1 else f"{first},{length}"


def unified_diff(before: str, after: str, path: str, *, context: int = 3) -> str:
    """A unified diff of two texts, like ``git diff`` shows it (see :func:`line_opcodes`)."""
    a = before.splitlines(keepends=True)
    b = after.splitlines(keepends=True)
    matcher = _StackFileMatcher(a, b)
    out: list[str] = []
    for group in matcher.get_grouped_opcodes(context):
        if not out:
            out += [f"--- a/{path}\n", f"+++ b/{path}\n"]
        first, last = group[0], group[-1]
        out.append(f"@@ -{_hunk_range(first[1], last[2])} +{_hunk_range(first[3], last[4])} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [" " + line for line in a[i1:i2]]
                continue
            out += ["-" + line for line in a[i1:i2]]
            out += ["+" + line for line in b[j1:j2]]
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in out
    )


@dataclass(frozen=True)
class FileChange:
    """The edit of one stack file.

    Attributes:
        stack: The stack it belongs to.
        before: The file's text before.
        after: The file's text after (equal to ``before`` when nothing changes).
        changes: The placement values changed.
        previous: Placements of the changed workloads before the edit.
    """

    stack: StackFile
    before: str
    after: str
    changes: tuple[PlacementChange, ...]
    previous: Mapping[str, Mapping[Location, int]] = field(default_factory=dict)

    def unified_diff(self) -> str:
        """``git diff``-style text of the edit."""
        return unified_diff(self.before, self.after, self.stack.path)


@dataclass(frozen=True)
class StackDiff:
    """Everything a plan would change in the repository; what policies and guardrails see.

    ``held`` says, per workload left as a person set it, why (see ``gitops.apply``).
    """

    files: tuple[FileChange, ...]
    held: tuple[str, ...] = ()

    @property
    def changes(self) -> tuple[PlacementChange, ...]:
        """Every placement value changed, in file order."""
        return tuple(c for f in self.files for c in f.changes)

    @property
    def paths(self) -> tuple[str, ...]:
        """The stack files changed."""
        return tuple(f.stack.path for f in self.files if f.changes)

    @property
    def share_moved(self) -> float:
        """Replicas relocated, as a share of the changed workloads' replicas before.

        Counted by :func:`cloudbalance.models.replicas_relocated`: scaling in place moves
        nothing (0 when nothing is relocated).
        """
        before: dict[str, dict[Location, int]] = {}
        for f in self.files:
            for workload, placed in f.previous.items():
                before.setdefault(workload, {}).update(placed)
        after = {w: dict(placed) for w, placed in before.items()}
        for c in self.changes:
            after.setdefault(c.workload, {})[c.location] = c.after
        moved = sum(replicas_relocated(before.get(w, {}), placed) for w, placed in after.items())
        had = sum(sum(p.values()) for p in before.values())
        return moved / had if moved else 0.0

    def unified(self) -> str:
        """The diff of every file, as ``git diff`` would show it."""
        return "".join(f.unified_diff() for f in self.files if f.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)
