"""``GCPProvider``: the plugin object cloudbalance builds from ``providers: {gcp: {...}}``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pandas as pd

from cloudbalance.exceptions import ConfigError, ProviderError
from cloudbalance.models import Location
from cloudbalance.provider import ProviderCheck
from cloudbalance.retry import RetryPolicy, retry_call
from cloudbalance.schema import COSTS, PRICES
from cloudbalance_gcp._auth import default_credentials, describe
from cloudbalance_gcp._costs import rows_to_costs, run_query
from cloudbalance_gcp._errors import NAME, classify, guarded
from cloudbalance_gcp._frames import empty_frame
from cloudbalance_gcp._machines import DEFAULT_MACHINE_TYPES, MachineType, parse_machine_type
from cloudbalance_gcp._prices import compose_prices, list_skus, parse_skus
from cloudbalance_gcp._sql import EXPORTS, Export, build_cost_query, check_table_id

__all__ = ["GCPProvider"]

T = TypeVar("T")

#: Every option ``providers.gcp`` accepts in cloudbalance.yaml (listed in errors).
OPTIONS: tuple[str, ...] = (
    "billing_account_id",
    "billing_table",
    "bigquery_endpoint",
    "catalog_endpoint",
    "credentials_file",
    "currency",
    "export",
    "granularity",
    "labels",
    "list_cost",
    "location",
    "machine_types",
    "max_attempts",
    "maximum_bytes_billed",
    "page_size",
    "partition_filter",
    "project",
    "regions",
    "resources",
    "revision_days",
    "timeout",
)


def _key(option: str) -> str:
    return f"providers.gcp.{option}"


def _str(option: str, value: object, *, allow_none: bool = True) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"must be a non-empty string, got {value!r}", key=_key(option))
    return value.strip()


def _strs(option: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"must be a list of strings, got {value!r}", key=_key(option))
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(
                f"must be a list of non-empty strings, got {item!r}", key=_key(option)
            )
        out.append(item.strip())
    return tuple(out)


def _int(option: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key=_key(option))
    return value


def _bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}", key=_key(option))
    return value


def _infer_export(table: str | None) -> Export | None:
    if table is None:
        return None
    name = table.rsplit(".", 1)[-1].lower()
    if name.startswith("gcp_billing_export_resource_v1_"):
        return "detailed"
    if name.startswith("gcp_billing_export_v1_"):
        return "standard"
    return None


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _unprefixed(err: Exception) -> str:
    """The error's text without ``provider 'gcp': `` (``providers check`` names the provider)."""
    text = str(err)
    prefix = f"provider {NAME!r}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC days inside ``[start, end)``: start rounds up, end rounds down."""
    start, end = _naive_utc(start), _naive_utc(end)
    first = datetime(start.year, start.month, start.day)
    if first < start:
        first += timedelta(days=1)
    last = datetime(end.year, end.month, end.day)
    return first, last


class GCPProvider:
    """Google Cloud costs (BigQuery billing export) and Compute Engine prices (Catalog API).

    Built by cloudbalance with the options under ``providers: {gcp: {...}}`` as keyword
    arguments; the constructor validates them and touches no network. Credentials come from
    Application Default Credentials (``google.auth.default()``) or ``credentials_file``.

    Args:
        billing_table: ``project.dataset.table`` of the billing export or FOCUS view; needed
            for costs, not for prices.
        export: ``standard``, ``detailed`` or ``focus``; inferred from the export's table name
            (``gcp_billing_export_v1_*`` / ``gcp_billing_export_resource_v1_*``) when omitted.
        project: Project that runs (and pays for) the query jobs; defaults to the credentials'
            project, then the table's project.
        location: BigQuery location of the dataset (``US``, ``EU``, ``europe-west1``).
        billing_account_id: Keep only this billing account (an export may hold several).
        labels: Label keys to group by; they become the ``Tags`` of each line (the store
            attributes workloads from them). Default ``["workload"]``; ``[]`` for none.
        granularity: ``daily`` (default) or ``hourly`` lines.
        resources: Group by resource (``detailed`` or ``focus`` only); many more rows.
        list_cost: Read ``cost_at_list`` (turn off for exports that lack it).
        partition_filter: Prune ``_PARTITIONTIME`` partitions (exports only).
        maximum_bytes_billed: Fail a query that would scan more bytes than this.
        revision_days: Trailing days ``cloudbalance sync`` re-pulls (Google restates recent
            days as late usage and credits arrive).
        currency: Currency of catalog prices (the Catalog converts).
        machine_types: Predefined machine types to price (default: common general-purpose
            sizes, see :data:`cloudbalance_gcp._machines.DEFAULT_MACHINE_TYPES`).
        regions: Regions to price when ``prices()`` is asked for all locations.
        credentials_file: A service-account or external-account key file instead of ADC.
        page_size: Catalog SKUs per page.
        max_attempts: Tries per request on throttling and transient errors.
        timeout: Seconds each request may take, connecting and reading (default 60; the
            Google clients take one number for both).
        bigquery_endpoint: Override the BigQuery API endpoint (private service connect).
        catalog_endpoint: Override the Cloud Billing API endpoint.
        credentials: Python only: a ``google.auth`` credentials object to use as is.
        sleep: Python only: how retries wait (tests pass a recorder).

    Raises:
        ConfigError: An unknown option (the message lists the valid ones) or a bad value.
    """

    name = NAME

    def __init__(
        self,
        *,
        billing_table: str | None = None,
        export: str | None = None,
        project: str | None = None,
        location: str | None = None,
        billing_account_id: str | None = None,
        labels: Sequence[str] | None = None,
        granularity: str = "daily",
        resources: bool = False,
        list_cost: bool = True,
        partition_filter: bool = True,
        maximum_bytes_billed: int | None = None,
        revision_days: int = 3,
        currency: str = "USD",
        machine_types: Sequence[str] | None = None,
        regions: Sequence[str] | None = None,
        credentials_file: str | None = None,
        page_size: int = 5000,
        max_attempts: int = 5,
        timeout: float = 60.0,
        bigquery_endpoint: str | None = None,
        catalog_endpoint: str | None = None,
        credentials: Any = None,
        sleep: Callable[[float], None] | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ConfigError(
                f"unknown option(s) {names}; valid options: {', '.join(OPTIONS)}",
                key=_key(sorted(unknown)[0]),
            )
        table = _str("billing_table", billing_table)
        self.billing_table = check_table_id(table) if table is not None else None
        chosen = _str("export", export)
        if chosen is not None and chosen not in EXPORTS:
            raise ConfigError(
                f"must be one of {', '.join(EXPORTS)}, got {chosen!r}", key=_key("export")
            )
        self.export: Export | None = cast(Export | None, chosen) or _infer_export(
            self.billing_table
        )
        if self.billing_table is not None and self.export is None:
            raise ConfigError(
                f"cannot tell the schema of {self.billing_table!r} from its name; set export to "
                f"one of {', '.join(EXPORTS)}",
                key=_key("export"),
            )
        self.resources = _bool("resources", resources)
        if self.resources and self.export == "standard":
            raise ConfigError(
                "resources needs the detailed export (or a FOCUS view); the standard export "
                "has no resource columns",
                key=_key("resources"),
            )
        if granularity not in ("daily", "hourly"):
            raise ConfigError(
                f"must be daily or hourly, got {granularity!r}", key=_key("granularity")
            )
        self.granularity = granularity
        self.project = _str("project", project)
        self.location = _str("location", location)
        self.billing_account_id = _str("billing_account_id", billing_account_id)
        # the core attributes workloads by the `workload` tag unless configured otherwise
        self.labels = ("workload",) if labels is None else _strs("labels", labels)
        self.list_cost = _bool("list_cost", list_cost)
        self.partition_filter = _bool("partition_filter", partition_filter)
        self.maximum_bytes_billed = (
            None
            if maximum_bytes_billed is None
            else _int("maximum_bytes_billed", maximum_bytes_billed, minimum=1)
        )
        self.revision_days = _int("revision_days", revision_days, minimum=0)
        self.currency = (_str("currency", currency, allow_none=False) or "USD").upper()
        self.machine_types: tuple[MachineType, ...] = tuple(
            parse_machine_type(m)
            for m in (_strs("machine_types", machine_types) or DEFAULT_MACHINE_TYPES)
        )
        self.regions = _strs("regions", regions) or None
        self.credentials_file = _str("credentials_file", credentials_file)
        self.page_size = _int("page_size", page_size, minimum=1)
        self.policy = RetryPolicy(attempts=_int("max_attempts", max_attempts, minimum=1))
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(
                f"must be a positive number of seconds, got {timeout!r}", key=_key("timeout")
            )
        self.timeout = float(timeout)
        self.bigquery_endpoint = _str("bigquery_endpoint", bigquery_endpoint)
        self.catalog_endpoint = _str("catalog_endpoint", catalog_endpoint)
        self._credentials = credentials
        self._credentials_project: str | None = None
        self._sleep = sleep or time.sleep
        self._bigquery: Any = None
        self._catalog: Any = None

    def __repr__(self) -> str:
        return f"GCPProvider(billing_table={self.billing_table!r}, export={self.export!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T]) -> T:
        return retry_call(fn, provider=NAME, policy=self.policy, sleep=self._sleep)

    def _creds(self) -> Any:
        if self._credentials is None:
            try:
                self._credentials, self._credentials_project = default_credentials(
                    self.credentials_file
                )
            except ConfigError:
                raise
            except Exception as err:
                raise classify(err, "looking up Google credentials") from err
        return self._credentials

    def _bigquery_client(self) -> Any:
        if self._bigquery is None:
            try:
                from google.api_core.client_options import ClientOptions
                from google.cloud import bigquery
            except ImportError as err:
                raise ProviderError(
                    f"google-cloud-bigquery is not installed ({err}); "
                    "run `pip install cloudbalance-gcp`",
                    provider=NAME,
                ) from err
            creds = self._creds()
            project = self.project or self._credentials_project
            if project is None and self.billing_table is not None:
                project = self.billing_table.split(".", 1)[0]
            options = (
                ClientOptions(api_endpoint=self.bigquery_endpoint)
                if self.bigquery_endpoint
                else None
            )
            self._bigquery = bigquery.Client(
                project=project, credentials=creds, location=self.location, client_options=options
            )
        return self._bigquery

    def _catalog_client(self) -> Any:
        if self._catalog is None:
            try:
                from google.api_core.client_options import ClientOptions
                from google.cloud.billing_v1 import CloudCatalogClient
            except ImportError as err:
                raise ProviderError(
                    f"google-cloud-billing is not installed ({err}); "
                    "run `pip install cloudbalance-gcp`",
                    provider=NAME,
                ) from err
            options = (
                ClientOptions(api_endpoint=self.catalog_endpoint) if self.catalog_endpoint else None
            )
            self._catalog = CloudCatalogClient(
                credentials=self._creds(), transport="rest", client_options=options
            )
        return self._catalog

    # -- the CostProvider protocol ---------------------------------------------------------

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Cost lines of the whole UTC days inside ``[start, end)``, aggregated in BigQuery.

        A partial first or last day is left out rather than returned in part, because the
        store replaces whole days.

        Raises:
            ConfigError: No ``billing_table`` configured.
            CredentialsError: Credentials missing, expired or refused (401/403).
            ThrottledError: Still rate-limited or failing transiently after the retries.
            ProviderError: Table missing, query rejected, malformed result.
        """
        if self.billing_table is None or self.export is None:
            raise ConfigError(
                "costs need the BigQuery billing export: set billing_table to "
                "`project.dataset.gcp_billing_export_v1_...` (or a FOCUS view with export: focus)",
                key=_key("billing_table"),
            )
        first, last = _whole_days(start, end)
        if first >= last:
            return empty_frame(COSTS)
        query = build_cost_query(
            table=self.billing_table,
            export=self.export,
            start=first,
            end=last,
            granularity="daily" if self.granularity == "daily" else "hourly",
            label_keys=self.labels,
            billing_account_id=self.billing_account_id,
            resources=self.resources,
            list_cost=self.list_cost,
            partition_filter=self.partition_filter and self.export != "focus",
        )
        what = f"BigQuery query on {self.billing_table}"
        rows = self._retry(
            guarded(
                lambda: run_query(
                    self._bigquery_client(),
                    query,
                    location=self.location,
                    maximum_bytes_billed=self.maximum_bytes_billed,
                    timeout=self.timeout,
                ),
                what,
            )
        )
        frame = rows_to_costs(
            rows,
            label_keys=query.label_keys,
            granularity=self.granularity,
            source=f"gcp:bigquery:{self.billing_table}",
        )
        inside = (frame["ChargePeriodStart"] >= first) & (frame["ChargePeriodStart"] < last)
        return frame[inside].reset_index(drop=True)

    def prices(self, locations: Sequence[Location] | None = None) -> pd.DataFrame:
        """Hourly on-demand and spot prices of whole machine types per region.

        ``unit_price`` is per instance and hour (``vcpus`` and ``memory_gib`` are the machine
        type's shape, ``SkuId`` its name), computed from the Catalog's per-vCPU and per-GiB
        rates of its family in that region.
        """
        regions: set[str] | None
        if locations is not None:
            regions = {loc.region for loc in locations if loc.cloud == NAME}
            if not regions:
                return empty_frame(PRICES)
        else:
            regions = set(self.regions) if self.regions else None
        observed = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        skus = list_skus(
            self._catalog_client(),
            currency=self.currency,
            page_size=self.page_size,
            call=self._retry,
            timeout=self.timeout,
        )
        rates = parse_skus(skus)
        return compose_prices(rates, self.machine_types, observed_at=observed, regions=regions)

    def check(self) -> ProviderCheck:
        """Whether credentials are found (and not expired) and costs are configured."""
        try:
            creds = self._creds()
        except (ProviderError, ConfigError) as err:
            return ProviderCheck(NAME, ok=False, detail="", missing=_unprefixed(err))
        detail = describe(creds)
        project = self.project or self._credentials_project
        if project:
            detail += f", project {project}"
        try:
            if not getattr(creds, "valid", True) and "Anonymous" not in type(creds).__name__:
                from google.auth.transport.requests import Request

                creds.refresh(Request())
        except Exception as err:
            return ProviderCheck(
                NAME,
                ok=False,
                detail=detail,
                missing=_unprefixed(classify(err, "refreshing the credentials")),
            )
        if self.billing_table is None:
            return ProviderCheck(
                NAME,
                ok=False,
                detail=detail + "; prices only",
                missing="billing_table (the BigQuery billing export table) for costs",
            )
        return ProviderCheck(
            NAME, ok=True, detail=f"{detail}; {self.export} export {self.billing_table}"
        )
