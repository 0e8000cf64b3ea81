"""The ``notifications:`` section of ``cloudbalance.yaml``: channels, rules, limits.

Kept free of heavy imports: the configuration loader builds these directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

__all__ = ["EVENT_KINDS", "Channel", "NotificationSettings", "QuietHours", "Rule"]

#: Every kind of event, as written in rules.
EVENT_KINDS: tuple[str, ...] = ("spike", "anomaly", "budget", "plan", "revert", "step_failed")


@dataclass(frozen=True)
class Channel:
    """Where messages go: an apprise URL.

    ``slack://``, ``msteams://``, ``mailtos://``, ``json://`` (a generic webhook) and the other
    services apprise knows.
    ``${NAME}`` in the URL is replaced by the environment variable ``NAME`` when sending, so
    tokens stay out of the file. The URL itself is never printed or logged.
    """

    url: str


@dataclass(frozen=True)
class QuietHours:
    """A daily window (UTC, ``HH:MM``) during which events are held and sent afterwards."""

    start: str
    end: str

    def contains(self, moment: time) -> bool:
        """Whether ``moment`` falls in the window (which may span midnight)."""
        begin, finish = _clock(self.start), _clock(self.end)
        if begin <= finish:
            return begin <= moment < finish
        return moment >= begin or moment < finish


def _clock(text: str) -> time:
    return time.fromisoformat(text)


@dataclass(frozen=True)
class Rule:
    """Which events go to which channels.

    Attributes:
        channels: Channel names (keys of ``notifications.channels``).
        events: Event kinds (default: all of :data:`EVENT_KINDS`).
        workloads: Only events about these workloads (default: any, and events about none).
        clouds: Only events about these clouds (default: any).
        min_impact: Only events whose money impact is at least this (events without a money
            impact, such as a failed step, always pass).
        quiet_hours: Hold matching events during this window.
    """

    channels: tuple[str, ...]
    events: tuple[str, ...] = EVENT_KINDS
    workloads: tuple[str, ...] = ()
    clouds: tuple[str, ...] = ()
    min_impact: float = 0.0
    quiet_hours: QuietHours | None = None


@dataclass(frozen=True)
class NotificationSettings:
    """Channels, rules and the rate limit.

    Attributes:
        channels: Name -> channel.
        rules: Routing rules; an event goes to the union of the channels of matching rules.
        max_per_hour: At most this many messages per channel per hour; the rest wait for a
            later run (nothing is dropped).
        timeout: Seconds a channel may take to answer.
    """

    channels: dict[str, Channel] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    max_per_hour: int = 20
    timeout: float = 10.0

    def problems(self) -> list[tuple[str, str]]:
        """``(key, message)`` for each inconsistency (unknown channel or event, bad clock)."""
        found = []
        for i, rule in enumerate(self.rules):
            key = f"notifications.rules[{i}]"
            if not rule.channels:
                found.append((f"{key}.channels", "name at least one channel"))
            for name in rule.channels:
                if name not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none defined"
                    found.append((f"{key}.channels", f"unknown channel {name!r} ({known})"))
            for kind in rule.events:
                if kind not in EVENT_KINDS:
                    found.append(
                        (f"{key}.events", f"unknown event {kind!r} ({', '.join(EVENT_KINDS)})")
                    )
            if rule.quiet_hours is not None:
                for attr in ("start", "end"):
                    try:
                        _clock(getattr(rule.quiet_hours, attr))
                    except ValueError:
                        found.append((f"{key}.quiet_hours.{attr}", "expected a UTC time as HH:MM"))
        if self.max_per_hour < 1:
            found.append(("notifications.max_per_hour", "must be at least 1"))
        if self.timeout <= 0:
            found.append(("notifications.timeout", "must be positive"))
        return found
