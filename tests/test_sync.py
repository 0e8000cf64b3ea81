"""``cloudbalance sync`` on every day after the first: incremental windows, restated days."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.config import Settings
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
        str(day): float(amount) for day, amount in zip(frame["day"], frame["amount"], strict=True)
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
