"""Credentials, clients and the one place where AWS errors become cloudbalance errors.

boto3 is imported here, inside methods, so that importing :mod:`cloudbalance_aws` (which
``cloudbalance providers list`` does for every installed plugin) costs nothing.

Every API call goes through :meth:`AWSClients.call`: it retries throttling and transient errors
with :func:`cloudbalance.retry.retry_call` (botocore's own retries are switched off, so waits are
counted once and tests can inject ``sleep``), and it turns every other SDK error into a typed
error that names the operation and, for refusals, the IAM action to grant. No message carries a
key, token or secret: only codes, operations, account ids and ARNs; SDK text passes through
:func:`cloudbalance.redaction.redact`, so an access key id echoed by a server is removed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from cloudbalance.exceptions import CredentialsError, ProviderError
from cloudbalance.redaction import redact
from cloudbalance.retry import Retryable, RetryPolicy, retry_call
from cloudbalance_aws._options import AWSOptions

__all__ = ["IAM_ACTIONS", "AWSClients", "translate_error"]

PROVIDER = "aws"

T = TypeVar("T")

#: The IAM action each API call needs: the least-privilege policy is exactly these.
IAM_ACTIONS: dict[str, str] = {
    "get_caller_identity": "(none: sts:GetCallerIdentity is always allowed)",
    "assume_role": "sts:AssumeRole",
    "get_cost_and_usage": "ce:GetCostAndUsage",
    "get_products": "pricing:GetProducts",
    "describe_spot_price_history": "ec2:DescribeSpotPriceHistory",
    "list_objects_v2": "s3:ListBucket",
    "get_object": "s3:GetObject",
}

_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "LimitExceededException",  # Cost Explorer's name for its request-rate limit
    "SlowDown",
    "ProvisionedThroughputExceededException",
}
_TRANSIENT = {
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestChangedException",  # Cost Explorer: data changed while paging; ask again
}
_EXPIRED = {
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "InvalidToken",
    "TokenRefreshRequired",
}
_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "NotAuthorized",
}


def translate_error(err: Exception, operation: str) -> Exception:
    """The exception to raise for an SDK error: :class:`Retryable` or a typed provider error.

    Args:
        err: What botocore raised.
        operation: The client method (``get_cost_and_usage``), named in the message.
    """
    from botocore import exceptions as bce
    from botocore.parsers import ResponseParserError

    action = IAM_ACTIONS.get(operation, operation)
    if isinstance(err, ResponseParserError):  # a proxy's page, a wrong endpoint: not AWS
        first = str(err).splitlines()[0] if str(err) else ""
        return ProviderError(
            redact(
                f"{operation}: the answer is not an AWS reply ({first[:120]}); is a proxy or "
                "a custom endpoint in the way?"
            ),
            provider=PROVIDER,
        )
    if isinstance(err, bce.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).strip()
        meta = err.response.get("ResponseMetadata", {})
        status = int(meta.get("HTTPStatusCode") or 0)
        if code in _THROTTLED or status == 429:
            return Retryable(f"{operation} was throttled ({code})", after=_retry_after(meta))
        if code in _TRANSIENT or status >= 500:
            return Retryable(f"{operation} failed transiently ({code}, HTTP {status})")
        if code in _EXPIRED:
            return CredentialsError(
                f"{operation} refused the credentials ({code}): they are expired or invalid; "
                "refresh them (aws sso login, new keys or a new session) and try again",
                provider=PROVIDER,
            )
        if code in _DENIED or status == 403:
            return CredentialsError(
                f"{operation} was denied ({code}): grant {action} to this identity",
                provider=PROVIDER,
            )
        detail = f": {message}" if message else ""
        return ProviderError(redact(f"{operation} failed ({code}){detail}"), provider=PROVIDER)
    if isinstance(err, bce.ProfileNotFound):
        return CredentialsError(
            f"the profile {err.kwargs.get('profile')!r} is not in the AWS config or "
            "credentials files",
            provider=PROVIDER,
        )
    credential_errors = (
        bce.NoCredentialsError,
        bce.PartialCredentialsError,
        bce.CredentialRetrievalError,
        bce.ProfileNotFound,
        bce.TokenRetrievalError,
        bce.SSOTokenLoadError,
        bce.UnauthorizedSSOTokenError,
        bce.NoRegionError,
    )
    if isinstance(err, credential_errors):
        return CredentialsError(
            redact(f"{operation}: no usable credentials ({type(err).__name__}: {err})"),
            provider=PROVIDER,
        )
    if isinstance(
        err,
        bce.EndpointConnectionError
        | bce.ConnectionClosedError
        | bce.ReadTimeoutError
        | bce.ConnectTimeoutError,
    ):
        return Retryable(f"{operation}: {type(err).__name__}")
    return ProviderError(
        redact(f"{operation} failed: {type(err).__name__}: {err}"), provider=PROVIDER
    )


def _retry_after(meta: dict[str, Any]) -> float | None:
    headers = meta.get("HTTPHeaders") or {}
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_LOADER: Any = None


def _core_session() -> Any:
    """A new botocore session sharing one process-wide loader of the service models.

    Loading a model (EC2's is megabytes of JSON) costs a good part of a second; every provider
    object, and every test, would otherwise pay it again for each client.
    """
    global _LOADER
    import botocore.loaders
    import botocore.session

    core = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = botocore.loaders.create_loader(core.get_config_variable("data_path"))
    # boto3 appends its own data folder to the loader's search paths on every session it
    # builds; keep each folder once so a long-lived process does not grow the list.
    _LOADER.search_paths[:] = list(dict.fromkeys(_LOADER.search_paths))
    core.register_component("data_loader", _LOADER)
    return core


class AWSClients:
    """Lazily built boto3 session and clients, and the guarded way to call them.

    Args:
        options: The provider's options (profile, region, role to assume, attempts).
        sleep: How to wait between retries (tests pass a recorder).
    """

    def __init__(self, options: AWSOptions, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.sleep = sleep
        self._session: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._identity: dict[str, Any] | None = None

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy of every call (attempts from the options)."""
        return RetryPolicy(attempts=self.options.max_attempts)

    def session(self) -> Any:
        """The boto3 session: default chain or named profile, then the role when configured.

        Raises:
            CredentialsError: The profile does not exist or the role cannot be assumed.
        """
        if self._session is not None:
            return self._session
        import boto3
        from botocore import exceptions as bce

        try:
            base = boto3.Session(
                botocore_session=_core_session(),
                profile_name=self.options.profile,
                region_name=self.options.region,
            )
        except bce.ProfileNotFound as err:
            raise CredentialsError(
                f"the profile {self.options.profile!r} is not in the AWS config or credentials "
                "files",
                provider=PROVIDER,
            ) from err
        self._session = self._assume(base) if self.options.role_arn else base
        return self._session

    def _assume(self, base: Any) -> Any:
        """A session whose credentials are the configured role's, refreshed before expiry."""
        import boto3
        from botocore.credentials import RefreshableCredentials

        options = self.options
        sts = base.client("sts", region_name=options.region, config=self._config())

        def refresh() -> dict[str, str]:
            params: dict[str, Any] = {
                "RoleArn": options.role_arn,
                "RoleSessionName": options.role_session_name,
            }
            if options.external_id:
                params["ExternalId"] = options.external_id
            answer = self._guarded(sts, "assume_role", params)
            creds = answer["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        credentials = RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="assume-role"
        )
        core = _core_session()
        core._credentials = credentials
        return boto3.Session(botocore_session=core, region_name=options.region)

    def _config(self) -> Any:
        from botocore.config import Config

        # Our retry policy is the only one: botocore's would multiply the attempts and sleep
        # where tests cannot see it.
        return Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            user_agent_extra="cloudbalance",
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
        )

    def client(self, service: str, region: str | None = None) -> Any:
        """The (cached) client of ``service`` in ``region`` (the configured region by default)."""
        where = region or self.options.region
        key = (service, where)
        if key not in self._clients:
            self._clients[key] = self.session().client(
                service, region_name=where, config=self._config()
            )
        return self._clients[key]

    def register(self, service: str, region: str, client: Any) -> None:
        """Use ``client`` for ``service`` in ``region`` (a stubbed client in tests)."""
        self._clients[(service, region)] = client

    def guard(self, fn: Callable[[], T], operation: str) -> T:
        """Run ``fn`` (one or more SDK calls) with bounded retries and typed errors.

        ``operation`` names the IAM action in a refusal (see :data:`IAM_ACTIONS`).
        """
        from botocore import exceptions as bce
        from botocore.parsers import ResponseParserError

        def once() -> T:
            try:
                return fn()
            except (bce.ClientError, bce.BotoCoreError, ResponseParserError) as err:
                raise translate_error(err, operation) from err

        return retry_call(once, provider=PROVIDER, policy=self.policy, sleep=self.sleep)

    def _guarded(self, client: Any, operation: str, params: dict[str, Any]) -> Any:
        return self.guard(lambda: getattr(client, operation)(**params), operation)

    def call(
        self, service: str, operation: str, *, region: str | None = None, **params: Any
    ) -> Any:
        """Call ``operation`` with bounded retries; SDK errors become typed errors.

        Raises:
            CredentialsError: Missing, expired or refused credentials (names the IAM action).
            ThrottledError: Still throttled after the last attempt.
            ProviderError: Any other failure, the SDK error chained.
        """
        return self.guard(
            lambda: getattr(self.client(service, region), operation)(**params), operation
        )

    def pages(
        self,
        service: str,
        operation: str,
        *,
        token_in: str,
        token_out: str,
        region: str | None = None,
        max_pages: int = 10_000,
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every page of a paged operation, following its token, each page retried on its own.

        Raises:
            ProviderError: The service keeps sending a token (more than ``max_pages`` pages).
        """
        token: str | None = None
        for _ in range(max_pages):
            answer = self.call(
                service, operation, region=region, **params, **({token_in: token} if token else {})
            )
            yield answer
            token = answer.get(token_out) or None
            if token is None:
                return
        raise ProviderError(
            f"{operation} returned more than {max_pages} pages; narrow the request",
            provider=PROVIDER,
        )

    def identity(self) -> dict[str, Any]:
        """``sts:GetCallerIdentity`` (account, ARN), asked once per provider object."""
        if self._identity is None:
            answer = self.call("sts", "get_caller_identity")
            self._identity = {"Account": answer["Account"], "Arn": answer["Arn"]}
        return self._identity

    def credential_source(self) -> str | None:
        """Where the credentials come from (``env``, ``sso``, ``assume-role``...), no secret.

        Returns ``None`` when the default chain finds no credentials at all.
        """
        from botocore import exceptions as bce

        try:
            credentials = self.session().get_credentials()
        except (bce.BotoCoreError, bce.ClientError) as err:
            error = translate_error(err, "get_credentials")
            if isinstance(error, Retryable):
                error = ProviderError(error.reason, provider=PROVIDER)
            raise error from err
        if credentials is None:
            return None
        return str(getattr(credentials, "method", "unknown"))
