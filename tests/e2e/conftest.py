"""The demo, run once per session: the end-to-end tests read what it produced."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbalance.demo.run import DemoResult, run_demo


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("e2e") / "demo")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests keep what a person may want to look at (screenshots)."""
    folder = Path(__file__).resolve().parents[2] / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder
