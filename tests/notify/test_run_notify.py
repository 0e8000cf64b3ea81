"""The daily run tells the configured channels, once per fact, and a dead channel stops nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from cloudbalance.config import load_config
from cloudbalance.provider import register_provider, unregister_provider
from cloudbalance.run import EXIT_PARTIAL, run
from tests.notify.test_notify import Hook, _serve
from tests.test_run import BrokenProvider

#: Small on purpose: what is tested is the telling, not the forecast.
CONFIG = """\
providers:
  demo: {days: 60}
  broken: {}
workloads:
  etl:
    match: {tags: [etl]}
    replica: {vcpus: 2, memory_gib: 8}
    allowed: [aws:us-east-1, gcp:us-central1]
forecast: {horizon: 7, model: seasonal_naive}
"""

NOW = datetime(2026, 11, 1, 6, 0)


@pytest.fixture
def hooks() -> Iterator[tuple[Hook, Hook]]:
    good, bad = _serve(200), _serve(500)
    yield next(good), next(bad)
    for server in (good, bad):
        next(server, None)


@pytest.fixture
def project(tmp_path: Path, hooks: tuple[Hook, Hook]) -> Iterator[Path]:
    good, bad = hooks
    (tmp_path / "cloudbalance.yaml").write_text(
        CONFIG
        + "budgets:\n  - {cloud: aws, amount: 10}\n"
        + "notifications:\n"
        + f"  channels:\n    ops: {{url: '{good.url}'}}\n    down: {{url: '{bad.url}'}}\n"
        + "  rules:\n    - channels: [ops, down]\n"
    )
    register_provider("broken", BrokenProvider)
    yield tmp_path
    unregister_provider("broken")


def test_the_run_notifies_once_and_survives_a_dead_channel(
    project: Path, hooks: tuple[Hook, Hook]
) -> None:
    good, _ = hooks
    settings = load_config(project / "cloudbalance.yaml")
    quick = ("plan", "apply", "verify", "report")  # not what this test is about
    first = run(settings, now=NOW, skip=quick)
    steps = {s.step: s for s in first.steps}
    assert steps["forecast"].status == "ok"
    assert steps["notify"].status == "failed"
    assert "down:" in steps["notify"].detail
    assert first.exit_code == EXIT_PARTIAL
    titles = [m["title"] for m in good.received]
    assert any("step sync failed" in t for t in titles)
    assert any(t.startswith("Budget aws: forecast to cross 100%") for t in titles), titles
    sent_first = len(good.received)
    # the next run (no step this time: only the budgets are looked at again) tells nothing new
    everything = ("sync", "forecast", "plan", "apply", "verify", "report")
    second = run(settings, now=NOW, skip=everything)
    told = {s.step: s for s in second.steps}["notify"]
    assert "duplicate" in told.detail
    assert len(good.received) == sent_first
