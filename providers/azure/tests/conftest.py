"""Fixtures: the offline Azure server and a provider built on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cloudbalance_azure import AzureProvider
from cloudbalance_azure.testing import SUB, AzureServer, FakeCredential, default_prices


@pytest.fixture
def azure_server() -> Iterator[AzureServer]:
    server = AzureServer()
    server.price_items = default_prices()
    yield server
    server.close()


@pytest.fixture
def make_provider(azure_server: AzureServer) -> Any:
    """Build an AzureProvider on the fixture server; retries never sleep (waits are recorded)."""

    def build(**options: Any) -> AzureProvider:
        options.setdefault("subscription_id", SUB)
        options.setdefault("credential", FakeCredential())
        options.setdefault("endpoint", azure_server.url)
        options.setdefault("prices_endpoint", azure_server.url)
        provider = AzureProvider(**options)
        waits: list[float] = []
        provider.sleep = waits.append
        provider.waits = waits  # type: ignore[attr-defined]
        return provider

    return build
