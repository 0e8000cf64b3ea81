"""Cost time series through the Cost Management query API (``query.usage``).

What one ``costs(start, end)`` call sends, per chunk of at most ``chunk_days`` days:

1. ``ActualCost``, daily, grouped by ``ResourceId`` and ``ServiceName`` -> ``BilledCost``;
2. ``AmortizedCost``, same grouping -> ``EffectiveCost`` (unless ``amortized: false``);
3. ``ActualCost`` grouped by ``ResourceId`` and ``ResourceLocation`` -> ``RegionId``;
4. one ``ActualCost`` query per configured tag key, grouped by ``ResourceId`` and that tag.

The query API accepts at most two groupings per query, so the region and the tags arrive by
separate queries and are joined on (day, resource); the costs themselves come from queries 1-2
only, so nothing is counted twice. A query's time period may not exceed one year, and large
scopes time out on long periods, which is why the window is cut into chunks; a chunk the API
still refuses as too large (a 400 over its limits, or a gateway timeout) is halved and asked
again, down to single days. Each query follows
``nextLink`` (the SDK's ``query.usage`` returns only the first page) by posting the same body to
the link through the same client pipeline (so the same credential and policies apply), and only
to the endpoint's own origin, so a bearer token never leaves for another host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pandas as pd

from cloudbalance.exceptions import ProviderError
from cloudbalance.retry import RetryPolicy, retry_call
from cloudbalance_azure._client import (
    PROVIDER,
    QueryTooLargeError,
    call,
    raise_for_status,
    request_options,
    same_origin,
)
from cloudbalance_azure._mapping import (
    QueryTable,
    attribute_rows,
    cost_rows,
    costs_frame,
)
from cloudbalance_azure._scope import Scope

__all__ = ["CostQuery", "day_chunks", "query_body"]

#: Pages followed per query before we call the response malformed (a loop of next links).
MAX_PAGES = 10_000


def day_chunks(start: datetime, end: datetime, chunk_days: int) -> list[tuple[datetime, datetime]]:
    """Whole UTC days inside ``[start, end)``, cut into ``[from, to)`` chunks.

    A day is included only when it starts at or after ``start`` and before ``end``, so every
    row returned lies inside the window and every day returned is whole.
    """
    first = pd.Timestamp(start).ceil("D").to_pydatetime()
    stop = pd.Timestamp(end).ceil("D").to_pydatetime()
    chunks: list[tuple[datetime, datetime]] = []
    cursor = first
    while cursor < stop:
        upper = min(cursor + timedelta(days=chunk_days), stop)
        chunks.append((cursor, upper))
        cursor = upper
    return chunks


def query_body(
    cost_type: str, start: datetime, end: datetime, grouping: list[dict[str, str]]
) -> dict[str, Any]:
    """The ``QueryDefinition`` for daily sums over the whole days in ``[start, end)``.

    ``timePeriod.to`` is inclusive in the API, hence the last second of the last day.
    """
    return {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {
            "from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "to": (end - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": grouping,
        },
    }


def _dimension(name: str) -> dict[str, str]:
    return {"type": "Dimension", "name": name}


@dataclass
class CostQuery:
    """Runs the queries of one scope.

    Attributes:
        client: A ``CostManagementClient``.
        scope: The scope queried.
        endpoint: The ARM endpoint the client talks to (next links must stay on it).
        tag_keys: Tag keys to fetch (each one more query per chunk).
        amortized: Whether to run the ``AmortizedCost`` query.
        chunk_days: Days per query.
        policy: Retry policy for throttling and transient errors.
        sleep: Injected in tests.
    """

    client: Any
    scope: Scope
    endpoint: str
    tag_keys: tuple[str, ...]
    amortized: bool
    chunk_days: int
    policy: RetryPolicy
    sleep: Callable[[float], None]
    _splittable: bool = False

    @property
    def source(self) -> str:
        """``x_Source`` of every row: the API and the scope."""
        return f"azure:query:{self.scope.path}"

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Every row of every whole day in ``[start, end)``."""
        pending = list(reversed(day_chunks(start, end, self.chunk_days)))
        frames: list[pd.DataFrame] = []
        while pending:
            a, b = pending.pop()
            days = (b - a).days
            try:
                frame = self._chunk(a, b, splittable=days > 1)
            except QueryTooLargeError:
                half = a + timedelta(days=days // 2)
                pending += [(half, b), (a, half)]  # the earlier half is popped first
                continue
            if len(frame):
                frames.append(frame)
        if not frames:
            return costs_frame(
                actual={},
                amortized=None,
                locations={},
                tags={},
                billing_account_id=self.scope.billing_account_id,
                subscription_id=self.scope.subscription_id,
                source=self.source,
            )
        return pd.concat(frames, ignore_index=True)

    def _chunk(self, start: datetime, end: datetime, *, splittable: bool) -> pd.DataFrame:
        """One chunk's rows; a chunk over the API's limits raises QueryTooLargeError."""
        self._splittable = splittable
        by_service = [_dimension("ResourceId"), _dimension("ServiceName")]
        actual = cost_rows(self._table("ActualCost", start, end, by_service))
        amortized = (
            cost_rows(self._table("AmortizedCost", start, end, by_service))
            if self.amortized
            else None
        )
        if not actual and not amortized:
            locations: dict[tuple[datetime, str], str] = {}
            tags: dict[str, dict[tuple[datetime, str], str]] = {}
        else:
            by_location = [_dimension("ResourceId"), _dimension("ResourceLocation")]
            locations = attribute_rows(
                self._table("ActualCost", start, end, by_location),
                ("ResourceLocation",),
            )
            tags = {
                key: attribute_rows(
                    self._table(
                        "ActualCost",
                        start,
                        end,
                        [_dimension("ResourceId"), {"type": "TagKey", "name": key}],
                    ),
                    ("TagValue", key),
                )
                for key in self.tag_keys
            }
        return costs_frame(
            actual=actual,
            amortized=amortized,
            locations=locations,
            tags=tags,
            billing_account_id=self.scope.billing_account_id,
            subscription_id=self.scope.subscription_id,
            source=self.source,
        )

    def _table(
        self, cost_type: str, start: datetime, end: datetime, grouping: list[dict[str, str]]
    ) -> QueryTable:
        """All pages of one query as one table."""
        body = query_body(cost_type, start, end, grouping)
        what = f"query {cost_type} {self.scope.path} {start:%Y-%m-%d}..{end:%Y-%m-%d}"
        columns: list[str] | None = None
        rows: list[Any] = []
        for page_columns, page_rows in self._pages(body, what):
            if columns is None:
                columns = page_columns
            elif [c.lower() for c in page_columns] != [c.lower() for c in columns]:
                raise ProviderError(
                    f"{what}: malformed response, the columns changed between pages",
                    provider=PROVIDER,
                )
            rows.extend(page_rows)
        return QueryTable(columns or [], rows, what)

    def _pages(self, body: dict[str, Any], what: str) -> Iterator[tuple[list[str], list[Any]]]:
        first = self._retry(
            lambda: self.client.query.usage(
                self.scope.path, body, **request_options(self.endpoint)
            ),
            what,
        )
        page = _page_json(first)
        for number in range(MAX_PAGES):
            yield _parse_page(page, what, number + 1)
            link = (page.get("properties") or {}).get("nextLink")
            if not link:
                return
            if not same_origin(str(link), self.endpoint):
                raise ProviderError(
                    f"{what}: the next page link points outside {self.endpoint}; refusing to "
                    "send credentials there",
                    provider=PROVIDER,
                )
            page = self._retry(partial(self._post, str(link), body), what)
        raise ProviderError(f"{what}: more than {MAX_PAGES} pages", provider=PROVIDER)

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        from azure.core.rest import HttpRequest

        response = self.client.send_request(
            HttpRequest("POST", url, json=body), **request_options(self.endpoint)
        )
        raise_for_status(response)
        try:
            data = response.json()
        except ValueError as err:
            raise ProviderError(
                f"malformed response: the next page is not JSON ({err})", provider=PROVIDER
            ) from err
        return _page_json(data)

    def _retry(self, fn: Callable[[], Any], what: str) -> Any:
        splittable = self._splittable
        return retry_call(
            lambda: call(fn, what=what, splittable=splittable),
            provider=PROVIDER,
            policy=self.policy,
            sleep=self.sleep,
        )


def _page_json(result: Any) -> dict[str, Any]:
    """A ``QueryResult`` (a mapping in this SDK) or raw JSON -> plain dict."""
    if result is None:
        return {"properties": {"columns": [], "rows": []}}
    data = result.as_dict() if hasattr(result, "as_dict") else result
    if not isinstance(data, dict):
        raise ProviderError(
            f"malformed response: expected a JSON object, got {type(data).__name__}",
            provider=PROVIDER,
        )
    return data


def _parse_page(page: dict[str, Any], what: str, number: int) -> tuple[list[str], list[Any]]:
    props = page.get("properties")
    if not isinstance(props, dict):
        raise ProviderError(
            f"{what}: malformed response on page {number}: no 'properties' object",
            provider=PROVIDER,
        )
    columns = props.get("columns") or []
    rows = props.get("rows") or []
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise ProviderError(
            f"{what}: malformed response on page {number}: 'columns' and 'rows' must be lists",
            provider=PROVIDER,
        )
    names: list[str] = []
    for col in columns:
        name = col.get("name") if isinstance(col, dict) else None
        if not isinstance(name, str):
            raise ProviderError(
                f"{what}: malformed response on page {number}: a column has no name",
                provider=PROVIDER,
            )
        names.append(name)
    return names, rows
