"""Bounded retries with exponential backoff and full jitter, shared by every provider.

Cloud cost APIs throttle hard (Cost Explorer allows a handful of requests per second, Azure Cost
Management answers 429 with a retry-after header, BigQuery has rate limits on jobs). Each provider
decides *what* is retryable and how long the server asked to wait; this module decides *how*:
``delay = min(cap, base * 2**attempt) * uniform(0, 1)`` (full jitter, so many scheduled runs do
not retry in lock-step), never less than what the server asked for, and at most ``attempts``
tries before :class:`~cloudbalance.exceptions.ThrottledError`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cloudbalance.exceptions import ThrottledError

__all__ = ["RetryPolicy", "Retryable", "retry_call"]

T = TypeVar("T")


class Retryable(Exception):
    """Raised by a provider's call wrapper to ask for another try.

    Attributes:
        after: Seconds the server asked to wait (``Retry-After``), if it said.
        reason: What happened, for the final error message.
    """

    def __init__(self, reason: str, *, after: float | None = None) -> None:
        self.reason = reason
        self.after = after
        super().__init__(reason)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Attributes:
        attempts: Total tries, the first included.
        base: Backoff base in seconds.
        cap: Largest backoff in seconds (a server's retry-after may exceed it, up to
            ``max_wait``).
        max_wait: Longest single wait honoured even when the server asks for more.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 20.0
    max_wait: float = 120.0

    def delay(self, attempt: int, after: float | None, rng: random.Random) -> float:
        """Seconds to sleep before try ``attempt + 1`` (``attempt`` counts from 0)."""
        backoff = min(self.cap, self.base * 2.0**attempt) * rng.random()
        return float(min(self.max_wait, max(backoff, after or 0.0)))


def retry_call(
    fn: Callable[[], T],
    *,
    provider: str,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, float, str], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying on :class:`Retryable`.

    Args:
        fn: The call; it raises :class:`Retryable` for throttling and transient errors and
            anything else for errors that retrying cannot fix.
        provider: Named in the final error.
        policy: Attempts and backoff.
        sleep: Injected in tests so they never wait.
        rng: Injected in tests for reproducible jitter.
        on_retry: Told (attempt, delay, reason) before each wait, for progress output.

    Raises:
        ThrottledError: Still retryable after the last attempt; the last reason is chained.
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    last: Retryable | None = None
    for attempt in range(policy.attempts):
        try:
            return fn()
        except Retryable as err:
            last = err
            if attempt + 1 >= policy.attempts:
                break
            wait = policy.delay(attempt, err.after, rng)
            if on_retry is not None:
                on_retry(attempt + 1, wait, err.reason)
            sleep(wait)
    raise ThrottledError(
        f"gave up after {policy.attempts} attempts: {last.reason if last else 'unknown'}",
        provider=provider,
        attempts=policy.attempts,
    ) from last
