from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cloudbalance_gcp import GCPProvider
from cloudbalance_gcp.testing import FakeCatalog
from google.api_core import exceptions as api

from cloudbalance.exceptions import CredentialsError, ProviderError, ThrottledError
from cloudbalance.models import Location
from cloudbalance.plan.catalog import Catalog
from cloudbalance.schema import validate_prices


def _price(frame: Any, region: str, machine: str, kind: str) -> float:
    row = frame[
        (frame["RegionId"] == region) & (frame["SkuId"] == machine) & (frame["price_kind"] == kind)
    ]
    assert len(row) == 1, f"no single {machine} {kind} price in {region}"
    return float(row["unit_price"].item())


def test_machine_type_price_is_vcpus_times_core_rate_plus_gib_times_ram_rate(
    make_provider: Callable[..., GCPProvider],
) -> None:
    frame = validate_prices(make_provider().prices())
    # Google's list price of n2-standard-4 in us-central1: 4 x 0.031611 + 16 x 0.004237
    assert _price(frame, "us-central1", "n2-standard-4", "on_demand") == pytest.approx(0.194236)
    assert _price(frame, "us-central1", "n2-standard-4", "spot") == pytest.approx(
        4 * 0.00765 + 16 * 0.001025
    )
    assert _price(frame, "us-central1", "n2-highmem-2", "on_demand") == pytest.approx(
        2 * 0.031611 + 16 * 0.004237
    )
    assert _price(frame, "europe-west1", "n2-standard-4", "on_demand") == pytest.approx(
        4 * 0.034773 + 16 * 0.004661
    )
    row = frame[frame["SkuId"] == "n2-standard-4"].iloc[0]
    assert (row["vcpus"], row["memory_gib"]) == (4.0, 16.0)
    assert set(frame["ProviderName"]) == {"gcp"}
    assert set(frame["PricingUnit"]) == {"Hours"}
    assert set(frame["BillingCurrency"]) == {"USD"}


def test_only_shapes_with_both_rates_in_a_region_are_priced(
    make_provider: Callable[..., GCPProvider],
) -> None:
    frame = make_provider().prices()
    # E2 is priced in Iowa only, on demand only; custom, GPU, disk and commitment SKUs are skipped
    e2 = frame[frame["SkuId"] == "e2-standard-2"]
    assert list(zip(e2["RegionId"], e2["price_kind"], strict=True)) == [
        ("us-central1", "on_demand")
    ]
    # two n2 shapes x two kinds in Iowa, two n2 shapes on demand in Belgium, one e2 shape
    assert len(frame) == 2 * 2 + 2 + 1


def test_prices_feed_the_planner_catalog(make_provider: Callable[..., GCPProvider]) -> None:
    frame = make_provider().prices()
    catalog = Catalog.from_frame(frame)
    iowa = Location("gcp", "us-central1")
    cost = catalog.replica_cost(
        vcpus=4,
        memory_gib=16,
        spot=False,
        periods=[frame["observed_at"].max()],
        period="1h",
        locations=[iowa],
    )
    assert cost.sku[0, 0] == "n2-standard-4"
    assert cost.cost[0, 0] == pytest.approx(0.194236)


def test_locations_restrict_regions_and_other_clouds_need_no_request(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog
) -> None:
    provider = make_provider()
    frame = provider.prices([Location("gcp", "europe-west1"), Location("aws", "us-east-1")])
    assert set(frame["RegionId"]) == {"europe-west1"}
    before = len(catalog.requests)
    assert len(provider.prices([Location("azure", "westeurope")])) == 0
    assert len(catalog.requests) == before


def test_every_page_is_read_and_the_currency_is_asked_for(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog
) -> None:
    make_provider(currency="eur", page_size=2).prices()
    # 12 SKUs, the fake serves at most 3 per page and the client asks 2: six pages
    assert len(catalog.requests) == 6
    assert all(r.query["currencyCode"] == ["EUR"] for r in catalog.requests)
    assert all(r.path == "/v1/services/6F81-5844-456A/skus" for r in catalog.requests)
    assert catalog.requests[1].query["pageToken"] == ["2"]


def test_a_throttled_page_is_retried_alone(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog, sleeps: list[float]
) -> None:
    catalog.page_size = 6
    catalog.fail(429, reason="RATE_LIMIT_EXCEEDED", headers={"Retry-After": "3"}, after=1)
    frame = make_provider().prices()
    assert len(frame) == 7
    tokens = [r.query.get("pageToken", [""])[0] for r in catalog.requests]
    assert tokens == ["", "6", "6"]
    assert len(sleeps) == 1
    assert sleeps[0] >= 3.0


def test_a_catalog_that_keeps_failing_raises_throttled(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog, sleeps: list[float]
) -> None:
    catalog.fail(503, reason="backendError", times=10)
    with pytest.raises(ThrottledError) as info:
        make_provider(max_attempts=4).prices()
    assert info.value.attempts == 4
    assert len(sleeps) == 3


def test_refused_credentials_on_the_catalog_raise_credentials_error(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog
) -> None:
    catalog.fail(403, reason="PERMISSION_DENIED", message="billing.skus.list denied")
    with pytest.raises(CredentialsError) as info:
        make_provider().prices()
    assert isinstance(info.value.__cause__, api.Forbidden)


def test_a_sku_with_a_malformed_price_names_the_sku(
    make_provider: Callable[..., GCPProvider],
    catalog: FakeCatalog,
    sku: Callable[..., dict[str, Any]],
) -> None:
    bad = sku("N2-CORE-TX", "N2 Instance Core running in Dallas", 30_000_000)
    bad["pricingInfo"] = []
    catalog.skus.append(bad)
    with pytest.raises(ProviderError, match=r"N2-CORE-TX.*pricingInfo is empty"):
        make_provider().prices()


def test_a_sku_priced_in_an_unexpected_unit_is_refused(
    make_provider: Callable[..., GCPProvider],
    catalog: FakeCatalog,
    sku: Callable[..., dict[str, Any]],
) -> None:
    catalog.skus.append(sku("N2-RAM-TX", "N2 Instance Ram running in Dallas", 1, unit="GiBy.mo"))
    with pytest.raises(ProviderError, match=r"N2-RAM-TX.*'GiBy.mo'"):
        make_provider().prices()


def test_a_malformed_catalog_response_is_a_provider_error(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog
) -> None:
    catalog.fail(200, raw='{"skus": [{"skuId": ')
    with pytest.raises(ProviderError):
        make_provider(max_attempts=1).prices()


def test_an_empty_catalog_is_an_empty_prices_frame(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog
) -> None:
    catalog.skus.clear()
    frame = validate_prices(make_provider().prices())
    assert len(frame) == 0


def test_a_repeated_page_token_stops_instead_of_looping() -> None:
    from cloudbalance_gcp._prices import list_skus

    class Page:
        skus = ()
        next_page_token = "same"

    class Client:
        def list_skus(self, **kwargs: object) -> object:
            return type("Pager", (), {"pages": iter([Page()])})()

    with pytest.raises(ProviderError, match="same page token twice"):
        list_skus(Client(), currency="USD", page_size=10, call=lambda fn: fn())


def test_a_later_page_that_keeps_failing_raises_and_prices_nothing(
    make_provider: Callable[..., GCPProvider], catalog: FakeCatalog, sleeps: list[float]
) -> None:
    catalog.fail(503, reason="backendError", times=10, after=2)
    with pytest.raises(ThrottledError):
        make_provider(max_attempts=3).prices()
    tokens = [r.query.get("pageToken", [""])[0] for r in catalog.requests]
    assert tokens == ["", "3", "6", "6", "6"]
    assert len(sleeps) == 2
