"""Route events to channels through apprise: once each, rate-limited, secrets removed.

- **Once**: a delivery is recorded in the store's ``notifications`` table by (event key,
  channel); the next run skips what was delivered. A failed or held delivery is not recorded,
  so a later run tries again.
- **Rate-limited**: at most ``notifications.max_per_hour`` messages per channel per hour; the
  rest wait for a later run.
- **Quiet hours**: a rule's events are held during its window and sent by the first run after.
- **No secret**: channel URLs are never shown (apprise's privacy form is used in messages), and
  every text sent or reported passes through :func:`redact` with the credentials of the
  configured channels and the usual token variables.
- **Never fatal**: a channel that fails (unreachable, refused, misconfigured) is reported in
  the result; the other channels and the run go on.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from cloudbalance.notify.events import Event
from cloudbalance.notify.settings import NotificationSettings, Rule

if TYPE_CHECKING:
    from cloudbalance.config import Settings
    from cloudbalance.store import Store

__all__ = [
    "Delivery",
    "NotifyResult",
    "Sender",
    "delivered",
    "notify_run",
    "notify_test",
    "redact",
    "route",
]

Status = Literal["sent", "duplicate", "failed", "quiet", "rate-limited"]

_DDL = """
CREATE TABLE IF NOT EXISTS notifications (
  event_key VARCHAR NOT NULL,
  channel VARCHAR NOT NULL,
  kind VARCHAR NOT NULL,
  title VARCHAR,
  sent_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_key, channel)
)
"""

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN_VARIABLES = ("GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN")
_TOKENS = re.compile(
    r"\b(?:xox[abposr]-[A-Za-z0-9-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{16,}"
    r"|AKIA[0-9A-Z]{16})\b"
)


@dataclass(frozen=True)
class Delivery:
    """What happened to one event on one channel."""

    event_key: str
    kind: str
    channel: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class NotifyResult:
    """Every delivery of one call of :func:`notify_run`."""

    deliveries: tuple[Delivery, ...] = ()

    def count(self, status: Status) -> int:
        """How many deliveries ended so."""
        return sum(d.status == status for d in self.deliveries)

    @property
    def failed(self) -> tuple[Delivery, ...]:
        """The deliveries that failed (their channel answered with an error or not at all)."""
        return tuple(d for d in self.deliveries if d.status == "failed")

    def summary(self) -> str:
        """One line for the run's table."""
        parts = [
            f"{self.count(s)} {s}"
            for s in ("sent", "duplicate", "quiet", "rate-limited", "failed")
            if self.count(s)
        ]
        detail = ", ".join(parts) or "nothing to tell"
        if self.failed:
            detail += "; " + "; ".join(f"{d.channel}: {d.detail}" for d in self.failed[:3])
        return detail


#: Sends one message: ``(url, title, body, timeout) -> None``, raising on failure.
Sender = Callable[[str, str, str, float], None]


def _channel_secrets(settings: NotificationSettings) -> list[str]:
    """Everything in the channel URLs that could be a credential, as sent."""
    found: list[str] = []
    for channel in settings.channels.values():
        for name in _ENV.findall(channel.url):
            found.append(os.environ.get(name, ""))
        url = _expand(channel.url, strict=False)
        found.append(url)
        parts = urlsplit(url)
        found += [parts.password or "", parts.username or "", parts.netloc]
        # slack://T1/B2/C3 and msteams://a/b/c carry their tokens in the path
        found += [segment for segment in parts.path.split("/") if len(segment) >= 8]
        found += [v for _, v in _query(parts.query) if len(v) >= 8]
    found += [os.environ.get(name, "") for name in _TOKEN_VARIABLES]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _query(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=False)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` without credentials: URL user info, the given secrets, well-known tokens.

    The URL and secret rules are gitops' (one home); well-known token shapes are added here
    because a message may quote text from anywhere.
    """
    from cloudbalance.gitops._git import redact as redact_urls

    return _TOKENS.sub("***", redact_urls(text, secrets))


def _expand(url: str, *, strict: bool = True) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            if strict:
                raise LookupError(f"environment variable {name} is not set")
            return ""
        return os.environ[name]

    return _ENV.sub(value, url)


def _apprise_send(url: str, title: str, body: str, timeout: float) -> None:
    """Send through apprise; raise ``RuntimeError`` with apprise's reason on failure."""
    with warnings.catch_warnings():
        # apprise's e-mail plugin imports the stdlib's deprecated imghdr: noise, not ours
        warnings.filterwarnings(
            "ignore", message="'imghdr' is deprecated", category=DeprecationWarning
        )
        import apprise

        parts = urlsplit(url)
        if parts.scheme in ("json", "jsons", "form", "forms", "xml", "xmls"):
            joiner = "&" if parts.query else "?"
            url = f"{url}{joiner}cto={timeout:g}&rto={timeout:g}"
        sender = apprise.Apprise()
        if not sender.add(url):
            raise RuntimeError("not a URL apprise can send to (see docs/notifications.md)")
        with apprise.LogCapture(level=logging.WARNING) as log:  # type: ignore[no-untyped-call]
            ok = sender.notify(title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN)
            captured = log.getvalue().strip()
    if not ok:
        last = captured.splitlines()[-1] if captured else "the channel refused the message"
        raise RuntimeError(last.rsplit(" - ", 1)[-1].strip())


def route(settings: NotificationSettings, event: Event) -> list[Rule]:
    """The rules that take ``event`` (by kind, workload, cloud and money impact)."""
    unscoped = event.kind in ("plan", "revert", "step_failed")
    matched = []
    for rule in settings.rules:
        if event.kind not in rule.events:
            continue
        if not unscoped and rule.workloads and event.workload not in rule.workloads:
            continue
        if not unscoped and rule.clouds and event.cloud not in rule.clouds:
            continue
        impact = event.impact
        if impact is not None and impact < rule.min_impact:
            continue
        matched.append(rule)
    return matched


def _ensure_table(store: Store) -> None:
    store.con.execute(_DDL)


def delivered(store: Store) -> set[tuple[str, str]]:
    """``(event_key, channel)`` pairs already delivered."""
    _ensure_table(store)
    return {
        (str(k), str(c))
        for k, c in store.con.execute("SELECT event_key, channel FROM notifications").fetchall()
    }


def _sent_since(store: Store, channel: str, since: datetime) -> int:
    row = store.con.execute(
        "SELECT count(*) FROM notifications WHERE channel = ? AND sent_at >= ?", [channel, since]
    ).fetchone()
    return int(row[0]) if row else 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _recorder(
    deliveries: list[Delivery], event: Event, channel: str, secrets: Sequence[str]
) -> Callable[..., None]:
    def record(status: Status, detail: str = "") -> None:
        deliveries.append(Delivery(event.key, event.kind, channel, status, redact(detail, secrets)))

    return record


def notify_run(
    settings: Settings | NotificationSettings,
    store: Store,
    events: Iterable[Event],
    *,
    now: datetime | None = None,
    send: Sender | None = None,
) -> NotifyResult:
    """Tell the configured channels about ``events``: the daily run calls this after its steps.

    Args:
        settings: The configuration (or just its ``notifications`` section).
        store: Where deliveries are remembered (table ``notifications``).
        events: What happened (see :mod:`cloudbalance.notify.events` for builders).
        now: The clock (naive UTC): quiet hours and the hourly limit are read on it.
        send: How to send (default: apprise); tests and plugins may pass their own.

    Returns:
        Per event and channel, ``sent``, ``duplicate`` (sent by an earlier run), ``quiet``,
        ``rate-limited`` (both tried again by a later run) or ``failed`` (with the reason,
        redacted). Never raises for a channel's failure.
    """
    section = settings if isinstance(settings, NotificationSettings) else settings.notifications
    when = now or _now()
    transport = send or _apprise_send
    secrets = _channel_secrets(section)
    done = delivered(store)
    budget = {
        name: section.max_per_hour - _sent_since(store, name, when - timedelta(hours=1))
        for name in section.channels
    }
    broken: dict[str, str] = {}
    deliveries: list[Delivery] = []
    seen: set[str] = set()
    for event in events:
        if event.key in seen:
            continue
        seen.add(event.key)
        targets: dict[str, Status | None] = {}
        for rule in route(section, event):
            held = rule.quiet_hours is not None and rule.quiet_hours.contains(when.time())
            for name in rule.channels:
                # a channel reached by a rule outside its quiet hours is not held
                if targets.get(name, "quiet") == "quiet":
                    targets[name] = "quiet" if held else None
        for name, held_status in targets.items():
            record = _recorder(deliveries, event, name, secrets)
            if (event.key, name) in done:
                record("duplicate")
                continue
            if held_status == "quiet":
                record("quiet", "held until the quiet hours end")
                continue
            if name in broken:
                record("failed", broken[name])
                continue
            if budget[name] <= 0:
                record("rate-limited", f"more than {section.max_per_hour} messages this hour")
                continue
            try:
                url = _expand(section.channels[name].url)
                transport(
                    url,
                    redact(event.title, secrets),
                    redact(event.body, secrets),
                    section.timeout,
                )
            except Exception as err:  # any channel failure is reported, never fatal
                reason = redact(str(err) or type(err).__name__, secrets)
                broken[name] = reason
                record("failed", reason)
                continue
            budget[name] -= 1
            store.con.execute(
                "INSERT OR REPLACE INTO notifications VALUES (?, ?, ?, ?, ?)",
                [event.key, name, event.kind, redact(event.title, secrets), when],
            )
            done.add((event.key, name))
            record("sent")
    return NotifyResult(tuple(deliveries))


def notify_test(
    settings: Settings | NotificationSettings,
    *,
    channels: Sequence[str] = (),
    send: Sender | None = None,
) -> list[Delivery]:
    """Send a sample message to each channel (or the named ones); nothing is remembered.

    Raises:
        ConfigError: A named channel is not configured, or none is.
    """
    from cloudbalance.exceptions import ConfigError

    section = settings if isinstance(settings, NotificationSettings) else settings.notifications
    if not section.channels:
        raise ConfigError(
            "no notification channel configured: add notifications.channels to cloudbalance.yaml",
            key="notifications.channels",
        )
    unknown = sorted(set(channels) - set(section.channels))
    if unknown:
        known = ", ".join(sorted(section.channels))
        raise ConfigError(f"unknown channel(s) {', '.join(unknown)} (configured: {known})")
    transport = send or _apprise_send
    secrets = _channel_secrets(section)
    out = []
    for name in channels or list(section.channels):
        try:
            transport(
                _expand(section.channels[name].url),
                "cloudbalance test message",
                f"This channel ({name}) receives cloudbalance notifications.",
                section.timeout,
            )
        except Exception as err:  # reported per channel
            out.append(Delivery("test", "test", name, "failed", redact(str(err), secrets)))
            continue
        out.append(Delivery("test", "test", name, "sent"))
    return out
