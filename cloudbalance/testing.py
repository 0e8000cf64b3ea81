"""Test helpers for users and plugin authors: a contract suite every provider must pass.

A plugin's tests reuse the suite by subclassing it and saying how to build the provider against
its offline fixtures (moto, a recorded transport, a local server)::

    from cloudbalance.testing import ProviderContract

    class TestMyProvider(ProviderContract):
        name = "mine"
        start = datetime(2024, 1, 1)
        end = datetime(2024, 1, 8)

        @pytest.fixture
        def provider(self, tmp_path):
            return MyProvider(path=write_fixture(tmp_path))

The suite checks what the rest of cloudbalance relies on: the frames match their schemas, rows
stay inside the asked window, whole days are returned (the store replaces whole days), an empty
window is an empty frame rather than an error, and ``check`` neither raises nor leaks secrets.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

import pandas as pd
import pytest

from cloudbalance.provider import CostProvider, ProviderCheck, available_providers
from cloudbalance.schema import COSTS, PRICES, empty_frame, validate_costs, validate_prices

__all__ = ["ProviderContract", "empty_frame"]

#: Things that look like secrets (AWS key ids, bearer tokens, private keys).
_SECRET = re.compile(
    r"(AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY|"
    r"bearer\s+[a-z0-9._\-]{20,})",
    re.IGNORECASE,
)
#: Candidates for long random secrets (AWS secret keys, base64 tokens)...
_LONG = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def _looks_secret(text: str) -> bool:
    """A known secret shape, or a long run mixing upper case, lower case and digits.

    Paths and URLs are long too (``s3://bucket/prefix/data``) but are not random: requiring all
    three character classes keeps them out.
    """
    if _SECRET.search(text):
        return True
    return any(
        any(c.isupper() for c in run)
        and any(c.islower() for c in run)
        and any(c.isdigit() for c in run)
        for run in _LONG.findall(text)
    )


class ProviderContract:
    """Contract tests for a :class:`~cloudbalance.provider.CostProvider`.

    Subclasses set ``name``, a window ``start``/``end`` in which their fixtures have cost rows,
    and a ``provider`` fixture. Set ``registered = False`` for providers built in-process only.
    """

    name: ClassVar[str]
    start: ClassVar[datetime]
    end: ClassVar[datetime]
    registered: ClassVar[bool] = True
    has_prices: ClassVar[bool] = True

    @pytest.fixture
    def provider(self) -> CostProvider:  # pragma: no cover - always overridden
        raise NotImplementedError("override the `provider` fixture")

    def test_satisfies_the_protocol(self, provider: CostProvider) -> None:
        assert isinstance(provider, CostProvider)
        assert provider.name == self.name
        assert isinstance(provider.revision_days, int)
        assert provider.revision_days >= 0

    def test_is_registered_under_the_entry_point_group(self) -> None:
        if not self.registered:
            pytest.skip("built in-process only")
        assert self.name in available_providers()

    def test_costs_match_the_costs_frame(self, provider: CostProvider) -> None:
        frame = provider.costs(self.start, self.end)
        assert len(frame) > 0, "the fixture window must hold cost rows"
        checked = validate_costs(frame)
        assert list(checked.columns[: len(COSTS.names)]) == COSTS.names

    def test_costs_stay_inside_the_window(self, provider: CostProvider) -> None:
        frame = validate_costs(provider.costs(self.start, self.end))
        assert (frame["ChargePeriodStart"] >= pd.Timestamp(self.start)).all()
        assert (frame["ChargePeriodStart"] < pd.Timestamp(self.end)).all()

    def test_costs_name_their_source(self, provider: CostProvider) -> None:
        frame = validate_costs(provider.costs(self.start, self.end))
        assert frame["x_Source"].notna().all()

    def test_costs_return_whole_days(self, provider: CostProvider) -> None:
        """Every day returned by a narrower window has the same rows as in the full window."""
        full = validate_costs(provider.costs(self.start, self.end))
        day = full["ChargePeriodStart"].dt.normalize().min()
        narrow = validate_costs(
            provider.costs(day.to_pydatetime(), (day + pd.Timedelta(days=1)).to_pydatetime())
        )
        in_full = full[full["ChargePeriodStart"].dt.normalize() == day]
        assert len(narrow) == len(in_full)
        assert narrow["BilledCost"].sum() == pytest.approx(in_full["BilledCost"].sum())

    def test_a_window_starting_mid_day_returns_only_whole_days(
        self, provider: CostProvider
    ) -> None:
        """The store replaces whole days, so a partial first day must not be returned."""
        full = validate_costs(provider.costs(self.start, self.end))
        day = full["ChargePeriodStart"].dt.normalize().min()
        later = validate_costs(
            provider.costs((day + pd.Timedelta(hours=12)).to_pydatetime(), self.end)
        )
        assert (later["ChargePeriodStart"] >= day + pd.Timedelta(hours=12)).all()
        for start, rows in later.groupby(later["ChargePeriodStart"].dt.normalize()):
            in_full = full[full["ChargePeriodStart"].dt.normalize() == start]
            assert len(rows) == len(in_full), f"day {start} is partial"

    def test_empty_window_is_an_empty_frame(self, provider: CostProvider) -> None:
        frame = provider.costs(datetime(1990, 1, 1), datetime(1990, 1, 2))
        assert len(validate_costs(frame)) == 0

    def test_prices_match_the_prices_frame(self, provider: CostProvider) -> None:
        frame = validate_prices(provider.prices())
        if self.has_prices:
            assert len(frame) > 0
        assert list(frame.columns[: len(PRICES.names)]) == PRICES.names

    def test_check_reports_without_raising_or_leaking(self, provider: CostProvider) -> None:
        result = provider.check()
        assert isinstance(result, ProviderCheck)
        assert result.provider == self.name
        text = f"{result.detail} {result.missing}"
        assert not _looks_secret(text), f"check() output looks like it holds a secret: {text!r}"
