from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from cloudbalance_azure._prices import price_filter, prices_frame
from cloudbalance_azure._shapes import vm_shape
from cloudbalance_azure.testing import AzureServer, Reply, price_item

from cloudbalance.exceptions import ProviderError, ThrottledError
from cloudbalance.models import Location
from cloudbalance.schema import validate_prices


def _row(frame: Any, region: str, sku: str, kind: str) -> Any:
    hit = frame[(frame.RegionId == region) & (frame.SkuId == sku) & (frame.price_kind == kind)]
    assert len(hit) == 1, f"{region} {sku} {kind}: {len(hit)} rows"
    return hit.iloc[0]


def test_prices_map_linux_on_demand_spot_and_committed_per_instance_hour(
    make_provider: Any,
) -> None:
    frame = validate_prices(make_provider(regions=["westeurope"]).prices())
    on_demand = _row(frame, "westeurope", "Standard_D4s_v5", "on_demand")
    assert on_demand.unit_price == pytest.approx(0.23)
    assert (on_demand.vcpus, on_demand.memory_gib) == (4.0, 16.0)
    assert on_demand.ProviderName == "azure"
    assert on_demand.PricingUnit == "Hours"
    assert on_demand.BillingCurrency == "USD"
    assert _row(frame, "westeurope", "Standard_D4s_v5", "spot").unit_price == pytest.approx(0.05)
    committed = _row(frame, "westeurope", "Standard_D4s_v5", "committed")
    assert committed.unit_price == pytest.approx(1200.0 / 8760)
    assert _row(frame, "westeurope", "Standard_E8s_v5", "on_demand").memory_gib == 64.0


def test_windows_prices_and_unknown_shapes_are_left_out(make_provider: Any) -> None:
    frame = make_provider(regions=["westeurope"]).prices()
    assert not (frame.unit_price == pytest.approx(0.40)).any()
    assert "Standard_NC6" not in set(frame.SkuId)


def test_vm_sizes_option_adds_shapes_the_name_does_not_tell(make_provider: Any) -> None:
    frame = make_provider(regions=["westeurope"], vm_sizes={"Standard_NC6": [6, 56]}).prices()
    nc6 = _row(frame, "westeurope", "Standard_NC6", "on_demand")
    assert (nc6.vcpus, nc6.memory_gib) == (6.0, 56.0)


def test_three_year_term_is_used_when_configured(make_provider: Any) -> None:
    frame = make_provider(regions=["westeurope"], reservation_term="3 Years").prices()
    committed = _row(frame, "westeurope", "Standard_D4s_v5", "committed")
    assert committed.unit_price == pytest.approx(2800.0 / (3 * 8760))


def test_locations_select_regions_and_other_clouds_are_ignored(
    make_provider: Any, azure_server: AzureServer
) -> None:
    provider = make_provider()
    frame = provider.prices([Location("azure", "eastus"), Location("aws", "us-east-1")])
    assert set(frame.RegionId) == {"eastus"}
    assert "armRegionName eq 'eastus'" in azure_server.requests[0]["query"]["$filter"]
    assert "us-east-1" not in azure_server.requests[0]["query"]["$filter"]


def test_only_other_clouds_asked_means_no_request(
    make_provider: Any, azure_server: AzureServer
) -> None:
    frame = make_provider().prices([Location("gcp", "us-central1")])
    assert len(frame) == 0
    assert azure_server.requests == []


def test_all_pages_are_read(make_provider: Any, azure_server: AzureServer) -> None:
    azure_server.price_page_size = 2
    frame = make_provider().prices()
    assert len(azure_server.requests) == 5  # 9 items, 2 a page
    assert set(frame.RegionId) == {"westeurope", "eastus"}


def test_currency_is_asked_for(make_provider: Any, azure_server: AzureServer) -> None:
    make_provider(currency="EUR", regions=["eastus"]).prices()
    assert azure_server.requests[0]["query"]["currencyCode"] == "EUR"


def test_throttled_price_page_is_retried_after_the_asked_wait(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(Reply(429, {"error": {"code": "429"}}, {"Retry-After": "9"}))
    provider = make_provider(regions=["eastus"])
    assert len(provider.prices()) == 2
    assert provider.waits[0] >= 9


def test_price_throttling_that_never_ends_gives_throttled_error(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(*[Reply(503, {"error": {"code": "busy"}})] * 2)
    with pytest.raises(ThrottledError):
        make_provider(regions=["eastus"], max_attempts=2).prices()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, {"Items": "nope"}), "no 'Items' list"),
        (Reply(200, b"<html>"), "not JSON"),
        (
            Reply(
                200,
                {"Items": [{**price_item("Standard_D2s_v5", "eastus", 1.0), "retailPrice": "n/a"}]},
            ),
            "no numeric retailPrice",
        ),
        (Reply(200, {"Items": [], "NextPageLink": "https://elsewhere.example/p"}), "leaves"),
        (
            Reply(400, {"error": {"code": "InvalidFilter", "message": "bad $filter"}}),
            "InvalidFilter",
        ),
    ],
)
def test_malformed_price_responses_are_provider_errors(
    make_provider: Any, azure_server: AzureServer, reply: Reply, message: str
) -> None:
    azure_server.fail_next(reply)
    with pytest.raises(ProviderError, match=message):
        make_provider(regions=["eastus"]).prices()


def test_latest_effective_price_wins() -> None:
    items = [
        price_item("Standard_D2s_v5", "eastus", 0.10, effective="2024-01-01T00:00:00Z"),
        price_item("Standard_D2s_v5", "eastus", 0.09, effective="2024-06-01T00:00:00Z"),
    ]
    frame = prices_frame(items, observed_at=datetime(2024, 7, 1))
    assert frame.unit_price.tolist() == [pytest.approx(0.09)]


def test_multi_hour_units_are_divided_to_one_hour() -> None:
    items = [price_item("Standard_D2s_v5", "eastus", 10.0, unit="100 Hours")]
    frame = prices_frame(items, observed_at=datetime(2024, 7, 1))
    assert frame.unit_price.tolist() == [pytest.approx(0.1)]


def test_filter_quotes_regions_and_names_the_service() -> None:
    text = price_filter(["westeurope", "o'hare"])
    assert text.startswith("serviceName eq 'Virtual Machines' and (")
    assert "armRegionName eq 'o''hare'" in text
    assert price_filter([]) == "serviceName eq 'Virtual Machines'"


@pytest.mark.parametrize(
    ("size", "shape"),
    [
        ("Standard_D4s_v5", (4.0, 16.0)),
        ("Standard_D8ls_v5", (8.0, 16.0)),
        ("Standard_D2as_v4", (2.0, 8.0)),
        ("Standard_E16ds_v5", (16.0, 128.0)),
        ("Standard_E64s_v3", (64.0, 432.0)),
        ("Standard_F8s_v2", (8.0, 16.0)),
        ("Standard_L8s_v3", (8.0, 64.0)),
        ("Standard_B2ms", (2.0, 8.0)),
        ("Standard_D2_v2", None),
        ("Standard_NC6s_v3", None),
        ("Standard_M128s", None),
    ],
)
def test_vm_shapes_from_names(size: str, shape: tuple[float, float] | None) -> None:
    assert vm_shape(size) == shape


def test_prices_feed_the_planner_catalog(make_provider: Any) -> None:
    from cloudbalance.plan.catalog import Catalog

    frame = make_provider(regions=["westeurope", "eastus"]).prices()
    observed = frame.observed_at.max().to_pydatetime()
    catalog = Catalog.from_frame(frame)
    cost = catalog.replica_cost(vcpus=2, memory_gib=8, spot=False, periods=[observed], period="1h")
    by_location = {loc.key: cost.on_demand[i, 0] for i, loc in enumerate(cost.locations)}
    # a D4s_v5 (4 vCPU, 16 GiB) packs two 2-vCPU/8-GiB replicas
    assert by_location["azure:eastus"] == pytest.approx(0.19 / 2)
    assert by_location["azure:westeurope"] == pytest.approx(0.23 / 2)
