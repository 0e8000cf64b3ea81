"""What a move is and what it saves: the one definition commit, verify, check and report use."""

from __future__ import annotations

import math

import pytest

from cloudbalance.models import Location
from cloudbalance.saving import is_move, money, moved_replicas, not_moving, placement_saving

AWS = Location("aws", "us-east-1")
GCP = Location("gcp", "us-central1")
AZ = Location("azure", "westeurope")


def test_not_moving_scales_the_current_split_in_whole_replicas() -> None:
    # 21/31 of 46: 18.58 and 27.42 -> 18 and 27, the remaining replica to the larger remainder
    assert not_moving({AWS: 21, GCP: 31}, 46) == {AWS: 19, GCP: 27}
    assert not_moving({AWS: 6, GCP: 2}, 8) == {AWS: 6, GCP: 2}
    assert not_moving({AWS: 0, GCP: 0}, 5) == {}
    assert not_moving({AWS: 1, GCP: 1}, 3) == {AWS: 2, GCP: 1}  # tie: the first location


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        ({AWS: 21, GCP: 31}, {AWS: 19, GCP: 27}, 0),  # scale down in place
        ({AWS: 21, GCP: 9}, {AWS: 23, GCP: 10}, 0),  # scale up in place
        ({AWS: 10}, {AWS: 13}, 0),  # one location, more replicas
        ({}, {AWS: 4}, 0),  # a new workload is deployed, not moved
        ({AWS: 6, GCP: 2}, {AWS: 3, GCP: 5}, 3),  # 3 replicas from aws to gcp
        ({AWS: 10}, {AWS: 10, AZ: 2}, 2),  # the extra replicas land somewhere new
        ({AWS: 4}, {GCP: 4}, 4),
    ],
)
def test_only_a_change_of_location_is_a_move(
    before: dict[Location, int], after: dict[Location, int], moved: int
) -> None:
    assert moved_replicas(before, after) == moved
    assert is_move(before, after) == (moved > 0)


def test_scaling_in_place_saves_exactly_nothing_whatever_the_prices() -> None:
    costs = {AWS: [2.0, 2.0], GCP: [1.0, 1.0]}
    saving, cost, counter = placement_saving({AWS: 21, GCP: 9}, {AWS: 23, GCP: 10}, costs)
    assert saving == 0.0
    assert cost == counter == 23 * 4.0 + 10 * 2.0


def test_a_move_saves_not_moving_minus_its_cost_net_of_extra_move_costs() -> None:
    costs = {AWS: [2.0, 2.0], GCP: [1.0, 1.0]}
    saving, cost, counter = placement_saving(
        {AWS: 6, GCP: 2}, {AWS: 3, GCP: 5}, costs, move_cost=0.5
    )
    # not moving: 6 x 4 + 2 x 2 = 28; moving: 3 x 4 + 5 x 2 + 3 added x 0.5 = 23.5
    assert (saving, cost, counter) == (4.5, 23.5, 28.0)


def test_an_unpriced_placed_location_makes_the_saving_unknown() -> None:
    saving, _, _ = placement_saving({AWS: 4}, {GCP: 4}, {AWS: [1.0], GCP: [math.nan]})
    assert math.isnan(saving)


def test_money_is_one_rounding_for_every_message() -> None:
    assert money(111.196, "USD") == "111.20 USD"
    assert money(1234.5, "EUR") == "1,234.50 EUR"
    assert money(-3.0, "USD", signed=True) == "-3.00 USD"
