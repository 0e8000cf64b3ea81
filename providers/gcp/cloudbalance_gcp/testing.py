"""Offline fakes of the two Google APIs the plugin calls, for its tests and for users' own.

Both are small HTTP servers on ``127.0.0.1`` that the *real* Google clients talk to (pointed at
them with ``bigquery_endpoint`` / ``catalog_endpoint`` and anonymous credentials), so a test
goes through the same request building, paging and error parsing as production:

- :class:`FakeBigQuery` answers ``jobs.query``, ``jobs.getQueryResults`` and ``jobs.get``. It
  parses each query as BigQuery SQL, transpiles it to DuckDB (``sqlglot``), binds the query
  parameters and runs it over tables created in the billing-export schema
  (:func:`FakeBigQuery.add_export`), returning rows the way BigQuery does, a few per page.
- :class:`FakeCatalog` answers ``services.skus.list`` from a list of SKU resources (the
  Catalog's JSON), ``page_size`` at a time with ``nextPageToken``.

Both record every request (:attr:`requests`) and can be told to fail the next requests with a
status, an error reason, headers or a raw body (:meth:`fail`), to test throttling, expired
credentials and malformed responses. ``sqlglot`` is needed (``pip install sqlglot``).

Example::

    with FakeBigQuery() as bq:
        bq.add_export("billing.ds.gcp_billing_export_v1_X", rows)
        provider = GCPProvider(billing_table="billing.ds.gcp_billing_export_v1_X",
                               bigquery_endpoint=bq.endpoint, credentials=AnonymousCredentials())
        frame = provider.costs(start, end)
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb

__all__ = [
    "DETAILED_EXPORT",
    "FOCUS_VIEW",
    "STANDARD_EXPORT",
    "FakeBigQuery",
    "FakeCatalog",
    "RecordedRequest",
]

_KV = [{"key": "VARCHAR", "value": "VARCHAR"}]

#: The standard usage-cost export (``gcp_billing_export_v1_*``) as DuckDB types, in BigQuery's
#: column names; ``_PARTITIONTIME`` stands for BigQuery's ingestion-time pseudo-column.
STANDARD_EXPORT: dict[str, Any] = {
    "billing_account_id": "VARCHAR",
    "service": {"id": "VARCHAR", "description": "VARCHAR"},
    "sku": {"id": "VARCHAR", "description": "VARCHAR"},
    "usage_start_time": "TIMESTAMP",
    "usage_end_time": "TIMESTAMP",
    "project": {
        "id": "VARCHAR",
        "number": "VARCHAR",
        "name": "VARCHAR",
        "labels": _KV,
        "ancestry_numbers": "VARCHAR",
    },
    "labels": _KV,
    "system_labels": _KV,
    "location": {
        "location": "VARCHAR",
        "country": "VARCHAR",
        "region": "VARCHAR",
        "zone": "VARCHAR",
    },
    "tags": [
        {"key": "VARCHAR", "value": "VARCHAR", "inherited": "BOOLEAN", "namespace": "VARCHAR"}
    ],
    "transaction_type": "VARCHAR",
    "seller_name": "VARCHAR",
    "export_time": "TIMESTAMP",
    "cost": "DOUBLE",
    "currency": "VARCHAR",
    "currency_conversion_rate": "DOUBLE",
    "usage": {
        "amount": "DOUBLE",
        "unit": "VARCHAR",
        "amount_in_pricing_units": "DOUBLE",
        "pricing_unit": "VARCHAR",
    },
    "credits": [
        {
            "name": "VARCHAR",
            "amount": "DOUBLE",
            "full_name": "VARCHAR",
            "id": "VARCHAR",
            "type": "VARCHAR",
        }
    ],
    "invoice": {"month": "VARCHAR"},
    "cost_type": "VARCHAR",
    "adjustment_info": {
        "id": "VARCHAR",
        "description": "VARCHAR",
        "mode": "VARCHAR",
        "type": "VARCHAR",
    },
    "cost_at_list": "DOUBLE",
    "_PARTITIONTIME": "TIMESTAMP",
}

#: The detailed (resource-level) export adds ``resource`` and ``price``.
DETAILED_EXPORT: dict[str, Any] = {
    **STANDARD_EXPORT,
    "resource": {"name": "VARCHAR", "global_name": "VARCHAR"},
    "price": {
        "effective_price": "DOUBLE",
        "tier_start_amount": "DOUBLE",
        "unit": "VARCHAR",
        "pricing_unit_quantity": "DOUBLE",
    },
}

#: A FOCUS view over the export (the columns the plugin reads; ``Tags`` as key/value pairs).
FOCUS_VIEW: dict[str, Any] = {
    "ChargePeriodStart": "TIMESTAMP",
    "ChargePeriodEnd": "TIMESTAMP",
    "BillingAccountId": "VARCHAR",
    "SubAccountId": "VARCHAR",
    "RegionId": "VARCHAR",
    "ServiceCategory": "VARCHAR",
    "ServiceName": "VARCHAR",
    "SkuId": "VARCHAR",
    "ResourceId": "VARCHAR",
    "ChargeCategory": "VARCHAR",
    "ConsumedQuantity": "DOUBLE",
    "ConsumedUnit": "VARCHAR",
    "PricingQuantity": "DOUBLE",
    "PricingUnit": "VARCHAR",
    "ListCost": "DOUBLE",
    "BilledCost": "DOUBLE",
    "EffectiveCost": "DOUBLE",
    "BillingCurrency": "VARCHAR",
    "Tags": _KV,
}


def _ddl_type(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, list):
        return f"{_ddl_type(spec[0])}[]"
    inner = ", ".join(f'"{name}" {_ddl_type(t)}' for name, t in spec.items())
    return f"STRUCT({inner})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request a fake received: method, path, query-string values and JSON body."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class _Failure:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    skip: int = 0


class _FakeServer:
    """A one-thread HTTP server with a request log and a queue of scripted failures."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``, for ``*_endpoint`` options."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> _FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail(
        self,
        status: int,
        *,
        reason: str = "",
        message: str = "scripted failure",
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        raw: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` and a Google error body.

        ``raw`` replaces the JSON error body (a malformed response); ``after`` lets that many
        requests through normally first (to fail the second page, say).
        """
        body = raw
        if body is None:
            errors = [{"reason": reason, "message": message}] if reason else []
            body = json.dumps({"error": {"code": status, "message": message, "errors": errors}})
        with self._lock:
            for i in range(times):
                skip = after if i == 0 else 0
                self._failures.append(_Failure(status, body, dict(headers or {}), skip))

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.requests.append(RecordedRequest(method, split.path, parse_qs(split.query), body))
        with self._lock:
            failure = None
            if self._failures and self._failures[0].skip > 0:
                self._failures[0].skip -= 1
            elif self._failures:
                failure = self._failures.popleft()
        if failure is not None:
            self._send(handler, failure.status, failure.body, failure.headers)
            return
        try:
            status, payload = self.route(method, split.path, parse_qs(split.query), body)
        except _HTTPError as err:
            status, payload = err.status, err.payload()
        self._send(handler, status, json.dumps(payload), {})

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, text: str, headers: Mapping[str, str]
    ) -> None:
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:  # pragma: no cover - overridden
        """Answer one request (status, JSON payload)."""
        raise _HTTPError(404, "notFound", f"no route for {method} {path}")


class _HTTPError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(message)

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"reason": self.reason, "message": self.message}],
            }
        }


_BQ_TYPES = (
    ("TIMESTAMP", "TIMESTAMP"),
    ("DOUBLE", "FLOAT"),
    ("FLOAT", "FLOAT"),
    ("DECIMAL", "FLOAT"),
    ("BIGINT", "INTEGER"),
    ("INTEGER", "INTEGER"),
    ("HUGEINT", "INTEGER"),
    ("BOOLEAN", "BOOLEAN"),
)


def _bq_type(duck_type: str) -> str:
    for prefix, bq in _BQ_TYPES:
        if duck_type.upper().startswith(prefix):
            return bq
    return "STRING"


def _cell(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "TIMESTAMP":
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return str(int(stamp.timestamp() * 1_000_000))
    if kind == "BOOLEAN":
        return "true" if value else "false"
    return str(value)


class FakeBigQuery(_FakeServer):
    """BigQuery's query endpoints over DuckDB tables in the billing-export schema.

    Args:
        project: Project id reported in job references.
        page_size: Rows per result page (small, so tests exercise paging).
    """

    def __init__(self, *, project: str = "test-project", page_size: int = 3) -> None:
        super().__init__()
        self.project = project
        self.page_size = page_size
        self.db = duckdb.connect()
        self.queries: list[str] = []
        self._results: dict[str, tuple[list[dict[str, str]], list[dict[str, Any]], str]] = {}
        self._catalogs: set[str] = set()
        self._schemas: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> FakeBigQuery:
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.db.close()

    def add_table(
        self, table_id: str, schema: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
    ) -> None:
        """Create ``project.dataset.table`` with ``schema`` and insert ``rows`` (JSON-like)."""
        project, dataset, table = table_id.split(".")
        with self._lock:
            if project not in self._catalogs:
                self.db.execute(f"ATTACH ':memory:' AS \"{project}\"")
                self._catalogs.add(project)
            self.db.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{dataset}"')
            name = f'"{project}"."{dataset}"."{table}"'
            columns = ", ".join(f'"{col}" {_ddl_type(t)}' for col, t in schema.items())
            self.db.execute(f"CREATE TABLE {name} ({columns})")
            self._schemas[table_id] = dict(schema)
        self.insert(table_id, rows)

    def insert(self, table_id: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append ``rows`` to a table made by :meth:`add_table` (late or restated usage)."""
        schema = self._schemas[table_id]
        name = ".".join(f'"{part}"' for part in table_id.split("."))
        records = [{k: row.get(k) for k in schema} for row in rows]
        if not records:
            return
        with self._lock:
            self.db.execute(
                f"INSERT INTO {name} BY NAME "
                "SELECT unnest(r) FROM (SELECT unnest(from_json(?::JSON, ?)) AS r)",
                [json.dumps(records, default=str), json.dumps([schema])],
            )

    def add_export(
        self, table_id: str, rows: Iterable[Mapping[str, Any]], *, detailed: bool = False
    ) -> None:
        """Create a standard (or detailed) billing export table holding ``rows``."""
        self.add_table(table_id, DETAILED_EXPORT if detailed else STANDARD_EXPORT, rows)

    def to_duckdb(self, sql: str, params: Sequence[Mapping[str, Any]]) -> str:
        """Transpile BigQuery SQL to DuckDB with the query parameters bound as literals.

        Raises:
            ValueError: The SQL does not parse as BigQuery SQL or names an unbound parameter.
        """
        import sqlglot
        from sqlglot import exp

        values: dict[str, exp.Expression] = {}
        for param in params:
            kind = param["parameterType"]["type"]
            raw = param["parameterValue"].get("value")
            if raw is None:
                values[param["name"]] = exp.Null()
            elif kind == "TIMESTAMP":
                stamp = datetime.fromisoformat(str(raw).replace(" ", "T"))
                if stamp.tzinfo is not None:
                    stamp = stamp.astimezone(UTC).replace(tzinfo=None)
                text = stamp.isoformat(sep=" ")
                values[param["name"]] = exp.cast(exp.Literal.string(text), "TIMESTAMP")
            elif kind in ("INT64", "FLOAT64", "NUMERIC"):
                values[param["name"]] = exp.Literal.number(raw)
            else:
                values[param["name"]] = exp.Literal.string(str(raw))

        def bind(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Parameter):
                if node.name not in values:
                    raise ValueError(f"query parameter @{node.name} is not bound")
                return values[node.name].copy()
            return node

        try:
            tree = sqlglot.parse_one(sql, read="bigquery")
        except sqlglot.errors.ParseError as err:
            raise ValueError(f"not BigQuery SQL: {err}") from err
        return tree.transform(bind).sql(dialect="duckdb")

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        """Answer jobs.query, jobs.getQueryResults, jobs.get and jobs.cancel."""
        parts = path.strip("/").split("/")
        if parts[:2] != ["bigquery", "v2"] or len(parts) < 5 or parts[2] != "projects":
            raise _HTTPError(404, "notFound", f"no route for {method} {path}")
        project, kind = parts[3], parts[4]
        if method == "POST" and kind == "queries" and len(parts) == 5:
            return 200, self._query(project, body or {})
        if method == "GET" and kind == "queries" and len(parts) == 6:
            return 200, self._results_page(project, parts[5], query)
        if method == "GET" and kind == "jobs" and len(parts) == 6:
            return 200, self._job(project, parts[5])
        if method == "POST" and kind == "jobs" and len(parts) == 7 and parts[6] == "cancel":
            # the client cancels a job whose results it failed to read
            return 200, {"kind": "bigquery#jobCancelResponse", "job": self._job(project, parts[5])}
        raise _HTTPError(404, "notFound", f"no route for {method} {path}")

    def _query(self, project: str, body: Mapping[str, Any]) -> dict[str, Any]:
        sql = str(body.get("query", ""))
        self.queries.append(sql)
        try:
            duck = self.to_duckdb(sql, body.get("queryParameters", []))
            with self._lock:
                cursor = self.db.execute(duck)
                description = cursor.description or []
                fetched = cursor.fetchall()
        except duckdb.CatalogException as err:
            raise _HTTPError(404, "notFound", f"Not found: {str(err).splitlines()[0]}") from err
        except (ValueError, duckdb.Error) as err:
            raise _HTTPError(400, "invalidQuery", str(err).splitlines()[0]) from err
        fields = [
            {"name": d[0], "type": _bq_type(str(d[1])), "mode": "NULLABLE"} for d in description
        ]
        rows = [
            {"f": [{"v": _cell(v, f["type"])} for v, f in zip(row, fields, strict=True)]}
            for row in fetched
        ]
        job_id = f"job_{uuid.uuid4().hex[:12]}"
        self._results[job_id] = (fields, rows, sql)
        size = min(self.page_size, int(body.get("maxResults") or self.page_size))
        page = self._page(project, job_id, 0, size)
        page["kind"] = "bigquery#queryResponse"
        return page

    def _page(self, project: str, job_id: str, start: int, size: int) -> dict[str, Any]:
        fields, rows, _ = self._results[job_id]
        out: dict[str, Any] = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": {"projectId": project, "jobId": job_id, "location": "US"},
            "schema": {"fields": fields},
            "totalRows": str(len(rows)),
            "jobComplete": True,
            "cacheHit": False,
            "totalBytesProcessed": "1024",
        }
        chunk = rows[start : start + size]
        if chunk:
            out["rows"] = chunk
        if start + size < len(rows) and size > 0:
            out["pageToken"] = str(start + size)
        return out

    def _results_page(
        self, project: str, job_id: str, query: Mapping[str, list[str]]
    ) -> dict[str, Any]:
        if job_id not in self._results:
            raise _HTTPError(404, "notFound", f"Not found: Job {project}:{job_id}")
        start = int(query.get("pageToken", query.get("startIndex", ["0"]))[0])
        size = int(query.get("maxResults", [str(self.page_size)])[0])
        return self._page(project, job_id, start, min(size, self.page_size))

    def _job(self, project: str, job_id: str) -> dict[str, Any]:
        if job_id not in self._results:
            raise _HTTPError(404, "notFound", f"Not found: Job {project}:{job_id}")
        sql = self._results[job_id][2]
        return {
            "kind": "bigquery#job",
            "id": f"{project}:US.{job_id}",
            "jobReference": {"projectId": project, "jobId": job_id, "location": "US"},
            "configuration": {
                "jobType": "QUERY",
                "query": {
                    "query": sql,
                    "useLegacySql": False,
                    "destinationTable": {
                        "projectId": project,
                        "datasetId": "_anon",
                        "tableId": f"anon_{job_id}",
                    },
                },
            },
            "status": {"state": "DONE"},
            "statistics": {"query": {"totalBytesProcessed": "1024"}},
        }


_SKUS_PATH = re.compile(r"^/v1/(?P<parent>services/[^/]+)/skus$")


class FakeCatalog(_FakeServer):
    """The Cloud Billing Catalog's ``services.skus.list`` over a list of SKU resources.

    Args:
        skus: SKU resources as the REST API returns them (camelCase JSON).
        page_size: Largest page served, whatever the client asks.
    """

    def __init__(self, skus: Sequence[Mapping[str, Any]], *, page_size: int = 2) -> None:
        super().__init__()
        self.skus = list(skus)
        self.page_size = page_size

    def __enter__(self) -> FakeCatalog:
        super().__enter__()
        return self

    def route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        """Answer ``GET /v1/services/{service}/skus``."""
        match = _SKUS_PATH.match(path)
        if method != "GET" or match is None:
            raise _HTTPError(404, "notFound", f"no route for {method} {path}")
        token = query.get("pageToken", [""])[0]
        start = int(token) if token else 0
        size = min(self.page_size, int(query.get("pageSize", [str(self.page_size)])[0]))
        chunk = self.skus[start : start + size]
        payload: dict[str, Any] = {"skus": chunk}
        if start + size < len(self.skus):
            payload["nextPageToken"] = str(start + size)
        return 200, payload
