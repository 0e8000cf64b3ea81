from __future__ import annotations

import random

import pytest

from cloudbalance.exceptions import ThrottledError
from cloudbalance.retry import Retryable, RetryPolicy, retry_call


def test_retries_until_success_with_growing_jittered_waits() -> None:
    waits: list[float] = []
    calls = iter([Retryable("429"), Retryable("429"), "ok"])

    def call() -> str:
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    policy = RetryPolicy(attempts=5, base=1.0, cap=10.0)
    assert (
        retry_call(call, provider="aws", policy=policy, sleep=waits.append, rng=random.Random(1))
        == "ok"
    )
    assert len(waits) == 2
    assert 0 <= waits[0] <= 1.0
    assert 0 <= waits[1] <= 2.0


def test_server_retry_after_is_honoured_up_to_the_maximum() -> None:
    policy = RetryPolicy(base=0.1, cap=1.0, max_wait=30.0)
    rng = random.Random(0)
    assert policy.delay(0, 12.0, rng) == 12.0
    assert policy.delay(0, 600.0, rng) == 30.0


def test_gives_up_with_a_throttled_error_after_the_last_attempt() -> None:
    attempts = []

    def call() -> None:
        attempts.append(1)
        raise Retryable("rate exceeded")

    with pytest.raises(ThrottledError, match="gave up after 3 attempts: rate exceeded") as info:
        retry_call(call, provider="azure", policy=RetryPolicy(attempts=3), sleep=lambda _: None)
    assert len(attempts) == 3
    assert info.value.provider == "azure"
    assert isinstance(info.value.__cause__, Retryable)


def test_other_errors_are_not_retried() -> None:
    def call() -> None:
        raise PermissionError("denied")

    with pytest.raises(PermissionError):
        retry_call(call, provider="gcp", sleep=lambda _: pytest.fail("must not wait"))
