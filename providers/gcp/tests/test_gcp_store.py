"""The provider's cost lines through the store, as ``cloudbalance sync`` uses them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from cloudbalance_gcp import GCPProvider
from cloudbalance_gcp.testing import FakeBigQuery

from cloudbalance.store import Store

TABLE = "billing-proj.billing_export.gcp_billing_export_v1_0A1B2C_3D4E5F_6A7B8C"


def test_re_pulling_revised_days_replaces_them_without_double_counting(
    make_provider: Callable[..., GCPProvider],
    bigquery: FakeBigQuery,
    export_row: Callable[..., dict[str, Any]],
    default_rows: Callable[[], list[dict[str, Any]]],
) -> None:
    provider = make_provider()
    store = Store(":memory:")
    try:
        first = store.ingest_costs(
            provider.costs(datetime(2024, 1, 1), datetime(2024, 1, 4)), source="gcp"
        )
        assert first.replaced == 0
        # Google restates 3 January: a late row arrives in the export
        late = export_row("2024-01-03 20:00:00", cost=10.0, export_lag_hours=30)
        bigquery.insert(TABLE, [late])
        start = datetime(2024, 1, 4) - timedelta(days=provider.revision_days)
        again = store.ingest_costs(provider.costs(start, datetime(2024, 1, 4)), source="gcp")
        assert again.replaced > 0
        rows = default_rows()
        expected = sum(r["cost"] for r in rows) + 10.0
        expected += sum(c["amount"] for r in rows for c in r["credits"])
        stored = store.costs(datetime(2024, 1, 1), datetime(2024, 1, 4))
        assert stored["BilledCost"].sum() == pytest.approx(expected)
    finally:
        store.close()
