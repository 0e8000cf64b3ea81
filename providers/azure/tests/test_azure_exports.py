from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from cloudbalance_azure import AzureProvider

from cloudbalance.exceptions import ProviderError

pytest.importorskip("cloudbalance.providers.focus")

HEADER = (
    "BilledCost,BillingAccountId,BillingCurrency,ChargeCategory,ChargePeriodEnd,"
    "ChargePeriodStart,EffectiveCost,ProviderName,RegionId,ResourceId,ServiceName,"
    "SubAccountId,Tags,x_SkuMeterCategory\n"
)


def _export(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part_0_0001.csv"
    rows = []
    for day in (1, 2, 3):
        start = f"2024-03-0{day}T00:00:00Z"
        end = f"2024-03-0{day + 1}T00:00:00Z"
        rows.append(
            f"12.5,ba-1,USD,Usage,{end},{start},11.0,Microsoft,westeurope,/subscriptions/s/vm1,"
            f'Virtual Machines,s,"{{""workload"":""checkout""}}",Virtual Machines\n'
        )
    path.write_text(HEADER + "".join(rows))
    return path


def test_focus_cost_export_is_read_through_the_core_reader(tmp_path: Path) -> None:
    _export(tmp_path / "focus")
    provider = AzureProvider(export_paths=[str(tmp_path / "focus")])
    frame = provider.costs(datetime(2024, 3, 1), datetime(2024, 3, 3))
    assert len(frame) == 2
    assert set(frame.ProviderName) == {"Microsoft"}
    assert set(frame.x_Cloud) == {"azure"}
    assert frame.BilledCost.sum() == pytest.approx(25.0)


def test_export_window_starting_mid_day_keeps_only_whole_days(tmp_path: Path) -> None:
    _export(tmp_path / "focus")
    provider = AzureProvider(export_paths=[str(tmp_path / "focus")])
    frame = provider.costs(datetime(2024, 3, 1, 6), datetime(2024, 3, 4))
    assert sorted(frame.ChargePeriodStart.dt.day) == [2, 3]


def test_missing_export_files_fail_check_and_costs_clearly(tmp_path: Path) -> None:
    provider = AzureProvider(export_paths=[str(tmp_path / "nothing-here")])
    result = provider.check()
    assert not result.ok
    assert result.missing == "export files"
    with pytest.raises(ProviderError):
        provider.costs(datetime(2024, 3, 1), datetime(2024, 3, 3))
