from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
import sqlglot
from cloudbalance_gcp import GCPProvider
from cloudbalance_gcp._sql import build_cost_query
from cloudbalance_gcp.testing import FOCUS_VIEW, FakeBigQuery
from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.auth.credentials import Credentials

from cloudbalance.exceptions import ConfigError, CredentialsError, ProviderError, ThrottledError
from cloudbalance.schema import validate_costs

TABLE = "billing-proj.billing_export.gcp_billing_export_v1_0A1B2C_3D4E5F_6A7B8C"
JAN1, JAN4 = datetime(2024, 1, 1), datetime(2024, 1, 4)


def _query_body(bigquery: FakeBigQuery) -> dict[str, Any]:
    posts = [r for r in bigquery.requests if r.method == "POST"]
    assert posts, "no query was sent"
    body: dict[str, Any] = posts[-1].body
    return body


# -- the query text ------------------------------------------------------------------------


def test_query_is_bigquery_sql_that_aggregates_and_never_selects_raw_rows() -> None:
    query = build_cost_query(
        table=TABLE, export="standard", start=JAN1, end=JAN4, label_keys=("workload",)
    )
    tree = sqlglot.parse_one(query.sql, read="bigquery")
    assert not list(tree.find_all(sqlglot.exp.Star)), "SELECT * would pull every column"
    outer = [s for s in tree.find_all(sqlglot.exp.Select) if s.args.get("group")]
    assert len(outer) == 2, "usage and credit lines are both GROUP BY aggregates"
    assert f"`{TABLE}`" in query.sql
    assert "SUM(t." not in query.sql  # aggregation happens on the normalised CTE


def test_user_values_are_query_parameters_not_sql_text() -> None:
    query = build_cost_query(
        table=TABLE,
        export="standard",
        start=JAN1,
        end=JAN4,
        label_keys=("team'; DROP TABLE x; --",),
        billing_account_id="0A1B2C-3D4E5F-6A7B8C",
    )
    assert "DROP TABLE" not in query.sql
    assert "0A1B2C-3D4E5F-6A7B8C" not in query.sql
    names = {p.name: p for p in query.params}
    assert names["label_0"].value == "team'; DROP TABLE x; --"
    assert names["start"].type == "TIMESTAMP"
    assert "@billing_account_id" in query.sql


@pytest.mark.parametrize(
    "table",
    ["billing.gcp_billing_export_v1_X", "p.d.t; DROP TABLE y", "p.d.`t`x", "p.d.t --"],
)
def test_a_table_id_that_could_inject_sql_is_refused(table: str) -> None:
    with pytest.raises(ConfigError, match="not a BigQuery table id"):
        GCPProvider(billing_table=table)


def test_partition_filter_has_only_a_lower_bound_so_late_exports_still_count() -> None:
    query = build_cost_query(table=TABLE, export="standard", start=JAN1, end=JAN4)
    assert "_PARTITIONTIME >=" in query.sql
    assert "_PARTITIONTIME <" not in query.sql
    focus = build_cost_query(table=TABLE, export="focus", start=JAN1, end=JAN4)
    assert "_PARTITIONTIME" not in focus.sql


def test_the_sent_query_carries_typed_parameters_and_a_bytes_cap(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    make_provider(maximum_bytes_billed=10_000_000_000, location="US").costs(JAN1, JAN4)
    body = _query_body(bigquery)
    assert body["useLegacySql"] is False
    assert body["maximumBytesBilled"] == "10000000000"
    params = {p["name"]: p for p in body["queryParameters"]}
    assert params["start"]["parameterType"]["type"] == "TIMESTAMP"
    assert params["start"]["parameterValue"]["value"].startswith("2024-01-01 00:00:00")
    assert params["label_0"]["parameterValue"]["value"] == "workload"
    assert body["location"] == "US"


# -- the aggregation, run on DuckDB over export-schema tables ---------------------------------


def test_costs_sum_to_the_export_with_credits_as_their_own_lines(
    make_provider: Callable[..., GCPProvider], default_rows: Callable[[], list[dict[str, Any]]]
) -> None:
    frame = validate_costs(make_provider().costs(JAN1, JAN4))
    rows = default_rows()
    gross = sum(r["cost"] for r in rows)
    credits = sum(c["amount"] for r in rows for c in r["credits"])
    usage = frame[frame["ChargeCategory"] != "Credit"]
    assert usage["BilledCost"].sum() == pytest.approx(gross)
    assert frame.loc[frame["ChargeCategory"] == "Credit", "BilledCost"].sum() == pytest.approx(
        credits
    )
    assert frame["EffectiveCost"].sum() == pytest.approx(gross + credits)
    assert set(frame["ChargeCategory"]) == {"Usage", "Credit", "Tax"}
    assert (frame["ProviderName"] == "Google Cloud").all()
    assert (frame["x_Cloud"] == "gcp").all()
    assert frame["x_Workload"].isna().all()


def test_one_line_per_day_and_key_not_per_export_row(
    make_provider: Callable[..., GCPProvider],
) -> None:
    frame = make_provider().costs(JAN1, JAN4)
    # per day: compute usage + compute credit + storage usage + tax = 4 lines, 3 days
    assert len(frame) == 12
    compute = frame[(frame["ServiceName"] == "Compute Engine") & (frame["SkuId"] == "CP-N2-CORE")]
    day1 = compute[(compute["ChargePeriodStart"] == JAN1) & (compute["ChargeCategory"] == "Usage")]
    assert day1["BilledCost"].item() == pytest.approx(4 * 2.0)
    assert day1["ConsumedQuantity"].item() == pytest.approx(4 * 3600.0)
    assert day1["PricingQuantity"].item() == pytest.approx(4.0)
    assert day1["ListCost"].item() == pytest.approx(4 * 2.0 * 1.2)
    assert (frame["ChargePeriodEnd"] - frame["ChargePeriodStart"] == pd.Timedelta(days=1)).all()


def test_labels_become_tags_and_projects_become_sub_accounts(
    make_provider: Callable[..., GCPProvider],
) -> None:
    frame = make_provider().costs(JAN1, JAN4)
    tags = {json.dumps(json.loads(t), sort_keys=True) for t in frame["Tags"]}
    assert tags == {
        '{"team": "web", "workload": "checkout"}',
        '{"workload": "lake"}',
        "{}",
    }
    lake = frame[frame["Tags"].str.contains("lake")]
    assert set(lake["SubAccountId"]) == {"data-prod"}
    assert set(lake["ServiceCategory"]) == {"Storage"}
    assert set(lake["RegionId"]) == {"us"}


def test_billing_account_filter_keeps_only_that_account(
    make_provider: Callable[..., GCPProvider],
    bigquery: FakeBigQuery,
    export_row: Callable[..., dict[str, Any]],
) -> None:
    table = "billing-proj.billing_export.gcp_billing_export_v1_TWO"
    bigquery.add_export(
        table,
        [
            export_row("2024-01-01 01:00:00", cost=5.0, account="AAAAAA-AAAAAA-AAAAAA"),
            export_row("2024-01-01 01:00:00", cost=7.0, account="BBBBBB-BBBBBB-BBBBBB"),
        ],
    )
    both = make_provider(billing_table=table).costs(JAN1, JAN4)
    assert set(both["BillingAccountId"]) == {"AAAAAA-AAAAAA-AAAAAA", "BBBBBB-BBBBBB-BBBBBB"}
    one = make_provider(billing_table=table, billing_account_id="BBBBBB-BBBBBB-BBBBBB")
    frame = one.costs(JAN1, JAN4)
    assert set(frame["BillingAccountId"]) == {"BBBBBB-BBBBBB-BBBBBB"}
    assert frame["BilledCost"].sum() == pytest.approx(7.0)


def test_usage_exported_days_later_is_still_counted(
    make_provider: Callable[..., GCPProvider],
    bigquery: FakeBigQuery,
    export_row: Callable[..., dict[str, Any]],
) -> None:
    table = "billing-proj.billing_export.gcp_billing_export_v1_LATE"
    bigquery.add_export(
        table,
        [
            export_row("2024-01-02 10:00:00", cost=1.0),
            export_row("2024-01-02 11:00:00", cost=2.0, export_lag_hours=24 * 4),
            export_row("2023-12-20 11:00:00", cost=100.0, export_lag_hours=24 * 20),
        ],
    )
    frame = make_provider(billing_table=table).costs(JAN1, JAN4)
    assert frame["BilledCost"].sum() == pytest.approx(3.0)


def test_a_partial_day_at_either_end_is_left_out(
    make_provider: Callable[..., GCPProvider],
) -> None:
    frame = make_provider().costs(datetime(2024, 1, 1, 12), datetime(2024, 1, 3, 6))
    assert set(frame["ChargePeriodStart"]) == {pd.Timestamp("2024-01-02")}


def test_tz_aware_window_is_read_as_utc(make_provider: Callable[..., GCPProvider]) -> None:
    from datetime import UTC, timedelta, timezone

    tz = timezone(timedelta(hours=2))
    frame = make_provider().costs(
        datetime(2024, 1, 2, 2, tzinfo=tz), datetime(2024, 1, 3, tzinfo=UTC)
    )
    assert set(frame["ChargePeriodStart"]) == {pd.Timestamp("2024-01-02")}


def test_hourly_granularity_gives_hour_lines(make_provider: Callable[..., GCPProvider]) -> None:
    frame = make_provider(granularity="hourly").costs(JAN1, datetime(2024, 1, 2))
    compute = frame[(frame["SkuId"] == "CP-N2-CORE") & (frame["ChargeCategory"] == "Usage")]
    assert sorted(compute["ChargePeriodStart"].dt.hour) == [0, 6, 12, 23]
    assert (frame["ChargePeriodEnd"] - frame["ChargePeriodStart"] == pd.Timedelta(hours=1)).all()


def test_detailed_export_groups_by_resource_when_asked(
    make_provider: Callable[..., GCPProvider],
    bigquery: FakeBigQuery,
    export_row: Callable[..., dict[str, Any]],
) -> None:
    table = "billing-proj.billing_export.gcp_billing_export_resource_v1_X"
    bigquery.add_export(
        table,
        [
            export_row("2024-01-01 01:00:00", cost=1.0, resource="vm-a"),
            export_row("2024-01-01 02:00:00", cost=2.0, resource="vm-b"),
            export_row("2024-01-01 03:00:00", cost=4.0, resource="vm-b"),
        ],
        detailed=True,
    )
    frame = make_provider(billing_table=table, resources=True).costs(JAN1, JAN4)
    by_resource = frame.groupby("ResourceId")["BilledCost"].sum().to_dict()
    assert by_resource == {
        "//compute/vm-a": pytest.approx(1.0),
        "//compute/vm-b": pytest.approx(6.0),
    }
    merged = make_provider(billing_table=table).costs(JAN1, JAN4)
    assert len(merged) == 1
    assert merged["ResourceId"].isna().all()


def test_focus_view_is_read_in_focus_names(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    view = "billing-proj.billing_export.focus_v1"
    line = {
        "ChargePeriodStart": "2024-01-02 05:00:00",
        "ChargePeriodEnd": "2024-01-02 06:00:00",
        "BillingAccountId": "0A1B2C-3D4E5F-6A7B8C",
        "SubAccountId": "shop-prod",
        "RegionId": "europe-west1",
        "ServiceCategory": "Compute",
        "ServiceName": "Compute Engine",
        "SkuId": "CP-N2-CORE",
        "ChargeCategory": "Usage",
        "ConsumedQuantity": 1.0,
        "ConsumedUnit": "Hours",
        "BilledCost": 3.0,
        "EffectiveCost": 2.5,
        "ListCost": 3.5,
        "BillingCurrency": "EUR",
        "Tags": [{"key": "workload", "value": "checkout"}],
    }
    credit = {**line, "ChargeCategory": "Credit", "BilledCost": -0.5, "EffectiveCost": -0.5}
    bigquery.add_table(view, FOCUS_VIEW, [line, line, credit])
    frame = make_provider(billing_table=view, export="focus").costs(JAN1, JAN4)
    usage = frame[frame["ChargeCategory"] == "Usage"]
    assert usage["BilledCost"].item() == pytest.approx(6.0)
    assert usage["EffectiveCost"].item() == pytest.approx(5.0)
    assert json.loads(usage["Tags"].item()) == {"workload": "checkout"}
    assert set(frame["BillingCurrency"]) == {"EUR"}
    assert frame.loc[frame["ChargeCategory"] == "Credit", "BilledCost"].item() == -0.5


def test_results_spanning_many_pages_are_all_read(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    bigquery.page_size = 2
    frame = make_provider().costs(JAN1, JAN4)
    assert len(frame) == 12
    page_reads = [r for r in bigquery.requests if r.method == "GET" and "/queries/" in r.path]
    assert len(page_reads) >= 5


def test_an_empty_window_sends_no_query(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    frame = make_provider().costs(datetime(2024, 1, 2, 3), datetime(2024, 1, 2, 9))
    assert len(validate_costs(frame)) == 0
    assert bigquery.requests == []


def test_a_window_without_usage_is_an_empty_frame(
    make_provider: Callable[..., GCPProvider],
) -> None:
    frame = make_provider().costs(datetime(2023, 6, 1), datetime(2023, 6, 3))
    assert len(validate_costs(frame)) == 0


def test_costs_without_a_billing_table_say_which_option_to_set(
    make_provider: Callable[..., GCPProvider],
) -> None:
    with pytest.raises(ConfigError, match="billing_table") as info:
        make_provider(billing_table=None).costs(JAN1, JAN4)
    assert info.value.key == "providers.gcp.billing_table"


# -- failures --------------------------------------------------------------------------------


def test_rate_limit_is_retried_with_backoff_then_succeeds(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery, sleeps: list[float]
) -> None:
    bigquery.fail(403, reason="rateLimitExceeded", times=1)
    bigquery.fail(429, reason="rateLimitExceeded", headers={"Retry-After": "7"})
    frame = make_provider().costs(JAN1, JAN4)
    assert len(frame) == 12
    assert len(sleeps) == 2
    assert sleeps[1] >= 7.0


def test_server_errors_are_retried_as_transient(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery, sleeps: list[float]
) -> None:
    bigquery.fail(503, reason="backendError", times=2)
    assert len(make_provider().costs(JAN1, JAN4)) == 12
    assert len(sleeps) == 2


def test_throttling_that_never_stops_raises_throttled_after_bounded_tries(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery, sleeps: list[float]
) -> None:
    bigquery.fail(429, reason="rateLimitExceeded", times=10)
    with pytest.raises(ThrottledError) as info:
        make_provider(max_attempts=3).costs(JAN1, JAN4)
    assert info.value.attempts == 3
    assert info.value.provider == "gcp"
    assert len(sleeps) == 2
    assert len([r for r in bigquery.requests if r.method == "POST"]) == 3


class _TokenCredentials(Credentials):  # type: ignore[misc]
    """Credentials that always refresh to a fresh token, as a working login does."""

    def refresh(self, request: object) -> None:
        self.token = "fresh-token"


def test_refused_credentials_raise_credentials_error_without_retrying(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery, sleeps: list[float]
) -> None:
    # the auth session refreshes the token and resends once on a 401; both are refused
    bigquery.fail(401, reason="authError", message="Invalid authentication credentials.", times=5)
    with pytest.raises(CredentialsError, match="401") as info:
        make_provider(credentials=_TokenCredentials()).costs(JAN1, JAN4)
    assert isinstance(info.value.__cause__, api.Unauthorized)
    assert sleeps == []
    assert "fresh-token" not in str(info.value)


def test_missing_permission_names_the_least_privilege_docs(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    bigquery.fail(
        403,
        reason="accessDenied",
        message="User does not have bigquery.jobs.create permission in project billing-proj.",
    )
    with pytest.raises(CredentialsError, match=r"bigquery\.jobs\.create.*least-privilege"):
        make_provider().costs(JAN1, JAN4)


class _ExpiredCredentials(Credentials):  # type: ignore[misc]
    """Credentials whose token has expired and cannot be refreshed (revoked login)."""

    def refresh(self, request: object) -> None:
        raise auth.RefreshError("invalid_grant: Token has been expired or revoked.")


def test_expired_credentials_raise_credentials_error(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    with pytest.raises(CredentialsError, match="expired or revoked") as info:
        make_provider(credentials=_ExpiredCredentials()).costs(JAN1, JAN4)
    assert isinstance(info.value.__cause__, auth.RefreshError)
    assert bigquery.requests == []


def test_a_missing_table_is_a_provider_error_naming_the_table(
    make_provider: Callable[..., GCPProvider],
) -> None:
    with pytest.raises(ProviderError, match="gcp_billing_export_v1_NOPE") as info:
        make_provider(billing_table="billing-proj.billing_export.gcp_billing_export_v1_NOPE").costs(
            JAN1, JAN4
        )
    assert not isinstance(info.value, CredentialsError | ThrottledError)
    assert isinstance(info.value.__cause__, api.NotFound)
    assert "not found" in str(info.value)


def test_an_export_without_cost_at_list_works_with_list_cost_off(
    make_provider: Callable[..., GCPProvider],
    bigquery: FakeBigQuery,
    export_row: Callable[..., dict[str, Any]],
) -> None:
    from cloudbalance_gcp.testing import STANDARD_EXPORT

    old = {k: v for k, v in STANDARD_EXPORT.items() if k != "cost_at_list"}
    table = "billing-proj.billing_export.gcp_billing_export_v1_OLD"
    bigquery.add_table(table, old, [export_row("2024-01-01 01:00:00", cost=2.0)])
    with pytest.raises(ProviderError, match="cost_at_list"):
        make_provider(billing_table=table).costs(JAN1, JAN4)
    frame = make_provider(billing_table=table, list_cost=False).costs(JAN1, JAN4)
    assert frame["BilledCost"].sum() == pytest.approx(2.0)
    assert frame["ListCost"].isna().all()


def test_a_malformed_response_body_is_a_provider_error(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    bigquery.fail(200, raw='{"kind": "bigquery#queryResponse", "rows": [')
    with pytest.raises(ProviderError):
        make_provider(max_attempts=1).costs(JAN1, JAN4)


def test_a_result_missing_a_column_is_a_provider_error_naming_it() -> None:
    from cloudbalance_gcp._costs import rows_to_costs

    with pytest.raises(ProviderError, match="'billing_account_id' is missing"):
        rows_to_costs(
            [
                {
                    "period_start": JAN1,
                    "line_kind": "usage",
                    "charge_kind": "regular",
                    "service_name": "Compute Engine",
                    "service_category": None,
                }
            ],
            label_keys=(),
            granularity="daily",
            source="gcp:bigquery:t",
        )


def test_a_result_with_a_bad_timestamp_is_a_provider_error_naming_row_and_column() -> None:
    from cloudbalance_gcp._costs import rows_to_costs

    with pytest.raises(ProviderError, match=r"row 1: column 'period_start'"):
        rows_to_costs(
            [{"period_start": "yesterday"}], label_keys=(), granularity="daily", source="s"
        )


# -- partial failures ------------------------------------------------------------------------


def test_a_page_that_fails_once_reruns_the_query_without_doubling_rows(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery, sleeps: list[float]
) -> None:
    # the query answers its first page, then reading the rest fails once
    bigquery.fail(503, reason="backendError", after=1)
    frame = make_provider().costs(JAN1, JAN4)
    assert len(frame) == 12
    assert frame["BilledCost"].sum() == pytest.approx(
        make_provider().costs(JAN1, JAN4)["BilledCost"].sum()
    )
    assert len(sleeps) == 1
    queries = [r for r in bigquery.requests if r.path.endswith("/queries")]
    assert len(queries) == 3  # first try, its rerun, and the comparison run
    assert any(r.path.endswith("/cancel") for r in bigquery.requests)


def test_a_page_that_keeps_failing_returns_nothing_partial(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery
) -> None:
    bigquery.page_size = 2
    for _ in range(3):  # each attempt: the first page succeeds, the next request fails
        bigquery.fail(500, reason="internalError", after=1)
    with pytest.raises(ThrottledError, match="internalError"):
        make_provider(max_attempts=3).costs(JAN1, JAN4)


def test_quota_exceeded_on_concurrent_queries_is_retried(
    make_provider: Callable[..., GCPProvider], bigquery: FakeBigQuery, sleeps: list[float]
) -> None:
    bigquery.fail(403, reason="quotaExceeded", message="Too many concurrent queries")
    assert len(make_provider().costs(JAN1, JAN4)) == 12
    assert len(sleeps) == 1
