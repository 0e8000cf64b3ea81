"""The third-party plugin example from the docs passes the contract suite."""

from __future__ import annotations

import importlib.util
from datetime import datetime
from pathlib import Path

import pytest

from cloudbalance.provider import get_provider, register_provider, unregister_provider
from cloudbalance.testing import ProviderContract
from tests.conftest import focus_rows

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "csv_provider.py"


def load_example() -> type:
    spec = importlib.util.spec_from_file_location("csv_provider", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CsvProvider  # type: ignore[no-any-return]


class TestCsvProviderExample(ProviderContract):
    name = "csv"
    start = datetime(2025, 1, 1)
    end = datetime(2025, 1, 4)
    registered = False
    has_prices = False

    @pytest.fixture
    def provider(self, tmp_path: Path) -> object:
        path = tmp_path / "bill.csv"
        focus_rows(3).to_csv(path, index=False)
        return load_example()(str(path))


def test_the_example_registers_in_process(tmp_path: Path) -> None:
    register_provider("csv", load_example())
    try:
        provider = get_provider("csv", {"path": str(tmp_path / "none.csv")})
        assert provider.check().ok is False
    finally:
        unregister_provider("csv")
