"""The cost-provider contract and the plugin registry.

A provider is any object satisfying :class:`CostProvider`, built by a factory (usually the class)
registered under the entry-point group ``cloudbalance.providers``::

    # providers/aws/pyproject.toml
    [project.entry-points."cloudbalance.providers"]
    aws = "cloudbalance_aws:AWSProvider"

The factory is called with the provider's options from ``cloudbalance.yaml`` as keyword arguments
and must raise :class:`~cloudbalance.exceptions.ConfigError` for options it does not know or
values it refuses. It must not touch the network: credentials are looked up in
:meth:`CostProvider.check` or on first use, so ``cloudbalance providers list`` stays instant.
Cloud SDKs are imported inside the plugin's methods.

Options are validated through the plugin (:func:`validate_provider_options`, which
``cloudbalance config check`` runs): a factory with a ``validate_options(options)`` callable
returns every problem as ``(key, message)`` pairs; any other factory is built once and what it
raises is the problem.

The smallest provider that passes the contract tests (:mod:`cloudbalance.testing`)::

    class CsvProvider:
        name = "csv"
        revision_days = 0

        def __init__(self, path: str) -> None:
            self.path = path

        def costs(self, start, end):
            frame = validate_costs(pd.read_csv(self.path))
            keep = (frame.ChargePeriodStart >= start) & (frame.ChargePeriodStart < end)
            return frame[keep].reset_index(drop=True)

        def prices(self, locations=None):
            return empty_frame(PRICES)

        def check(self):
            return ProviderCheck(self.name, ok=Path(self.path).exists(), detail=self.path)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from cloudbalance.exceptions import ConfigError, ProviderError, ProviderNotFoundError
from cloudbalance.models import Location

__all__ = [
    "CLOUD_IDS",
    "ENTRY_POINT_GROUP",
    "EXPORT_REVISION_DAYS",
    "CostProvider",
    "ProviderCheck",
    "ProviderFactory",
    "available_providers",
    "cloud_id",
    "get_provider",
    "register_provider",
    "unregister_provider",
    "validate_provider_options",
]

ENTRY_POINT_GROUP = "cloudbalance.providers"

#: Trailing days a sync of export files reads again: AWS Data Exports and Azure FocusCost
#: exports rewrite the current (and at month close the previous) month, so a little over a
#: month covers every restated day of a daily job.
EXPORT_REVISION_DAYS = 35


@dataclass(frozen=True)
class ProviderCheck:
    """What ``cloudbalance providers check`` prints for one provider, in one line.

    Attributes:
        provider: Registered name.
        ok: Whether the provider can be used as configured (credentials found, files exist).
        detail: Where the credentials or data come from (profile name, identity, path); never a
            secret.
        missing: What the user must add when ``ok`` is false (package, credentials, permission).
    """

    provider: str
    ok: bool
    detail: str = ""
    missing: str = ""


@runtime_checkable
class CostProvider(Protocol):
    """A source of cost lines and prices.

    Attributes:
        name: The registered name (``aws``, ``azure``, ``gcp``, ``focus``...).
        revision_days: How many trailing days the source still revises; ``cloudbalance sync``
            re-pulls them on every run (clouds restate recent days for hours to days; FOCUS
            exports rewrite whole months, so the ``focus`` provider re-reads 35 days).

    **Time limits.** Every network request of a provider must have a connect and a read timeout
    (the built-in plugins take ``connect_timeout``/``read_timeout`` options). On top of them,
    ``cloudbalance sync`` gives each provider an overall deadline (``sync.deadline``): it calls
    :meth:`costs` and :meth:`prices` in a worker thread, reports a provider still busy at the
    deadline as failed (:class:`~cloudbalance.exceptions.ProviderTimeoutError`) and drops its
    late answer. A provider never writes to the store itself.

    **Units.** ``ConsumedUnit`` may be written as the source writes it (``seconds``, ``Hrs``,
    ``10 Hours``): the store normalises it at ingest (:mod:`cloudbalance.units`).
    """

    name: str
    revision_days: int

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Cost lines charged in ``[start, end)`` (naive UTC).

        Returns:
            A costs frame (:data:`cloudbalance.schema.COSTS`) with ``x_Source`` naming where
            the rows came from. Each call must return every row of each (provider, billing
            account, day) it returns at all, because the store replaces whole days (see
            :data:`cloudbalance.schema.INGEST_KEY`).

        Raises:
            CredentialsError: Credentials missing, expired or refused.
            ThrottledError: The API kept throttling after bounded retries.
            ProviderError: Any other failure, with the SDK error chained.
        """
        ...

    def prices(self, locations: Sequence[Location] | None = None) -> pd.DataFrame:
        """Current prices at ``locations`` (all known locations when ``None``).

        Returns:
            A prices frame (:data:`cloudbalance.schema.PRICES`), possibly empty when the
            source has no prices (a FOCUS file).
        """
        ...

    def check(self) -> ProviderCheck:
        """Look for credentials or data without changing anything; never raise for absence."""
        ...


ProviderFactory = Callable[..., CostProvider]

_lock = threading.Lock()
_registered: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Register a provider in-process (tests, notebooks); entry points need no call."""
    with _lock:
        _registered[name] = factory


def unregister_provider(name: str) -> None:
    """Remove an in-process registration (no error when absent)."""
    with _lock:
        _registered.pop(name, None)


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_providers() -> list[str]:
    """Names of every installed or registered provider, sorted."""
    with _lock:
        names = set(_registered)
    return sorted(names | set(_entry_points()))


def _factory(name: str) -> ProviderFactory:
    with _lock:
        factory = _registered.get(name)
    if factory is not None:
        return factory
    ep = _entry_points().get(name)
    if ep is None:
        raise ProviderNotFoundError(name, available_providers())
    try:
        loaded: ProviderFactory = ep.load()
    except (ImportError, AttributeError) as err:
        raise ProviderError(
            f"the plugin {ep.value!r} is installed but cannot be loaded: {err}", provider=name
        ) from err
    return loaded


def get_provider(name: str, options: Mapping[str, Any] | None = None) -> CostProvider:
    """Build the provider called ``name`` with its options from the configuration.

    Raises:
        ProviderNotFoundError: No such plugin; the message lists the installed ones.
        ConfigError: The plugin rejected an option.
    """
    factory = _factory(name)
    try:
        provider = factory(**dict(options or {}))
    except TypeError as err:
        unknown = re.search(r"unexpected keyword argument '([^']+)'", str(err))
        message = f"unknown option {unknown.group(1)!r}" if unknown else str(err)
        raise ConfigError(f"providers.{name}: {message}", key=f"providers.{name}") from err
    if not isinstance(provider, CostProvider):
        raise ProviderError(
            "the plugin does not implement the CostProvider protocol "
            "(name, revision_days, costs, prices, check)",
            provider=name,
        )
    return provider


def validate_provider_options(name: str, options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The problems of one provider's options, through its plugin, without touching the network.

    Returns:
        ``(key, message)`` pairs; ``key`` is the option's name below ``providers.<name>`` (empty
        when the problem concerns the provider as a whole, e.g. it is not installed).
    """
    try:
        factory = _factory(name)
    except ProviderError as err:
        return [("", str(err).removeprefix(f"provider {name!r}: "))]
    validate = getattr(factory, "validate_options", None)
    if callable(validate):
        return [(str(key), str(message)) for key, message in validate(dict(options))]
    try:
        get_provider(name, options)
    except ConfigError as err:
        key = (err.key or "").removeprefix(f"providers.{name}").lstrip(".")
        reason = err.reason.removeprefix(f"providers.{name}: ")
        if key:
            reason = reason.removeprefix(f"providers.{name}.{key}: ")
        return [(key, reason)]
    except ProviderError as err:
        return [("", str(err).removeprefix(f"provider {name!r}: "))]
    except (TypeError, ValueError) as err:  # a plugin that validates loosely
        return [("", str(err))]
    return []


#: FOCUS ``ProviderName`` / ``ServiceProviderName`` values as the publishers write them -> our ids.
CLOUD_IDS: dict[str, str] = {
    "aws": "aws",
    "amazon web services": "aws",
    "amazon": "aws",
    "microsoft": "azure",
    "microsoft azure": "azure",
    "azure": "azure",
    "google cloud": "gcp",
    "google cloud platform": "gcp",
    "google": "gcp",
    "gcp": "gcp",
    "oracle": "oci",
    "oracle cloud infrastructure": "oci",
    "oci": "oci",
    "alibaba cloud": "alibaba",
}


def cloud_id(provider_name: str | None) -> str | None:
    """Map a FOCUS provider name to our cloud id; ``None`` when we do not know it.

    The original ``ProviderName`` is always kept as given; this only fills ``x_Cloud``.
    """
    if provider_name is None:
        return None
    return CLOUD_IDS.get(provider_name.strip().lower())
