"""Notifications against local endpoints only: an HTTP server and an SMTP server in threads."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from cloudbalance.budgets import BudgetStatus, SpendBudget
from cloudbalance.cli import main
from cloudbalance.config import Settings, load_config
from cloudbalance.exceptions import ConfigError
from cloudbalance.models import Plan
from cloudbalance.notify import (
    AnomalyDetected,
    BudgetAlert,
    Channel,
    Event,
    NotificationSettings,
    PlanApplied,
    QuietHours,
    RevertProposed,
    Rule,
    SpikePredicted,
    StepFailed,
    anomaly_events,
    budget_events,
    notify_run,
    notify_test,
    plan_events,
    revert_events,
    spike_events,
    step_failed_events,
)
from cloudbalance.store import Store

NOW = datetime(2026, 11, 2, 12, 0)


# ---------------------------------------------------------------------------------- servers


@dataclass
class Hook:
    """A local HTTP endpoint that records what it is sent and answers ``status``."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


def _serve(status: int) -> Iterator[Hook]:
    hook = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length).decode()
            hook.received.append(json.loads(raw) if raw.startswith("{") else {"raw": raw})
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    hook.status = status
    hook.url = f"json://127.0.0.1:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    yield from _serve(200)


@pytest.fixture
def broken_hook() -> Iterator[Hook]:
    yield from _serve(500)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[str]]]:
    from aiosmtpd.controller import Controller

    received: list[str] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            received.append(envelope.content.decode())
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as opened:
        yield opened


def section(*rules: Rule, max_per_hour: int = 20, **channels: str) -> NotificationSettings:
    return NotificationSettings(
        channels={name: Channel(url) for name, url in channels.items()},
        rules=rules,
        max_per_hour=max_per_hour,
        timeout=5.0,
    )


# ---------------------------------------------------------------------------------- events


def one_of_each() -> list[Event]:
    """One event of every kind, each built from the run output it comes from."""
    day = pd.Timestamp("2026-11-03")
    spikes = pd.DataFrame(
        [
            {
                "unique_id": "azure:westeurope:D2s:spot",
                "kind": "price",
                "start": day,
                "end": day + pd.Timedelta(days=2),
                "peak_ds": day,
                "expected": 0.05,
                "normal_level": 0.035,
                "probability": 0.9,
            }
        ]
    )
    anomalies = pd.DataFrame(
        {
            "unique_id": ["checkout", "checkout"],
            "kind": "cost",
            "ds": [pd.Timestamp("2026-10-30"), pd.Timestamp("2026-10-31")],
            "y": [900.0, 100.0],
            "anomaly": [True, False],
            "score": [8.0, 0.1],
            "expected": [120.0, 101.0],
        }
    )
    status = BudgetStatus(
        budget=SpendBudget(1000.0, cloud="aws"),
        start=datetime(2026, 11, 1),
        end=datetime(2026, 12, 1),
        as_of=datetime(2026, 11, 2),
        actual=800.0,
        projected=1300.0,
        lower=1200.0,
        upper=1400.0,
        interval=0.8,
        probabilities={0.5: 1.0, 0.75: 1.0, 0.9: 1.0, 1.0: 0.97},
    )
    plan = Plan(
        plan_id="p1",
        created_at=datetime(2026, 11, 2),
        period_start=datetime(2026, 11, 2),
        period="1D",
        horizon=14,
        current=(),
        schedule=(),
        moves=(),
        expected_cost=900.0,
        baseline_cost=1000.0,
        confidence=0.9,
    )
    applied = SimpleNamespace(
        mode="commit", commit="abc1234567890", branch="main", pull_request=None
    )
    revert = SimpleNamespace(plan_id="p0", status="proposed", detail="cost more than not moving")
    verification = SimpleNamespace(plan_id="p0", excess=250.0, currency="USD")
    return [
        *spike_events(spikes),
        *anomaly_events(anomalies),
        *budget_events([status]),
        *plan_events(plan, applied),
        *revert_events([revert], [verification]),  # type: ignore[list-item]
        *step_failed_events("run1", [{"step": "sync", "status": "failed", "detail": "aws: 403"}]),
    ]


def test_builders_make_one_event_of_every_kind() -> None:
    events = one_of_each()
    kinds = [type(e) for e in events]
    assert kinds == [
        SpikePredicted,
        AnomalyDetected,
        BudgetAlert,  # 75% crossed (800 of 1000)
        BudgetAlert,  # 100% forecast
        PlanApplied,
        RevertProposed,
        StepFailed,
    ]
    anomaly = events[1]
    assert isinstance(anomaly, AnomalyDetected)
    assert anomaly.impact == pytest.approx(780.0)
    assert (
        "cloudbalance anomalies feedback checkout@2026-10-30 --label yes|no|planned" in anomaly.body
    )
    crossed, forecast = events[2], events[3]
    assert isinstance(crossed, BudgetAlert)
    assert isinstance(forecast, BudgetAlert)
    assert (crossed.threshold, crossed.crossed) == (0.75, True)
    assert (forecast.threshold, forecast.crossed) == (1.0, False)
    assert events[0].cloud == "azure"
    assert len({e.key for e in events}) == len(events)


def test_one_event_per_anomaly_incident() -> None:
    days = pd.date_range("2026-10-28", periods=3, freq="D")
    incident = pd.DataFrame(
        {
            "unique_id": "aws",
            "kind": "cloud_cost",
            "ds": days,
            "y": [300.0, 500.0, 250.0],
            "anomaly": True,
            "score": 6.0,
            "expected": 100.0,
            "anomaly_id": "aws@2026-10-28",
        }
    )
    [event] = anomaly_events(incident)
    assert event.impact == 400.0
    assert event.key == "anomaly:cloud_cost:aws@2026-10-28"
    assert event.cloud == "aws"
    assert "feedback aws@2026-10-28" in event.body
    assert event.pattern is None
    assert event.body.startswith("aws (cloud cost) cost")


def test_an_anomaly_event_says_whether_it_is_a_spike_or_a_sustained_shift() -> None:
    days = pd.date_range("2026-10-28", periods=2, freq="D")
    frame = pd.DataFrame(
        {
            "unique_id": ["etl", "etl", "api", "api"],
            "ds": [*days, *days],
            "y": [300.0, 310.0, 50.0, 900.0],
            "anomaly": True,
            "score": 6.0,
            "expected": 100.0,
            "anomaly_id": ["etl@2026-10-28", "etl@2026-10-28", "api@2026-10-28", "api@2026-10-28"],
            "anomaly_kind": ["shift", "shift", "spike", "spike"],
        }
    )
    events = {e.series: e for e in anomaly_events(frame)}
    assert events["etl"].pattern == "shift"
    assert events["etl"].body.startswith("A sustained shift: etl")
    assert events["api"].pattern == "spike"
    assert events["api"].body.startswith("A sudden spike: api")


def test_every_event_kind_reaches_a_local_webhook(hook: Hook, store: Store) -> None:
    settings = section(Rule(channels=("ops",)), ops=hook.url)
    result = notify_run(settings, store, one_of_each(), now=NOW)
    assert result.count("sent") == 7, result.summary()
    titles = [m["title"] for m in hook.received]
    for fragment in (
        "Spike predicted: azure:westeurope:D2s:spot (price)",
        "Cost anomaly: checkout (workload cost)",
        "Budget aws: crossed 75%",
        "Budget aws: forecast to cross 100%",
        "Plan p1: commit made",
        "Revert of plan p0: proposed",
        "step sync failed",
    ):
        assert any(fragment in t for t in titles), (fragment, titles)


def test_each_event_is_sent_once_across_runs(hook: Hook, tmp_path: Path) -> None:
    settings = section(Rule(channels=("ops",)), ops=hook.url)
    path = tmp_path / "store.duckdb"
    with Store(path) as first:
        assert notify_run(settings, first, one_of_each(), now=NOW).count("sent") == 7
    with Store(path) as second:
        again = notify_run(settings, second, one_of_each(), now=NOW.replace(hour=18))
    assert again.count("sent") == 0
    assert again.count("duplicate") == 7
    assert len(hook.received) == 7


def test_a_failing_channel_does_not_stop_the_others(
    hook: Hook, broken_hook: Hook, store: Store
) -> None:
    settings = section(
        Rule(channels=("broken", "unreachable", "ops")),
        broken=broken_hook.url,
        unreachable=f"json://127.0.0.1:{_free_port()}/nobody",
        ops=hook.url,
    )
    result = notify_run(settings, store, one_of_each(), now=NOW)
    assert result.count("sent") == 7
    assert {d.channel for d in result.failed} == {"broken", "unreachable"}
    assert len(hook.received) == 7
    # what failed is tried again by the next run; what was sent is not
    healed = section(Rule(channels=("broken", "ops")), broken=hook.url, ops=hook.url)
    retry = notify_run(healed, store, one_of_each(), now=NOW)
    assert retry.count("sent") == 7
    assert retry.count("duplicate") == 7


def test_email_through_a_local_smtp_server(smtp: tuple[int, list[str]], store: Store) -> None:
    port, received = smtp
    url = f"mailto://127.0.0.1:{port}?to=finops@example.com&from=cb@example.com&mode=insecure"
    settings = section(Rule(channels=("mail",), events=("step_failed",)), mail=url)
    result = notify_run(settings, store, one_of_each(), now=NOW)
    assert result.count("sent") == 1, result.summary()
    assert len(received) == 1
    assert "step sync failed" in received[0]


def test_rules_filter_by_kind_workload_cloud_and_money(hook: Hook, store: Store) -> None:
    settings = section(
        Rule(channels=("ops",), events=("anomaly",), workloads=("search",)),
        Rule(channels=("ops",), events=("budget",), clouds=("aws",), min_impact=5000),
        Rule(channels=("ops",), events=("spike",), clouds=("azure",)),
        ops=hook.url,
    )
    result = notify_run(settings, store, one_of_each(), now=NOW)
    assert [d.kind for d in result.deliveries] == ["spike"]


def test_rate_limit_holds_the_rest_for_a_later_run(hook: Hook, store: Store) -> None:
    settings = section(Rule(channels=("ops",)), max_per_hour=3, ops=hook.url)
    first = notify_run(settings, store, one_of_each(), now=NOW)
    assert (first.count("sent"), first.count("rate-limited")) == (3, 4)
    same_hour = notify_run(settings, store, one_of_each(), now=NOW.replace(minute=30))
    assert same_hour.count("sent") == 0
    later = notify_run(settings, store, one_of_each(), now=NOW.replace(hour=14))
    assert later.count("sent") == 3
    assert len(hook.received) == 6


def test_quiet_hours_hold_events_until_they_end(hook: Hook, store: Store) -> None:
    quiet = QuietHours(start="22:00", end="07:00")
    settings = section(Rule(channels=("ops",), quiet_hours=quiet), ops=hook.url)
    night = notify_run(settings, store, one_of_each(), now=NOW.replace(hour=23))
    assert night.count("quiet") == 7
    assert not hook.received
    morning = notify_run(settings, store, one_of_each(), now=NOW.replace(hour=7, minute=5))
    assert morning.count("sent") == 7


def test_no_secret_leaves_in_a_message_or_a_failure(
    hook: Hook, broken_hook: Hook, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "s3cr3t-token-0123456789"
    monkeypatch.setenv("CB_HOOK_TOKEN", token)
    leaky = StepFailed("run9", "apply", f"push to https://bot:{token}@git.example.com refused")
    settings = section(
        Rule(channels=("ops", "broken")),
        ops=hook.url + "?token=${CB_HOOK_TOKEN}",
        broken=broken_hook.url + "?token=${CB_HOOK_TOKEN}",
    )
    result = notify_run(settings, store, [leaky], now=NOW)
    assert result.count("sent") == 1
    assert token not in json.dumps(hook.received)
    assert all(token not in d.detail for d in result.deliveries)
    stored = store.con.execute("SELECT * FROM notifications").fetchall()
    assert token not in repr(stored)


def test_notify_test_reports_each_channel(hook: Hook, broken_hook: Hook) -> None:
    settings = section(ops=hook.url, broken=broken_hook.url)
    results = {d.channel: d.status for d in notify_test(settings)}
    assert results == {"ops": "sent", "broken": "failed"}
    assert hook.received[0]["title"] == "cloudbalance test message"
    with pytest.raises(ConfigError, match="unknown channel"):
        notify_test(settings, channels=["nope"])


def write_config(folder: Path, body: str) -> Path:
    path = folder / "cloudbalance.yaml"
    path.write_text("version: 1\n" + body, encoding="utf-8")
    return path


def test_notify_test_command_exit_codes(
    hook: Hook, broken_hook: Hook, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_config(
        tmp_path,
        f"notifications:\n  channels:\n    ops: {{url: '{hook.url}'}}\n",
    )
    assert main(["notify", "test", "-c", str(good)]) == 0
    assert "sent" in capsys.readouterr().out
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = write_config(
        bad_dir,
        f"notifications:\n  channels:\n    down: {{url: '{broken_hook.url}'}}\n",
    )
    assert main(["notify", "test", "-c", str(bad)]) == 1


def test_config_checks_rules_against_channels(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        "notifications:\n"
        "  channels:\n"
        "    ops: {url: 'json://localhost/x'}\n"
        "  rules:\n"
        "    - {channels: [opz], events: [spike]}\n",
    )
    with pytest.raises(ConfigError, match=r"unknown channel 'opz'") as err:
        load_config(path)
    assert err.value.line is not None
    path.write_text(
        "version: 1\nnotifications:\n  channels: {ops: {url: 'json://localhost/x'}}\n"
        "  rules:\n    - {channels: [ops], events: [spikes]}\n"
    )
    with pytest.raises(ConfigError, match="unknown event 'spikes'"):
        load_config(path)
    (tmp_path / "ok").mkdir()
    loaded = load_config(
        write_config(
            tmp_path / "ok",
            "notifications:\n"
            "  channels:\n"
            "    ops: {url: 'json://localhost/x'}\n"
            "  rules:\n"
            "    - channels: [ops]\n"
            "      min_impact: 50\n"
            "      quiet_hours: {start: '22:00', end: '06:30'}\n",
        )
    )
    rule = loaded.notifications.rules[0]
    assert rule.min_impact == 50.0
    assert rule.quiet_hours is not None
    assert rule.quiet_hours.contains(datetime(2026, 1, 1, 3).time())


def test_settings_default_to_no_channel() -> None:
    assert Settings().notifications.channels == {}
