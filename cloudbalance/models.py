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
from datetime import UTC, datetime
from typing import Any, Literal, Self, get_args

__all__ = [
    "CLOUDS",
    "Cloud",
    "Location",
    "Move",
    "Placement",
    "Plan",
    "RunRecord",
    "Workload",
    "WorkloadMatch",
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
        demand_per_replica: How much of the demand series one replica serves (e.g. requests/s
            or cost units); the forecast divided by this is replicas.
        match: How its cost lines are recognised.
        stack: ``project/stack`` whose ``Pulumi.<stack>.yaml`` holds its placement, if managed.
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

    def __post_init__(self) -> None:
        check_workload_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        data = dataclasses.asdict(self)
        data["allowed"] = [loc.key for loc in self.allowed]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["allowed"] = tuple(Location.parse(s) for s in values.get("allowed", ()))
        match = values.get("match") or {}
        values["match"] = WorkloadMatch(**{k: tuple(v) for k, v in match.items()})
        return cls(**values)


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
    def saving(self) -> float:
        """Expected saving over the horizon (baseline minus plan)."""
        return self.baseline_cost - self.expected_cost

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
