"""An offline Azure for tests: a local server speaking the Cost Management and Retail Prices APIs.

Users and this plugin's tests drive the provider's real SDK clients against it, the way httpx
ships ``MockTransport``: the real clients (``CostManagementClient`` and an azure-core pipeline)
talk to it over plain http on 127.0.0.1. The server computes each query's answer from a small
list of usage records, in the wire format the API uses (``properties.columns`` / ``rows`` /
``nextLink``), pages it, and can be told to fail the next requests (429 with either retry
header, 401, 403, 500, malformed bodies). It records every request, for tests to check.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

SUB = "00000000-0000-0000-0000-00000000abcd"
TOKEN = "fixture-token"


class FakeCredential:
    """A ``TokenCredential`` that hands out a fixed token, or fails like an expired login."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The fixed token, or ``ClientAuthenticationError`` when ``fail`` is set."""
        self.calls += 1
        if self.fail:
            raise ClientAuthenticationError("AADSTS700082: the refresh token has expired")
        return AccessToken(TOKEN, int(datetime.now().timestamp()) + 3600)


@dataclass
class Usage:
    """One resource's cost on one day, with its attributes."""

    day: date
    resource: str
    service: str
    location: str
    actual: float
    amortized: float
    tags: dict[str, str] = field(default_factory=dict)
    currency: str = "USD"


@dataclass
class Reply:
    """A scripted answer served instead of the computed one."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def resource(name: str, group: str = "shop") -> str:
    """The ARM id of a VM in the fixture subscription."""
    return (
        f"/subscriptions/{SUB}/resourceGroups/{group}/providers/"
        f"Microsoft.Compute/virtualMachines/{name}"
    )


def default_usage() -> list[Usage]:
    """A week (2024-03-01..07) of two VMs, their bandwidth, support and one reservation buy."""
    out: list[Usage] = []
    for offset in range(7):
        day = date(2024, 3, 1) + timedelta(days=offset)
        out += [
            Usage(
                day,
                resource("web-1"),
                "Virtual Machines",
                "EU West",
                10 + offset,
                8 + offset,
                {"workload": "checkout", "team": "web"},
            ),
            Usage(
                day,
                resource("web-1"),
                "Bandwidth",
                "EU West",
                1.5,
                1.5,
                {"workload": "checkout", "team": "web"},
            ),
            Usage(
                day,
                resource("batch-1", "jobs"),
                "Virtual Machines",
                "US East",
                20.0,
                12.0,
                {"workload": "batch"},
            ),
            Usage(day, "", "Support", "Unassigned", 0.0, 2.0),
        ]
    # a reservation bought on the 3rd: billed that day, amortized over the days it covers
    out.append(Usage(date(2024, 3, 3), "", "Reservations", "Unassigned", 300.0, 0.0))
    return out


def _day_number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


class AzureServer:
    """State and handler of the fixture server."""

    def __init__(self) -> None:
        self.usage: list[Usage] = default_usage()
        self.page_size = 1000
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self._computed: dict[str, list[list[Any]]] = {}
        #: Replies served to given requests (1-based number of the request), see fail_request.
        self.scheduled: dict[int, Reply] = {}
        self.price_items: list[dict[str, Any]] = []
        self.price_page_size = 3
        self.require_token = True
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self._http.shutdown()
        self._http.server_close()

    def fail_next(self, *replies: Reply) -> None:
        """Serve ``replies`` to the next requests, in order, before answering normally."""
        self.replies.extend(replies)

    def fail_request(self, number: int, reply: Reply) -> None:
        """Serve ``reply`` to the ``number``-th request from now on (1 = the next one)."""
        self.scheduled[len(self.requests) + number] = reply

    def queries(self) -> list[dict[str, Any]]:
        """Bodies of the query requests received so far."""
        return [r["body"] for r in self.requests if r["path"].endswith("/query")]

    # -- the API ------------------------------------------------------------------------

    def answer(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
        """Record the request and answer it (a scripted reply first, when one is queued)."""
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        payload = json.loads(body) if body else None
        self.requests.append(
            {
                "method": method,
                "path": parts.path,
                "query": query,
                "body": payload,
                "auth": headers.get("authorization"),
            }
        )
        scheduled = self.scheduled.pop(len(self.requests), None)
        if scheduled is not None:
            return scheduled
        if self.replies:
            return self.replies.pop(0)
        if parts.path.endswith("/providers/Microsoft.CostManagement/query") and method == "POST":
            if self.require_token and headers.get("authorization") != f"Bearer {TOKEN}":
                return Reply(401, {"error": {"code": "AuthenticationFailed", "message": "no"}})
            return self._query(parts.path, query, payload or {})
        if parts.path == "/api/retail/prices" and method == "GET":
            return self._prices(query)
        return Reply(404, {"error": {"code": "NotFound", "message": parts.path}})

    def _query(self, path: str, query: dict[str, str], body: dict[str, Any]) -> Reply:
        key = json.dumps([path, body, len(self.usage)], sort_keys=True)
        rows = self._computed.get(key)
        if rows is None:
            rows = self._computed[key] = self._compute(body)
        skip = int(query.get("$skiptoken", "0"))
        page = rows[skip : skip + self.page_size]
        next_link = None
        if skip + self.page_size < len(rows):
            next_link = (
                f"{self.url}{path}?api-version={query['api-version']}"
                f"&$skiptoken={skip + self.page_size}"
            )
        names: list[str] = []
        for g in body["dataset"]["grouping"]:
            names += ["TagKey", "TagValue"] if g["type"] == "TagKey" else [g["name"]]
        columns = [{"name": "Cost", "type": "Number"}, {"name": "UsageDate", "type": "Number"}]
        columns += [{"name": n, "type": "String"} for n in names]
        columns.append({"name": "Currency", "type": "String"})
        return Reply(
            200,
            {
                "id": f"{path}/queries/fixture",
                "name": "fixture",
                "type": "Microsoft.CostManagement/query",
                "properties": {"nextLink": next_link, "columns": columns, "rows": page},
            },
        )

    def _compute(self, body: dict[str, Any]) -> list[list[Any]]:
        """The full answer of a query (all pages); cached per body and number of usage records."""
        period = body["timePeriod"]
        start = datetime.strptime(period["from"], "%Y-%m-%dT%H:%M:%SZ").date()
        end = datetime.strptime(period["to"], "%Y-%m-%dT%H:%M:%SZ").date()
        cost_field = "actual" if body["type"] == "ActualCost" else "amortized"
        grouping = body["dataset"]["grouping"]
        sums: dict[tuple[Any, ...], float] = {}
        for u in self.usage:
            if not start <= u.day <= end:
                continue
            key: list[Any] = [_day_number(u.day)]
            for g in grouping:
                if g["type"] == "TagKey":
                    key += [g["name"], u.tags.get(g["name"], "")]
                else:
                    key.append(
                        {
                            "ResourceId": u.resource,
                            "ServiceName": u.service,
                            "ResourceLocation": u.location,
                        }[g["name"]]
                    )
            key.append(u.currency)
            sums[tuple(key)] = sums.get(tuple(key), 0.0) + getattr(u, cost_field)
        return [[cost, *key] for key, cost in sorted(sums.items(), key=lambda kv: str(kv[0]))]

    def _prices(self, query: dict[str, str]) -> Reply:
        regions = re.findall(r"armRegionName eq '([^']+)'", query.get("$filter", ""))
        items = [i for i in self.price_items if not regions or i["armRegionName"] in regions]
        skip = int(query.get("$skip", "0"))
        page = items[skip : skip + self.price_page_size]
        link = None
        if skip + self.price_page_size < len(items):
            link = (
                f"{self.url}/api/retail/prices?api-version={query['api-version']}"
                f"&$filter={query.get('$filter', '')}&$skip={skip + self.price_page_size}"
            )
        return Reply(
            200,
            {
                "BillingCurrency": "USD",
                "CustomerEntityId": "Default",
                "CustomerEntityType": "Retail",
                "Items": page,
                "NextPageLink": link,
                "Count": len(page),
            },
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = server.answer(self.command, self.path, headers, body)
                raw = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else json.dumps(reply.body).encode()
                    if reply.body is not None
                    else b""
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def price_item(
    size: str,
    region: str,
    price: float,
    *,
    kind: str = "Consumption",
    spot: bool = False,
    windows: bool = False,
    term: str | None = None,
    effective: str = "2024-01-01T00:00:00Z",
    unit: str = "1 Hour",
) -> dict[str, Any]:
    """One Retail Prices API item, shaped like the real ones (Linux unless ``windows``)."""
    short = size.removeprefix("Standard_").replace("_", " ")
    sku = f"{short} Spot" if spot else short
    return {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": price,
        "unitPrice": price,
        "armRegionName": region,
        "location": region,
        "effectiveStartDate": effective,
        "meterId": "m",
        "meterName": sku,
        "productId": "p",
        "skuId": "s",
        "productName": "Virtual Machines Series" + (" Windows" if windows else ""),
        "skuName": sku,
        "serviceName": "Virtual Machines",
        "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute",
        "unitOfMeasure": unit,
        "type": kind,
        "isPrimaryMeterRegion": True,
        "armSkuName": size,
        **({"reservationTerm": term} if term else {}),
    }


def default_prices() -> list[dict[str, Any]]:
    """A few Retail Prices items: Linux, spot, Windows, reservations, an unknown shape."""
    return [
        price_item("Standard_D4s_v5", "westeurope", 0.23),
        price_item("Standard_D4s_v5", "westeurope", 0.05, spot=True),
        price_item("Standard_D4s_v5", "westeurope", 0.40, windows=True),
        price_item("Standard_D4s_v5", "westeurope", 1200.0, kind="Reservation", term="1 Year"),
        price_item("Standard_D4s_v5", "westeurope", 2800.0, kind="Reservation", term="3 Years"),
        price_item("Standard_E8s_v5", "westeurope", 0.60),
        price_item("Standard_NC6", "westeurope", 0.90),
        price_item("Standard_D4s_v5", "eastus", 0.19),
        price_item("Standard_D4s_v5", "eastus", 0.04, spot=True),
    ]
