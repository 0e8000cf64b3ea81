from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from cloudbalance_gcp import GCPProvider
from cloudbalance_gcp.testing import FOCUS_VIEW, FakeBigQuery

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


class TestGCPFocusViewContract(ProviderContract):
    name = "gcp"
    start = datetime(2024, 1, 1)
    end = datetime(2024, 1, 4)
    registered = False

    @pytest.fixture
    def provider(
        self, make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
    ) -> CostProvider:
        lines = [
            {
                "ChargePeriodStart": f"2024-01-0{day} {hour:02d}:00:00",
                "ChargePeriodEnd": f"2024-01-0{day} {hour + 1:02d}:00:00",
                "BillingAccountId": "0A1B2C-3D4E5F-6A7B8C",
                "SubAccountId": project,
                "RegionId": "us-central1",
                "ServiceCategory": "Compute",
                "ServiceName": "Compute Engine",
                "SkuId": "CP-N2-CORE",
                "ChargeCategory": category,
                "BilledCost": cost,
                "EffectiveCost": cost,
                "BillingCurrency": "USD",
                "Tags": [{"key": "workload", "value": "checkout"}],
            }
            for day in (1, 2, 3)
            for hour in (0, 9, 22)
            for project in ("shop-prod", "shop-dev")
            for category, cost in (("Usage", 1.5), ("Credit", -0.2))
        ]
        view = "billing-proj.billing_export.focus_v1"
        bigquery.add_table(view, FOCUS_VIEW, lines)
        return make_provider(billing_table=view, export="focus")
