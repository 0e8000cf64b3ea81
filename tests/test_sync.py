"""``cloudbalance sync`` on every day after the first: incremental windows, restated days."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.config import Settings
from cloudbalance.exceptions import ConfigError
from cloudbalance.providers.focus import DEFAULT_REVISION_DAYS, FocusProvider
from cloudbalance.store import Store
from cloudbalance.sync import sync
from tests.conftest import focus_rows

DAY0 = datetime(2026, 10, 1)


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
    for day in range(1, 8):
        first = DAY0 + timedelta(days=max(0, day - 3))
        days = (DAY0 + timedelta(days=day) - first).days
        frame = export(days, first=first, cost=float(day))
        _deliver(folder, f"export-{day:02d}.csv", frame, age=day)
        expected.update({f"{first + timedelta(days=d):%Y-%m-%d}": float(day) for d in range(days)})
        if day == 4:
            continue  # the job did not run that day: the next run catches up
        with Store(tmp_path / "store.duckdb") as store:
            [result] = sync(settings, store, until=DAY0 + timedelta(days=day))
            assert result.ok, result.error
            assert daily_totals(store) == expected
