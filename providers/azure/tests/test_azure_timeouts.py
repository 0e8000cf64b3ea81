"""An Azure endpoint that accepts TCP and never answers fails fast and never hangs a sync."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from cloudbalance_azure import AzureProvider
from cloudbalance_azure.testing import SUB, FakeCredential

from cloudbalance.config import Settings, SyncSettings
from cloudbalance.exceptions import ConfigError, ProviderError
from cloudbalance.models import Location
from cloudbalance.store import Store
from cloudbalance.sync import sync


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An HTTP endpoint that accepts connections (the kernel's backlog) and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    host, port = server.getsockname()[:2]
    yield f"http://{host}:{port}"
    server.close()
    for thread in threading.enumerate():
        if thread.name.startswith("cloudbalance-sync-"):
            thread.join(10)


def _silent(url: str, **options: object) -> AzureProvider:
    provider = AzureProvider(
        subscription_id=SUB,
        credential=FakeCredential(),
        endpoint=url,
        prices_endpoint=url,
        **options,
    )
    provider.sleep = lambda _seconds: None
    return provider


def test_costs_from_a_silent_endpoint_fail_after_the_read_timeout(silent_url: str) -> None:
    provider = _silent(silent_url, read_timeout=0.3, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(ProviderError):
        provider.costs(datetime(2026, 11, 1), datetime(2026, 11, 3))
    assert time.monotonic() - started < 5


def test_prices_from_a_silent_endpoint_fail_after_the_read_timeout(silent_url: str) -> None:
    provider = _silent(silent_url, read_timeout=0.3, max_attempts=1)
    started = time.monotonic()
    with pytest.raises(ProviderError):
        provider.prices([Location("azure", "eastus")])
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", [0, -1, "soon", True])
def test_timeouts_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ConfigError, match="read_timeout"):
        AzureProvider(subscription_id=SUB, read_timeout=value)


def test_a_silent_azure_is_failed_at_its_deadline_and_the_others_are_kept(
    tmp_path: Path, silent_url: str
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    start = pd.Timestamp("2026-11-01")
    row = {
        "ChargePeriodStart": f"{start:%Y-%m-%d}T00:00:00Z",
        "ChargePeriodEnd": f"{start + pd.Timedelta(days=1):%Y-%m-%d}T00:00:00Z",
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
        "ListCost": "5",
        "BilledCost": "5",
        "EffectiveCost": "5",
        "BillingCurrency": "USD",
        "Tags": "{}",
    }
    pd.DataFrame([row]).to_csv(folder / "aws.csv", index=False)
    settings = Settings(
        providers={
            "azure": {
                "subscription_id": SUB,
                "credential": FakeCredential(),
                "endpoint": silent_url,
                "read_timeout": 3.0,
                "max_attempts": 1,
            },
            "focus": {"paths": str(folder)},
        },
        sync=SyncSettings(deadlines={"azure": 1.0}),
    )
    started = time.monotonic()
    with Store(tmp_path / "store.duckdb") as store:
        azure, focus = sync(settings, store, until=datetime(2026, 11, 2))
    assert time.monotonic() - started < 10
    assert not azure.ok
    assert azure.error is not None
    assert "no answer within the deadline" in azure.error
    assert focus.ok, focus.error
    with Store(tmp_path / "store.duckdb", lock_timeout=0) as store:
        assert store.summary(["cloud"])["amount"].tolist() == [5.0]
