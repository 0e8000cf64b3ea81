"""Pull every configured provider into the store, incrementally, surviving partial failure.

Each provider is synced on its own: the window starts where the store's last successful sync of
that provider ended, minus the provider's ``revision_days`` (clouds restate recent days), or
``lookback_days`` before today on the first run. The store replaces whole (provider, account,
day) keys, so re-pulling days never double-counts.

One provider failing (credentials, throttling after retries, an outage, even a bug in a
third-party plugin) does not lose the others: its error is reported in its
:class:`ProviderSync`, the others are loaded and committed, and the caller decides the exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cloudbalance.attribution import Attribution
from cloudbalance.config import Settings
from cloudbalance.exceptions import CloudBalanceError
from cloudbalance.models import Location
from cloudbalance.provider import get_provider
from cloudbalance.redaction import redact
from cloudbalance.store import Store

__all__ = ["DEFAULT_LOOKBACK_DAYS", "ProviderSync", "sync"]

DEFAULT_LOOKBACK_DAYS = 90


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
    """

    provider: str
    ok: bool
    start: datetime | None = None
    end: datetime | None = None
    rows: int = 0
    replaced: int = 0
    prices: int = 0
    error: str | None = None


def _today() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)


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


def sync(
    settings: Settings,
    store: Store,
    *,
    names: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    progress: Callable[[str], None] | None = None,
) -> list[ProviderSync]:
    """Sync the configured providers (or only ``names``) into ``store``.

    Args:
        settings: Providers and their options, workload rules for attribution.
        store: Where to load.
        names: Only these providers.
        since: Pull from this day instead of the incremental start.
        until: End of the window (exclusive); default: tomorrow 00:00 UTC, so today's partial
            day is loaded and restated on the next run.
        lookback_days: History pulled on a provider's first sync.
        progress: Told one line per phase.
    """
    tell = progress or (lambda _message: None)
    end = until or _today() + timedelta(days=1)
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
        results.append(
            _sync_one(store, name, options, attribution, locations, since, end, lookback_days, tell)
        )
    return results


def _sync_one(
    store: Store,
    name: str,
    options: dict[str, object],
    attribution: Attribution,
    locations: Sequence[Location],
    since: datetime | None,
    end: datetime,
    lookback_days: int,
    tell: Callable[[str], None],
) -> ProviderSync:
    start: datetime | None = None
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
        frame = provider.costs(start, end)
        loaded = store.ingest_costs(frame, source=f"{name}:api", attribution=attribution)
        tell(f"{name}: prices")
        prices = provider.prices(locations or None)
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
