"""The smallest cost provider that passes cloudbalance's contract tests.

A third-party plugin is an ordinary distribution that registers a factory under the entry-point
group ``cloudbalance.providers``::

    # pyproject.toml of your plugin
    [project.entry-points."cloudbalance.providers"]
    csv = "cloudbalance_csv:CsvProvider"

and passes :class:`cloudbalance.testing.ProviderContract` (see ``tests/test_plugin_example.py``,
which runs the suite against this file).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from cloudbalance.exceptions import ConfigError
from cloudbalance.models import Location
from cloudbalance.provider import ProviderCheck
from cloudbalance.schema import PRICES, empty_frame, validate_costs


class CsvProvider:
    """Cost lines from one CSV file in FOCUS columns (e.g. a finance team's monthly extract)."""

    name = "csv"
    revision_days = 0

    def __init__(self, path: str) -> None:
        if not path:
            raise ConfigError("providers.csv.path: give the CSV file to read")
        self.path = Path(path)

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Charges that start in ``[start, end)``; whole days, as the store expects."""
        frame = validate_costs(pd.read_csv(self.path, dtype=str), file=str(self.path))
        keep = (frame["ChargePeriodStart"] >= start) & (frame["ChargePeriodStart"] < end)
        return frame[keep].assign(x_Source=f"csv:{self.path.name}").reset_index(drop=True)

    def prices(self, locations: Sequence[Location] | None = None) -> pd.DataFrame:
        """A bill carries no price list."""
        return empty_frame(PRICES)

    def check(self) -> ProviderCheck:
        """Whether the file is there (never raises for absence)."""
        if self.path.is_file():
            return ProviderCheck(self.name, ok=True, detail=str(self.path))
        return ProviderCheck(self.name, ok=False, detail=str(self.path), missing="the CSV file")
