"""The errors cloudbalance raises, one tree under a single root.

```
CloudBalanceError
├── ConfigError                  cloudbalance.yaml is wrong (file, line, key)
├── SchemaError                  a frame or file breaks its schema (file, row, column)
├── StoreError                   the embedded store cannot be used
│   └── StoreLockedError         another run holds the store
├── ProviderError                a cost provider failed (provider)
│   ├── ProviderNotFoundError    no plugin of that name is installed (lists the valid names)
│   ├── CredentialsError         credentials missing, expired or refused
│   ├── ThrottledError           the API kept throttling after our retries
│   └── ProviderTimeoutError     no answer within the provider's deadline (seconds)
├── ForecastError                forecasting failed (series)
│   └── InsufficientHistoryError too few points to forecast
├── PlanError                    planning failed (workload)
│   └── InfeasiblePlanError      the constraints cannot all hold (which ones, and a suggestion)
├── PolicyError                  a policy cannot be loaded or evaluated (file, line)
│   └── PolicyDeniedError        a policy denied the change (messages)
├── GitOpsError                  acting through Git failed
│   ├── StackConfigError         a Pulumi stack file is missing or malformed (file, line)
│   └── ConflictError            a person changed the keys the plan would write (both values)
└── StackOperationError          generating, previewing or deploying a Pulumi project failed
    └── PulumiNotInstalledError  the Pulumi CLI is missing (the message says how to install it)
```

Every error carries the context a handler needs as attributes (never only inside the message), and
errors from SDKs are chained with ``raise ... from err``. The CLI maps the whole tree to exit code 1
with one line of text (``str(error)``); anything outside the tree is an internal error (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CloudBalanceError",
    "ConfigError",
    "ConflictError",
    "CredentialsError",
    "ForecastError",
    "GitOpsError",
    "InfeasiblePlanError",
    "InsufficientHistoryError",
    "Issue",
    "PlanError",
    "PolicyDeniedError",
    "PolicyError",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderTimeoutError",
    "PulumiNotInstalledError",
    "SchemaError",
    "StackConfigError",
    "StackOperationError",
    "StoreError",
    "StoreLockedError",
    "ThrottledError",
]


class CloudBalanceError(Exception):
    """Root of every error cloudbalance raises on purpose."""


def _where(file: str | Path | None, line: int | None) -> str:
    if file is None:
        return ""
    return f"{file}:{line}: " if line is not None else f"{file}: "


class ConfigError(CloudBalanceError):
    """The configuration file (or a value given in code) is invalid.

    Attributes:
        file: The configuration file, when the value came from one.
        line: 1-based line of the offending key, when known.
        key: Dotted path of the offending key (``workloads.checkout.max_share``).
        problems: Every problem found in one pass (this error is the first); each names its
            own file, line and key. ``str()`` shows the first and how many more there are.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        problems: Sequence[ConfigError] = (),
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        self.reason = message
        self.problems: list[ConfigError] = list(problems) or [self]
        more = len(self.problems) - 1
        suffix = (
            f" (and {more} more problem{'s' if more > 1 else ''}: "
            "`cloudbalance config check` lists them all)"
            if more > 0
            else ""
        )
        super().__init__(f"{_where(file, line)}{message}{suffix}")

    @property
    def location(self) -> str:
        """``file:line: message`` of this one problem, without the count of the others."""
        return f"{_where(self.file, self.line)}{self.reason}"


@dataclass(frozen=True)
class Issue:
    """One problem found while validating a frame or file.

    Attributes:
        message: What is wrong, in words.
        column: The column, when the problem is in one.
        row: 1-based data row (header excluded) in the source, when known.
        file: The source file, when the frame came from one.
        value: The offending value, as text, when it helps.
    """

    message: str
    column: str | None = None
    row: int | None = None
    file: str | None = None
    value: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column!r}")
        where = ", ".join(parts)
        shown = f" (got {self.value!r})" if self.value is not None else ""
        return f"{where}: {self.message}{shown}" if where else f"{self.message}{shown}"


class SchemaError(CloudBalanceError):
    """A frame or input file does not match its schema.

    The message names the first problems (file, row, column); ``issues`` holds all of them.
    """

    MAX_SHOWN = 5

    def __init__(self, frame: str, issues: Sequence[Issue]) -> None:
        self.frame = frame
        self.issues = list(issues)
        shown = "; ".join(str(i) for i in self.issues[: self.MAX_SHOWN])
        more = len(self.issues) - self.MAX_SHOWN
        suffix = f"; and {more} more" if more > 0 else ""
        super().__init__(f"invalid {frame} data: {shown}{suffix}")

    @property
    def file(self) -> str | None:
        """The file of the first issue, when the frame came from a file."""
        return self.issues[0].file if self.issues else None


class StoreError(CloudBalanceError):
    """The embedded store cannot be opened, read or written."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(message)


class StoreLockedError(StoreError):
    """Another cloudbalance process holds the store's lock."""


class ProviderError(CloudBalanceError):
    """A cost provider failed.

    Attributes:
        provider: The provider's registered name (``aws``, ``focus``...).
    """

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        self.provider = provider
        prefix = f"provider {provider!r}: " if provider else ""
        super().__init__(f"{prefix}{message}")


class ProviderNotFoundError(ProviderError):
    """No provider plugin of the requested name is installed."""

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.available = sorted(available)
        listed = ", ".join(self.available) or "none"
        super().__init__(
            f"no provider named {name!r} is installed (installed: {listed}); "
            f"install it with `pip install cloudbalance-{name}`",
            provider=name,
        )


class CredentialsError(ProviderError):
    """Credentials are missing, expired or refused. The message never contains a secret."""


class ThrottledError(ProviderError):
    """The provider's API kept throttling after the bounded retries."""

    def __init__(self, message: str, *, provider: str | None = None, attempts: int = 0) -> None:
        self.attempts = attempts
        super().__init__(message, provider=provider)


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within its deadline (an endpoint that accepts and hangs).

    Attributes:
        seconds: The deadline that passed.
    """

    def __init__(self, message: str, *, provider: str | None = None, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(message, provider=provider)


class ForecastError(CloudBalanceError):
    """Forecasting a series failed.

    Attributes:
        unique_id: The series, when the error concerns one.
    """

    def __init__(self, message: str, *, unique_id: str | None = None) -> None:
        self.unique_id = unique_id
        prefix = f"series {unique_id!r}: " if unique_id is not None else ""
        super().__init__(f"{prefix}{message}")


class InsufficientHistoryError(ForecastError):
    """A series is shorter than the minimum history a model needs."""

    def __init__(self, *, unique_id: str | None, points: int, minimum: int) -> None:
        self.points = points
        self.minimum = minimum
        super().__init__(
            f"only {points} observations, at least {minimum} are needed", unique_id=unique_id
        )


class PlanError(CloudBalanceError):
    """Planning failed.

    Attributes:
        workload: The workload concerned, when there is one.
    """

    def __init__(self, message: str, *, workload: str | None = None) -> None:
        self.workload = workload
        super().__init__(message)


class InfeasiblePlanError(PlanError):
    """The constraints cannot all hold.

    Attributes:
        conflicts: The constraints that conflict, in words, each naming workload and period.
        suggestions: What the user could change (raise a quota, allow a region...).
    """

    def __init__(
        self,
        message: str,
        *,
        conflicts: Sequence[str] = (),
        suggestions: Sequence[str] = (),
        workload: str | None = None,
    ) -> None:
        self.conflicts = list(conflicts)
        self.suggestions = list(suggestions)
        detail = ""
        if self.conflicts:
            detail += " Conflicts: " + "; ".join(self.conflicts) + "."
        if self.suggestions:
            detail += " Try: " + "; ".join(self.suggestions) + "."
        super().__init__(message + detail, workload=workload)


class PolicyError(CloudBalanceError):
    """A policy file cannot be loaded or evaluated."""

    def __init__(
        self, message: str, *, file: str | Path | None = None, line: int | None = None
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        super().__init__(f"{_where(file, line)}{message}")


class PolicyDeniedError(PolicyError):
    """One or more ``deny`` rules fired; ``messages`` holds what they said."""

    def __init__(self, messages: Sequence[str]) -> None:
        self.messages = list(messages)
        super().__init__("denied by policy: " + "; ".join(self.messages))


class GitOpsError(CloudBalanceError):
    """Acting on the Git repository failed (dirty tree, detached head, push refused...)."""


class StackConfigError(GitOpsError):
    """A Pulumi project or stack file is missing or malformed."""

    def __init__(
        self, message: str, *, file: str | Path | None = None, line: int | None = None
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        super().__init__(f"{_where(file, line)}{message}")


class ConflictError(GitOpsError):
    """A person changed, since the last plan, a value the new plan would overwrite."""

    def __init__(self, *, file: str, key: str, expected: object, found: object) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(
            f"{file}: {key} was changed by someone since the last plan "
            f"(last plan wrote {expected!r}, now {found!r}); refusing to overwrite"
        )


class StackOperationError(CloudBalanceError):
    """Generating, previewing or deploying a Pulumi project failed.

    Attributes:
        work_dir: The Pulumi project directory.
        stack: The stack name, when one was involved.
    """

    def __init__(
        self, message: str, *, work_dir: str | Path | None = None, stack: str | None = None
    ) -> None:
        self.work_dir = str(work_dir) if work_dir is not None else None
        self.stack = stack
        super().__init__(message)


class PulumiNotInstalledError(StackOperationError):
    """The Pulumi CLI or its Python SDK is not installed; the message says how to install it."""
