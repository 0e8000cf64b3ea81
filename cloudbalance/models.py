"""Frozen dataclasses that travel between the boxes of the loop.

Frames carry the time series (see :mod:`cloudbalance.schema`); these carry everything with a
shape of its own: where a workload may run, where it runs now, what a plan decided and why, and
what each run did. They are immutable so that a plan written to Git is exactly the plan that was
computed, stored and reported; each has ``to_dict``/``from_dict`` so it serialises to JSON
without a custom encoder.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Self, get_args

from cloudbalance.exceptions import GitOpsError

__all__ = [
    "CLOUDS",
    "Cloud",
    "FreezeWindow",
    "Location",
    "Move",
    "Placement",
    "Plan",
    "RunRecord",
    "Workload",
    "WorkloadMatch",
    "proportional",
]

Cloud = Literal["aws", "azure", "gcp"]
CLOUDS: tuple[Cloud, ...] = ("aws", "azure", "gcp")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, order=True)
class Location:
    """A place a workload can run: one region of one cloud.

    Attributes:
        cloud: Our cloud id (``aws``, ``azure``, ``gcp``).
        region: The cloud's own region id (``us-east-1``, ``westeurope``, ``us-central1``).
    """

    cloud: str
    region: str

    @property
    def key(self) -> str:
        """``cloud:region``, the form used in configuration, frames and reports."""
        return f"{self.cloud}:{self.region}"

    @classmethod
    def parse(cls, text: str) -> Location:
        """Parse ``cloud:region`` (as written in cloudbalance.yaml).

        Raises:
            ValueError: When the text is not ``cloud:region``.
        """
        cloud, sep, region = text.partition(":")
        if not sep or not cloud or not region:
            raise ValueError(f"expected 'cloud:region', got {text!r}")
        return cls(cloud.strip().lower(), region.strip())

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class FreezeWindow:
    """Dates (inclusive, UTC) during which cloudbalance changes nothing.

    Attributes:
        start: First frozen day.
        end: Last frozen day.
        reason: Shown when a run is refused (``year-end change freeze``).
    """

    start: date
    end: date
    reason: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise GitOpsError(f"freeze window ends ({self.end}) before it starts ({self.start})")

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` (naive UTC) falls in the window."""
        return self.start <= when.date() <= self.end

    @classmethod
    def parse(cls, text: str) -> FreezeWindow:
        """Parse ``YYYY-MM-DD..YYYY-MM-DD`` (a single date freezes one day).

        Raises:
            GitOpsError: When the text is not such a range.
        """
        first, _, last = text.strip().partition("..")
        try:
            start = date.fromisoformat(first.strip())
            end = date.fromisoformat(last.strip()) if last else start
        except ValueError as err:
            raise GitOpsError(f"freeze window {text!r} is not 'YYYY-MM-DD..YYYY-MM-DD'") from err
        return cls(start, end)

    def __str__(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.start.isoformat()}..{self.end.isoformat()}{why}"


@dataclass(frozen=True)
class WorkloadMatch:
    """How a workload's cost lines are recognised in the costs frame.

    A cost line belongs to the workload when any rule matches: its ``Tags`` carry
    ``tag_key: tag_value`` for one of ``tag_values``, its ``ResourceId`` matches one of
    ``resource_patterns`` (shell-style globs), or its ``ServiceName`` is one of ``services``.
    When several workloads match one line, the first in configuration order wins.
    """

    tag_values: tuple[str, ...] = ()
    resource_patterns: tuple[str, ...] = ()
    services: tuple[str, ...] = ()


#: How a change reaches Git, the one type every layer uses: ``dry-run`` (compute the diff and
#: the message, change nothing), ``commit`` on the checked-out branch, a new ``branch``, a
#: ``pr`` (branch + pull request), or ``auto`` (commit or pull request by the plan's confidence).
Mode = Literal["dry-run", "commit", "branch", "pr", "auto"]
MODES: tuple[Mode, ...] = get_args(Mode)
#: What a revert may be written as (a revert returns to a known state: no ``auto``).
REVERT_MODES: tuple[Mode, ...] = ("dry-run", "commit", "branch", "pr")


def parse_mode(text: object, allowed: tuple[Mode, ...] = MODES) -> Mode:
    """``text`` as a :data:`Mode` among ``allowed``.

    Raises:
        ValueError: Anything else, listing what is allowed.
    """
    for mode in allowed:
        if text == mode:
            return mode
    raise ValueError(f"unknown mode {text!r}; use one of {', '.join(allowed)}")


#: The one rule for workload names, shared with the stacks' contract (``stacks/common``'s
#: ``NAME_PATTERN`` and ``schemas/stack-config.schema.json``; a test keeps the three equal):
#: lower-case letters, digits and hyphens, short enough for every cloud's resource names.
WORKLOAD_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")


def check_workload_name(name: object) -> str:
    """``name`` when it is a valid workload name.

    Raises:
        ValueError: Not a name the stacks can deploy, saying what is allowed.
    """
    if not isinstance(name, str) or not WORKLOAD_NAME.match(name):
        raise ValueError(
            f"workload name {name!r} must start with a lower-case letter and hold only "
            "lower-case letters, digits and hyphens, at most 16 characters (the stacks use it "
            "in cloud resource names)"
        )
    return name


@dataclass(frozen=True)
class Workload:
    """A unit of capacity the planner may place across locations.

    Attributes:
        name: Identifier used in config, frames (``x_Workload``) and the stack key.
        vcpus: vCPUs of one replica.
        memory_gib: Memory of one replica.
        allowed: Locations the workload may run in (residency, capability). Empty means any
            priced location.
        min_locations: HA minimum: at least this many locations in use when above 1.
        max_share: Largest share of the replicas one location may hold (0 < share <= 1).
        max_change: Change throttle: at most this fraction of the previous period's replicas
            may be added per period (``None``: no throttle).
        move_cost: Cost of adding one replica at a location (data transfer, warm-up), in the
            billing currency.
        spot: Whether the workload tolerates spot/preemptible capacity.
        demand_per_replica: How much of a demand series in the workload's own units one
            replica serves. The loop's demand series and the planner's demand forecast are in
            replicas already, so the planner never divides by it (divide a forecast in other
            units before planning).
        match: How its cost lines are recognised.
        stack: ``project/stack`` whose ``Pulumi.<stack>.yaml`` holds its placement, if managed.
        data_location: Where the workload's data lives (data gravity); replicas elsewhere pay
            egress on the traffic they exchange with it (``None``: no data to reach).
        data_gb: GB the workload exchanges with ``data_location`` per period (all replicas
            together), priced at the egress rates of :class:`~cloudbalance.plan.Egress`.
        preference: Soft cost per replica-period at a location (``cloud:region`` -> amount in
            the billing currency), e.g. latency to users; locations not listed cost nothing.
    """

    name: str
    vcpus: float = 1.0
    memory_gib: float = 2.0
    allowed: tuple[Location, ...] = ()
    min_locations: int = 1
    max_share: float = 1.0
    max_change: float | None = None
    move_cost: float = 0.0
    spot: bool = False
    demand_per_replica: float = 1.0
    match: WorkloadMatch = field(default_factory=WorkloadMatch)
    stack: str | None = None
    data_location: Location | None = None
    data_gb: float = 0.0
    preference: tuple[tuple[Location, float], ...] = ()

    def __post_init__(self) -> None:
        check_workload_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        data = dataclasses.asdict(self)
        data["allowed"] = [loc.key for loc in self.allowed]
        data["data_location"] = self.data_location.key if self.data_location else None
        data["preference"] = {loc.key: cost for loc, cost in self.preference}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["allowed"] = tuple(Location.parse(s) for s in values.get("allowed", ()))
        where = values.get("data_location")
        values["data_location"] = Location.parse(str(where)) if where else None
        values["preference"] = tuple(
            (Location.parse(str(k)), float(v)) for k, v in (values.get("preference") or {}).items()
        )
        match = values.get("match") or {}
        values["match"] = WorkloadMatch(**{k: tuple(v) for k, v in match.items()})
        return cls(**values)


@dataclass(frozen=True)
class Quota:
    """At most ``vcpus`` vCPUs of planned workloads at one location, in every period.

    ``plan.quotas`` of ``cloudbalance.yaml`` builds these directly; the planner reads them.
    """

    location: Location
    vcpus: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {"location": self.location.key, "vcpus": self.vcpus}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quota:
        """Inverse of :meth:`to_dict`."""
        return cls(Location.parse(str(data["location"])), float(data["vcpus"]))


@dataclass(frozen=True)
class Placement:
    """Replicas of one workload at one location."""

    workload: str
    location: Location
    replicas: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "workload": self.workload,
            "location": self.location.key,
            "replicas": self.replicas,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(data["workload"], Location.parse(data["location"]), int(data["replicas"]))


@dataclass(frozen=True)
class Move:
    """A change of replicas for one workload at one location in the first period.

    Attributes:
        workload: The workload moved.
        location: Where replicas are added (``after > before``) or removed.
        before: Replicas there now.
        after: Replicas there once the plan is applied.
        saving: Expected saving over the horizon attributed to this move (currency units).
        confidence: 0..1, from the forecast's backtests.
        reason: Why, in words a reviewer can check.
    """

    workload: str
    location: Location
    before: int
    after: int
    saving: float = 0.0
    confidence: float = 0.0
    reason: str = ""

    @property
    def delta(self) -> int:
        """Replicas added (positive) or removed (negative)."""
        return self.after - self.before

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        data = dataclasses.asdict(self)
        data["location"] = self.location.key
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["location"] = Location.parse(values["location"])
        return cls(**values)


@dataclass(frozen=True)
class Plan:
    """The planner's decision for one horizon, and everything needed to reproduce it.

    Attributes:
        plan_id: Stable id (also the Git branch suffix and the ``Cloudbalance-Plan`` trailer).
        created_at: When it was computed (naive UTC).
        period_start: Start of period 1 (naive UTC).
        period: Length of one period as a pandas offset alias (``1D``, ``1h``).
        horizon: Number of periods planned.
        current: The placement before the plan (period 0).
        placements: Replicas per workload, location and period: ``schedule[t]`` is period t+1.
        moves: The first period's changes; only these are written to Git.
        expected_cost: Cost over the horizon with the plan.
        baseline_cost: Cost over the horizon if nothing moves.
        currency: Currency of every amount.
        confidence: 0..1, the plan's confidence (from the backtests of the forecasts used).
        inputs: What the plan was computed from (quantile, solver gap, digests of the frames,
            parameters) so it can be reproduced.
        notes: Plan-level remarks (guardrails applied, moves dropped and why).
    """

    plan_id: str
    created_at: datetime
    period_start: datetime
    period: str
    horizon: int
    current: tuple[Placement, ...]
    schedule: tuple[tuple[Placement, ...], ...]
    moves: tuple[Move, ...]
    expected_cost: float
    baseline_cost: float
    currency: str = "USD"
    confidence: float = 0.0
    inputs: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def expected_saving(self) -> float:
        """The plan's expected saving: the one figure every display of the plan shows.

        The cost over the whole horizon of never moving (each workload kept in its current
        locations, scaled in proportion to serve the same forecast demand) minus the cost of
        the plan's schedule, both priced by the planner with the same prices, move costs,
        ongoing costs and commitments. The commit, the pull request, the report, ``verify``
        and ``check`` show this number; in-place scaling saves nothing by this definition (the
        baseline scales too), so a plan that only scales has an expected saving of zero.
        """
        return self.baseline_cost - self.expected_cost

    @property
    def saving(self) -> float:
        """Same as :attr:`expected_saving` (kept as the short name used in JSON)."""
        return self.expected_saving

    def moved_workloads(self) -> tuple[str, ...]:
        """Workloads the first period relocates: the one definition of "a move".

        A workload is moved when the first period places its replicas differently from its
        current locations scaled in proportion to the new total (:func:`proportional`): a new
        location, a location left, or replicas shifted between locations. Scaling up or down
        in place is not a move (and has no saving); neither is the first placement of a
        workload that runs nowhere yet.
        """
        before: dict[str, dict[Location, int]] = {}
        after: dict[str, dict[Location, int]] = {}
        for p in self.current:
            before.setdefault(p.workload, {})[p.location] = p.replicas
        for p in self.first_period:
            after.setdefault(p.workload, {})[p.location] = p.replicas
        return tuple(
            name
            for name in sorted(set(before) | set(after))
            if replicas_relocated(before.get(name, {}), after.get(name, {})) > 0
        )

    @property
    def relocations(self) -> tuple[Move, ...]:
        """The :attr:`moves` of the workloads :meth:`moved_workloads` names."""
        moved = set(self.moved_workloads())
        return tuple(m for m in self.moves if m.workload in moved)

    @property
    def first_period(self) -> tuple[Placement, ...]:
        """The placement the plan writes to Git (receding horizon)."""
        return self.schedule[0] if self.schedule else self.current

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "plan_id": self.plan_id,
            "created_at": self.created_at.isoformat(),
            "period_start": self.period_start.isoformat(),
            "period": self.period,
            "horizon": self.horizon,
            "current": [p.to_dict() for p in self.current],
            "schedule": [[p.to_dict() for p in period] for period in self.schedule],
            "moves": [m.to_dict() for m in self.moves],
            "expected_cost": self.expected_cost,
            "baseline_cost": self.baseline_cost,
            "saving": self.saving,
            "currency": self.currency,
            "confidence": self.confidence,
            "inputs": dict(self.inputs),
            "notes": list(self.notes),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise to JSON (``inputs`` must hold JSON-ready values)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, default=str)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict` (the derived ``saving`` is ignored)."""
        return cls(
            plan_id=data["plan_id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            period_start=datetime.fromisoformat(data["period_start"]),
            period=data["period"],
            horizon=int(data["horizon"]),
            current=tuple(Placement.from_dict(p) for p in data["current"]),
            schedule=tuple(
                tuple(Placement.from_dict(p) for p in period) for period in data["schedule"]
            ),
            moves=tuple(Move.from_dict(m) for m in data["moves"]),
            expected_cost=float(data["expected_cost"]),
            baseline_cost=float(data["baseline_cost"]),
            currency=data.get("currency", "USD"),
            confidence=float(data.get("confidence", 0.0)),
            inputs=dict(data.get("inputs", {})),
            notes=tuple(data.get("notes", ())),
        )

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def proportional(current: list[int], total: int) -> list[int]:
    """``total`` replicas spread over locations in proportion to ``current`` (never moving).

    Largest remainder, ties to the earlier location; all zero when ``current`` is empty. The
    planner's baseline and :meth:`Plan.moved_workloads` both use it, so "scaled in place" means
    the same thing to the saving and to the definition of a move.
    """
    had = sum(current)
    if had <= 0 or total <= 0:
        return [0] * len(current)
    raw = [c * total / had for c in current]
    out = [int(r + 1e-9) for r in raw]
    rest = total - sum(out)
    order = sorted(range(len(raw)), key=lambda k: (-(raw[k] - out[k]), k))
    for k in order[:rest]:
        out[k] += 1
    return out


def replicas_relocated(before: Mapping[Any, int], after: Mapping[Any, int]) -> int:
    """Replicas one workload's change places somewhere else: the one measure of "moved".

    What ``after`` holds beyond its replicas spread over ``before``'s locations in proportion
    (:func:`proportional`): scaling up or down in place relocates nothing, and neither does the
    first placement of a workload that ran nowhere. :meth:`Plan.moved_workloads`, the diff's
    ``share_moved`` (``guardrails.max_share_moved``) and the policies' ``summary.replicas_moved``
    all count with it.
    """
    total, had = sum(after.values()), sum(before.values())
    if total <= 0 or had <= 0:
        return 0
    keys = sorted(set(before) | set(after), key=str)
    kept = proportional([before.get(k, 0) for k in keys], total)
    return sum(max(0, after.get(k, 0) - n) for k, n in zip(keys, kept, strict=True))


@dataclass(frozen=True)
class RunRecord:
    """One entry of the store's audit log: a command or step, what it read and what it wrote.

    Attributes:
        run_id: Id shared by every step of one ``cloudbalance`` invocation.
        step: ``ingest``, ``sync``, ``forecast``, ``plan``, ``apply``, ``report``...
        status: ``ok``, ``failed`` or ``skipped``.
        started_at: Naive UTC.
        finished_at: Naive UTC.
        inputs: JSON-ready description of the inputs.
        outputs: JSON-ready description of the outputs (rows written, plan id, commit...).
        error: The error's one-line text when it failed.
    """

    run_id: str
    step: str
    status: str
    started_at: datetime = field(default_factory=_utcnow)
    finished_at: datetime = field(default_factory=_utcnow)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
