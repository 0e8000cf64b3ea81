"""The built-in ``demo`` provider: the bundled sample served as if it came from an API.

It lets ``cloudbalance sync`` (and the whole scheduled loop) run without any cloud account, and
it is the reference implementation the contract tests run against in the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from functools import cached_property

import pandas as pd

from cloudbalance.demo.sample import SAMPLE_END, Sample, generate_sample
from cloudbalance.models import Location
from cloudbalance.provider import ProviderCheck

__all__ = ["DemoProvider"]


class DemoProvider:
    """Serves :func:`cloudbalance.demo.sample.generate_sample` data.

    Options (``providers.demo`` in cloudbalance.yaml):
        seed: Random seed of the sample.
        end: Last day of the sample (``YYYY-MM-DD``).
        days: Days of history.
    """

    name = "demo"
    revision_days = 2

    def __init__(self, seed: int = 7, end: str | date | None = None, days: int = 730) -> None:
        self.seed = seed
        self.end = date.fromisoformat(end) if isinstance(end, str) else (end or SAMPLE_END)
        self.days = days

    @cached_property
    def sample(self) -> Sample:
        """The generated sample (built once per provider object)."""
        return generate_sample(end=self.end, days=self.days, seed=self.seed)

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Sample charges in ``[start, end)``."""
        costs = self.sample.costs
        keep = (costs["ChargePeriodStart"] >= pd.Timestamp(start)) & (
            costs["ChargePeriodStart"] < pd.Timestamp(end)
        )
        return costs.loc[keep].assign(x_Source="demo:sample").reset_index(drop=True)

    def prices(self, locations: Sequence[Location] | None = None) -> pd.DataFrame:
        """Sample daily prices (all of them; ``locations`` filters)."""
        prices = self.sample.prices
        if locations:
            wanted = {(loc.cloud, loc.region) for loc in locations}
            pairs = list(zip(prices["ProviderName"], prices["RegionId"], strict=True))
            prices = prices[[pair in wanted for pair in pairs]]
        return prices.reset_index(drop=True)

    def check(self) -> ProviderCheck:
        """Always usable: the data is generated."""
        return ProviderCheck(self.name, ok=True, detail=f"generated sample, seed {self.seed}")
