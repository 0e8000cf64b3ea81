"""Turn Google SDK errors into cloudbalance's typed errors, or into a request to retry.

Both Google clients (BigQuery and the Cloud Billing Catalog) raise ``google.api_core`` HTTP
exceptions and ``google.auth`` credential errors. One function decides, for both, what is worth
another try (rate limits, 5xx, dropped connections) and what no retry can fix (a refused
permission, a missing table, a bad query), so the two clients behave the same under
:func:`cloudbalance.retry.retry_call`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cloudbalance.exceptions import CredentialsError, ProviderError
from cloudbalance.retry import Retryable

__all__ = ["NAME", "classify", "guarded"]

NAME = "gcp"

T = TypeVar("T")

#: ``errors[].reason`` values BigQuery and the Catalog API use for "slow down, then try again".
_RETRY_REASONS = frozenset(
    {
        "rateLimitExceeded",
        "backendError",
        "internalError",
        "jobRateLimitExceeded",
        "quotaExceeded",
        "RATE_LIMIT_EXCEEDED",
    }
)
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})

_LOGIN_HINT = (
    "run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS "
    "at a service-account key file"
)


def _reasons(err: BaseException) -> list[str]:
    found: list[str] = []
    for item in getattr(err, "errors", None) or []:
        if isinstance(item, dict) and item.get("reason"):
            found.append(str(item["reason"]))
    reason = getattr(err, "reason", None)
    if isinstance(reason, str) and reason:
        found.append(reason)
    return found


def _message(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err)
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def classify(err: Exception, what: str) -> Exception:
    """Map an SDK error raised while doing ``what`` to the error to raise (or retry).

    Args:
        err: What the Google client raised.
        what: The operation, in words (``"BigQuery query on p.d.t"``), for the message.

    Returns:
        A :class:`~cloudbalance.retry.Retryable` for throttling and transient failures, a
        :class:`~cloudbalance.exceptions.CredentialsError` for missing, expired or refused
        credentials, otherwise a :class:`~cloudbalance.exceptions.ProviderError`. The caller
        raises it ``from err`` so the SDK error stays chained.
    """
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    if isinstance(err, auth.DefaultCredentialsError):
        return CredentialsError(
            f"{what}: no Google credentials found; {_LOGIN_HINT}", provider=NAME
        )
    if isinstance(err, auth.RefreshError):
        return CredentialsError(
            f"{what}: Google credentials are expired or revoked; {_LOGIN_HINT}", provider=NAME
        )
    if isinstance(err, auth.TransportError):
        return Retryable(f"{what}: could not reach the token endpoint ({_message(err)})")
    if isinstance(err, api.GoogleAPICallError):
        code = err.code if isinstance(err.code, int) else None
        reasons = _reasons(err)
        if code in _RETRY_STATUS or any(r in _RETRY_REASONS for r in reasons):
            after = _retry_after(err)
            return Retryable(f"{what}: HTTP {code} {', '.join(reasons)}".strip(), after=after)
        if code == 401 or isinstance(err, api.Unauthenticated):
            return CredentialsError(
                f"{what}: the credentials were refused (HTTP 401); {_LOGIN_HINT}", provider=NAME
            )
        if code == 403 or isinstance(err, api.PermissionDenied):
            return CredentialsError(
                f"{what}: permission denied (HTTP 403: {_message(err)}); see the least-privilege "
                "roles in the cloudbalance-gcp documentation",
                provider=NAME,
            )
        if code == 404:
            return ProviderError(f"{what}: not found (HTTP 404: {_message(err)})", provider=NAME)
        return ProviderError(f"{what}: HTTP {code}: {_message(err)}", provider=NAME)
    if isinstance(err, ConnectionError | TimeoutError) or type(err).__module__.startswith(
        ("requests.", "urllib3.")
    ):
        return Retryable(f"{what}: connection failed ({type(err).__name__})")
    return ProviderError(f"{what}: {type(err).__name__}: {_message(err)}", provider=NAME)


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def guarded(fn: Callable[[], T], what: str) -> Callable[[], T]:
    """Wrap ``fn`` so SDK errors come out classified (raise-ready or :class:`Retryable`).

    Errors that are already ours (:class:`~cloudbalance.exceptions.CloudBalanceError`) and
    :class:`Retryable` pass through unchanged.
    """
    from cloudbalance.exceptions import CloudBalanceError

    def call() -> T:
        try:
            return fn()
        except (CloudBalanceError, Retryable):
            raise
        except Exception as err:
            raise classify(err, what) from err

    return call
