"""``cloudbalance sync`` on every day after the first: incremental windows, restated days."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.config import Settings, StoreSettings, SyncSettings
from cloudbalance.exceptions import ConfigError, CredentialsError, ProviderTimeoutError
from cloudbalance.provider import register_provider, unregister_provider
from cloudbalance.providers.focus import DEFAULT_REVISION_DAYS, FocusProvider, FocusReader
from cloudbalance.run import run
from cloudbalance.store import Store
from cloudbalance.sync import call_within, freshness, sync
from tests.conftest import focus_rows

DAY0 = datetime(2026, 10, 1)
SKIP_ALL_BUT_SYNC = ["forecast", "plan", "apply", "verify", "report"]


def export(
    days: int, *, first: datetime = DAY0, cost: float = 10.0, **columns: object
) -> pd.DataFrame:
    """A daily FOCUS export of ``days`` days from ``first``, ``cost`` per day."""
    frame = focus_rows(days)
    starts = pd.date_range(first, periods=days, freq="D")
    frame["ChargePeriodStart"] = starts.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["ChargePeriodEnd"] = (starts + pd.Timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in ("ListCost", "BilledCost", "EffectiveCost"):
        frame[name] = str(cost)
    for name, value in columns.items():
        frame[name] = value
    return frame


def focus_settings(folder: Path, **options: object) -> Settings:
    return Settings(providers={"focus": {"paths": str(folder), **options}})


def daily_totals(store: Store) -> dict[str, float]:
    frame = store.summary(["day"], measure="BilledCost")
    return {
        f"{pd.Timestamp(day):%Y-%m-%d}": float(amount)
        for day, amount in zip(frame["day"], frame["amount"], strict=True)
    }


def test_sync_works_on_every_call_after_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(5).to_csv(folder / "a.csv", index=False)
    settings = focus_settings(folder)
    for day in range(3):
        with Store(tmp_path / "store.duckdb") as store:
            [result] = sync(settings, store, until=DAY0 + timedelta(days=5 + day))
        assert result.ok, result.error
    with Store(tmp_path / "store.duckdb") as store:
        assert sum(daily_totals(store).values()) == pytest.approx(50.0)


def test_sync_since_works_on_an_existing_store(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(5).to_csv(folder / "a.csv", index=False)
    Store(tmp_path / "store.duckdb").close()  # created by an earlier command (ingest, demo...)
    with Store(tmp_path / "store.duckdb") as store:
        [result] = sync(focus_settings(folder), store, since=DAY0, until=DAY0 + timedelta(days=5))
        assert result.ok, result.error
        assert result.rows == 5


def _deliver(folder: Path, name: str, frame: pd.DataFrame, *, age: int) -> None:
    """Write an export file whose modification time is ``age`` seconds after an epoch."""
    path = folder / name
    frame.to_csv(path, index=False)
    os.utime(path, (1_800_000_000 + age, 1_800_000_000 + age))


def test_a_restated_day_is_taken_from_the_newest_file_never_summed(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    settings = focus_settings(folder)
    _deliver(folder, "day1.csv", export(1, cost=10.0), age=1)
    with Store(tmp_path / "store.duckdb") as store:
        assert sync(settings, store, until=DAY0 + timedelta(days=1))[0].ok
    _deliver(folder, "day1-restated.csv", export(2, cost=11.0), age=2)  # rewrites day 1 too
    with Store(tmp_path / "store.duckdb") as store:
        [result] = sync(settings, store, until=DAY0 + timedelta(days=2))
        assert result.ok, result.error
        assert daily_totals(store) == {"2026-10-01": 11.0, "2026-10-02": 11.0}


def test_the_focus_provider_rereads_a_month_by_default() -> None:
    assert FocusProvider("exports").revision_days == DEFAULT_REVISION_DAYS >= 31


def test_the_revision_window_is_configurable_and_checked() -> None:
    assert FocusProvider("exports", revision_days=3).revision_days == 3
    with pytest.raises(ConfigError, match="revision_days"):
        FocusProvider("exports", revision_days=-1)


def test_stored_data_equals_the_exports_after_any_sequence_of_syncs(tmp_path: Path) -> None:
    """Each day a new file restates the last three days with new amounts; one day no sync runs."""
    folder = tmp_path / "exports"
    folder.mkdir()
    settings = focus_settings(folder)
    expected: dict[str, float] = {}
    for day in range(1, 6):
        first = DAY0 + timedelta(days=max(0, day - 3))
        days = (DAY0 + timedelta(days=day) - first).days
        frame = export(days, first=first, cost=float(day))
        _deliver(folder, f"export-{day:02d}.csv", frame, age=day)
        expected.update({f"{first + timedelta(days=d):%Y-%m-%d}": float(day) for d in range(days)})
        if day == 3:
            continue  # the job did not run that day: the next run catches up
        with Store(tmp_path / "store.duckdb") as store:
            [result] = sync(settings, store, until=DAY0 + timedelta(days=day))
            assert result.ok, result.error
            assert daily_totals(store) == expected


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A TCP endpoint that accepts connections (the kernel's backlog) and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield server.getsockname()[:2]
    server.close()  # resets the pending connections: a hung client thread ends
    for thread in threading.enumerate():
        if thread.name.startswith("cloudbalance-sync-"):
            thread.join(10)


class SilentProvider:
    """A provider whose API accepts the connection and then never says a word."""

    name = "silent"
    revision_days = 0

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        with socket.create_connection(self.address, timeout=30) as conn:
            conn.sendall(b"POST /query HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.recv(1)  # blocks: the server never answers
        raise AssertionError("not reached")

    def prices(self, locations: object = None) -> pd.DataFrame:
        raise AssertionError("not reached")

    def check(self) -> object:
        raise AssertionError("not reached")


def test_a_provider_that_never_answers_fails_within_its_deadline(
    tmp_path: Path, silent_server: tuple[str, int]
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(3).to_csv(folder / "a.csv", index=False)
    host, port = silent_server
    settings = Settings(
        providers={"silent": {"host": host, "port": port}, "focus": {"paths": str(folder)}},
        sync=SyncSettings(deadline=600, deadlines={"silent": 1.0}),
    )
    register_provider("silent", SilentProvider)
    started = time.monotonic()
    try:
        with Store(tmp_path / "store.duckdb") as store:
            silent, focus = sync(settings, store, until=DAY0 + timedelta(days=3))
    finally:
        unregister_provider("silent")
    assert time.monotonic() - started < 10
    assert not silent.ok
    assert silent.error is not None
    assert "no answer within the deadline" in silent.error
    assert focus.ok, focus.error
    with Store(tmp_path / "store.duckdb", lock_timeout=0) as store:  # the lock was released
        assert sum(daily_totals(store).values()) == pytest.approx(30.0)


def test_call_within_hands_errors_and_results_to_the_caller() -> None:
    assert call_within(5, lambda: 42, provider="p", what="answer") == 42
    with pytest.raises(ProviderTimeoutError) as caught:
        call_within(0.05, lambda: time.sleep(1), provider="p", what="nap")
    assert caught.value.seconds == 0.05
    assert caught.value.provider == "p"

    def boom() -> None:
        raise CredentialsError("expired", provider="p")

    with pytest.raises(CredentialsError, match="expired"):
        call_within(5, boom, provider="p", what="costs")


def test_data_as_of_is_the_end_of_the_latest_complete_day_per_cloud(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(10).to_csv(folder / "aws.csv", index=False)
    export(8, ProviderName="Microsoft", BillingAccountId="ea-1").to_csv(
        folder / "azure.csv", index=False
    )
    now = DAY0 + timedelta(days=10, hours=7)
    with Store(tmp_path / "store.duckdb") as store:
        assert sync(focus_settings(folder), store, now=now)[0].ok
        assert store.data_as_of(now=now) == {
            "aws": datetime(2026, 10, 11),
            "azure": datetime(2026, 10, 9),
        }
        # a day is never complete before it has ended
        early = DAY0 + timedelta(days=5, hours=9)
        assert store.data_as_of(now=early)["aws"] == datetime(2026, 10, 6)
        fresh = {f.cloud: f for f in freshness(store, stale_after_days=1, now=now)}
    assert fresh["aws"].as_of == date(2026, 10, 10)
    assert fresh["aws"].warning is None
    assert fresh["azure"].as_of == date(2026, 10, 8)
    assert fresh["azure"].stale
    assert fresh["azure"].warning == (
        "azure: data ends 2026-10-08, older than 1 day(s) before 2026-10-11 "
        "(sync.stale_after_days); is its export still delivered?"
    )


def test_a_sync_as_of_a_day_pulls_up_to_that_day_and_remembers_it(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(10).to_csv(folder / "a.csv", index=False)
    with Store(tmp_path / "store.duckdb") as store:
        [result] = sync(focus_settings(folder), store, now=DAY0 + timedelta(days=4, hours=6))
        assert result.end == DAY0 + timedelta(days=5)
        assert store.sync_state("focus") == DAY0 + timedelta(days=5)
        assert len(store.costs()) == 5


def test_a_run_warns_when_a_cloud_is_stale(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(10).to_csv(folder / "a.csv", index=False)
    settings = Settings(
        providers={"focus": {"paths": str(folder)}},
        store=StoreSettings(path=str(tmp_path / "store.duckdb")),
        sync=SyncSettings(stale_after_days=2),
    )
    result = run(settings, now=DAY0 + timedelta(days=20), skip=SKIP_ALL_BUT_SYNC)
    [step] = [s for s in result.steps if s.step == "sync"]
    assert step.status == "ok"
    assert step.warnings == (
        "aws: data ends 2026-10-10, older than 2 day(s) before 2026-10-21 "
        "(sync.stale_after_days); is its export still delivered?",
    )


def test_a_run_without_providers_still_warns_about_stale_data(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    export(10).to_csv(folder / "a.csv", index=False)
    settings = Settings(store=StoreSettings(path=str(tmp_path / "store.duckdb")))
    with Store(settings.store_path) as store:
        FocusReader(store.con).ingest(store, [folder])
    result = run(settings, now=DAY0 + timedelta(days=20), skip=SKIP_ALL_BUT_SYNC)
    [step] = [s for s in result.steps if s.step == "sync"]
    assert step.status == "skipped"
    assert step.warnings[0].startswith("aws: data ends 2026-10-10, older than 3 day(s)")
