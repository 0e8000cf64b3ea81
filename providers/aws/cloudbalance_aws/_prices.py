"""EC2 prices into the prices frame: Price List API (on-demand) and spot price history.

One row per (region, instance type, kind): ``unit_price`` is the price of **one instance for one
hour** of that shape (``vcpus``, ``memory_gib`` from the price list's product attributes),
``PricingUnit`` is ``Hours``. Spot rows are the mean of the latest price in each availability
zone of the region (a fleet spread over zones pays about that), and are kept only for instance
types whose shape the price list gave, so every row has a shape.

The Price List API answers from three endpoints only (``pricing_region``: us-east-1,
eu-central-1, ap-south-1) and sends each product as a JSON document in text; a document we cannot
read is an error naming its page and position, never a silently missing price.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from cloudbalance.exceptions import ProviderError
from cloudbalance.schema import PRICES, validate_prices
from cloudbalance_aws._options import AWSOptions
from cloudbalance_aws._session import PROVIDER, AWSClients

__all__ = [
    "SPOT_PRODUCTS",
    "ec2_prices",
    "on_demand_from_price_list",
    "spot_from_history",
]

#: Spot ``ProductDescription`` for each price-list ``operatingSystem``.
SPOT_PRODUCTS: dict[str, str] = {
    "Linux": "Linux/UNIX",
    "Windows": "Windows",
    "RHEL": "Red Hat Enterprise Linux",
    "SUSE": "SUSE Linux",
}


def _empty() -> pd.DataFrame:
    return validate_prices(pd.DataFrame({name: [] for name in PRICES.names}))


def _filters(options: AWSOptions, region: str) -> list[dict[str, str]]:
    filters = [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": options.operating_system},
        {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
        {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
        {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
    ]
    if options.instance_types:
        filters.append(
            {"Type": "ANY_OF", "Field": "instanceType", "Value": ",".join(options.instance_types)}
        )
    return filters


def _memory_gib(text: str) -> float:
    value, _, unit = text.replace(",", "").strip().partition(" ")
    amount = float(value)
    return amount / 1024 if unit.strip().lower() == "mib" else amount


def on_demand_from_price_list(
    pages: Iterable[dict[str, Any]], *, region: str, observed_at: datetime
) -> pd.DataFrame:
    """Map ``pricing:GetProducts`` pages to on-demand rows (the cheapest hourly price per type).

    Raises:
        ProviderError: A product document is not JSON or lacks the fields a price needs.
    """
    best: dict[str, dict[str, Any]] = {}
    for number, page in enumerate(pages, start=1):
        items = page.get("PriceList")
        if not isinstance(items, list):
            raise ProviderError(
                f"get_products answered in an unexpected shape: page {number}: PriceList is "
                "missing",
                provider=PROVIDER,
            )
        for index, item in enumerate(items):
            where = f"page {number}, PriceList[{index}]"
            try:
                row = _product_row(item, region)
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise ProviderError(
                    f"get_products answered in an unexpected shape: {where}: {err!r}",
                    provider=PROVIDER,
                ) from err
            if row is None:
                continue
            known = best.get(row["SkuId"])
            if known is None or row["unit_price"] < known["unit_price"]:
                best[row["SkuId"]] = row
    if not best:
        return _empty()
    frame = pd.DataFrame(list(best.values()))
    frame["observed_at"] = observed_at
    return validate_prices(frame)


def _product_row(item: object, region: str) -> dict[str, Any] | None:
    document = json.loads(item) if isinstance(item, str) else item
    if not isinstance(document, dict):
        raise ValueError("the product is not a JSON object")
    attributes = document["product"]["attributes"]
    instance_type = attributes.get("instanceType")
    if not instance_type or "vcpu" not in attributes or "memory" not in attributes:
        return None  # not an instance (a host, a reservation fee line...)
    price: float | None = None
    currency = "USD"
    for term in (document.get("terms", {}).get("OnDemand") or {}).values():
        for dimension in term["priceDimensions"].values():
            if dimension.get("unit") not in ("Hrs", "Hours"):
                continue
            currency, amount = next(iter(dimension["pricePerUnit"].items()))
            value = float(amount)
            if value > 0 and (price is None or value < price):
                price = value
    if price is None:
        return None
    try:
        vcpus, memory_gib = float(attributes["vcpu"]), _memory_gib(attributes["memory"])
    except ValueError:
        return None  # "NA" shapes (hosts, capacity blocks): not an instance one can run
    return {
        "ProviderName": "aws",
        "RegionId": attributes.get("regionCode", region),
        "SkuId": instance_type,
        "vcpus": vcpus,
        "memory_gib": memory_gib,
        "unit_price": price,
        "price_kind": "on_demand",
        "PricingUnit": "Hours",
        "BillingCurrency": currency,
    }


def spot_from_history(
    pages: Iterable[dict[str, Any]], *, region: str, shapes: pd.DataFrame
) -> pd.DataFrame:
    """Map ``ec2:DescribeSpotPriceHistory`` pages to spot rows for the types in ``shapes``.

    Args:
        pages: The answers.
        region: The region asked.
        shapes: On-demand rows of the region (their ``SkuId``, ``vcpus``, ``memory_gib``).

    Raises:
        ProviderError: An entry lacks its type, zone, price or time, or the price is not a
            number.
    """
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    for number, page in enumerate(pages, start=1):
        for index, entry in enumerate(page.get("SpotPriceHistory") or []):
            try:
                key = (str(entry["InstanceType"]), str(entry["AvailabilityZone"]))
                stamp = pd.Timestamp(entry["Timestamp"])
                price = float(entry["SpotPrice"])
            except (KeyError, TypeError, ValueError) as err:
                raise ProviderError(
                    "describe_spot_price_history answered in an unexpected shape: "
                    f"page {number}, SpotPriceHistory[{index}]: {err!r}",
                    provider=PROVIDER,
                ) from err
            if stamp.tzinfo is not None:
                stamp = stamp.tz_convert("UTC").tz_localize(None)
            when = stamp.to_pydatetime()
            if key not in latest or when > latest[key][0]:
                latest[key] = (when, price)
    if not latest or shapes.empty:
        return _empty()
    history = pd.DataFrame(
        [(t, zone, when, price) for (t, zone), (when, price) in latest.items()],
        columns=["SkuId", "zone", "observed_at", "unit_price"],
    )
    spot = history.groupby("SkuId", as_index=False).agg(
        unit_price=("unit_price", "mean"), observed_at=("observed_at", "max")
    )
    shape = shapes[["SkuId", "vcpus", "memory_gib", "BillingCurrency"]].drop_duplicates("SkuId")
    frame = spot.merge(shape, on="SkuId", how="inner")
    if frame.empty:
        return _empty()
    frame["ProviderName"] = "aws"
    frame["RegionId"] = region
    frame["price_kind"] = "spot"
    frame["PricingUnit"] = "Hours"
    return validate_prices(frame[PRICES.names])


def ec2_prices(
    clients: AWSClients, options: AWSOptions, regions: Sequence[str], *, now: datetime
) -> pd.DataFrame:
    """On-demand (and, when enabled, spot) prices of EC2 instance types in ``regions``.

    Raises:
        CredentialsError: Missing credentials, or ``pricing:GetProducts`` /
            ``ec2:DescribeSpotPriceHistory`` not granted.
        ThrottledError: An API kept throttling after the retries.
        ProviderError: Any other failure, or an answer we cannot read.
    """
    frames: list[pd.DataFrame] = []
    for region in regions:
        pages = clients.pages(
            "pricing",
            "get_products",
            region=options.pricing_region,
            token_in="NextToken",
            token_out="NextToken",
            ServiceCode="AmazonEC2",
            Filters=_filters(options, region),
            FormatVersion="aws_v1",
            MaxResults=100,
        )
        on_demand = on_demand_from_price_list(pages, region=region, observed_at=now)
        frames.append(on_demand)
        if not options.spot or on_demand.empty:
            continue
        params: dict[str, Any] = {
            "ProductDescriptions": [
                SPOT_PRODUCTS.get(options.operating_system, options.operating_system)
            ],
            "StartTime": now,
        }
        if options.instance_types:
            params["InstanceTypes"] = list(options.instance_types)
        history = clients.pages(
            "ec2",
            "describe_spot_price_history",
            region=region,
            token_in="NextToken",
            token_out="NextToken",
            **params,
        )
        frames.append(spot_from_history(history, region=region, shapes=on_demand))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _empty()
    return validate_prices(pd.concat(frames, ignore_index=True))
