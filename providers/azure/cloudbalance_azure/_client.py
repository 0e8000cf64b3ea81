"""Credentials, SDK clients and the one place where SDK errors become cloudbalance errors.

Every Azure SDK import lives inside a function here, so importing the plugin (which
``cloudbalance providers list`` does) costs nothing.

Retries are ours, not azure-core's: the clients are built with ``retry_total=0`` and every call
goes through :func:`call`, which turns throttling (429) and transient failures (5xx, connection
errors) into :class:`~cloudbalance.retry.Retryable` with the wait the server asked for. We do this
because azure-core retries a throttled POST only when ``Retry-After`` is present, while Cost
Management often sends only its own ``x-ms-ratelimit-microsoft.costmanagement-*-retry-after``
headers; and because tests must be able to inject the sleep.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cloudbalance.exceptions import CredentialsError, ProviderError
from cloudbalance.retry import Retryable

__all__ = [
    "ARM_ENDPOINT",
    "PRICES_ENDPOINT",
    "QueryTooLargeError",
    "call",
    "cost_client",
    "default_credential",
    "prices_client",
    "raise_for_status",
    "request_options",
    "retry_after",
    "same_origin",
]

T = TypeVar("T")

ARM_ENDPOINT = "https://management.azure.com"
PRICES_ENDPOINT = "https://prices.azure.com"
PROVIDER = "azure"

#: Headers that say how long to wait, in the order Cost Management documents them. The largest
#: value wins: waiting less than any one of them only earns another 429.
_RETRY_HEADERS = (
    "Retry-After",
    "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
    "x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after",
)
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
_TIMEOUTS = frozenset({408, 504})
#: How Cost Management words a query over its size limits (period too long, result too big).
_TOO_LARGE = re.compile(r"(?i)(exceed|too large|too many|too long)")


class QueryTooLargeError(ProviderError):
    """The query asked for more than the API serves at once; a smaller period may pass.

    Raised instead of retrying the same request when the caller can split it (a 400 over the
    size limits, or a gateway timeout on a heavy query).
    """


_SECRETISH = re.compile(r"(?i)(bearer\s+\S+|eyJ[a-zA-Z0-9_\-]{10,}\S*)")


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}


def default_credential() -> Any:
    """``DefaultAzureCredential``: environment, workload identity, managed identity, Azure CLI.

    Raises:
        CredentialsError: azure-identity is not installed.
    """
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as err:  # pragma: no cover - a dependency of the distribution
        raise CredentialsError(
            "azure-identity is not installed (pip install cloudbalance-azure)", provider=PROVIDER
        ) from err
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def cost_client(
    credential: Any, endpoint: str, *, connect_timeout: float, read_timeout: float
) -> Any:
    """A ``CostManagementClient`` against ``endpoint`` with azure-core retries switched off.

    Every request has a connect and a read timeout (azure-core waits 300 s by default, and an
    endpoint that accepts and never answers would hang the sync that long per try). Each
    request must carry :func:`request_options` (see there).
    """
    from azure.mgmt.costmanagement import CostManagementClient

    return CostManagementClient(
        credential,
        base_url=endpoint,
        retry_total=0,
        connection_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def request_options(endpoint: str) -> dict[str, Any]:
    """Per-request options: a plain-http endpoint is allowed only on the loopback interface.

    The bearer policy refuses to send a token over http unless the request says
    ``enforce_https=False``; we say it only for 127.0.0.1/localhost (recorded-response tests).
    """
    return {"enforce_https": False} if _is_local(endpoint) else {}


def prices_client(endpoint: str, *, connect_timeout: float, read_timeout: float) -> Any:
    """An unauthenticated azure-core pipeline for the public Retail Prices API (with timeouts)."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import (
        ContentDecodePolicy,
        HeadersPolicy,
        RetryPolicy,
        UserAgentPolicy,
    )

    policies = [
        HeadersPolicy(),
        UserAgentPolicy(sdk_moniker="cloudbalance-azure"),
        ContentDecodePolicy(),
        RetryPolicy(retry_total=0),
    ]
    return PipelineClient(
        base_url=endpoint,
        policies=policies,
        connection_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """The longest wait any retry-after header asks for, in seconds (None when none does)."""
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in headers.items()}
    waits: list[float] = []
    for name in _RETRY_HEADERS:
        value = lowered.get(name.lower())
        if value is None:
            continue
        try:
            waits.append(max(0.0, float(str(value).strip())))
        except ValueError:
            continue  # an HTTP date: rare here; fall back to our own backoff
    return max(waits) if waits else None


def same_origin(url: str, endpoint: str) -> bool:
    """Whether ``url`` (a server-given next link) points at the endpoint we trust with a token."""
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _scrub(text: str) -> str:
    return _SECRETISH.sub("[redacted]", text)


def _error_text(err: Any) -> str:
    """``<status> <code>: <message>`` from an azure-core error, never a token."""
    status = getattr(err, "status_code", None)
    code = getattr(getattr(err, "error", None), "code", None)
    message = getattr(getattr(err, "error", None), "message", None)
    if not message:
        first = str(getattr(err, "message", None) or err).strip().splitlines()
        message = first[0] if first else err.__class__.__name__
    head = " ".join(str(p) for p in (status, code) if p)
    return _scrub(f"{head}: {message}" if head else str(message))[:500]


def call(fn: Callable[[], T], *, what: str, splittable: bool = False) -> T:
    """Run one SDK call; map its errors onto our tree (or :class:`Retryable`).

    Args:
        fn: The SDK call.
        what: What is being done, for messages ("query /subscriptions/…").
        splittable: The caller can retry with a smaller request; size-limit errors and gateway
            timeouts then raise :class:`QueryTooLargeError` instead of being retried as is.

    Raises:
        Retryable: Throttled (429) or a transient failure; ``after`` is the server's wait.
        QueryTooLargeError: Only when ``splittable``: the request is over the API's limits.
        CredentialsError: No usable credential, an expired or refused token (401), or a missing
            role assignment (403).
        ProviderError: Any other failure, with the SDK error chained.
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        return fn()
    except ClientAuthenticationError as err:
        raise CredentialsError(
            f"{what}: credentials missing, expired or refused ({_error_text(err)}); "
            "sign in with `az login` or set AZURE_CLIENT_ID/AZURE_TENANT_ID and a secret or "
            "certificate for a service principal",
            provider=PROVIDER,
        ) from err
    except DecodeError as err:
        raise ProviderError(
            f"{what}: malformed response, the body is not JSON", provider=PROVIDER
        ) from err
    except HttpResponseError as err:
        status = err.status_code
        text = _error_text(err)
        if splittable and (
            status in _TIMEOUTS or (status == 400 and _TOO_LARGE.search(text) is not None)
        ):
            raise QueryTooLargeError(f"{what}: {text}", provider=PROVIDER) from err
        if status in _TRANSIENT:
            headers = getattr(err.response, "headers", None)
            raise Retryable(f"{what}: {_error_text(err)}", after=retry_after(headers)) from err
        if status == 401:
            raise CredentialsError(
                f"{what}: credentials expired or refused ({_error_text(err)})", provider=PROVIDER
            ) from err
        if status == 403:
            raise CredentialsError(
                f"{what}: access denied ({_error_text(err)}); assign the Cost Management "
                "Reader role on the scope",
                provider=PROVIDER,
            ) from err
        raise ProviderError(f"{what}: {_error_text(err)}", provider=PROVIDER) from err
    except (ServiceRequestError, ServiceResponseError) as err:
        raise Retryable(f"{what}: connection failed ({_scrub(str(err))[:200]})") from err


def raise_for_status(response: Any) -> None:
    """Raise the azure-core error a generated operation would raise for this response."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    if response.status_code < 400:
        return
    if response.status_code == 401:
        raise ClientAuthenticationError(response=response)
    raise HttpResponseError(response=response)
