"""``cloudbalance.yaml`` -> typed, frozen settings, with errors that name file, line and key.

The file is read with ruamel.yaml's round-trip loader only to know where each key was written;
the values are then checked against the dataclasses below, field by field, so an unknown key or a
wrong type is reported as ``cloudbalance.yaml:12: workloads.checkout.max_share: expected a number,
got 'high'`` rather than surfacing later as a ``KeyError`` deep inside the planner.

Relative paths in the file are relative to the file's folder, so a scheduled run from another
working directory reads the same store. A fully commented example is ``cloudbalance.example.yaml``
(shipped in the package, written by ``cloudbalance config init``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from cloudbalance.budgets import SpendBudget
from cloudbalance.exceptions import ConfigError
from cloudbalance.models import Location, Mode, Workload, WorkloadMatch, check_workload_name
from cloudbalance.notify.settings import NotificationSettings

__all__ = [
    "CONFIG_FILENAME",
    "CurrencySettings",
    "ForecastSettings",
    "FreezeWindow",
    "GitSettings",
    "GuardrailSettings",
    "PlanSettings",
    "QuotaSettings",
    "Settings",
    "StoreSettings",
    "SyncSettings",
    "WorkloadSettings",
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
class MatchSettings:
    """How a workload's cost lines are recognised (any rule matching is enough)."""

    tags: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplicaSettings:
    """The shape of one replica."""

    vcpus: float = 1.0
    memory_gib: float = 2.0


@dataclass(frozen=True)
class WorkloadSettings:
    """One workload as written in the file; :meth:`to_workload` gives the planner's model."""

    match: MatchSettings = field(default_factory=MatchSettings)
    replica: ReplicaSettings = field(default_factory=ReplicaSettings)
    demand_per_replica: float = 1.0
    allowed: tuple[str, ...] = ()
    min_locations: int = 1
    max_share: float = 1.0
    max_change: float | None = None
    move_cost: float = 0.0
    spot: bool = False
    stack: str | None = None
    data_location: str | None = None
    data_gb: float = 0.0
    preference: dict[str, float] = field(default_factory=dict)

    def to_workload(self, name: str) -> Workload:
        """The :class:`~cloudbalance.models.Workload` this entry describes."""
        return Workload(
            name=name,
            vcpus=self.replica.vcpus,
            memory_gib=self.replica.memory_gib,
            allowed=tuple(Location.parse(text) for text in self.allowed),
            min_locations=self.min_locations,
            max_share=self.max_share,
            max_change=self.max_change,
            move_cost=self.move_cost,
            spot=self.spot,
            demand_per_replica=self.demand_per_replica,
            match=WorkloadMatch(
                tag_values=self.match.tags,
                resource_patterns=self.match.resources,
                services=self.match.services,
            ),
            stack=self.stack,
            data_location=Location.parse(self.data_location) if self.data_location else None,
            data_gb=self.data_gb,
            preference=tuple((Location.parse(k), v) for k, v in self.preference.items()),
        )


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
class QuotaSettings:
    """A vCPU quota at one location (``cloud:region``)."""

    location: str
    vcpus: float


@dataclass(frozen=True)
class PlanSettings:
    """Planner defaults (see docs/planning.md)."""

    quantile: float = 0.8
    max_gap: float = 0.005
    quotas: tuple[QuotaSettings, ...] = ()
    hold: Literal["plan", "workload"] = "plan"
    egress: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class FreezeWindow:
    """Dates (inclusive) during which no change is written."""

    start: date
    end: date
    reason: str = ""


@dataclass(frozen=True)
class GuardrailSettings:
    """Limits on what an automated change may do.

    ``policies`` are extra Rego files or folders (see docs/policies.md); ``max_monthly_cost``
    caps the estimated monthly cost per cloud (``{aws: 12000}``); ``rollback_threshold`` is the
    amount by which an applied plan may cost more than not moving before a revert is proposed,
    and ``health_check`` a command run per moved workload (see docs/verification.md).
    """

    min_confidence_commit: float = 0.8
    max_moves: int | None = None
    max_share_moved: float | None = None
    min_saving: float = 0.0
    min_saving_pct: float = 0.0
    freeze: tuple[FreezeWindow, ...] = ()
    policies: tuple[str, ...] = ()
    max_monthly_cost: dict[str, float] = field(default_factory=dict)
    rollback_threshold: float | None = None
    health_check: str | None = None


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
    workloads: dict[str, WorkloadSettings] = field(default_factory=dict)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)
    guardrails: GuardrailSettings = field(default_factory=GuardrailSettings)
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

    def workload_models(self) -> list[Workload]:
        """The configured workloads as planner models, in file order."""
        return [ws.to_workload(name) for name, ws in self.workloads.items()]


T = TypeVar("T")


class _Loader:
    """Builds dataclasses from ruamel nodes, remembering where each key was written."""

    def __init__(self, file: Path | None) -> None:
        self.file = file

    def error(self, message: str, key: str, line: int | None) -> ConfigError:
        return ConfigError(
            f"{key}: {message}" if key else message, file=self.file, line=line, key=key or None
        )

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

    def build(self, cls: type[T], node: Any, key: str, line: int | None) -> T:
        if node is None:
            node = CommentedMap()
        if not isinstance(node, Mapping):
            raise self.error(f"expected a mapping, got {_kind(node)}", key, line)
        hints = typing.get_type_hints(cls)
        fields = {
            f.name: f
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.init and not (cls is Settings and f.name == "path")
        }
        values: dict[str, Any] = {}
        for name, value in node.items():
            sub = f"{key}.{name}" if key else str(name)
            sub_line = self.line_of(node, name) or line
            if name not in fields:
                known = ", ".join(sorted(fields))
                raise self.error(f"unknown key (known keys: {known})", sub, sub_line)
            values[str(name)] = self.convert(hints[str(name)], value, sub, sub_line, node, name)
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise self.error(str(err), key, line) from err

    def convert(
        self, hint: Any, value: Any, key: str, line: int | None, parent: Any, index: Any
    ) -> Any:
        origin = get_origin(hint)
        args = get_args(hint)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            return self.convert(inner[0], value, key, line, parent, index)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.build(hint, value, key, line)
        if origin is Literal:
            if value not in args:
                allowed = ", ".join(repr(a) for a in args)
                raise self.error(f"expected one of {allowed}, got {value!r}", key, line)
            return value
        if origin in (tuple, list):
            if not isinstance(value, list):
                raise self.error(f"expected a list, got {_kind(value)}", key, line)
            item_hint = args[0]
            items = [
                self.convert(
                    item_hint, item, f"{key}[{i}]", self.line_of(value, i) or line, value, i
                )
                for i, item in enumerate(value)
            ]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                raise self.error(f"expected a mapping, got {_kind(value)}", key, line)
            value_hint = args[1]
            return {
                str(k): self.convert(
                    value_hint, v, f"{key}.{k}", self.line_of(value, k) or line, value, k
                )
                for k, v in value.items()
            }
        if hint is Any:
            return _plain(value)
        if hint is bool:
            if not isinstance(value, bool):
                raise self.error(f"expected true or false, got {value!r}", key, line)
            return value
        if hint is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(f"expected a whole number, got {value!r}", key, line)
            return value
        if hint is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(f"expected a number, got {value!r}", key, line)
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise self.error(f"expected text, got {value!r}", key, line)
            return str(value)
        if hint is date:
            if isinstance(value, date):
                return value
            try:
                return date.fromisoformat(str(value))
            except ValueError as err:
                raise self.error(f"expected a date (YYYY-MM-DD), got {value!r}", key, line) from err
        raise self.error(f"unsupported setting type {hint!r}", key, line)  # pragma: no cover


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _plain(value: Any) -> Any:
    """Ruamel containers -> plain dicts and lists (plugins get ordinary values)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _check(settings: Settings, loader: _Loader, root: CommentedMap) -> None:
    """Cross-field checks that a type alone cannot express."""

    def line(*keys: str) -> int | None:
        node: Any = root
        found: int | None = None
        for k in keys:
            if not isinstance(node, Mapping) or k not in node:
                break
            found = loader.line_of(node, k) or found
            node = node[k]
        return found

    if settings.version != 1:
        raise loader.error("only version 1 is supported", "version", line("version"))
    for name, ws in settings.workloads.items():
        where = f"workloads.{name}"
        try:
            check_workload_name(name)
        except ValueError as err:
            raise loader.error(str(err), where, line("workloads", name)) from err
        for key, texts in (
            ("data_location", (ws.data_location,) if ws.data_location else ()),
            ("preference", tuple(ws.preference)),
        ):
            for text in texts:
                try:
                    Location.parse(text)
                except ValueError as err:
                    raise loader.error(
                        str(err), f"{where}.{key}", line("workloads", name, key)
                    ) from err
        for text in ws.allowed:
            try:
                Location.parse(text)
            except ValueError as err:
                raise loader.error(
                    str(err), f"{where}.allowed", line("workloads", name, "allowed")
                ) from err
        if not 0 < ws.max_share <= 1:
            raise loader.error(
                f"must be in (0, 1], got {ws.max_share}",
                f"{where}.max_share",
                line("workloads", name, "max_share"),
            )
        if ws.min_locations < 1:
            raise loader.error(
                "must be at least 1",
                f"{where}.min_locations",
                line("workloads", name, "min_locations"),
            )
        if ws.max_change is not None and ws.max_change < 0:
            raise loader.error(
                "must not be negative", f"{where}.max_change", line("workloads", name, "max_change")
            )
        for attr in ("demand_per_replica",):
            if getattr(ws, attr) <= 0:
                raise loader.error(
                    "must be positive", f"{where}.{attr}", line("workloads", name, attr)
                )
        if ws.replica.vcpus <= 0 or ws.replica.memory_gib < 0:
            raise loader.error(
                "vcpus must be positive and memory_gib not negative",
                f"{where}.replica",
                line("workloads", name, "replica"),
            )
    if settings.sync.lookback_days < 1:
        raise loader.error(
            "must be at least 1", "sync.lookback_days", line("sync", "lookback_days")
        )
    if settings.sync.stale_after_days < 0:
        raise loader.error(
            "must not be negative", "sync.stale_after_days", line("sync", "stale_after_days")
        )
    for name, seconds in {"": settings.sync.deadline, **settings.sync.deadlines}.items():
        if seconds <= 0:
            key = f"sync.deadlines.{name}" if name else "sync.deadline"
            raise loader.error("must be positive", key, line(*key.split(".")))
    if not 0 < settings.forecast.interval < 1:
        raise loader.error("must be in (0, 1)", "forecast.interval", line("forecast", "interval"))
    if settings.forecast.horizon < 1:
        raise loader.error("must be at least 1", "forecast.horizon", line("forecast", "horizon"))
    if not 0 < settings.plan.quantile < 1:
        raise loader.error("must be in (0, 1)", "plan.quantile", line("plan", "quantile"))
    for window in settings.guardrails.freeze:
        if window.end < window.start:
            raise loader.error(
                "end is before start", "guardrails.freeze", line("guardrails", "freeze")
            )
    _check_budgets_and_notifications(settings, loader, root)


def _check_budgets_and_notifications(
    settings: Settings, loader: _Loader, root: CommentedMap
) -> None:
    """The ``budgets`` and ``notifications`` sections (see docs/budgets.md, notifications.md)."""
    budgets = root.get("budgets") if isinstance(root, Mapping) else None
    for i, budget in enumerate(settings.budgets):
        for problem in budget.problems():
            at = loader.line_of(budgets, i) if budgets is not None else None
            raise loader.error(problem, f"budgets[{i}]", at or loader.line_of(root, "budgets"))
    section = root.get("notifications") if isinstance(root, Mapping) else None
    for key, problem in settings.notifications.problems():
        raise loader.error(problem, key, loader.line_of(section, key.split(".")[1].split("[")[0]))


def load_config(path: str | Path | None = None) -> Settings:
    """Read and check ``cloudbalance.yaml``.

    Args:
        path: The file; when ``None``, :func:`find_config` looks in the working directory and
            its parents.

    Raises:
        ConfigError: The file is missing, is not YAML, has an unknown key or a wrong value
            (message and attributes name file, line and key).
    """
    file = Path(path) if path is not None else find_config()
    if file is None:
        raise ConfigError(
            f"no {CONFIG_FILENAME} here or in any parent folder; "
            "create one with `cloudbalance config init`"
        )
    if file.is_dir():
        file = file / CONFIG_FILENAME
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError("file not found", file=file) from err
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", file=file) from err
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as err:
        mark = err.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {err.problem}", file=file, line=line) from err
    if root is None:
        root = CommentedMap()
    loader = _Loader(file.resolve())
    plan_node = root.get("plan") if isinstance(root, Mapping) else None
    if isinstance(plan_node, Mapping) and "budgets" in plan_node:
        raise loader.error(
            "budgets moved to the top-level `budgets:` section, one list for people and the "
            "planner: write `budgets: [{cloud: aws, amount: 12000}]` (monthly; docs/budgets.md)",
            "plan.budgets",
            loader.line_of(plan_node, "budgets"),
        )
    settings = loader.build(Settings, root, "", 1)
    settings = dataclasses.replace(settings, path=file.resolve())
    _check(settings, loader, root)
    return settings


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
