"""Small plans and settings the policy tests build on."""

from __future__ import annotations

from datetime import datetime

from cloudbalance.config import GuardrailSettings, Settings
from cloudbalance.models import Location, Move, Placement, Plan, Workload

EU = ("aws:eu-west-1", "gcp:europe-west1", "azure:westeurope")


def make_settings(**guardrails: object) -> Settings:
    return Settings(
        workloads={
            "search": Workload(
                "search", allowed=tuple(Location.parse(t) for t in EU), min_locations=2
            ),
            "etl": Workload("etl"),
        },
        guardrails=GuardrailSettings(**guardrails),  # type: ignore[arg-type]
    )


def make_plan(
    after: dict[str, dict[str, int]],
    *,
    before: dict[str, dict[str, int]] | None = None,
    confidence: float = 0.9,
    inputs: dict[str, object] | None = None,
) -> Plan:
    """A plan moving ``before`` (default: search 4+2 in the EU, etl 10 on aws) to ``after``."""
    before = before or {
        "search": {"aws:eu-west-1": 4, "gcp:europe-west1": 2},
        "etl": {"aws:us-east-1": 10},
    }
    current = tuple(
        Placement(w, Location.parse(loc), n)
        for w, locs in before.items()
        for loc, n in locs.items()
    )
    merged = {w: dict(locs) for w, locs in before.items()}
    for w, locs in after.items():
        merged.setdefault(w, {}).update(locs)
    first = tuple(
        Placement(w, Location.parse(loc), n)
        for w, locs in merged.items()
        for loc, n in locs.items()
    )
    moves = tuple(
        Move(
            w,
            Location.parse(loc),
            before.get(w, {}).get(loc, 0),
            n,
            saving=1.0,
            confidence=confidence,
        )
        for w, locs in after.items()
        for loc, n in locs.items()
        if before.get(w, {}).get(loc, 0) != n
    )
    return Plan(
        plan_id="p-test",
        created_at=datetime(2026, 11, 20, 6),
        period_start=datetime(2026, 11, 21),
        period="1D",
        horizon=7,
        current=current,
        schedule=(first,),
        moves=moves,
        expected_cost=90.0,
        baseline_cost=100.0,
        confidence=confidence,
        inputs=inputs or {},
    )
