"""The ``azure`` provider: Cost Management costs, Retail Prices API prices, FocusCost exports."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from cloudbalance.exceptions import (
    CloudBalanceError,
    ConfigError,
    CredentialsError,
    ProviderError,
)
from cloudbalance.models import Location
from cloudbalance.provider import EXPORT_REVISION_DAYS, ProviderCheck
from cloudbalance.retry import RetryPolicy
from cloudbalance.schema import validate_costs
from cloudbalance_azure._client import (
    ARM_ENDPOINT,
    PRICES_ENDPOINT,
    PROVIDER,
    cost_client,
    default_credential,
    prices_client,
)
from cloudbalance_azure._scope import Scope, parse_scope

__all__ = ["OPTIONS", "AzureProvider"]

#: Every option ``providers.azure`` accepts, for the error that lists them.
OPTIONS: tuple[str, ...] = (
    "amortized",
    "billing_account",
    "chunk_days",
    "connect_timeout",
    "credential",
    "currency",
    "endpoint",
    "export_paths",
    "management_group",
    "max_attempts",
    "prices_endpoint",
    "read_timeout",
    "regions",
    "reservation_term",
    "resource_group",
    "revision_days",
    "scope",
    "subscription_id",
    "tag_keys",
    "vm_sizes",
)

#: The API caps a custom time period at one year.
MAX_CHUNK_DAYS = 366
_ARM_SCOPE = "https://management.azure.com/.default"


def _strings(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"providers.azure.{key}: expected a string or a list of strings", key=key)


class AzureProvider:
    """Azure costs and prices (``providers: {azure: {...}}`` in cloudbalance.yaml).

    Options (keyword arguments, all optional except a scope):
        scope / subscription_id (+ resource_group) / management_group / billing_account:
            exactly one: the Cost Management scope whose costs are read.
        tag_keys: Tag keys copied into ``Tags`` (the store attributes workloads from them);
            each key costs one more query per chunk.
        amortized: Also query ``AmortizedCost`` for ``EffectiveCost`` (default true).
        chunk_days: Days per query, 1..366 (default 31).
        revision_days: Trailing days ``cloudbalance sync`` re-pulls (default 35 with
            ``export_paths``, whose month-to-date files are rewritten; else 5: usage arrives
            up to 72 hours late and amortized charges settle in the first days of a month).
        regions: ARM regions whose prices :meth:`prices` reads when no locations are given
            (default: every region, which is several hundred pages).
        currency: Price currency (``currencyCode``; default USD).
        reservation_term: ``1 Year`` or ``3 Years`` for committed prices (default ``1 Year``).
        vm_sizes: ``{size: [vcpus, memory_gib]}`` shapes for sizes the name does not tell.
        export_paths: FocusCost export files, globs or folders on disk; when given, costs are
            read from them (through the core FOCUS reader) instead of the query API.
        max_attempts: Tries per request on throttling and transient errors (default 5).
        connect_timeout / read_timeout: Seconds to wait for a connection and for each answer
            (default 10 and 60); a request that times out is retried like a transient failure.
        endpoint / prices_endpoint: Other ARM or prices endpoints (sovereign clouds, tests).
        credential: A ``TokenCredential`` object (from Python only); default
            ``DefaultAzureCredential``.

    The constructor checks the options and touches no network and no SDK.
    """

    name = "azure"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"providers.azure: unknown option(s) {', '.join(unknown)}; "
                f"valid options are {', '.join(OPTIONS)}",
                key=f"providers.azure.{unknown[0]}",
            )
        self.export_paths = _strings(options.get("export_paths"), "export_paths")
        has_scope = any(
            options.get(k)
            for k in ("scope", "subscription_id", "management_group", "billing_account")
        )
        self.scope: Scope | None = (
            parse_scope(
                scope=options.get("scope"),
                subscription_id=options.get("subscription_id"),
                resource_group=options.get("resource_group"),
                management_group=options.get("management_group"),
                billing_account=options.get("billing_account"),
            )
            if has_scope or not self.export_paths
            else None
        )
        self.tag_keys = _strings(options.get("tag_keys"), "tag_keys")
        self.regions = _strings(options.get("regions"), "regions")
        self.amortized = bool(options.get("amortized", True))
        self.chunk_days = self._int(options, "chunk_days", 31, 1, MAX_CHUNK_DAYS)
        default_revision = EXPORT_REVISION_DAYS if self.export_paths else 5
        self.revision_days = self._int(options, "revision_days", default_revision, 0, 60)
        self.max_attempts = self._int(options, "max_attempts", 5, 1, 20)
        self.connect_timeout = self._seconds(options, "connect_timeout", 10.0)
        self.read_timeout = self._seconds(options, "read_timeout", 60.0)
        self.currency: str | None = options.get("currency")
        term = str(options.get("reservation_term", "1 Year"))
        if term.lower() not in {"1 year", "3 years"}:
            raise ConfigError(
                f"providers.azure.reservation_term: expected '1 Year' or '3 Years', got {term!r}",
                key="providers.azure.reservation_term",
            )
        self.reservation_term = term
        self.vm_sizes = self._sizes(options.get("vm_sizes"))
        self.endpoint = _endpoint(options.get("endpoint"), ARM_ENDPOINT, "endpoint")
        self.prices_endpoint = _endpoint(
            options.get("prices_endpoint"), PRICES_ENDPOINT, "prices_endpoint"
        )
        self._credential = options.get("credential")
        if self._credential is not None and not callable(
            getattr(self._credential, "get_token", None)
        ):
            raise ConfigError(
                "providers.azure.credential: expected a TokenCredential object (set it from "
                "Python); leave it out to use DefaultAzureCredential",
                key="providers.azure.credential",
            )
        self._client: Any = None
        self._prices_client: Any = None
        #: Injected by tests so retries never wait.
        self.sleep: Callable[[float], None] = time.sleep

    @staticmethod
    def _int(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"providers.azure.{key}: expected a whole number in {low}..{high}, got {value!r}",
                key=f"providers.azure.{key}",
            )
        return value

    @staticmethod
    def _seconds(options: Mapping[str, Any], key: str, default: float) -> float:
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(
                f"providers.azure.{key}: expected a positive number of seconds, got {value!r}",
                key=f"providers.azure.{key}",
            )
        return float(value)

    @staticmethod
    def _sizes(value: object) -> dict[str, tuple[float, float]]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(
                "providers.azure.vm_sizes: expected {size: [vcpus, memory_gib]}",
                key="providers.azure.vm_sizes",
            )
        out: dict[str, tuple[float, float]] = {}
        for size, shape in value.items():
            ok = (
                isinstance(shape, Sequence)
                and not isinstance(shape, str)
                and len(shape) == 2
                and all(isinstance(v, int | float) and v > 0 for v in shape)
            )
            if not ok:
                raise ConfigError(
                    f"providers.azure.vm_sizes.{size}: expected [vcpus, memory_gib] > 0, "
                    f"got {shape!r}",
                    key=f"providers.azure.vm_sizes.{size}",
                )
            out[str(size)] = (float(shape[0]), float(shape[1]))
        return out

    @property
    def policy(self) -> RetryPolicy:
        """Retry policy for every request."""
        return RetryPolicy(attempts=self.max_attempts)

    def _credential_or_default(self) -> Any:
        if self._credential is None:
            self._credential = default_credential()
        return self._credential

    def _cost_client(self) -> Any:
        if self._client is None:
            self._client = cost_client(
                self._credential_or_default(),
                self.endpoint,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
            )
        return self._client

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Every row of every whole UTC day in ``[start, end)`` (see :mod:`._costs`).

        Raises:
            CredentialsError: No credential, expired or refused, or no role on the scope.
            ThrottledError: Still throttled after ``max_attempts`` tries.
            ProviderError: Any other failure (a malformed response names page, row and column).
        """
        if self.export_paths:
            return self._export_costs(start, end)
        with _quiet_identity():
            return self._query_costs(start, end)

    def _query_costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        from cloudbalance_azure._costs import CostQuery

        assert self.scope is not None  # parse_scope ran: no exports means a scope was required
        query = CostQuery(
            client=self._cost_client(),
            scope=self.scope,
            endpoint=self.endpoint,
            tag_keys=self.tag_keys,
            amortized=self.amortized,
            chunk_days=self.chunk_days,
            policy=self.policy,
            sleep=self.sleep,
        )
        return query.costs(start, end)

    def _export_costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """FocusCost exports through the core FOCUS reader, only whole days in the window."""
        from cloudbalance.providers.focus import FocusReader

        first = pd.Timestamp(start).ceil("D").to_pydatetime()
        try:
            frame = FocusReader().read(self.export_paths, start=first, end=end)
        except CloudBalanceError as err:
            raise ProviderError(str(err), provider=PROVIDER) from err
        frame = validate_costs(frame)
        frame["x_Cloud"] = frame["x_Cloud"].fillna("azure")
        return frame

    def prices(self, locations: Sequence[Location] | None = None) -> pd.DataFrame:
        """Linux VM prices per instance-hour (on-demand, spot, committed) at ``locations``.

        Locations of other clouds are ignored; ``None`` means the ``regions`` option, or every
        region when that is empty too.
        """
        from cloudbalance_azure._prices import PriceQuery, prices_frame

        if locations is None:
            regions: tuple[str, ...] = self.regions
        else:
            regions = tuple(sorted({loc.region for loc in locations if loc.cloud == "azure"}))
            if not regions:
                return prices_frame([], observed_at=_now())
        if self._prices_client is None:
            self._prices_client = prices_client(
                self.prices_endpoint,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
            )
        query = PriceQuery(
            client=self._prices_client,
            endpoint=self.prices_endpoint,
            currency=self.currency,
            policy=self.policy,
            sleep=self.sleep,
        )
        return prices_frame(
            query.items(regions),
            observed_at=_now(),
            reservation_term=self.reservation_term,
            vm_sizes=self.vm_sizes,
        )

    def check(self) -> ProviderCheck:
        """Ask the credential chain for a management token; never raises, never prints it."""
        if self.export_paths and self.scope is None:
            from cloudbalance.providers.focus import discover_files

            try:
                files = discover_files(self.export_paths)
            except CloudBalanceError as err:
                return ProviderCheck(self.name, ok=False, detail=str(err), missing="export files")
            return ProviderCheck(self.name, ok=True, detail=f"{len(files)} FocusCost file(s)")
        assert self.scope is not None
        where = f"scope {self.scope.path}"
        try:
            credential = self._credential_or_default()
            with _quiet_identity():
                credential.get_token(_ARM_SCOPE)
        except ImportError:
            return ProviderCheck(
                self.name,
                ok=False,
                detail=where,
                missing="the Azure SDK (pip install cloudbalance-azure)",
            )
        except CredentialsError as err:
            return ProviderCheck(self.name, ok=False, detail=where, missing=str(err))
        except Exception as err:  # any credential failure is a finding, not a crash
            return ProviderCheck(
                self.name,
                ok=False,
                detail=f"{where}; {type(err).__name__}",
                missing="Azure credentials: `az login`, a managed identity, or "
                "AZURE_TENANT_ID/AZURE_CLIENT_ID with a secret or certificate in the environment",
            )
        return ProviderCheck(
            self.name, ok=True, detail=f"{where}; credential {_credential_source(credential)}"
        )


@contextmanager
def _quiet_identity() -> Iterator[None]:
    """Silence azure-identity's multi-line warnings while we ask for a token.

    When no credential in the chain works, azure-identity logs a warning per credential tried;
    the CLI prints one line per provider instead (our ``CredentialsError`` or ``check`` result).
    """
    logger = logging.getLogger("azure.identity")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _endpoint(value: object, default: str, key: str) -> str:
    """An https URL, or plain http on the loopback interface (a token never crosses in clear)."""
    text = str(value or default).strip().rstrip("/")
    parts = urlsplit(text)
    local = parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or (parts.scheme != "https" and not local):
        raise ConfigError(
            f"providers.azure.{key}: expected an https:// URL (plain http only on localhost), "
            f"got {text!r}",
            key=f"providers.azure.{key}",
        )
    return text


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _credential_source(credential: Any) -> str:
    """Which credential answered (class name and, for a service principal, its client id)."""
    inner = getattr(credential, "_successful_credential", None) or credential
    name = type(inner).__name__
    client_id = os.environ.get("AZURE_CLIENT_ID")
    if name == "EnvironmentCredential" and client_id:
        return f"{name} (client {client_id})"
    return name
