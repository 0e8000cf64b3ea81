"""``cloudbalance.yaml`` -> typed, frozen settings, with errors that name file, line and key.

The file is read with ruamel.yaml's round-trip loader only to know where each key was written;
the values are then checked against the dataclasses below, field by field, so an unknown key or a
wrong type is reported as ``cloudbalance.yaml:12: workloads.checkout.max_share: expected a number,
got 'high'`` rather than surfacing later as a ``KeyError`` deep inside the planner. Every problem
is collected before one :class:`~cloudbalance.exceptions.ConfigError` is raised (its ``problems``
list them all, in file order): a user fixes the file in one pass, not one error per run.

Values are refused, never coerced: numbers must be finite and inside the range of their key
(:data:`RANGES`), clouds are ones we know, and cross-field rules (``min_locations`` no more than
the allowed locations, rates only with a report currency...) are checked too. The deeper checks
that need plugins, the forecasting models or the file system (:func:`check_config`, used by
``cloudbalance config check``) also validate each provider's own options through its plugin.

Settings build the models directly: a workload in the file becomes a
:class:`~cloudbalance.models.Workload` (no twin type), a freeze window a
:class:`~cloudbalance.models.FreezeWindow`. A field added to ``Workload`` is a workload key of the
file at once.

Relative paths in the file are relative to the file's folder, so a scheduled run from another
working directory reads the same store. A fully commented example is ``cloudbalance.example.yaml``
(shipped in the package, written by ``cloudbalance config init``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, get_args, get_origin

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from cloudbalance.budgets import SpendBudget
from cloudbalance.exceptions import CloudBalanceError, ConfigError
from cloudbalance.models import (
    CLOUDS,
    FreezeWindow,
    Guardrails,
    Location,
    Mode,
    Quota,
    Workload,
    WorkloadMatch,
)
from cloudbalance.notify.settings import NotificationSettings

__all__ = [
    "CONFIG_FILENAME",
    "RANGES",
    "CurrencySettings",
    "ForecastSettings",
    "FreezeWindow",
    "GitSettings",
    "PlanSettings",
    "Settings",
    "StoreSettings",
    "SyncSettings",
    "check_config",
    "example_config",
    "find_config",
    "load_config",
]

CONFIG_FILENAME = "cloudbalance.yaml"


@dataclass(frozen=True)
class StoreSettings:
    """Where the embedded store lives.

    Attributes:
        path: DuckDB file; relative paths are relative to the config file's folder.
        lock_timeout: Seconds to wait for another run holding the store before giving up.
    """

    path: str = ".cloudbalance/store.duckdb"
    lock_timeout: float = 60.0


@dataclass(frozen=True)
class SyncSettings:
    """How ``cloudbalance sync`` pulls the providers (see docs/providers.md).

    Attributes:
        lookback_days: History pulled on a provider's first sync.
        deadline: Seconds one provider may take in all (costs and prices, retries included);
            a provider still busy then is reported failed and the others' data is kept.
        deadlines: Per provider name, a deadline other than ``deadline``.
        stale_after_days: A run warns when a cloud's latest complete day is older than this
            many days.
    """

    lookback_days: int = 90
    deadline: float = 900.0
    deadlines: dict[str, float] = field(default_factory=dict)
    stale_after_days: int = 3

    def deadline_for(self, provider: str) -> float:
        """The deadline of ``provider`` in seconds."""
        return self.deadlines.get(provider, self.deadline)


@dataclass(frozen=True)
class CurrencySettings:
    """How amounts in several currencies are reported.

    Costs are never summed across currencies. With ``report`` set and a rate for every other
    currency seen, totals are converted (``rates[EUR] = 1.08`` means 1 EUR = 1.08 ``report``);
    otherwise totals are given per currency.
    """

    report: str | None = None
    rates: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ForecastSettings:
    """Forecasting defaults (see docs/forecasting.md)."""

    horizon: int = 14
    interval: float = 0.8
    model: str = "auto"
    freq: str = "D"
    country_holidays: tuple[str, ...] = ()
    spike_threshold: float = 1.3


@dataclass(frozen=True)
class PlanSettings:
    """Planner defaults (see docs/planning.md)."""

    quantile: float = 0.8
    max_gap: float = 0.005
    quotas: tuple[Quota, ...] = ()
    hold: Literal["plan", "workload"] = "plan"
    #: Quantile of a plan's saving that must be positive to relocate (0.5: the forecast saving
    #: net of move costs); chosen by ``benchmarks/backtest_planner.py --grid``.
    hold_quantile: float = 0.5
    egress: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class GitSettings:
    """Where and how plans are written.

    Attributes:
        repo: The infrastructure repository's working copy (relative to the config file).
        mode: ``dry-run`` (default), ``commit``, ``branch``, ``pr`` or ``auto`` (guardrails
            choose between ``commit`` and ``pr`` by confidence).
        remote: Remote pushed to in ``branch``/``pr`` modes.
        base: Branch pull requests target.
        github_repo: ``owner/name`` for pull requests.
        api_url: GitHub (Enterprise) or GitLab API base URL.
    """

    repo: str = "."
    mode: Mode = "dry-run"
    remote: str = "origin"
    base: str = "main"
    github_repo: str | None = None
    api_url: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything in ``cloudbalance.yaml``.

    Attributes:
        path: The file the settings came from (``None`` when built in code).
        workload_tag: The tag key whose value names a cost line's workload.
        budgets: Spending caps per cloud, workload, account or tag (docs/budgets.md); the
            per-cloud ones are also the planner's budgets.
        notifications: Channels and rules for alerts (docs/notifications.md).
    """

    version: int = 1
    store: StoreSettings = field(default_factory=StoreSettings)
    currency: CurrencySettings = field(default_factory=CurrencySettings)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync: SyncSettings = field(default_factory=SyncSettings)
    workload_tag: str = "workload"
    workloads: dict[str, Workload] = field(default_factory=dict)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    guardrails: Guardrails = field(default_factory=Guardrails)
    git: GitSettings = field(default_factory=GitSettings)
    budgets: tuple[SpendBudget, ...] = ()
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    path: Path | None = None

    @property
    def root(self) -> Path:
        """The folder relative paths are resolved against."""
        return self.path.parent if self.path is not None else Path.cwd()

    def resolve(self, relative: str | Path) -> Path:
        """A path from the file, made absolute against :attr:`root`."""
        candidate = Path(relative).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate

    @property
    def store_path(self) -> Path:
        """The DuckDB file of the store."""
        return self.resolve(self.store.path)

    def provider_options(self, name: str) -> dict[str, Any]:
        """The options ``providers.<name>`` gives its plugin, with file paths made absolute.

        The built-in ``focus`` provider's ``paths`` are files of the user's, so they follow the
        rule of every path in the file: relative to the file's folder, whatever the working
        directory of a scheduled run.
        """
        options = dict(self.providers.get(name) or {})
        paths = options.get("paths")
        if name == "focus" and isinstance(paths, str | list):
            listed = [paths] if isinstance(paths, str) else paths
            options["paths"] = [str(self.resolve(p)) if isinstance(p, str) else p for p in listed]
        return options

    def workload_models(self) -> list[Workload]:
        """The configured workloads, in file order."""
        return list(self.workloads.values())


T = TypeVar("T")


class Range(NamedTuple):
    """The values a numeric key accepts: ``low``/``high`` bounds, each open or closed."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __str__(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{left}{_number(self.low)}, {_number(self.high)}{right}"

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


#: The largest magnitude any number in the file may have (a 5,000-digit integer is a typo).
MAX_MAGNITUDE = 1e15

_MONEY = Range(0, MAX_MAGNITUDE)
_SHARE = Range(0, 1)

#: Accepted range of each numeric key; ``*`` stands for a name the user chose (a workload, a
#: currency, a cloud) and ``[]`` for any list item. The one home of every range rule.
RANGES: dict[str, Range] = {
    "version": Range(1, 1),
    "store.lock_timeout": Range(0, 86_400),
    "sync.lookback_days": Range(1, 36_500),
    "sync.deadline": Range(0, 7 * 86_400, low_open=True),
    "sync.deadlines.*": Range(0, 7 * 86_400, low_open=True),
    "sync.stale_after_days": Range(0, 3650),
    "currency.rates.*": Range(0, 1e6, low_open=True),
    "workloads.*.vcpus": Range(0, 1024, low_open=True),
    "workloads.*.memory_gib": Range(0, 65_536),
    "workloads.*.replica.vcpus": Range(0, 1024, low_open=True),
    "workloads.*.replica.memory_gib": Range(0, 65_536),
    "workloads.*.demand_per_replica": Range(0, MAX_MAGNITUDE, low_open=True),
    "workloads.*.min_locations": Range(1, 1000),
    "workloads.*.max_share": Range(0, 1, low_open=True),
    "workloads.*.max_change": Range(0, 1000),
    "workloads.*.move_cost": _MONEY,
    "workloads.*.data_gb": Range(0, 1e12),
    "forecast.horizon": Range(1, 10_000),
    "forecast.interval": Range(0, 1, low_open=True, high_open=True),
    "forecast.spike_threshold": Range(1, 1000, low_open=True),
    "plan.quantile": Range(0, 1, low_open=True, high_open=True),
    "plan.hold_quantile": Range(0.5, 1, high_open=True),
    "plan.max_gap": Range(0, 1, high_open=True),
    "plan.quotas[].vcpus": Range(0, 1e9),
    "budgets[].amount": _MONEY,
    "guardrails.min_confidence_commit": _SHARE,
    "guardrails.max_moves": Range(0, 1e6),
    "guardrails.max_share_moved": _SHARE,
    "guardrails.min_saving": _MONEY,
    "guardrails.min_saving_pct": Range(0, 1, high_open=True),
    "guardrails.max_monthly_cost.*": _MONEY,
    "guardrails.rollback_threshold": _MONEY,
}

#: Text keys with a fixed shape: (pattern, what it should look like).
PATTERNS: dict[str, tuple[str, str]] = {
    "currency.report": (r"[A-Z]{3}", "an ISO 4217 code such as USD"),
    "currency.rates.*": (r"[A-Z]{3}", "an ISO 4217 code such as EUR"),
    "workload_tag": (r"\S.*", "a tag key"),
    "workloads.*.stack": (r"[^/\s]+/[^/\s]+", "project/stack"),
    "store.path": (r"\S.*", "a file path"),
    "forecast.freq": (r"([1-9][0-9]{0,3})?(min|h|D|W|MS|M)", "a pandas period such as D or 1h"),
    "forecast.country_holidays[]": (r"[A-Z]{2}", "an ISO 3166 country code such as US"),
    "guardrails.max_monthly_cost.*": ("|".join(CLOUDS), f"one of {', '.join(CLOUDS)}"),
    "guardrails.health_check": (r"\S.*", "a command"),
    "git.remote": (r"[^\s]+", "a remote name"),
    "git.base": (r"[^\s]+", "a branch name"),
    "git.repo": (r"\S.*", "a folder"),
    "git.github_repo": (r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", "owner/name"),
    "git.api_url": (r"https?://\S+", "an http(s) URL"),
}

#: Nesting deeper than this is not a configuration (and would exhaust the parser's stack).
MAX_DEPTH = 64


def _workload_keys() -> dict[str, Any]:
    """Workload keys of the file -> type.

    Every :class:`Workload` field, except the ones the file writes in its own shape
    (``replica:``, ``match:``) or takes from the mapping's key (``name``).
    """
    hints = typing.get_type_hints(Workload)
    special = {"name", "vcpus", "memory_gib", "match"}
    keys: dict[str, Any] = {
        f.name: hints[f.name] for f in dataclasses.fields(Workload) if f.name not in special
    }
    keys["replica"] = _Replica
    keys["match"] = _Match
    keys["preference"] = dict[str, float]  # written {cloud:region: amount}
    return keys


@dataclass(frozen=True)
class _Replica:
    """``replica:`` of a workload: the shape of one replica."""

    vcpus: float = 1.0
    memory_gib: float = 2.0


@dataclass(frozen=True)
class _Match:
    """``match:`` of a workload (any rule matching is enough)."""

    tags: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    services: tuple[str, ...] = ()


_INVALID: Any = object()  # a value already reported; the field keeps its default


class _Loader:
    """Builds settings from ruamel nodes, remembering where each key was written.

    Problems are collected in :attr:`problems` rather than raised, so one pass reports them all.
    """

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self.problems: list[ConfigError] = []

    def error(self, message: str, key: str, line: int | None) -> ConfigError:
        return ConfigError(
            f"{key}: {message}" if key else message, file=self.file, line=line, key=key or None
        )

    def report(self, message: str, key: str, line: int | None) -> Any:
        """Record a problem; returns the marker of an invalid value."""
        self.problems.append(self.error(message, key, line))
        return _INVALID

    @staticmethod
    def line_of(parent: Any, key: Any) -> int | None:
        try:
            if isinstance(parent, CommentedMap):
                return int(parent.lc.key(key)[0]) + 1
            if isinstance(parent, CommentedSeq):
                return int(parent.lc.item(key)[0]) + 1
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return None

    def fields(
        self, hints: Mapping[str, Any], node: Any, key: str, pattern: str, line: int | None
    ) -> dict[str, Any] | None:
        """Convert each key of a mapping node by its type hint; None when not a mapping."""
        if node is None:
            node = CommentedMap()
        if not isinstance(node, Mapping):
            self.report(f"expected a mapping, got {_kind(node)}", key, line)
            return None
        values: dict[str, Any] = {}
        for name, value in node.items():
            sub = f"{key}.{name}" if key else str(name)
            sub_pattern = f"{pattern}.{name}" if pattern else str(name)
            sub_line = self.line_of(node, name) or line
            if not isinstance(name, str) or name not in hints:
                known = ", ".join(sorted(hints))
                self.report(f"unknown key (known keys: {known})", sub, sub_line)
                continue
            converted = self.convert(hints[name], value, sub, sub_pattern, sub_line)
            if converted is not _INVALID:
                values[name] = converted
        return values

    def build(self, cls: type[T], node: Any, key: str, pattern: str, line: int | None) -> Any:
        hints = typing.get_type_hints(cls)
        names = {
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.init and not (cls is Settings and f.name == "path")
        }
        values = self.fields({n: hints[n] for n in names}, node, key, pattern, line)
        if values is None:
            return _INVALID
        try:
            return cls(**values)
        except (TypeError, ValueError, CloudBalanceError) as err:
            return self.report(str(err), key, line)

    def workload(self, name: str, node: Any, key: str, line: int | None) -> Any:
        """One entry of ``workloads:`` -> :class:`Workload`."""
        values = self.fields(_workload_keys(), node, key, "workloads.*", line)
        if values is None:
            return _INVALID
        replica: _Replica = values.pop("replica", _Replica())
        match: _Match = values.pop("match", _Match())
        if "preference" in values:
            preference = [
                (self.location(text, f"{key}.preference.{text}", line), amount)
                for text, amount in values.pop("preference").items()
            ]
            if any(loc is _INVALID for loc, _ in preference):
                return _INVALID
            values["preference"] = tuple(preference)
        try:
            return Workload(
                name=name,
                vcpus=replica.vcpus,
                memory_gib=replica.memory_gib,
                match=WorkloadMatch(
                    tag_values=match.tags,
                    resource_patterns=match.resources,
                    services=match.services,
                ),
                **values,
            )
        except (TypeError, ValueError, CloudBalanceError) as err:
            return self.report(str(err), key, line)

    def convert(self, hint: Any, value: Any, key: str, pattern: str, line: int | None) -> Any:
        origin = get_origin(hint)
        args = get_args(hint)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            return self.convert(inner[0], value, key, pattern, line)
        if hint is Location:
            return self.location(value, key, line)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.build(hint, value, key, pattern, line)
        if origin is Literal:
            if value not in args:
                allowed = ", ".join(repr(a) for a in args)
                return self.report(f"expected one of {allowed}, got {_short(value)}", key, line)
            return value
        if origin in (tuple, list):
            if value is None:
                value = []
            if not isinstance(value, list):
                return self.report(f"expected a list, got {_kind(value)}", key, line)
            items = [
                self.convert(
                    args[0], item, f"{key}[{i}]", f"{pattern}[]", self.line_of(value, i) or line
                )
                for i, item in enumerate(value)
            ]
            if any(item is _INVALID for item in items):
                return _INVALID
            return tuple(items) if origin is tuple else items
        if origin is dict:
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                return self.report(f"expected a mapping, got {_kind(value)}", key, line)
            out = {}
            for k, v in value.items():
                sub, sub_line = f"{key}.{k}", self.line_of(value, k) or line
                self.text(str(k), f"{pattern}.*", sub, sub_line)
                if pattern == "workloads":
                    converted = self.workload(str(k), v, sub, sub_line)
                else:
                    converted = self.convert(args[1], v, sub, f"{pattern}.*", sub_line)
                if converted is not _INVALID:
                    out[str(k)] = converted
            return out
        if hint is Any:
            return _plain(value)
        if hint is bool:
            if not isinstance(value, bool):
                return self.report(f"expected true or false, got {_short(value)}", key, line)
            return value
        if hint in (int, float):
            return self.number(hint, value, key, pattern, line)
        if hint is str:
            if not isinstance(value, str):
                return self.report(f"expected text, got {_short(value)}", key, line)
            return self.text(value, pattern, key, line)
        if hint is date:
            if isinstance(value, date):
                return value
            try:
                return date.fromisoformat(str(value))
            except ValueError:
                return self.report(f"expected a date (YYYY-MM-DD), got {_short(value)}", key, line)
        return self.report(f"unsupported setting type {hint!r}", key, line)  # pragma: no cover

    def number(self, hint: type, value: Any, key: str, pattern: str, line: int | None) -> Any:
        """A finite number within :data:`RANGES`; whole where a whole number is expected."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            what = "a whole number" if hint is int else "a number"
            return self.report(f"expected {what}, got {_short(value)}", key, line)
        if isinstance(value, float) and not math.isfinite(value):
            return self.report(f"expected a finite number, got {_short(value)}", key, line)
        if abs(value) > MAX_MAGNITUDE:
            return self.report(f"{_short(value)} is out of range", key, line)
        if hint is int and not isinstance(value, int):
            return self.report(f"expected a whole number, got {_short(value)}", key, line)
        allowed = RANGES.get(pattern)
        if allowed is not None and value not in allowed:
            return self.report(f"must be in {allowed}, got {_short(value)}", key, line)
        return float(value) if hint is float else int(value)

    def text(self, value: str, pattern: str, key: str, line: int | None) -> Any:
        shape = PATTERNS.get(pattern)
        if shape is not None and not re.fullmatch(shape[0], value):
            return self.report(f"expected {shape[1]}, got {_short(value)}", key, line)
        return value

    def location(self, value: Any, key: str, line: int | None) -> Any:
        if not isinstance(value, str):
            return self.report(f"expected 'cloud:region', got {_short(value)}", key, line)
        try:
            location = Location.parse(value)
        except ValueError as err:
            return self.report(str(err), key, line)
        if location.cloud not in CLOUDS:
            return self.report(
                f"unknown cloud {location.cloud!r} (known: {', '.join(CLOUDS)})", key, line
            )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", location.region):
            return self.report(f"{location.region!r} is not a region id", key, line)
        return location


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _short(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    """Ruamel containers -> plain dicts and lists (plugins get ordinary values)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


#: More values than this is not a configuration (YAML aliases can multiply a small file).
MAX_NODES = 100_000


def _depth(node: Any, limit: int) -> int:
    """How deep ``node`` nests, counting no further than ``limit`` (iteratively: no recursion).

    Returns ``limit + 1`` as well when the tree holds more than :data:`MAX_NODES` values.
    """
    deepest = 0
    seen = 0
    stack: list[tuple[Any, int]] = [(node, 0)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        seen += 1
        if deepest > limit or seen > MAX_NODES:
            return limit + 1
        if isinstance(current, Mapping):
            stack.extend((v, level + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, level + 1) for v in current)
    return deepest


def _line_at(loader: _Loader, root: Mapping[str, Any], *keys: str) -> int | None:
    """The line of the deepest of ``keys`` (a path into the file) that the file has."""
    node: Any = root
    found: int | None = None
    for k in keys:
        if not isinstance(node, Mapping) or k not in node:
            break
        found = loader.line_of(node, k) or found
        node = node[k]
    return found


def _check(settings: Settings, loader: _Loader, root: Mapping[str, Any]) -> None:
    """Cross-field rules that a type and a range alone cannot express."""
    line = functools.partial(_line_at, loader, root)

    for name, workload in settings.workloads.items():
        where = f"workloads.{name}"
        allowed = [loc.key for loc in workload.allowed]
        for key in sorted({k for k in allowed if allowed.count(k) > 1}):
            loader.report(
                f"{key} is listed twice", f"{where}.allowed", line("workloads", name, "allowed")
            )
        if allowed and workload.min_locations > len(set(allowed)):
            loader.report(
                f"{workload.min_locations} locations cannot be in use when only "
                f"{len(set(allowed))} are allowed",
                f"{where}.min_locations",
                line("workloads", name, "min_locations"),
            )
    if settings.currency.rates and settings.currency.report is None:
        loader.report(
            "rates need currency.report (the currency they convert into)",
            "currency.rates",
            line("currency", "rates"),
        )
    names = [quota.location.key for quota in settings.plan.quotas]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        loader.report(f"location {dup} is listed twice", "plan.quotas", line("plan", "quotas"))
    _check_budgets_and_notifications(settings, loader, root)


def _check_budgets_and_notifications(
    settings: Settings, loader: _Loader, root: Mapping[str, Any]
) -> None:
    """The ``budgets`` and ``notifications`` sections (see docs/budgets.md, notifications.md)."""
    budgets = root.get("budgets")
    for i, budget in enumerate(settings.budgets):
        for problem in budget.problems():
            at = loader.line_of(budgets, i) if budgets is not None else None
            loader.report(problem, f"budgets[{i}]", at or loader.line_of(root, "budgets"))
    section = root.get("notifications")
    for key, problem in settings.notifications.problems():
        loader.report(problem, key, loader.line_of(section, key.split(".")[1].split("[")[0]))


def _parse(file: Path) -> Any:
    """The file's YAML tree, or ConfigError saying why it is not one (file and line)."""
    try:
        data = file.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError("file not found", file=file) from err
    except OSError as err:
        raise ConfigError(f"cannot be read: {err.strerror}", file=file) from err
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise ConfigError("is UTF-16 or binary, not UTF-8 text; save it as UTF-8", file=file)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            "is not UTF-8 text", file=file, line=data[: err.start].count(b"\n") + 1
        ) from err
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError(
            "is empty; `cloudbalance config init` writes a documented example", file=file
        )
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark
        where = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {err.problem}", file=file, line=where) from err
    except YAMLError as err:
        raise ConfigError(f"not valid YAML: {str(err).splitlines()[0]}", file=file) from err
    except RecursionError as err:
        raise ConfigError(f"nests deeper than {MAX_DEPTH} levels", file=file) from err
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        reason = "a number has thousands of digits" if "digits" in str(err) else str(err)
        raise ConfigError(f"not valid YAML: {reason}", file=file) from err


def _load(path: str | Path | None) -> tuple[Settings | None, _Loader, Path]:
    file = Path(path) if path is not None else find_config()
    if file is None:
        raise ConfigError(
            f"no {CONFIG_FILENAME} here or in any parent folder; "
            "create one with `cloudbalance config init`"
        )
    if file.is_dir():
        file = file / CONFIG_FILENAME
    root = _parse(file)
    loader = _Loader(file.resolve())
    if not isinstance(root, Mapping):
        raise loader.error(f"expected a mapping of settings, got {_kind(root)}", "", 1)
    if _depth(root, MAX_DEPTH) > MAX_DEPTH:
        raise loader.error(
            f"nests deeper than {MAX_DEPTH} levels or holds more than {MAX_NODES:,} values", "", 1
        )
    plan_node = root.get("plan")
    if isinstance(plan_node, Mapping) and "budgets" in plan_node:
        raise loader.error(
            "budgets moved to the top-level `budgets:` section, one list for people and the "
            "planner: write `budgets: [{cloud: aws, amount: 12000}]` (monthly; docs/budgets.md)",
            "plan.budgets",
            loader.line_of(plan_node, "budgets"),
        )
    built = loader.build(Settings, root, "", "", 1)
    if built is _INVALID:  # pragma: no cover - Settings accepts any subset of its keys
        return None, loader, file
    settings = dataclasses.replace(built, path=file.resolve())
    _check(settings, loader, root)
    return settings, loader, file


def _raise(problems: list[ConfigError]) -> None:
    if problems:
        ordered = sorted(problems, key=lambda p: p.line or 0)
        raise ConfigError(
            ordered[0].reason,
            file=ordered[0].file,
            line=ordered[0].line,
            key=ordered[0].key,
            problems=ordered,
        )


def load_config(path: str | Path | None = None) -> Settings:
    """Read and check ``cloudbalance.yaml``.

    Args:
        path: The file; when ``None``, :func:`find_config` looks in the working directory and
            its parents.

    Raises:
        ConfigError: The file is missing, is not YAML, has an unknown key or a wrong value;
            ``problems`` holds every problem found (file, line and key each), in file order.
    """
    settings, loader, _ = _load(path)
    _raise(loader.problems)
    assert settings is not None
    return settings


def check_config(path: str | Path | None = None) -> Settings:
    """Everything :func:`load_config` checks, and what needs more than the file itself.

    Each provider's options are validated by its plugin (built, never called: no network), the
    forecasting model must exist, and the policy paths under ``guardrails.policies`` must be
    there. ``cloudbalance config check`` runs this.

    Raises:
        ConfigError: With every problem in ``problems``.
    """
    settings, loader, _ = _load(path)
    if settings is not None:
        _check_deep(settings, loader)
    _raise(loader.problems)
    assert settings is not None
    return settings


def _check_deep(settings: Settings, loader: _Loader) -> None:
    from cloudbalance.provider import validate_provider_options

    root = _parse(settings.path) if settings.path is not None else CommentedMap()

    line = functools.partial(_line_at, loader, root)

    for name in settings.providers:
        for key, message in validate_provider_options(name, settings.provider_options(name)):
            full = f"providers.{name}.{key}" if key else f"providers.{name}"
            parts = key.split(".") if key else []
            loader.report(message, full, line("providers", name, *parts))
    model = settings.forecast.model
    if model != "auto":  # the default needs no look at the registry (whose import is slow)
        _check_model(model, loader, line("forecast", "model"))
    for i, policy in enumerate(settings.guardrails.policies):
        if not settings.resolve(policy).exists():
            loader.report(
                f"{policy} does not exist (relative paths start at {settings.root})",
                f"guardrails.policies[{i}]",
                line("guardrails", "policies"),
            )


def _check_model(model: str, loader: _Loader, line: int | None) -> None:
    from cloudbalance.forecast.core import ENSEMBLE, MODELS

    models = sorted([*MODELS, "auto", ENSEMBLE])
    if model not in models:
        loader.report(
            f"unknown model {model!r} (known: {', '.join(models)})", "forecast.model", line
        )


def find_config(start: str | Path | None = None) -> Path | None:
    """The nearest ``cloudbalance.yaml`` in ``start`` (default: cwd) or its parents."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def example_config() -> str:
    """The documented example configuration shipped with the package."""
    return (Path(__file__).parent / "cloudbalance.example.yaml").read_text(encoding="utf-8")
