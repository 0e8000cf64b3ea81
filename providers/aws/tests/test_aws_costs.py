"""Cost Explorer costs: paging, mapping, windows, throttling, credentials, malformed answers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from cloudbalance_aws import AWSProvider
from cloudbalance_aws._costs import ce_window

from cloudbalance.exceptions import CredentialsError, ProviderError, ThrottledError
from cloudbalance.schema import validate_costs

BY_SERVICE = ["SERVICE", "REGION"]


def _stubbed(provider: AWSProvider) -> Stubber:
    client = boto3.client("ce", region_name="us-east-1")
    provider.clients.register("ce", "us-east-1", client)
    stubber = Stubber(client)
    stubber.activate()
    return stubber


def _page(aws: Any, day: datetime, cost: float, token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "ResultsByTime": [
            aws.day_result(
                day, [(["Amazon Simple Storage Service", "us-east-1"], aws.metrics(cost))]
            )
        ],
        "DimensionValueAttributes": [],
    }
    if token:
        page["NextPageToken"] = token
    return page


def test_costs_follow_next_page_token_until_the_last_page(moto: None, aws: Any) -> None:
    day = aws.today() - timedelta(days=5)
    aws.inject_ce(_page(aws, day, 1.5, token="t-2"), _page(aws, day + timedelta(days=1), 2.5))
    frame = AWSProvider(group_by=BY_SERVICE).costs(day, day + timedelta(days=2))
    assert list(frame["ChargePeriodStart"]) == [
        pd.Timestamp(day),
        pd.Timestamp(day + timedelta(days=1)),
    ]
    assert frame["BilledCost"].tolist() == [1.5, 2.5]


def test_groups_map_onto_focus_columns(moto: None, aws: Any) -> None:
    day = aws.today() - timedelta(days=3)
    aws.inject_ce(
        {
            "ResultsByTime": [
                aws.day_result(
                    day,
                    [
                        (
                            ["Amazon Elastic Compute Cloud - Compute", "eu-west-1"],
                            aws.metrics(10.0, amortized=7.25),
                        ),
                        (["Tax", "NoRegion"], aws.metrics(-0.5)),
                    ],
                )
            ]
        }
    )
    frame = validate_costs(AWSProvider(group_by=BY_SERVICE).costs(day, day + timedelta(days=1)))
    first, tax = frame.iloc[0], frame.iloc[1]
    assert first["ProviderName"] == "Amazon Web Services"
    assert first["BillingAccountId"] == aws.ACCOUNT
    assert first["ServiceName"] == "Amazon Elastic Compute Cloud - Compute"
    assert first["ServiceCategory"] == "Compute"
    assert first["RegionId"] == "eu-west-1"
    assert (first["BilledCost"], first["EffectiveCost"]) == (10.0, 7.25)
    assert first["BillingCurrency"] == "USD"
    assert first["ChargePeriodEnd"] == pd.Timestamp(day + timedelta(days=1))
    assert first["x_Cloud"] == "aws"
    assert first["x_Source"] == f"aws:cost-explorer:{aws.ACCOUNT}"
    assert pd.isna(first["ConsumedQuantity"])  # unit N/A: a sum of mixed units means nothing
    assert pd.isna(tax["RegionId"])
    assert tax["BilledCost"] == -0.5  # credits and refunds are data


def test_tag_group_fills_tags_and_untagged_cost_has_none(moto: None, aws: Any) -> None:
    day = aws.today() - timedelta(days=2)
    aws.inject_ce(
        {
            "ResultsByTime": [
                aws.day_result(
                    day,
                    [
                        (["workload$checkout", "us-east-1"], aws.metrics(3.0)),
                        (["workload$", "us-east-1"], aws.metrics(1.0)),
                    ],
                )
            ]
        }
    )
    provider = AWSProvider(group_by=["tag:workload", "REGION"])
    frame = provider.costs(day, day + timedelta(days=1))
    assert json.loads(frame["Tags"].iloc[0]) == {"workload": "checkout"}
    assert frame["Tags"].iloc[1] is None
    assert frame["ServiceName"].isna().all()


def test_request_asks_for_the_three_metrics_and_the_groups(aws_env: None) -> None:
    provider = AWSProvider(billing_account_id="111122223333", group_by=["SERVICE", "tag:team"])
    provider.now = lambda: datetime(2024, 3, 10, 12)
    stubber = _stubbed(provider)
    stubber.add_response(
        "get_cost_and_usage",
        {"ResultsByTime": []},
        {
            "TimePeriod": {"Start": "2024-03-01", "End": "2024-03-08"},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost", "AmortizedCost", "UsageQuantity"],
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "TAG", "Key": "team"}],
        },
    )
    frame = provider.costs(datetime(2024, 3, 1), datetime(2024, 3, 8))
    stubber.assert_no_pending_responses()
    assert len(frame) == 0


def test_hourly_granularity_asks_timestamps_and_returns_hours(aws_env: None, aws: Any) -> None:
    provider = AWSProvider(billing_account_id="111122223333", granularity="hourly", group_by=[])
    provider.now = lambda: datetime(2024, 3, 10, 12)
    stubber = _stubbed(provider)
    hours = [
        {
            "TimePeriod": {
                "Start": f"2024-03-05T{h:02d}:00:00Z",
                "End": f"2024-03-05T{h + 1:02d}:00:00Z" if h < 23 else "2024-03-06T00:00:00Z",
            },
            "Total": aws.metrics(0.5),
            "Groups": [],
            "Estimated": True,
        }
        for h in range(24)
    ]
    stubber.add_response(
        "get_cost_and_usage",
        {"ResultsByTime": hours},
        {
            "TimePeriod": {"Start": "2024-03-05T00:00:00Z", "End": "2024-03-06T00:00:00Z"},
            "Granularity": "HOURLY",
            "Metrics": ANY,
        },
    )
    frame = provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6, 7))
    assert len(frame) == 24
    assert frame["ChargePeriodStart"].iloc[23] == pd.Timestamp("2024-03-05 23:00")
    assert frame["BilledCost"].sum() == pytest.approx(12.0)


def test_window_is_cut_to_the_twelve_month_look_back() -> None:
    now = datetime(2024, 3, 10, 8)
    window = ce_window(
        datetime(2022, 1, 1), datetime(2024, 1, 1), granularity="DAILY", lookback_months=12, now=now
    )
    assert window == (datetime(2023, 3, 10), datetime(2024, 1, 1))


def test_window_keeps_whole_days_and_stops_after_today() -> None:
    now = datetime(2024, 3, 10, 8)
    daily = ce_window(
        datetime(2024, 3, 1, 6),
        datetime(2024, 3, 20),
        granularity="DAILY",
        lookback_months=12,
        now=now,
    )
    assert daily == (datetime(2024, 3, 2), datetime(2024, 3, 11))
    hourly = ce_window(
        datetime(2024, 1, 1),
        datetime(2024, 3, 9, 13),
        granularity="HOURLY",
        lookback_months=12,
        now=now,
    )
    assert hourly == (datetime(2024, 2, 26), datetime(2024, 3, 9))


def test_window_older_than_the_look_back_asks_nothing(aws_env: None) -> None:
    provider = AWSProvider()  # no billing account: STS would be asked if anything were
    provider.now = lambda: datetime(2024, 3, 10)
    stubber = _stubbed(provider)
    frame = provider.costs(datetime(2021, 1, 1), datetime(2021, 2, 1))
    stubber.assert_no_pending_responses()
    assert len(validate_costs(frame)) == 0


def test_no_cost_data_is_an_empty_costs_frame(moto: None, aws: Any) -> None:
    day = aws.today() - timedelta(days=4)
    frame = AWSProvider().costs(day, day + timedelta(days=2))
    assert len(validate_costs(frame)) == 0


def test_malformed_amount_names_page_and_field(moto: None, aws: Any) -> None:
    day = aws.today() - timedelta(days=3)
    bad = _page(aws, day, 1.0)
    bad["ResultsByTime"][0]["Groups"][0]["Metrics"]["AmortizedCost"]["Amount"] = "n/a"
    aws.inject_ce(bad)
    with pytest.raises(
        ProviderError,
        match=r"page 1: ResultsByTime\[0\]\.Groups\[0\]\.Metrics"
        r"\.AmortizedCost\.Amount is not a number",
    ):
        AWSProvider(group_by=BY_SERVICE).costs(day, day + timedelta(days=1))


def test_missing_time_period_names_the_field(moto: None, aws: Any) -> None:
    day = aws.today() - timedelta(days=3)
    aws.inject_ce({"ResultsByTime": [{"Groups": []}]})
    with pytest.raises(ProviderError, match=r"ResultsByTime\[0\]\.TimePeriod is missing"):
        AWSProvider(group_by=BY_SERVICE).costs(day, day + timedelta(days=1))


def test_throttling_is_retried_with_backoff_then_succeeds(
    aws_env: None, aws: Any, sleeps: list[float], recorder: Any
) -> None:
    provider = AWSProvider(billing_account_id="111122223333", group_by=BY_SERVICE)
    provider.now = lambda: datetime(2024, 3, 10)
    provider.sleep = recorder
    stubber = _stubbed(provider)
    for _ in range(2):
        stubber.add_client_error("get_cost_and_usage", "LimitExceededException", "Rate exceeded")
    stubber.add_response("get_cost_and_usage", _page(aws, datetime(2024, 3, 5), 4.0))
    frame = provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))
    assert frame["BilledCost"].tolist() == [4.0]
    assert len(sleeps) == 2
    assert all(0 <= s <= 20 for s in sleeps)


def test_throttling_gives_up_after_the_bounded_attempts(
    aws_env: None, sleeps: list[float], recorder: Any
) -> None:
    provider = AWSProvider(billing_account_id="111122223333", max_attempts=3)
    provider.now = lambda: datetime(2024, 3, 10)
    provider.sleep = recorder
    stubber = _stubbed(provider)
    for _ in range(3):
        stubber.add_client_error(
            "get_cost_and_usage", "ThrottlingException", "slow down", http_status_code=400
        )
    with pytest.raises(ThrottledError) as caught:
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))
    assert caught.value.attempts == 3
    assert caught.value.provider == "aws"
    assert isinstance(caught.value.__cause__.__cause__, ClientError)  # Retryable <- SDK error
    assert len(sleeps) == 2


def test_server_errors_are_transient_and_retried(
    aws_env: None, aws: Any, sleeps: list[float], recorder: Any
) -> None:
    provider = AWSProvider(billing_account_id="111122223333", group_by=BY_SERVICE)
    provider.now = lambda: datetime(2024, 3, 10)
    provider.sleep = recorder
    stubber = _stubbed(provider)
    stubber.add_client_error("get_cost_and_usage", "InternalServerError", http_status_code=500)
    stubber.add_response("get_cost_and_usage", _page(aws, datetime(2024, 3, 5), 1.0))
    assert len(provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))) == 1
    assert len(sleeps) == 1


def test_a_page_failing_after_a_good_one_returns_no_partial_data(
    aws_env: None, aws: Any, recorder: Any
) -> None:
    provider = AWSProvider(billing_account_id="111122223333", max_attempts=2, group_by=BY_SERVICE)
    provider.now = lambda: datetime(2024, 3, 10)
    provider.sleep = recorder
    stubber = _stubbed(provider)
    stubber.add_response("get_cost_and_usage", _page(aws, datetime(2024, 3, 5), 1.0, token="p2"))
    for _ in range(2):
        stubber.add_client_error("get_cost_and_usage", "ServiceUnavailable", http_status_code=503)
    with pytest.raises(ThrottledError, match="gave up after 2 attempts"):
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 7))


def test_expired_credentials_raise_credentials_error_without_retrying(
    aws_env: None, sleeps: list[float], recorder: Any
) -> None:
    provider = AWSProvider(billing_account_id="111122223333")
    provider.now = lambda: datetime(2024, 3, 10)
    provider.sleep = recorder
    stubber = _stubbed(provider)
    stubber.add_client_error(
        "get_cost_and_usage", "ExpiredTokenException", "The security token included is expired"
    )
    with pytest.raises(CredentialsError, match="expired or invalid") as caught:
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))
    assert isinstance(caught.value.__cause__, ClientError)
    assert "testing" not in str(caught.value)
    assert sleeps == []


def test_access_denied_names_the_iam_action_to_grant(aws_env: None) -> None:
    provider = AWSProvider(billing_account_id="111122223333")
    provider.now = lambda: datetime(2024, 3, 10)
    stubber = _stubbed(provider)
    stubber.add_client_error("get_cost_and_usage", "AccessDeniedException", http_status_code=400)
    with pytest.raises(CredentialsError, match=r"grant ce:GetCostAndUsage"):
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))


def test_cost_explorer_not_enabled_is_a_provider_error(aws_env: None) -> None:
    provider = AWSProvider(billing_account_id="111122223333")
    provider.now = lambda: datetime(2024, 3, 10)
    stubber = _stubbed(provider)
    stubber.add_client_error(
        "get_cost_and_usage", "DataUnavailableException", "Data is not available."
    )
    with pytest.raises(ProviderError, match="DataUnavailableException"):
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))


def test_missing_credentials_raise_credentials_error(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = AWSProvider()
    provider.now = lambda: datetime(2024, 3, 10)
    with pytest.raises(CredentialsError, match="no usable credentials"):
        provider.costs(datetime(2024, 3, 5), datetime(2024, 3, 6))


def test_fixture_cost_explorer_pages_any_window(moto: None, aws: Any) -> None:
    days = [aws.today() - timedelta(days=d) for d in range(10, 0, -1)]
    fake = aws.FixtureCostExplorer(days, [(["AWS Lambda", "us-east-1"], 1.0)], page_days=3)
    provider = AWSProvider(group_by=BY_SERVICE)
    fake.attach(provider.clients.client("ce"))
    frame = provider.costs(days[0], days[-1] + timedelta(days=1))
    assert len(frame) == 10
    assert [r.get("NextPageToken") for r in fake.requests] == [None, "page-1", "page-2", "page-3"]


def test_record_type_and_linked_account_fill_charge_category_and_sub_account(
    aws_env: None, aws: Any
) -> None:
    provider = AWSProvider(
        billing_account_id="111122223333", group_by=["LINKED_ACCOUNT", "RECORD_TYPE"]
    )
    provider.now = lambda: datetime(2024, 3, 10)
    stubber = _stubbed(provider)
    day = datetime(2024, 3, 5)
    groups = [
        (["444455556666", "Usage"], aws.metrics(5.0)),
        (["444455556666", "SavingsPlanCoveredUsage"], aws.metrics(2.0)),
        (["444455556666", "Credit"], aws.metrics(-1.0)),
        (["777788889999", "Tax"], aws.metrics(0.4)),
        (["777788889999", "SavingsPlanRecurringFee"], aws.metrics(3.0)),
        (["777788889999", "Something New"], aws.metrics(0.1)),
    ]
    stubber.add_response("get_cost_and_usage", {"ResultsByTime": [aws.day_result(day, groups)]})
    frame = provider.costs(day, day + timedelta(days=1))
    assert list(frame["ChargeCategory"]) == [
        "Usage",
        "Usage",
        "Credit",
        "Tax",
        "Purchase",
        "Adjustment",
    ]
    assert list(frame["SubAccountId"].unique()) == ["444455556666", "777788889999"]
    assert set(frame["BillingAccountId"]) == {"111122223333"}


def test_timezone_aware_window_is_read_in_utc(aws_env: None, aws: Any) -> None:
    from zoneinfo import ZoneInfo

    provider = AWSProvider(billing_account_id="111122223333", group_by=BY_SERVICE)
    provider.now = lambda: datetime(2024, 3, 10)
    stubber = _stubbed(provider)
    stubber.add_response(
        "get_cost_and_usage",
        {"ResultsByTime": []},
        {
            "TimePeriod": {"Start": "2024-03-05", "End": "2024-03-06"},
            "Granularity": "DAILY",
            "Metrics": ANY,
            "GroupBy": ANY,
        },
    )
    paris = ZoneInfo("Europe/Paris")  # 01:00 in Paris is midnight UTC in March
    provider.costs(datetime(2024, 3, 5, 1, tzinfo=paris), datetime(2024, 3, 6, 1, tzinfo=paris))
    stubber.assert_no_pending_responses()


def test_connection_failures_are_retryable_and_unknown_errors_are_provider_errors() -> None:
    from botocore.exceptions import EndpointConnectionError, ParamValidationError
    from cloudbalance_aws._session import translate_error

    from cloudbalance.retry import Retryable

    dropped = translate_error(
        EndpointConnectionError(endpoint_url="https://ce.us-east-1.amazonaws.com"),
        "get_cost_and_usage",
    )
    assert isinstance(dropped, Retryable)
    invalid = translate_error(ParamValidationError(report="bad"), "get_cost_and_usage")
    assert isinstance(invalid, ProviderError)
    assert "get_cost_and_usage failed" in str(invalid)


def test_a_day_split_across_pages_keeps_all_its_groups(moto: None, aws: Any) -> None:
    # Cost Explorer pages by groups: one day's groups may continue on the next page.
    day = aws.today() - timedelta(days=6)
    first = {
        "ResultsByTime": [aws.day_result(day, [(["AWS Lambda", "us-east-1"], aws.metrics(1.0))])],
        "NextPageToken": "more-groups",
    }
    second = {
        "ResultsByTime": [aws.day_result(day, [(["AWS Lambda", "eu-west-1"], aws.metrics(2.0))])]
    }
    aws.inject_ce(first, second)
    frame = AWSProvider(group_by=BY_SERVICE).costs(day, day + timedelta(days=1))
    assert sorted(frame["RegionId"]) == ["eu-west-1", "us-east-1"]
    assert frame["BilledCost"].sum() == 3.0


def test_cost_without_a_currency_is_malformed(moto: None, aws: Any) -> None:
    day = aws.today() - timedelta(days=3)
    bad = _page(aws, day, 1.0)
    del bad["ResultsByTime"][0]["Groups"][0]["Metrics"]["UnblendedCost"]["Unit"]
    aws.inject_ce(bad)
    with pytest.raises(ProviderError, match=r"Metrics\.UnblendedCost\.Unit is missing"):
        AWSProvider(group_by=BY_SERVICE).costs(day, day + timedelta(days=1))
