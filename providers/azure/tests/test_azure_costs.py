from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pandas as pd
import pytest
from cloudbalance_azure.testing import SUB, AzureServer, FakeCredential, Reply, Usage, resource

from cloudbalance.exceptions import CredentialsError, ProviderError, ThrottledError
from cloudbalance.provider import CostProvider, get_provider
from cloudbalance.schema import validate_costs
from cloudbalance.testing import ProviderContract

START = datetime(2024, 3, 1)
END = datetime(2024, 3, 8)


class TestAzureContract(ProviderContract):
    name = "azure"
    start = START
    end = END

    @pytest.fixture
    def provider(self, make_provider: Any) -> CostProvider:
        provider: CostProvider = make_provider(tag_keys=["workload", "team"])
        return provider


def test_rows_carry_focus_names_region_tags_and_both_cost_kinds(make_provider: Any) -> None:
    frame = make_provider(tag_keys=["workload"]).costs(START, END)
    web = frame[(frame.ResourceId == resource("web-1")) & (frame.ServiceName == "Virtual Machines")]
    first = web.sort_values("ChargePeriodStart").iloc[0]
    assert first.ProviderName == "Microsoft"
    assert first.x_Cloud == "azure"
    assert first.BillingAccountId == SUB
    assert first.SubAccountId == SUB
    assert first.RegionId == "westeurope"
    assert first.ServiceCategory == "Compute"
    assert json.loads(first.Tags) == {"workload": "checkout"}
    assert first.BilledCost == 10.0
    assert first.EffectiveCost == 8.0
    assert first.ChargePeriodEnd - first.ChargePeriodStart == pd.Timedelta(days=1)
    assert first.x_Source == f"azure:query:/subscriptions/{SUB}"


def test_purchase_billed_on_one_day_and_amortized_rows_are_both_kept(make_provider: Any) -> None:
    frame = make_provider().costs(START, END)
    assert frame.BilledCost.sum() == pytest.approx(sum(10 + d for d in range(7)) + 7 * 21.5 + 300)
    assert frame.EffectiveCost.sum() == pytest.approx(
        sum(8 + d for d in range(7)) + 7 * 13.5 + 7 * 2.0
    )
    support = frame[frame.ServiceName == "Support"]
    assert len(support) == 7
    assert (support.BilledCost == 0).all()
    assert support.ResourceId.isna().all()
    assert support.RegionId.isna().all()


def test_without_amortized_query_effective_cost_is_the_billed_cost(
    make_provider: Any, azure_server: AzureServer
) -> None:
    frame = make_provider(amortized=False).costs(START, END)
    assert (frame.EffectiveCost == frame.BilledCost).all()
    assert {q["type"] for q in azure_server.queries()} == {"ActualCost"}


def test_queries_respect_the_two_grouping_limit_and_ask_whole_days(
    make_provider: Any, azure_server: AzureServer
) -> None:
    make_provider(tag_keys=["workload", "team"]).costs(START, END)
    queries = azure_server.queries()
    assert len(queries) == 5  # actual, amortized, location, two tags
    for q in queries:
        assert len(q["dataset"]["grouping"]) <= 2
        assert q["dataset"]["granularity"] == "Daily"
        assert q["timePeriod"] == {"from": "2024-03-01T00:00:00Z", "to": "2024-03-07T23:59:59Z"}


def test_long_window_is_split_into_chunks_of_chunk_days(
    make_provider: Any, azure_server: AzureServer
) -> None:
    frame = make_provider(chunk_days=3, amortized=False).costs(START, END)
    periods = [
        q["timePeriod"]
        for q in azure_server.queries()
        if len(q["dataset"]["grouping"]) == 2
        and q["dataset"]["grouping"][1]["name"] == "ServiceName"
    ]
    assert [p["from"][:10] for p in periods] == ["2024-03-01", "2024-03-04", "2024-03-07"]
    assert [p["to"][:10] for p in periods] == ["2024-03-03", "2024-03-06", "2024-03-07"]
    assert frame.ChargePeriodStart.dt.normalize().nunique() == 7


def test_window_starting_mid_day_returns_only_whole_days_after_it(make_provider: Any) -> None:
    frame = make_provider().costs(datetime(2024, 3, 1, 12), datetime(2024, 3, 3))
    assert sorted(frame.ChargePeriodStart.dt.day.unique()) == [2]


def test_next_link_pages_are_followed_with_the_same_body_and_token(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.page_size = 4
    paged = make_provider(amortized=False).costs(START, END)
    calls = [r for r in azure_server.requests if r["path"].endswith("/query")]
    assert any("$skiptoken" in r["query"] for r in calls)
    assert all(r["auth"] == "Bearer fixture-token" for r in calls)
    follow = [r for r in calls if "$skiptoken" in r["query"]]
    assert follow[0]["body"]["type"] == "ActualCost"
    azure_server.page_size = 1000
    whole = make_provider(amortized=False).costs(START, END)
    pd.testing.assert_frame_equal(paged, whole)


def test_next_link_to_another_host_is_refused(
    make_provider: Any, azure_server: AzureServer
) -> None:
    body = {
        "properties": {
            "nextLink": "https://evil.example/query?$skiptoken=1",
            "columns": [
                {"name": "Cost"},
                {"name": "UsageDate"},
                {"name": "ResourceId"},
                {"name": "ServiceName"},
                {"name": "Currency"},
            ],
            "rows": [[1.0, 20240301, "", "Support", "USD"]],
        }
    }
    azure_server.fail_next(Reply(200, body))
    with pytest.raises(ProviderError, match="outside"):
        make_provider().costs(START, END)


def test_throttling_honours_the_cost_management_retry_header(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(
        Reply(
            429,
            {"error": {"code": "429", "message": "Too many requests"}},
            {"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "37"},
        ),
        Reply(
            429, {"error": {"code": "429", "message": "Too many requests"}}, {"Retry-After": "5"}
        ),
    )
    provider = make_provider(amortized=False)
    frame = provider.costs(START, END)
    assert len(frame) > 0
    assert provider.waits[0] >= 37
    assert provider.waits[1] >= 5
    assert len(provider.waits) == 2


def test_throttling_on_a_next_page_is_retried_too(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.page_size = 10
    provider = make_provider(amortized=False)
    original = azure_server.answer
    state = {"done": False}

    def answer(method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
        if "$skiptoken" in url and not state["done"]:
            state["done"] = True
            azure_server.requests.append({"path": url, "query": {}, "body": None, "auth": None})
            return Reply(429, {"error": {"code": "429"}}, {"Retry-After": "2"})
        return original(method, url, headers, body)

    azure_server.answer = answer  # type: ignore[method-assign]
    frame = provider.costs(START, END)
    assert state["done"]
    assert provider.waits
    assert provider.waits[0] >= 2
    assert len(frame) == 7 * 4 + 1


def test_throttling_that_never_ends_gives_throttled_error(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(*[Reply(429, {"error": {"code": "429"}}, {"Retry-After": "1"})] * 3)
    provider = make_provider(max_attempts=3)
    with pytest.raises(ThrottledError) as info:
        provider.costs(START, END)
    assert info.value.attempts == 3
    assert len(provider.waits) == 2


def test_transient_server_error_is_retried(make_provider: Any, azure_server: AzureServer) -> None:
    azure_server.fail_next(Reply(503, {"error": {"code": "ServiceUnavailable", "message": "x"}}))
    provider = make_provider()
    assert len(provider.costs(START, END)) > 0
    assert len(provider.waits) == 1


def test_expired_token_is_a_credentials_error(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(
        Reply(
            401,
            {"error": {"code": "ExpiredAuthenticationToken", "message": "The access token expiry"}},
        )
    )
    with pytest.raises(CredentialsError, match="ExpiredAuthenticationToken") as info:
        make_provider().costs(START, END)
    assert info.value.__cause__ is not None
    assert "fixture-token" not in str(info.value)


def test_failing_credential_chain_is_a_credentials_error(make_provider: Any) -> None:
    with pytest.raises(CredentialsError, match="expired"):
        make_provider(credential=FakeCredential(fail=True)).costs(START, END)


def test_missing_role_is_a_credentials_error_naming_the_role(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(
        Reply(
            403,
            {"error": {"code": "AuthorizationFailed", "message": "does not have authorization"}},
        )
    )
    with pytest.raises(CredentialsError, match="Cost Management Reader"):
        make_provider().costs(START, END)


def test_bad_request_error_body_is_reported(make_provider: Any, azure_server: AzureServer) -> None:
    azure_server.fail_next(
        Reply(400, {"error": {"code": "BadRequest", "message": "Invalid query definition"}})
    )
    with pytest.raises(ProviderError, match="BadRequest: Invalid query definition"):
        make_provider().costs(START, END)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "properties": {
                    "columns": [
                        {"name": "UsageDate"},
                        {"name": "ResourceId"},
                        {"name": "ServiceName"},
                        {"name": "Currency"},
                    ],
                    "rows": [[20240301, "", "x", "USD"]],
                }
            },
            "column 'Cost' is missing",
        ),
        (
            {
                "properties": {
                    "columns": [{"name": "Cost"}, {"name": "UsageDate"}, {"name": "Currency"}],
                    "rows": [[1.0, "yesterday", "USD"]],
                }
            },
            "row 1 column 'UsageDate'",
        ),
        (
            {
                "properties": {
                    "columns": [{"name": "Cost"}, {"name": "UsageDate"}, {"name": "Currency"}],
                    "rows": [[1.0, 20240301]],
                }
            },
            "row 1 has 2 values for 3 columns",
        ),
        (
            {
                "properties": {
                    "columns": [{"name": "Cost"}, {"name": "UsageDate"}, {"name": "Currency"}],
                    "rows": [["lots", 20240301, "USD"]],
                }
            },
            "column 'Cost' is not a number",
        ),
        ({"value": []}, "no 'properties' object"),
    ],
)
def test_malformed_response_is_a_provider_error_naming_the_place(
    make_provider: Any, azure_server: AzureServer, body: dict[str, Any], message: str
) -> None:
    azure_server.fail_next(Reply(200, body))
    with pytest.raises(ProviderError, match=message):
        make_provider().costs(START, END)


def test_empty_result_is_an_empty_costs_frame(
    make_provider: Any, azure_server: AzureServer
) -> None:
    frame = make_provider().costs(datetime(2023, 1, 1), datetime(2023, 1, 5))
    assert len(validate_costs(frame)) == 0
    assert len(azure_server.queries()) == 2  # no lookups for an empty chunk


def test_empty_window_sends_no_request(make_provider: Any, azure_server: AzureServer) -> None:
    frame = make_provider().costs(datetime(2024, 3, 2, 1), datetime(2024, 3, 2, 23))
    assert len(frame) == 0
    assert azure_server.requests == []


def test_recorded_response_with_iso_dates_and_pretax_cost_parses(
    make_provider: Any, azure_server: AzureServer
) -> None:
    recorded = {
        "id": f"/subscriptions/{SUB}/providers/Microsoft.CostManagement/query/x",
        "name": "x",
        "type": "Microsoft.CostManagement/query",
        "location": None,
        "sku": None,
        "eTag": None,
        "properties": {
            "nextLink": None,
            "columns": [
                {"name": "PreTaxCost", "type": "Number"},
                {"name": "UsageDate", "type": "Datetime"},
                {"name": "ResourceId", "type": "String"},
                {"name": "ServiceName", "type": "String"},
                {"name": "Currency", "type": "String"},
            ],
            "rows": [
                [2.5, "2024-03-01T00:00:00", resource("a"), "Storage", "EUR"],
                [-1.0, "2024-03-01T00:00:00", "", "Azure Credits", "EUR"],
            ],
        },
    }
    azure_server.fail_next(Reply(200, recorded))
    frame = make_provider(amortized=False).costs(datetime(2024, 3, 1), datetime(2024, 3, 2))
    assert sorted(frame.BilledCost) == [-1.0, 2.5]
    assert set(frame.BillingCurrency) == {"EUR"}


def test_resource_group_scope_has_its_own_billing_account_id(
    make_provider: Any, azure_server: AzureServer
) -> None:
    frame = make_provider(resource_group="shop").costs(START, datetime(2024, 3, 2))
    assert set(frame.BillingAccountId) == {f"{SUB}/resourceGroups/shop"}
    assert azure_server.requests[0]["path"] == (
        f"/subscriptions/{SUB}/resourceGroups/shop/providers/Microsoft.CostManagement/query"
    )


def test_management_group_scope_takes_sub_account_from_resource_ids(
    make_provider: Any, azure_server: AzureServer
) -> None:
    frame = make_provider(subscription_id=None, management_group="platform").costs(
        START, datetime(2024, 3, 2)
    )
    assert set(frame.BillingAccountId) == {"managementGroups/platform"}
    assert set(frame.dropna(subset=["ResourceId"]).SubAccountId) == {SUB}
    assert azure_server.requests[0]["path"].startswith(
        "/providers/Microsoft.Management/managementGroups/platform/"
    )


def test_registered_entry_point_builds_the_provider() -> None:
    provider = get_provider("azure", {"subscription_id": SUB})
    assert provider.name == "azure"


def test_non_json_query_body_is_a_malformed_response(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(Reply(200, b"<html>gateway</html>"))
    with pytest.raises(ProviderError, match="not JSON"):
        make_provider().costs(START, END)


def test_charges_without_a_resource_get_no_region_or_tags_from_each_other(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.usage.append(
        Usage(date(2024, 3, 1), "", "Marketplace", "US East", 50.0, 50.0, {"workload": "x"})
    )
    frame = make_provider(tag_keys=["workload"]).costs(START, datetime(2024, 3, 2))
    no_resource = frame[frame.ResourceId.isna()]
    assert set(no_resource.ServiceName) == {"Support", "Marketplace"}
    assert no_resource.RegionId.isna().all()
    assert no_resource.Tags.isna().all()


def _services_periods(server: AzureServer) -> list[tuple[str, str]]:
    return [
        (q["timePeriod"]["from"][:10], q["timePeriod"]["to"][:10])
        for q in server.queries()
        if q["type"] == "ActualCost" and q["dataset"]["grouping"][1]["name"] == "ServiceName"
    ]


def test_gateway_timeout_on_a_long_chunk_halves_it_instead_of_retrying(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(Reply(504, {"error": {"code": "GatewayTimeout", "message": "slow"}}))
    provider = make_provider(amortized=False)
    frame = provider.costs(START, END)
    assert provider.waits == []
    assert _services_periods(azure_server) == [
        ("2024-03-01", "2024-03-07"),
        ("2024-03-01", "2024-03-03"),
        ("2024-03-04", "2024-03-07"),
    ]
    expected = make_provider(amortized=False).costs(START, END)
    pd.testing.assert_frame_equal(frame, expected)


def test_query_over_the_size_limit_is_split_down_to_days(
    make_provider: Any, azure_server: AzureServer
) -> None:
    too_large = Reply(
        400, {"error": {"code": "BadRequest", "message": "The query result exceeds the row limit"}}
    )
    azure_server.fail_next(too_large, too_large)
    frame = make_provider(amortized=False).costs(START, datetime(2024, 3, 5))
    assert _services_periods(azure_server) == [
        ("2024-03-01", "2024-03-04"),
        ("2024-03-01", "2024-03-02"),
        ("2024-03-01", "2024-03-01"),
        ("2024-03-02", "2024-03-02"),
        ("2024-03-03", "2024-03-04"),
    ]
    assert frame.ChargePeriodStart.dt.day.nunique() == 4


def test_size_limit_on_a_single_day_is_a_provider_error(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.fail_next(
        Reply(400, {"error": {"code": "BadRequest", "message": "The query exceeds the limit"}})
    )
    with pytest.raises(ProviderError, match="exceeds"):
        make_provider().costs(START, datetime(2024, 3, 2))


def test_failure_in_a_later_chunk_fails_the_whole_call_without_partial_rows(
    make_provider: Any, azure_server: AzureServer
) -> None:
    provider = make_provider(chunk_days=3, amortized=False, max_attempts=2)
    # chunk 1 is requests 1-2 (costs, locations); chunk 2 starts at request 3
    throttled = Reply(429, {"error": {"code": "429"}}, {"Retry-After": "1"})
    azure_server.fail_request(3, throttled)
    azure_server.fail_request(4, throttled)
    with pytest.raises(ThrottledError):
        provider.costs(START, END)
    assert len(azure_server.requests) == 4  # gave up on chunk 2; chunk 3 never asked


def test_expired_token_on_a_next_page_is_a_credentials_error(
    make_provider: Any, azure_server: AzureServer
) -> None:
    azure_server.page_size = 5
    azure_server.fail_request(
        2, Reply(401, {"error": {"code": "ExpiredAuthenticationToken", "message": "expired"}})
    )
    with pytest.raises(CredentialsError, match="expired"):
        make_provider().costs(START, END)
