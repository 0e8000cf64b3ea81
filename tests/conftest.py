"""Shared fixtures: small FOCUS files written by the tests themselves."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

FOCUS_ROW = {
    "ChargePeriodStart": "2025-01-01T00:00:00Z",
    "ChargePeriodEnd": "2025-01-02T00:00:00Z",
    "ProviderName": "AWS",
    "BillingAccountId": "111111111111",
    "SubAccountId": "222222222222",
    "RegionId": "us-east-1",
    "ServiceCategory": "Compute",
    "ServiceName": "Amazon Elastic Compute Cloud",
    "ResourceId": "i-0abc",
    "SkuId": "m6i.large",
    "ChargeCategory": "Usage",
    "ConsumedQuantity": "24",
    "ConsumedUnit": "Hours",
    "PricingQuantity": "24",
    "PricingUnit": "Hours",
    "ListCost": "2.304",
    "BilledCost": "2.304",
    "EffectiveCost": "2.304",
    "BillingCurrency": "USD",
    "Tags": json.dumps({"workload": "checkout"}),
}


def focus_rows(days: int = 3, **overrides: object) -> pd.DataFrame:
    """``days`` daily FOCUS rows (as text, like a CSV export), with column overrides."""
    rows = []
    for day in range(days):
        start = pd.Timestamp("2025-01-01") + pd.Timedelta(days=day)
        row = dict(FOCUS_ROW)
        row["ChargePeriodStart"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        row["ChargePeriodEnd"] = (start + pd.Timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(row)
    frame = pd.DataFrame(rows)
    for name, value in overrides.items():
        frame[name] = value
    return frame


@pytest.fixture
def write_focus(tmp_path: Path) -> Callable[..., Path]:
    """Write a frame as a FOCUS file; the suffix picks the format (.csv, .csv.gz, .parquet)."""

    def write(frame: pd.DataFrame, name: str = "export.csv") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".parquet"):
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
        return path

    return write


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its output (raises on failure)."""
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated git configuration (identity, ``main``, no signing); the user's is ignored."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Operator\n\temail = ops@example.com\n[init]\n\tdefaultBranch = main\n"
        "[commit]\n\tgpgsign = false\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return home
