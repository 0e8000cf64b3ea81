"""Compute Engine prices from the Cloud Billing Catalog API, as whole machine types.

``CloudCatalogClient.list_skus`` on the Compute Engine service returns thousands of SKUs, among
them one per family, resource (vCPU or RAM), usage type (on-demand, spot) and region, priced per
vCPU-hour and per GiB-hour. The planner compares whole instances, so the unit rates are combined
with each machine type's shape (:mod:`cloudbalance_gcp._machines`) into one price per instance
and hour. :func:`parse_skus` is the pure half (SKU messages -> unit rates) and is tested on its
own; :func:`list_skus` is the paging half.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from cloudbalance.exceptions import ProviderError
from cloudbalance.schema import PRICES, validate_prices
from cloudbalance_gcp._errors import NAME, guarded
from cloudbalance_gcp._frames import empty_frame
from cloudbalance_gcp._machines import MachineType

__all__ = [
    "COMPUTE_ENGINE",
    "UnitRate",
    "compose_prices",
    "list_skus",
    "parse_skus",
]

#: The Compute Engine service in the Cloud Billing Catalog.
COMPUTE_ENGINE = "services/6F81-5844-456A"

_DESCRIPTION = re.compile(
    r"^(?P<spot>Spot Preemptible |Preemptible )?"
    r"(?P<family>[A-Z][A-Z0-9]{0,4}|Compute optimized) "
    r"(?:(?:Predefined|AMD|Intel|Arm) )?"
    r"(?:Instance )?(?P<resource>Core|Ram) running in "
)
_KINDS = {"OnDemand": "on_demand", "Preemptible": "spot"}
_UNITS = {"Core": {"h"}, "Ram": {"GiBy.h"}}


@dataclass(frozen=True)
class UnitRate:
    """One catalog rate: a family's vCPU-hour or GiB-hour price in one region.

    Attributes:
        family: Machine family in lower case (``n2``).
        resource: ``vcpu`` or ``ram``.
        price_kind: ``on_demand`` or ``spot``.
        region: Compute Engine region (``us-central1``).
        price: Currency units per vCPU-hour or GiB-hour.
        currency: ISO currency code.
        sku_id: The catalog SKU id, for tracing a price back.
    """

    family: str
    resource: str
    price_kind: str
    region: str
    price: float
    currency: str
    sku_id: str


def list_skus(
    client: Any,
    *,
    currency: str,
    page_size: int,
    call: Callable[[Callable[[], Any]], Any],
    timeout: float = 60.0,
) -> list[Any]:
    """Every Compute Engine SKU, page by page, each page fetched through ``call``.

    Paging is driven here rather than by the client's pager so that a throttled page is retried
    alone (``call`` wraps one request in the retry policy) instead of restarting the listing.
    """
    skus: list[Any] = []
    token = ""
    seen: set[str] = set()
    while True:
        request = {
            "parent": COMPUTE_ENGINE,
            "currency_code": currency,
            "page_size": page_size,
            "page_token": token,
        }

        def one_page(request: dict[str, Any] = request) -> Any:
            pager = client.list_skus(request=request, retry=None, timeout=timeout)
            return next(iter(pager.pages))

        page = call(guarded(one_page, "Cloud Billing Catalog list_skus"))
        skus.extend(page.skus)
        token = page.next_page_token
        if not token:
            return skus
        if token in seen:
            raise ProviderError(
                "Cloud Billing Catalog list_skus returned the same page token twice; "
                "stopping instead of looping",
                provider=NAME,
            )
        seen.add(token)


def _price(sku: Any) -> tuple[float, str, str]:
    """(price per usage unit, usage unit, currency) of the SKU's newest first-tier rate."""
    infos = list(sku.pricing_info)
    if not infos:
        raise ValueError("pricingInfo is empty")
    expression = infos[-1].pricing_expression
    tiers = sorted(expression.tiered_rates, key=lambda r: r.start_usage_amount)
    if not tiers:
        raise ValueError("pricingInfo.pricingExpression.tieredRates is empty")
    money = tiers[0].unit_price
    if not money.currency_code:
        raise ValueError("tieredRates.unitPrice.currencyCode is empty")
    return float(money.units) + money.nanos / 1e9, expression.usage_unit, money.currency_code


def parse_skus(skus: Iterable[Any]) -> list[UnitRate]:
    """Pick the per-vCPU and per-GiB on-demand and spot rates out of Compute Engine SKUs.

    SKUs that are not predefined-instance vCPU/RAM rates (disks, GPUs, licences, custom and
    sole-tenant shapes, commitments) are skipped; a matching SKU with a malformed price raises.

    Raises:
        ProviderError: A vCPU/RAM SKU has no usable price or an unexpected unit (names the SKU).
    """
    rates: list[UnitRate] = []
    for sku in skus:
        category = sku.category
        kind = _KINDS.get(category.usage_type)
        match = _DESCRIPTION.match(sku.description or "")
        if kind is None or match is None or category.resource_family != "Compute":
            continue
        family = "c2" if match["family"] == "Compute optimized" else match["family"].lower()
        resource = match["resource"]
        try:
            price, unit, currency = _price(sku)
        except (ValueError, AttributeError) as err:
            raise ProviderError(
                f"Cloud Billing Catalog SKU {sku.sku_id} ({sku.description!r}) is malformed: {err}",
                provider=NAME,
            ) from err
        if unit not in _UNITS[resource]:
            raise ProviderError(
                f"Cloud Billing Catalog SKU {sku.sku_id} ({sku.description!r}) is priced per "
                f"{unit!r}, expected {' or '.join(sorted(_UNITS[resource]))}",
                provider=NAME,
            )
        for region in sku.service_regions:
            rates.append(
                UnitRate(
                    family=family,
                    resource="vcpu" if resource == "Core" else "ram",
                    price_kind=kind,
                    region=str(region),
                    price=price,
                    currency=currency,
                    sku_id=str(sku.sku_id),
                )
            )
    return rates


def compose_prices(
    rates: Sequence[UnitRate],
    machine_types: Sequence[MachineType],
    *,
    observed_at: datetime,
    regions: set[str] | None = None,
) -> pd.DataFrame:
    """Price each machine type in each region and kind where both unit rates are known.

    ``unit_price`` is per instance and hour: ``vcpus * vCPU rate + memory_gib * GiB rate``.
    When a family has several SKUs for one region and kind (a regional and a multi-region one),
    the lowest rate is taken: it is the one the billing applies for that region.
    """
    best: dict[tuple[str, str, str, str], UnitRate] = {}
    for rate in rates:
        if regions is not None and rate.region not in regions:
            continue
        key = (rate.family, rate.resource, rate.price_kind, rate.region)
        if key not in best or rate.price < best[key].price:
            best[key] = rate
    rows: list[dict[str, object]] = []
    places = sorted({(k[2], k[3]) for k in best})
    for machine in machine_types:
        for kind, region in places:
            cpu = best.get((machine.family, "vcpu", kind, region))
            ram = best.get((machine.family, "ram", kind, region))
            if cpu is None or ram is None or cpu.currency != ram.currency:
                continue
            rows.append(
                {
                    "ProviderName": NAME,
                    "RegionId": region,
                    "SkuId": machine.name,
                    "vcpus": machine.vcpus,
                    "memory_gib": machine.memory_gib,
                    "unit_price": machine.vcpus * cpu.price + machine.memory_gib * ram.price,
                    "price_kind": kind,
                    "PricingUnit": "Hours",
                    "BillingCurrency": cpu.currency,
                    "observed_at": observed_at,
                }
            )
    if not rows:
        return empty_frame(PRICES)
    frame = pd.DataFrame(rows).sort_values(["RegionId", "SkuId", "price_kind"], kind="stable")
    return validate_prices(frame.reset_index(drop=True))
