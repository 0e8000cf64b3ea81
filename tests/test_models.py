"""The rules that live on the models: what a move is, and how many replicas it relocates."""

from __future__ import annotations

import pytest

from cloudbalance.models import Location, replicas_relocated

A, B, C = Location("aws", "us-east-1"), Location("gcp", "us-central1"), Location("azure", "eastus")


@pytest.mark.parametrize(
    ("before", "after", "moved"),
    [
        ({A: 4}, {A: 8}, 0),  # a scale-up in place relocates nothing
        ({A: 4, B: 4}, {A: 2, B: 2}, 0),  # nor does scaling down in proportion
        ({}, {A: 3}, 0),  # the first placement of a new workload is not a move
        ({A: 4}, {A: 2, B: 2}, 2),  # two replicas go elsewhere
        ({A: 4}, {B: 4}, 4),
        ({A: 4}, {A: 4, B: 4}, 4),  # growth placed somewhere new is relocated capacity
        ({A: 2, B: 2}, {A: 1, B: 1, C: 2}, 2),
        ({A: 4}, {}, 0),  # nothing left to place
    ],
)
def test_replicas_relocated(
    before: dict[Location, int], after: dict[Location, int], moved: int
) -> None:
    assert replicas_relocated(before, after) == moved


def test_the_diff_and_the_policies_count_moved_replicas_alike() -> None:
    from cloudbalance.policy import _changes_and_summary

    before = {"api": {A: 4}, "etl": {A: 2, B: 2}}
    after = {"api": {A: 2, B: 2}, "etl": {A: 4, B: 4}}
    _, summary, _ = _changes_and_summary(before, after)
    assert summary["replicas_moved"] == 2  # etl only scaled: api moved two of its four
    assert summary["share_moved"] == pytest.approx(2 / 8)
