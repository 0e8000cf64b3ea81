"""Each starter policy, on real Rego, denies what it should and allows the rest."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from cloudbalance.config import FreezeWindow
from cloudbalance.models import Location
from cloudbalance.policy import PolicySet, diff_input, plan_input
from tests.policy.builders import make_plan, make_settings

TODAY = date(2026, 11, 23)


def evaluate(name: str, document: dict[str, object]) -> tuple[list[str], list[str]]:
    report = PolicySet.load(starter=[name]).evaluate(document)
    return report.deny_messages, report.warning_messages


# residency ---------------------------------------------------------------------------------


def test_residency_denies_a_replica_outside_the_allowed_regions() -> None:
    plan = make_plan({"search": {"aws:us-east-1": 3, "aws:eu-west-1": 1}})
    denies, _ = evaluate("residency", plan_input(plan, settings=make_settings(), now=TODAY))
    assert denies == [
        "residency: workload search may only run in aws:eu-west-1, gcp:europe-west1, "
        "azure:westeurope, but the change leaves replicas in aws:us-east-1"
    ]


def test_residency_allows_moves_between_allowed_regions() -> None:
    plan = make_plan({"search": {"aws:eu-west-1": 1, "azure:westeurope": 3}})
    denies, _ = evaluate("residency", plan_input(plan, settings=make_settings(), now=TODAY))
    assert denies == []


def test_residency_ignores_a_location_scaled_to_zero() -> None:
    before = {"search": {"aws:eu-west-1": 4, "aws:us-east-1": 2}}
    plan = make_plan({"search": {"aws:us-east-1": 0, "gcp:europe-west1": 2}}, before=before)
    denies, _ = evaluate("residency", plan_input(plan, settings=make_settings(), now=TODAY))
    assert denies == []


def test_residency_does_not_restrict_workloads_without_an_allowed_list() -> None:
    plan = make_plan({"etl": {"gcp:asia-east1": 10, "aws:us-east-1": 0}})
    denies, _ = evaluate("residency", plan_input(plan, settings=make_settings(), now=TODAY))
    assert denies == []


# max share moved / max moves ------------------------------------------------------------------


def test_max_share_moved_denies_a_change_above_the_share() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 7, "gcp:us-central1": 3}})  # 3 of 10 = 30%
    settings = make_settings(max_share_moved=0.25)
    document = plan_input(plan, settings=settings, mode="commit", now=TODAY)
    denies, _ = evaluate("max_share_moved", document)
    assert denies == [
        "max_share_moved: the change moves 3 of 10 replicas (30%), more than the 25% allowed"
    ]
    # in a pull request a person reviews the change: the limit is for direct commits
    assert evaluate("max_share_moved", plan_input(plan, settings=settings, now=TODAY)) == ([], [])


def test_max_share_moved_allows_a_change_within_the_share() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 8, "gcp:us-central1": 2}})  # 2 of 10
    document = plan_input(plan, settings=make_settings(max_share_moved=0.25), now=TODAY)
    assert evaluate("max_share_moved", document) == ([], [])


def test_max_moves_denies_more_placement_edits_than_allowed() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 9, "gcp:us-central1": 1}})
    document = plan_input(plan, settings=make_settings(max_moves=1), mode="commit", now=TODAY)
    denies, _ = evaluate("max_share_moved", document)
    assert denies == [
        "max_share_moved: the change edits 2 placements, more than the 1 allowed "
        "(guardrails.max_moves)"
    ]


def test_unset_limits_are_not_checked() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 0, "gcp:us-central1": 10}})
    assert evaluate("max_share_moved", plan_input(plan, settings=make_settings(), now=TODAY)) == (
        [],
        [],
    )


# min locations (HA) -------------------------------------------------------------------------


def test_min_locations_denies_a_change_that_leaves_one_location() -> None:
    plan = make_plan({"search": {"aws:eu-west-1": 6, "gcp:europe-west1": 0}})
    denies, _ = evaluate("min_locations", plan_input(plan, settings=make_settings(), now=TODAY))
    assert denies == [
        "min_locations: workload search must run in at least 2 locations, the change leaves 1 "
        "(aws:eu-west-1)"
    ]


def test_min_locations_allows_two_locations() -> None:
    plan = make_plan({"search": {"aws:eu-west-1": 3, "gcp:europe-west1": 3}})
    assert evaluate("min_locations", plan_input(plan, settings=make_settings(), now=TODAY)) == (
        [],
        [],
    )


# max monthly cost per cloud -------------------------------------------------------------------


def test_max_monthly_cost_denies_a_cloud_above_its_cap() -> None:
    plan = make_plan(
        {"etl": {"aws:us-east-1": 4, "gcp:us-central1": 6}},
        inputs={
            "unit_costs": {
                "aws:us-east-1": 2.0,
                "gcp:us-central1": 1.5,
                "aws:eu-west-1": 1.0,
                "gcp:europe-west1": 1.0,
            }
        },
    )
    settings = make_settings(max_monthly_cost={"gcp": 300.0, "aws": 10_000.0})
    denies, _ = evaluate("max_monthly_cost", plan_input(plan, settings=settings, now=TODAY))
    # gcp: (6 etl * 1.5 + 2 search * 1.0) * 30 days = 330 USD
    assert denies == [
        "max_monthly_cost: gcp would cost about 330 USD a month, above its cap of 300 USD"
    ]


def test_max_monthly_cost_allows_clouds_under_their_caps() -> None:
    plan = make_plan(
        {"etl": {"aws:us-east-1": 4, "gcp:us-central1": 6}},
        inputs={
            "unit_costs": {
                "aws:us-east-1": 2.0,
                "gcp:us-central1": 1.5,
                "aws:eu-west-1": 1.0,
                "gcp:europe-west1": 1.0,
            }
        },
    )
    settings = make_settings(max_monthly_cost={"gcp": 400.0})
    assert evaluate("max_monthly_cost", plan_input(plan, settings=settings, now=TODAY)) == ([], [])


def test_max_monthly_cost_warns_when_no_unit_cost_is_known() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 4, "gcp:us-central1": 6}})
    settings = make_settings(max_monthly_cost={"gcp": 400.0})
    denies, warnings = evaluate("max_monthly_cost", plan_input(plan, settings=settings, now=TODAY))
    assert denies == []
    assert warnings == [
        "max_monthly_cost: no unit costs are known for this change, the monthly caps were not "
        "checked"
    ]


# freeze windows -------------------------------------------------------------------------------


@pytest.mark.parametrize("day", [date(2026, 12, 20), date(2026, 12, 25), date(2027, 1, 2)])
def test_freeze_denies_a_change_inside_the_window(day: date, freeze_window: FreezeWindow) -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 9, "gcp:us-central1": 1}})
    document = plan_input(plan, settings=make_settings(freeze=(freeze_window,)), now=day)
    denies, _ = evaluate("freeze", document)
    assert denies == [
        "freeze: no change may be written from 2026-12-20 to 2027-01-02: year-end freeze, "
        "sales peak"
    ]


@pytest.mark.parametrize("day", [date(2026, 12, 19), date(2027, 1, 3)])
def test_freeze_allows_a_change_outside_the_window(day: date, freeze_window: FreezeWindow) -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 9, "gcp:us-central1": 1}})
    document = plan_input(plan, settings=make_settings(freeze=(freeze_window,)), now=day)
    assert evaluate("freeze", document) == ([], [])


def test_freeze_without_a_reason_says_the_dates() -> None:
    window = FreezeWindow(date(2026, 11, 1), date(2026, 11, 30))
    plan = make_plan({"etl": {"aws:us-east-1": 9, "gcp:us-central1": 1}})
    document = plan_input(plan, settings=make_settings(freeze=(window,)), now=TODAY)
    assert evaluate("freeze", document)[0] == [
        "freeze: no change may be written from 2026-11-01 to 2026-11-30"
    ]


# confidence for direct commits ------------------------------------------------------------------


def test_confidence_denies_a_direct_commit_below_the_threshold() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 9, "gcp:us-central1": 1}}, confidence=0.6)
    document = plan_input(plan, settings=make_settings(), mode="commit", now=TODAY)
    denies, _ = evaluate("confidence", document)
    assert denies == [
        "confidence: plan p-test has confidence 0.6, below the 0.8 required to commit directly; "
        "open a pull request instead"
    ]


def test_confidence_allows_a_direct_commit_at_the_threshold() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 9, "gcp:us-central1": 1}}, confidence=0.8)
    document = plan_input(plan, settings=make_settings(), mode="commit", now=TODAY)
    assert evaluate("confidence", document) == ([], [])


def test_confidence_only_warns_on_a_pull_request() -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 9, "gcp:us-central1": 1}}, confidence=0.6)
    document = plan_input(plan, settings=make_settings(), mode="pr", now=TODAY)
    denies, warnings = evaluate("confidence", document)
    assert denies == []
    assert warnings == [
        "confidence: plan p-test has confidence 0.6 (below 0.8): review the forecast before merging"
    ]


def test_a_person_s_stack_diff_is_checked_by_the_same_policies() -> None:
    before = {"search": {Location.parse("aws:eu-west-1"): 4, Location.parse("gcp:europe-west1"): 2}}
    after = {"search": {Location.parse("aws:eu-west-1"): 4, Location.parse("aws:us-east-1"): 2}}
    document = diff_input(before, after, files=["infra/Pulumi.prod.yaml"], settings=make_settings())
    report = PolicySet.load(starter=True).evaluate(document)
    assert [m.package for m in report.denies] == ["cloudbalance.starter.residency"]
    assert report.warnings == ()  # a person's change has no plan confidence to warn about


def test_max_monthly_cost_prices_a_planner_plan_from_its_stored_problem() -> None:
    import numpy as np

    from cloudbalance.models import Workload
    from cloudbalance.plan import Problem

    # etl at aws 2.0 then 2.1, at gcp 1.0 then 1.1: the first period prices the plan.
    cost = np.array([[[2.0, 2.1], [1.0, 1.1]]])
    problem = Problem(
        workloads=(Workload("etl"),),
        locations=(Location("aws", "us-east-1"), Location("gcp", "us-central1")),
        period_start=datetime(2026, 11, 24),
        period="1D",
        demand=np.array([[10, 10]]),
        cost=cost,
        cost_lower=cost,
        cost_upper=cost,
        current=np.array([[10, 0]]),
        confidence=np.array([0.9]),
    )
    plan = make_plan(
        {"etl": {"aws:us-east-1": 4, "gcp:us-central1": 6}},
        before={"etl": {"aws:us-east-1": 10}},
        inputs={"problem": problem.to_dict()},
    )
    settings = make_settings(max_monthly_cost={"aws": 200.0, "gcp": 200.0})
    document = plan_input(plan, settings=settings, now=TODAY)
    assert document["costs"]["monthly_by_cloud"] == {"aws": 240.0, "gcp": 180.0}
    denies, _ = evaluate("max_monthly_cost", document)
    assert denies == [
        "max_monthly_cost: aws would cost about 240 USD a month, above its cap of 200 USD"
    ]


def test_a_dry_run_inside_a_freeze_window_shows_the_change(freeze_window: FreezeWindow) -> None:
    plan = make_plan({"etl": {"aws:us-east-1": 7, "gcp:us-central1": 3}})
    settings = make_settings(freeze=(freeze_window,))
    day = date(2026, 12, 24)
    assert evaluate("freeze", plan_input(plan, settings=settings, mode="dry-run", now=day)) == (
        [],
        [],
    )
