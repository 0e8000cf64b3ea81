from __future__ import annotations

from datetime import date

import pytest

from cloudbalance.config import FreezeWindow


@pytest.fixture
def freeze_window() -> FreezeWindow:
    return FreezeWindow(date(2026, 12, 20), date(2027, 1, 2), "year-end freeze, sales peak")
