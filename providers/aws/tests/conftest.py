"""Offline AWS fixtures: moto for STS/S3/Cost Explorer, Stubber for what moto does not serve.

Never live AWS: every test runs with fake credentials in the environment, the shared config
files pointed at nothing, and the instance-metadata lookup disabled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

MOTO_CE_RESULTS = "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results"
ACCOUNT = "123456789012"  # moto's default account


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Fake credentials in the environment and nothing else the default chain could find."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    """moto's in-process AWS for the test's duration."""
    from moto import mock_aws

    with mock_aws():
        yield


def inject_ce(*results: dict[str, Any]) -> None:
    """Queue Cost Explorer answers in moto: one per distinct request, in request order."""
    import requests

    answer = requests.post(MOTO_CE_RESULTS, json={"results": list(results)}, timeout=5)
    assert answer.status_code == 201


def metrics(unblended: float, amortized: float | None = None, usage: float = 0.0) -> dict:
    """The ``Metrics`` of one Cost Explorer group, shaped like the real API's."""
    return {
        "UnblendedCost": {"Amount": f"{unblended:.10f}", "Unit": "USD"},
        "AmortizedCost": {
            "Amount": f"{unblended if amortized is None else amortized:.10f}",
            "Unit": "USD",
        },
        "UsageQuantity": {"Amount": f"{usage:.4f}", "Unit": "N/A"},
    }


def day_result(day: datetime, groups: list[tuple[list[str], dict]]) -> dict[str, Any]:
    """One ``ResultsByTime`` entry of a daily, grouped answer."""
    return {
        "TimePeriod": {
            "Start": day.strftime("%Y-%m-%d"),
            "End": (day + timedelta(days=1)).strftime("%Y-%m-%d"),
        },
        "Total": {},
        "Groups": [{"Keys": keys, "Metrics": m} for keys, m in groups],
        "Estimated": False,
    }


def today() -> datetime:
    """Today's UTC midnight, naive (the provider's clock is UTC)."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day)


class FixtureCostExplorer:
    """Cost Explorer backed by a table of daily rows, served through moto's injection queue.

    A hook on the real client computes, for each new request, the answer the real service would
    give for its window and page token, and queues it in moto just before moto reads the queue;
    so any window works in any order, and paging (``page_days`` days per page) is exercised.
    """

    def __init__(
        self, days: list[datetime], groups: list[tuple[list[str], float]], page_days: int = 3
    ) -> None:
        self.days = days
        self.groups = groups
        self.page_days = page_days
        self.seen: set[bytes] = set()
        self.requests: list[dict[str, Any]] = []

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        period = request["TimePeriod"]
        start = datetime.strptime(period["Start"], "%Y-%m-%d")
        end = datetime.strptime(period["End"], "%Y-%m-%d")
        inside = [d for d in self.days if start <= d < end]
        page = int(request.get("NextPageToken", "page-0").split("-")[1])
        chunk = inside[page * self.page_days : (page + 1) * self.page_days]
        result: dict[str, Any] = {
            "ResultsByTime": [
                day_result(
                    d, [(keys, metrics(cost * (1 + d.day / 100))) for keys, cost in self.groups]
                )
                for d in chunk
            ],
            "DimensionValueAttributes": [],
        }
        if (page + 1) * self.page_days < len(inside):
            result["NextPageToken"] = f"page-{page + 1}"
        return result

    def before_call(self, params: dict[str, Any], **_: Any) -> None:
        body = params["body"]
        if body in self.seen:
            return
        self.seen.add(body)
        request = json.loads(body)
        self.requests.append(request)
        inject_ce(self.answer(request))

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call.cost-explorer.GetCostAndUsage", self.before_call)
        return client


@pytest.fixture
def sleeps() -> list[float]:
    """Where the provider's retry waits go instead of the clock."""
    return []


@pytest.fixture
def recorder(sleeps: list[float]) -> Callable[[float], None]:
    return sleeps.append


class Helpers:
    """The helpers above, handed to tests as a fixture (test modules cannot import conftest)."""

    inject_ce = staticmethod(inject_ce)
    metrics = staticmethod(metrics)
    day_result = staticmethod(day_result)
    today = staticmethod(today)
    FixtureCostExplorer = FixtureCostExplorer
    ACCOUNT = ACCOUNT


@pytest.fixture
def aws() -> type[Helpers]:
    return Helpers
