"""Pull every configured provider into the store, incrementally, surviving partial failure.

Each provider is synced on its own: the window starts where the store's last successful sync of
that provider ended, minus the provider's ``revision_days`` (clouds restate recent days), or
``sync.lookback_days`` before today on the first run. The store replaces whole (provider, account,
day) keys, so re-pulling days never double-counts.

One provider failing (credentials, throttling after retries, an outage, even a bug in a
third-party plugin) does not lose the others: its error is reported in its
:class:`ProviderSync`, the others are loaded and committed, and the caller decides the exit code.

**Deadlines.** Each provider's calls (costs, then prices) run in a worker thread and must finish
within the provider's deadline (``sync.deadline``, or ``sync.deadlines.<name>``); a provider
still busy then (an endpoint that accepts TCP and never answers) is reported failed with
:class:`~cloudbalance.exceptions.ProviderTimeoutError` and its late answer is thrown away. The
store is only written from the calling thread, so the lock is released when the caller closes
the store, whatever the provider does. The cloud plugins also set connect and read timeouts on
every request, so the abandoned thread ends on its own soon after.

**Freshness.** :func:`freshness` says, per cloud, the latest complete day the store holds ("data
as of") and whether it is older than ``sync.stale_after_days``: a run warns then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from cloudbalance.attribution import Attribution
from cloudbalance.config import Settings, SyncSettings
from cloudbalance.exceptions import CloudBalanceError, ProviderTimeoutError
from cloudbalance.models import Location
from cloudbalance.provider import get_provider
from cloudbalance.redaction import redact
from cloudbalance.store import Store

__all__ = [
    "DEFAULT_LOOKBACK_DAYS",
    "Freshness",
    "ProviderSync",
    "call_within",
    "freshness",
    "sync",
]

DEFAULT_LOOKBACK_DAYS = SyncSettings().lookback_days

T = TypeVar("T")


@dataclass(frozen=True)
class ProviderSync:
    """What syncing one provider did.

    Attributes:
        provider: Registered name.
        ok: Whether costs and prices were loaded.
        start: Start of the window pulled (naive UTC).
        end: End of the window (exclusive).
        rows: Cost rows loaded.
        replaced: Rows of earlier loads replaced (restated days).
        prices: Price observations loaded.
        error: One line saying what failed.
        seconds: Wall time spent on the provider.
    """

    provider: str
    ok: bool
    start: datetime | None = None
    end: datetime | None = None
    rows: int = 0
    replaced: int = 0
    prices: int = 0
    error: str | None = None
    seconds: float = 0.0


def _day(now: datetime | None) -> datetime:
    """Midnight (naive UTC) of ``now``'s day, or of today."""
    when = now or datetime.now(UTC).replace(tzinfo=None)
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def _window(
    store: Store,
    name: str,
    revision_days: int,
    *,
    since: datetime | None,
    until: datetime,
    lookback_days: int,
) -> tuple[datetime, datetime]:
    if since is not None:
        return since, until
    last = store.sync_state(name)
    if last is None:
        return until - timedelta(days=lookback_days), until
    return min(last - timedelta(days=revision_days), until), until


def call_within(
    seconds: float,
    fn: Callable[[], T],
    *,
    provider: str,
    what: str,
    deadline: float | None = None,
) -> T:
    """Run ``fn`` in a worker thread and wait at most ``seconds`` for it.

    The worker is a daemon thread: a call that never returns cannot keep the process alive,
    and its late result or error is dropped.

    Args:
        seconds: How long to wait (what is left of the provider's deadline).
        fn: The call.
        provider: Named in the error.
        what: What the call does, for the error.
        deadline: The whole deadline, for the error (default ``seconds``).

    Raises:
        ProviderTimeoutError: ``fn`` was still running after ``seconds``.
        BaseException: Whatever ``fn`` raised, re-raised in the calling thread.
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as err:  # handed to the caller's thread, never lost
            outcome["error"] = err

    worker = threading.Thread(target=work, name=f"cloudbalance-sync-{provider}", daemon=True)
    worker.start()
    worker.join(max(0.0, seconds))
    if worker.is_alive():
        raise ProviderTimeoutError(
            f"{what}: no answer within the deadline of {deadline or seconds:g}s; given up "
            f"(check its endpoint, or raise sync.deadlines.{provider} if it is only slow)",
            provider=provider,
            seconds=deadline or seconds,
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def sync(
    settings: Settings,
    store: Store,
    *,
    names: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    lookback_days: int | None = None,
    progress: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> list[ProviderSync]:
    """Sync the configured providers (or only ``names``) into ``store``.

    Args:
        settings: Providers and their options, workload rules for attribution, deadlines.
        store: Where to load.
        names: Only these providers.
        since: Pull from this day instead of the incremental start.
        until: End of the window (exclusive); default: the day after ``now``'s, 00:00 UTC, so
            today's partial day is loaded and restated on the next run.
        lookback_days: History pulled on a provider's first sync (default
            ``sync.lookback_days``).
        progress: Told one line per phase.
        now: The run's clock (naive UTC; default: now): a run ``--as-of`` a day syncs up to
            that day, and the incremental start is remembered from it.
    """
    tell = progress or (lambda _message: None)
    end = until or _day(now) + timedelta(days=1)
    lookback = settings.sync.lookback_days if lookback_days is None else lookback_days
    attribution = Attribution(settings.workload_tag, settings.workload_models())
    locations = sorted({loc for w in settings.workload_models() for loc in w.allowed})
    wanted = list(names) if names else list(settings.providers)
    results: list[ProviderSync] = []
    for name in wanted:
        options = settings.provider_options(name) if name in settings.providers else None
        if options is None:
            results.append(
                ProviderSync(name, ok=False, error=f"provider {name!r} is not configured")
            )
            continue
        deadline = settings.sync.deadline_for(name)
        started = time.monotonic()
        result = _sync_one(
            store, name, options, attribution, locations, since, end, lookback, deadline, tell
        )
        results.append(_timed(result, time.monotonic() - started))
    return results


def _timed(result: ProviderSync, seconds: float) -> ProviderSync:
    return replace(result, seconds=seconds)


def _sync_one(
    store: Store,
    name: str,
    options: dict[str, object],
    attribution: Attribution,
    locations: Sequence[Location],
    since: datetime | None,
    end: datetime,
    lookback_days: int,
    deadline: float,
    tell: Callable[[str], None],
) -> ProviderSync:
    start: datetime | None = None
    give_up = time.monotonic() + deadline

    def within(fn: Callable[[], T], what: str) -> T:
        left = give_up - time.monotonic()
        return call_within(left, fn, provider=name, what=what, deadline=deadline)

    try:
        provider = get_provider(name, options)
        start, end = _window(
            store,
            name,
            provider.revision_days,
            since=since,
            until=end,
            lookback_days=lookback_days,
        )
        tell(f"{name}: costs {start:%Y-%m-%d} .. {end:%Y-%m-%d}")
        window = (start, end)
        frame = within(lambda: provider.costs(*window), f"costs {start:%Y-%m-%d}..{end:%Y-%m-%d}")
        loaded = store.ingest_costs(frame, source=f"{name}:api", attribution=attribution)
        tell(f"{name}: prices")
        prices = within(lambda: provider.prices(locations or None), "prices")
        n_prices = store.ingest_prices(prices, source=f"{name}:prices") if len(prices) else 0
        store.set_sync_state(name, end)
    except CloudBalanceError as err:  # stored in the audit log and shown in reports: redacted
        return ProviderSync(name, ok=False, start=start, end=end, error=redact(str(err)))
    except Exception as err:  # a third-party plugin's bug must not lose the other providers
        return ProviderSync(
            name,
            ok=False,
            start=start,
            end=end,
            error=redact(f"internal error in the {name!r} plugin: {type(err).__name__}: {err}"),
        )
    return ProviderSync(
        name,
        ok=True,
        start=start,
        end=end,
        rows=loaded.rows,
        replaced=loaded.replaced,
        prices=n_prices,
    )


@dataclass(frozen=True)
class Freshness:
    """What data one cloud stands on, judged at a run's time.

    Attributes:
        cloud: Cloud id (``aws``, ``azure``, ``gcp``...).
        until: End (exclusive, naive UTC) of its latest complete day
            (:meth:`Store.data_as_of`).
        now: The run's time.
        stale_after_days: ``sync.stale_after_days``.
    """

    cloud: str
    until: datetime
    now: datetime
    stale_after_days: int

    @property
    def as_of(self) -> date:
        """The latest complete day ("data as of")."""
        return (self.until - timedelta(days=1)).date()

    @property
    def stale(self) -> bool:
        """Whether the data ends more than ``stale_after_days`` before the run."""
        return self.now - self.until > timedelta(days=self.stale_after_days)

    @property
    def warning(self) -> str | None:
        """One line for the run's output when the data is stale, else ``None``."""
        if not self.stale:
            return None
        return (
            f"{self.cloud}: data ends {self.as_of:%Y-%m-%d}, older than "
            f"{self.stale_after_days} day(s) before {self.now:%Y-%m-%d} "
            "(sync.stale_after_days); is its export still delivered?"
        )


def freshness(
    store: Store, *, stale_after_days: int, now: datetime | None = None
) -> tuple[Freshness, ...]:
    """Per cloud, the data the store stands on and whether it is stale, sorted by cloud.

    Args:
        store: The store to ask (:meth:`Store.data_as_of`).
        stale_after_days: ``sync.stale_after_days``.
        now: The run's time (naive UTC; default: now), so a run ``--as-of`` a day judges that day.
    """
    when = now or datetime.now(UTC).replace(tzinfo=None)
    return tuple(
        Freshness(cloud, until, when, stale_after_days)
        for cloud, until in sorted(store.data_as_of(now=when).items())
    )
