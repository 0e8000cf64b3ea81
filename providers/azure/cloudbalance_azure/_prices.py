"""Prices from the public Azure Retail Prices API (no credentials needed).

One ``GET https://prices.azure.com/api/retail/prices`` with an OData ``$filter`` on the
Virtual Machines service and the asked regions, following ``NextPageLink`` (100..1000 items a
page). Rows are one VM size in one region, priced per hour for one instance (``vcpus`` and
``memory_gib`` are the size's shape, see :mod:`cloudbalance_azure._shapes`):

- ``on_demand``: Linux pay-as-you-go (``type == "Consumption"``, no ``Spot``/``Low Priority``);
- ``spot``: the ``… Spot`` meters of the same sizes;
- ``committed``: the reservation price of the configured term, spread over its hours.

Windows meters, Dev/Test prices and Low Priority meters are left out: the planner compares
like with like, and a Linux workload cannot move onto a Windows price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from cloudbalance.exceptions import ProviderError
from cloudbalance.retry import RetryPolicy, retry_call
from cloudbalance.schema import PRICES, validate_prices
from cloudbalance_azure._client import PROVIDER, call, raise_for_status, same_origin
from cloudbalance_azure._shapes import vm_shape

__all__ = ["PriceQuery", "price_filter", "prices_frame"]

API_PATH = "/api/retail/prices"
API_VERSION = "2023-01-01-preview"
MAX_PAGES = 5_000
_HOURS_PER_YEAR = 8760.0


def price_filter(regions: Sequence[str]) -> str:
    """The OData filter: Virtual Machines, in ``regions`` (every region when empty)."""
    clauses = ["serviceName eq 'Virtual Machines'"]
    if regions:
        ors = " or ".join(f"armRegionName eq '{_odata(r)}'" for r in sorted(set(regions)))
        clauses.append(f"({ors})")
    return " and ".join(clauses)


def _odata(text: str) -> str:
    return text.replace("'", "''")


def _hours(unit: object) -> float | None:
    """Hours in a unit of measure such as ``1 Hour`` or ``100 Hours`` (None when not hourly)."""
    parts = str(unit or "").strip().split()
    if len(parts) != 2 or not parts[1].lower().startswith("hour"):
        return None
    try:
        return float(parts[0])
    except ValueError:
        return None


def _term_years(term: object) -> float | None:
    parts = str(term or "").strip().split()
    if len(parts) != 2 or not parts[1].lower().startswith("year"):
        return None
    try:
        return float(parts[0])
    except ValueError:
        return None


def _kind(item: Mapping[str, Any], reservation_term: str) -> str | None:
    meter = f"{item.get('skuName') or ''} {item.get('meterName') or ''}".lower()
    product = str(item.get("productName") or "").lower()
    if "windows" in product or "low priority" in meter:
        return None
    kind = str(item.get("type") or "")
    if kind == "Consumption":
        return "spot" if "spot" in meter else "on_demand"
    if kind == "Reservation" and "spot" not in meter:
        term = str(item.get("reservationTerm") or "").strip().lower()
        return "committed" if term == reservation_term.lower() else None
    return None


def prices_frame(
    items: Iterable[Mapping[str, Any]],
    *,
    observed_at: datetime,
    reservation_term: str = "1 Year",
    vm_sizes: Mapping[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Retail price items -> the prices frame (per instance-hour); unknown shapes are left out.

    When the API lists a size twice for one kind (a price change with a later
    ``effectiveStartDate``), the latest effective price is kept.

    Raises:
        ProviderError: An item lacks a field we need or has a non-numeric price.
    """
    best: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise ProviderError(
                f"retail prices: malformed response, item {number} is not an object",
                provider=PROVIDER,
            )
        kind = _kind(item, reservation_term)
        size = item.get("armSkuName")
        region = item.get("armRegionName")
        if kind is None or not size or not region:
            continue
        shape = vm_shape(str(size), vm_sizes)
        if shape is None:
            continue
        try:
            price = float(item.get("retailPrice", item.get("unitPrice")))
        except (TypeError, ValueError) as err:
            raise ProviderError(
                f"retail prices: malformed response, item {number} ({size} in {region}) has "
                f"no numeric retailPrice (got {item.get('retailPrice')!r})",
                provider=PROVIDER,
            ) from err
        if kind == "committed":
            years = _term_years(item.get("reservationTerm"))
            if years is None:
                continue
            hourly = price / (years * _HOURS_PER_YEAR)
        else:
            hours = _hours(item.get("unitOfMeasure"))
            if hours is None or hours <= 0:
                continue
            hourly = price / hours
        currency = item.get("currencyCode")
        if not currency:
            raise ProviderError(
                f"retail prices: malformed response, item {number} has no currencyCode",
                provider=PROVIDER,
            )
        row = {
            "ProviderName": "azure",
            "RegionId": str(region),
            "SkuId": str(size),
            "vcpus": shape[0],
            "memory_gib": shape[1],
            "unit_price": hourly,
            "price_kind": kind,
            "PricingUnit": "Hours",
            "BillingCurrency": str(currency),
            "observed_at": observed_at,
        }
        key = (str(region).lower(), str(size).lower(), kind)
        effective = str(item.get("effectiveStartDate") or "")
        if key not in best or effective >= best[key][0]:
            best[key] = (effective, row)
    rows = [row for _, row in (best[k] for k in sorted(best))]
    return validate_prices(pd.DataFrame.from_records(rows, columns=PRICES.names))


@dataclass
class PriceQuery:
    """Pages through the Retail Prices API.

    Attributes:
        client: An azure-core ``PipelineClient`` on the prices endpoint.
        endpoint: That endpoint (next page links must stay on it).
        currency: ``currencyCode`` to ask for (USD when None).
        policy: Retry policy.
        sleep: Injected in tests.
    """

    client: Any
    endpoint: str
    currency: str | None
    policy: RetryPolicy
    sleep: Callable[[float], None]

    def items(self, regions: Sequence[str]) -> list[dict[str, Any]]:
        """Every item for ``regions``, all pages."""
        params = {"api-version": API_VERSION, "$filter": price_filter(regions)}
        if self.currency:
            params["currencyCode"] = self.currency
        url = self.endpoint.rstrip("/") + API_PATH
        out: list[dict[str, Any]] = []
        query: dict[str, str] | None = params
        for number in range(1, MAX_PAGES + 1):
            page = self._get(url, query, number)
            items = page.get("Items")
            if not isinstance(items, list):
                raise ProviderError(
                    f"retail prices: malformed response on page {number}: no 'Items' list",
                    provider=PROVIDER,
                )
            out.extend(items)
            link = page.get("NextPageLink")
            if not link:
                return out
            if not same_origin(str(link), self.endpoint):
                raise ProviderError(
                    f"retail prices: the next page link leaves {self.endpoint}",
                    provider=PROVIDER,
                )
            url, query = str(link), None
        raise ProviderError(f"retail prices: more than {MAX_PAGES} pages", provider=PROVIDER)

    def _get(self, url: str, params: dict[str, str] | None, number: int) -> dict[str, Any]:
        from azure.core.rest import HttpRequest

        def once() -> dict[str, Any]:
            response = self.client.send_request(HttpRequest("GET", url, params=params))
            raise_for_status(response)
            try:
                data = response.json()
            except ValueError as err:
                raise ProviderError(
                    f"retail prices: malformed response on page {number}: not JSON",
                    provider=PROVIDER,
                ) from err
            if not isinstance(data, dict):
                raise ProviderError(
                    f"retail prices: malformed response on page {number}: not an object",
                    provider=PROVIDER,
                )
            return data

        what = f"retail prices page {number}"
        return retry_call(
            lambda: call(once, what=what), provider=PROVIDER, policy=self.policy, sleep=self.sleep
        )
