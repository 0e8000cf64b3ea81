"""A Google endpoint that accepts TCP and never answers fails after the request timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from cloudbalance_gcp import GCPProvider
from google.auth.credentials import AnonymousCredentials

from cloudbalance.exceptions import ConfigError, ProviderError
from cloudbalance.models import Location

TABLE = "billing-proj.billing_export.gcp_billing_export_v1_0A1B2C_3D4E5F_6A7B8C"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An HTTP endpoint that accepts connections (the kernel's backlog) and never answers."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    host, port = server.getsockname()[:2]
    yield f"http://{host}:{port}"
    server.close()


def _silent(url: str) -> GCPProvider:
    return GCPProvider(
        billing_table=TABLE,
        project="billing-proj",
        bigquery_endpoint=url,
        catalog_endpoint=url,
        credentials=AnonymousCredentials(),
        timeout=0.3,
        max_attempts=1,
        sleep=lambda _seconds: None,
    )


def test_a_silent_bigquery_fails_after_the_timeout(silent_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError):
        _silent(silent_url).costs(datetime(2026, 11, 1), datetime(2026, 11, 3))
    assert time.monotonic() - started < 5


def test_a_silent_catalog_fails_after_the_timeout(silent_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderError):
        _silent(silent_url).prices([Location("gcp", "us-central1")])
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", [0, -1, "soon", True])
def test_the_timeout_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ConfigError, match="positive number of seconds"):
        GCPProvider(billing_table=TABLE, timeout=value)
