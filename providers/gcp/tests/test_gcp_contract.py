from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from cloudbalance_gcp import GCPProvider
from cloudbalance_gcp.testing import FakeBigQuery

from cloudbalance.provider import CostProvider
from cloudbalance.testing import ProviderContract


class TestGCPProviderContract(ProviderContract):
    name = "gcp"
    start = datetime(2024, 1, 1)
    end = datetime(2024, 1, 4)

    @pytest.fixture
    def provider(self, make_provider: Callable[..., GCPProvider]) -> CostProvider:
        return make_provider()


class TestGCPDetailedExportContract(ProviderContract):
    name = "gcp"
    start = datetime(2024, 1, 1)
    end = datetime(2024, 1, 4)
    registered = False

    @pytest.fixture
    def provider(
        self,
        make_provider: Callable[..., GCPProvider],
        bigquery: FakeBigQuery,
        default_rows: Callable[[], list[dict[str, Any]]],
    ) -> CostProvider:
        rows = default_rows()
        for i, row in enumerate(rows):
            row["resource"] = {"name": f"vm-{i % 3}", "global_name": f"//compute/vm-{i % 3}"}
        table = "billing-proj.billing_export.gcp_billing_export_resource_v1_0A1B2C_3D4E5F_6A7B8C"
        bigquery.add_export(table, rows, detailed=True)
        return make_provider(billing_table=table, resources=True)
