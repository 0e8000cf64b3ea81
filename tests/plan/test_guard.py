"""The reproducers of the planner's guardrail and cost bugs, and what counts as a move."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from cloudbalance.exceptions import PlanError
from cloudbalance.models import Location, Move, Placement, Plan, Workload, proportional
from cloudbalance.plan import Commitment, Problem, Quota, plan
from tests.plan.test_plan import NOW, START, A, B, C, accuracy, first, forecast, prices, shape

A2 = Location("aws", "us-west-2")


def test_r1_a_held_placement_keeps_the_share_cap() -> None:
    # Staying saves nothing (the move costs 1.0), but 4 replicas at A break max_share 0.5.
    made = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [10, 10]}),
        [shape(Workload("api", max_share=0.5, move_cost=1.0))],
        [Placement("api", A, 4)],
        quantile=0.5,
        accuracy=accuracy({"api": 1.0}),
        now=NOW,
    )
    assert max(first(made, "api").values()) <= 2
    assert all(p.replicas <= 2 for period in made.schedule for p in period)
    assert any("the moves are required" in n for n in made.notes)
    held = plan(
        forecast({"api": [4, 4]}),
        prices({A: [10, 10], B: [10, 10]}),
        [shape(Workload("api", max_share=0.5, move_cost=1.0))],
        [Placement("api", A, 4)],
        quantile=0.5,
        hold="workload",
        min_saving=100.0,
        accuracy=accuracy({"api": 1.0}),
        now=NOW,
    )
    assert max(first(held, "api").values()) <= 2


def test_r2_two_savings_plans_on_one_region_cover_its_spend_once() -> None:
    # 20.0 of savings plans at A; 3 replicas. Best: 2 at A (20, all covered) + 1 at A2 (9).
    # Counting each plan against A's spend separately made 1 at A + 2 at A2 look free.
    made = plan(
        forecast({"api": [3, 3]}),
        prices({A: [10, 10], A2: [9, 9], B: [30, 30]}),
        [shape(Workload("api"))],
        [Placement("api", A, 3)],
        quantile=0.5,
        commitments=[
            Commitment("aws", "us-east-1", amount=10.0, name="sp1"),
            Commitment("aws", "us-east-1", amount=10.0, name="sp2"),
        ],
        accuracy=accuracy({"api": 1.0}),
        now=NOW,
    )
    assert first(made, "api") == {A.key: 2, A2.key: 1}
    assert made.expected_cost == pytest.approx(18.0)
    assert made.baseline_cost == pytest.approx(20.0)


def test_r3_a_location_has_no_price_before_its_first_observation() -> None:
    frame = prices({A: [10, 10, 10]})
    late = prices({B: [1, 1, 1]}).iloc[1:]  # B's first price is observed on day 2
    made = plan(
        forecast({"api": [4, 4, 4]}),
        pd.concat([frame, late], ignore_index=True),
        [shape(Workload("api"))],
        [Placement("api", A, 4)],
        quantile=0.5,
        accuracy=accuracy({"api": 1.0}),
        now=NOW,
    )
    assert first(made, "api") == {A.key: 4}  # not charged B's later price in period 1
    assert {p.location for p in made.schedule[1]} == {B}
    assert any(f"{B.key} has no price before 2026-11-24" in n for n in made.notes)


def test_r4_the_guard_judges_the_whole_plan() -> None:
    # w1 leaving A costs it 10 more on its own, but frees A's only slot (quota) and its
    # savings plan for w2, which may not run at B: the plan as a whole saves 18 per day.
    made = plan(
        forecast({"w1": [1, 1], "w2": [1, 1]}),
        prices({A: [10, 10], B: [12, 12], C: [30, 30]}),
        [shape(Workload("w1")), shape(Workload("w2", allowed=(A, C)))],
        [Placement("w1", A, 1), Placement("w2", C, 1)],
        quantile=0.5,
        quotas=[Quota(A, 2.0)],
        commitments=[Commitment("aws", "us-east-1", amount=10.0)],
        accuracy=accuracy({"w1": 1.0, "w2": 1.0}),
        now=NOW,
    )
    assert first(made, "w1") == {B.key: 1}
    assert first(made, "w2") == {A.key: 1}
    assert made.expected_saving == pytest.approx(36.0)
    reason = next(m.reason for m in made.moves if m.workload == "w1" and m.after > 0)
    assert "frees capacity or commitments" in reason
    assert not any("-$" in n for n in made.notes)


def test_notes_say_where_the_confidence_comes_from_and_never_print_minus_zero() -> None:
    args = (forecast({"api": [4, 4]}), prices({A: [10, 10], B: [9.999, 9.999]}))
    made = plan(
        *args,
        [shape(Workload("api"))],
        [Placement("api", A, 4)],
        quantile=0.5,
        hold_quantile=0.9,
        accuracy=accuracy({"api": 0.5}),
        now=NOW,
    )
    (note,) = [n for n in made.notes if "uncertainty" in n]
    assert "confidence 50% from backtests" in note
    assert "-$0.00" not in note
    from cloudbalance.plan.explain import money

    assert money(-0.001, "USD") == "$0.00"
    assert money(-1.5, "USD") == "-$1.50"


def test_min_saving_pct_is_a_fraction_and_checked() -> None:
    with pytest.raises(PlanError, match="fraction"):
        plan(
            forecast({"api": [1]}),
            prices({A: [1]}),
            [shape(Workload("api"))],
            min_saving_pct=2.0,
            now=NOW,
        )


# --------------------------------------------------------------------------------------------
# Data gravity and preference


def test_data_gravity_keeps_a_workload_near_its_data() -> None:
    args = (forecast({"api": [2, 2]}), prices({A: [10, 10], A2: [9, 9]}))
    current = [Placement("api", A, 2)]
    free = plan(*args, [shape(Workload("api"))], current, quantile=0.5, now=NOW)
    assert first(free, "api") == {A2.key: 2}
    heavy = shape(Workload("api", data_location=A, data_gb=100.0))  # 100 GB x 0.02 = 2 a day
    held = plan(*args, [heavy], current, quantile=0.5, now=NOW)
    assert first(held, "api") == {A.key: 2}
    light = shape(Workload("api", data_location=A, data_gb=10.0))  # 0.2 a day: still moves
    moved = plan(*args, [light], current, quantile=0.5, accuracy=accuracy({"api": 1}), now=NOW)
    assert first(moved, "api") == {A2.key: 2}
    reason = next(m.reason for m in moved.moves if m.after > 0)
    assert "ongoing costs (data egress, location preference) $0.40 more" in reason
    assert moved.expected_saving == pytest.approx(4.0 - 0.4)


def test_a_location_preference_is_a_soft_cost_per_replica_period() -> None:
    args = (forecast({"api": [2, 2]}), prices({A: [10, 10], A2: [9, 9]}))
    current = [Placement("api", A, 2)]
    picky = shape(Workload("api", preference=((A2, 1.5),)))
    made = plan(*args, [picky], current, quantile=0.5, now=NOW)
    assert first(made, "api") == {A.key: 2}
    assert Workload.from_dict(picky.to_dict()) == picky
    gravity = shape(Workload("api", data_location=A, data_gb=5.0))
    assert Workload.from_dict(gravity.to_dict()) == gravity


def test_data_gb_needs_a_data_location() -> None:
    with pytest.raises(PlanError, match="data_location"):
        plan(
            forecast({"api": [1]}),
            prices({A: [1]}),
            [shape(Workload("api", data_gb=5.0))],
            now=NOW,
        )


# --------------------------------------------------------------------------------------------
# One definition of a move and of the expected saving


def _plan(current: dict[Location, int], first_period: dict[Location, int]) -> Plan:
    return Plan(
        plan_id="p",
        created_at=START,
        period_start=START,
        period="1D",
        horizon=1,
        current=tuple(Placement("api", loc, n) for loc, n in current.items()),
        schedule=(tuple(Placement("api", loc, n) for loc, n in first_period.items()),),
        moves=(Move("api", A, 4, 6),),
        expected_cost=90.0,
        baseline_cost=100.0,
    )


def test_scaling_in_place_is_not_a_move_and_relocating_is() -> None:
    assert _plan({A: 4}, {A: 6}).moved_workloads() == ()
    assert _plan({A: 3, B: 1}, {A: 6, B: 2}).moved_workloads() == ()
    assert _plan({A: 4}, {A: 2, B: 2}).moved_workloads() == ("api",)
    assert _plan({A: 4}, {B: 4}).relocations == (Move("api", A, 4, 6),)
    assert _plan({}, {A: 4}).moved_workloads() == ()
    assert _plan({A: 4}, {}).moved_workloads() == ()
    assert _plan({A: 4}, {A: 6}).expected_saving == pytest.approx(10.0)
    assert proportional([3, 1], 6) == [5, 1]  # 4.5 and 1.5: ties go to the earlier location
    assert proportional([1, 1, 1], 4) == [2, 1, 1]


def test_a_plan_that_only_scales_in_place_saves_nothing_and_its_moves_say_so() -> None:
    made = plan(
        forecast({"api": [6, 6]}),
        prices({A: [10, 10], B: [10, 10]}),
        [shape(Workload("api"))],
        [Placement("api", A, 4)],
        quantile=0.5,
        now=NOW,
    )
    assert made.moved_workloads() == ()
    assert made.expected_saving == 0.0
    assert all(m.saving == 0.0 for m in made.moves)


def test_readers_get_the_problem_back_typed() -> None:
    made = plan(
        forecast({"api": [4, 5]}),
        prices({A: [10, 11], B: [9, 9]}),
        [shape(Workload("api", stack="shop/prod"))],
        [Placement("api", A, 4)],
        quantile=0.5,
        now=NOW,
    )
    problem = Problem.of(made)
    assert problem is not None
    assert problem.stacks() == {"api": "shop/prod"}
    assert problem.demand_of("api") == [4, 5]
    assert problem.demand_of("nope") is None
    assert problem.placement_cost("api", {A: 2, B: 1}, 2) == pytest.approx(2 * 21 + 18)
    assert problem.unit_costs() == {"api@aws:us-east-1": 10.0, "api@gcp:us-central1": 9.0}
    assert Problem.of(replace(made, inputs={})) is None
    assert Problem.of(replace(made, inputs={"problem": {"workloads": 3}})) is None


def test_one_required_move_does_not_release_the_others() -> None:
    # "fixed" must leave A (4 replicas break its max_share 0.5); "api" saves 8 by moving to C,
    # within its uncertainty (confidence 40% on 72 at stake). Only the required move is made.
    made = plan(
        forecast({"fixed": [4, 4], "api": [4, 4]}),
        prices({A: [10, 10], B: [10, 10], C: [9, 9]}),
        [
            shape(Workload("fixed", allowed=(A, B), max_share=0.5, move_cost=1.0)),
            shape(Workload("api", allowed=(A, C))),
        ],
        [Placement("fixed", A, 4), Placement("api", A, 4)],
        quantile=0.5,
        hold_quantile=0.9,
        accuracy=accuracy({"fixed": 1.0, "api": 0.4}),
        now=NOW,
    )
    assert max(first(made, "fixed").values()) <= 2
    assert first(made, "api") == {A.key: 4}
    assert made.moved_workloads() == ("fixed",)
    assert any("but for fixed, whose moves are required" in n for n in made.notes)


def test_a_move_within_the_solver_gap_is_not_made() -> None:
    # Growth placed at B saves 0.008 over growing in place at A: opening a location for that is
    # churn (and within the solver's 0.5% gap of the workload's cost), so it grows in place.
    made = plan(
        forecast({"api": [8, 8]}),
        prices({A: [10, 10], B: [9.999, 9.999]}),
        [shape(Workload("api"))],
        [Placement("api", A, 4)],
        quantile=0.5,
        accuracy=accuracy({"api": 1.0}),
        now=NOW,
    )
    assert first(made, "api") == {A.key: 8}
    assert made.moved_workloads() == ()
    assert any("api: kept in place, moving saves nothing" in n for n in made.notes)


def test_a_stored_plan_without_hold_quantile_reproduces_with_the_whole_uncertainty() -> None:
    from cloudbalance.plan import reproduce_plan

    args = (forecast({"api": [4, 4]}), prices({A: [10, 10], B: [8, 8]}), [shape(Workload("api"))])
    stored = plan(
        *args,
        [Placement("api", A, 4)],
        quantile=0.5,
        hold_quantile=0.9,
        accuracy=accuracy({"api": 0.4}),
        now=NOW,
    )
    assert first(stored, "api") == {A.key: 4}
    older = replace(stored, inputs={k: v for k, v in stored.inputs.items() if k != "hold_quantile"})
    again = reproduce_plan(older)
    assert first(again, "api") == {A.key: 4}
