"""Options of providers.aws: checked at construction, with the option's key in the error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cloudbalance_aws import AWSProvider

from cloudbalance.exceptions import ConfigError
from cloudbalance.provider import get_provider


def test_unknown_option_names_it_and_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        AWSProvider(profle="billing")
    assert caught.value.key == "providers.aws.profle"
    assert "valid options: profile, region, role_arn" in str(caught.value)


def test_registry_builds_the_provider_from_configuration_options() -> None:
    provider = get_provider("aws", {"profile": "billing", "group_by": "tag:workload"})
    assert isinstance(provider, AWSProvider)
    assert provider.options.group_by[0].request() == {"Type": "TAG", "Key": "workload"}


def test_unknown_option_through_the_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"providers\.aws\.granularty"):
        get_provider("aws", {"granularty": "DAILY"})


@pytest.mark.parametrize(
    ("options", "key", "text"),
    [
        ({"granularity": "MONTHLY"}, "granularity", "DAILY, HOURLY"),
        ({"group_by": ["SERVICE", "REGION", "USAGE_TYPE"]}, "group_by", "at most two"),
        ({"group_by": ["SERVCE"]}, "group_by", "unknown dimension 'SERVCE'"),
        ({"group_by": ["USAGE_TYPE", "INSTANCE_TYPE"]}, "group_by", "both fill SkuId"),
        ({"group_by": ["tag:"]}, "group_by", "needs a key"),
        ({"role_arn": "arn:aws:iam::12:user/me"}, "role_arn", "IAM role ARN"),
        ({"billing_account_id": "12345"}, "billing_account_id", "12-digit"),
        ({"lookback_months": 40}, "lookback_months", "from 1 to 38"),
        ({"revision_days": True}, "revision_days", "whole number"),
        ({"spot": "yes"}, "spot", "true or false"),
        ({"regions": [""]}, "regions", "list of strings"),
        ({"source": "export"}, "export_bucket", "required when source is 'export'"),
        (
            {"source": "export", "export_bucket": "b", "granularity": "HOURLY"},
            "granularity",
            "'cost_explorer' only",
        ),
    ],
)
def test_bad_values_name_the_option(options: dict[str, object], key: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text) as caught:
        AWSProvider(**options)
    assert caught.value.key == f"providers.aws.{key}"


def test_defaults_group_daily_costs_by_workload_tag_and_region() -> None:
    provider = AWSProvider()
    assert provider.options.granularity == "DAILY"
    assert [k.request() for k in provider.options.group_by] == [
        {"Type": "TAG", "Key": "workload"},
        {"Type": "DIMENSION", "Key": "REGION"},
    ]
    assert provider.revision_days == 3


def test_a_bare_account_number_is_accepted_as_billing_account() -> None:
    assert AWSProvider(billing_account_id=123456789012).billing_account_id() == "123456789012"


def test_importing_and_building_the_provider_does_not_import_boto3() -> None:
    code = (
        "import sys, cloudbalance_aws\n"
        "role = 'arn:aws:iam::123456789012:role/x'\n"
        "cloudbalance_aws.AWSProvider(profile='nobody', role_arn=role)\n"
        "print('boto3' in sys.modules, 'botocore' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("value", [0, -2, "slow", False])
def test_timeouts_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ConfigError, match="positive number of seconds") as caught:
        AWSProvider(read_timeout=value)
    assert caught.value.key == "providers.aws.read_timeout"


def test_every_client_gets_the_connect_and_read_timeouts() -> None:
    provider = AWSProvider(connect_timeout=3, read_timeout=7.5)
    config = provider.clients._config()
    assert (config.connect_timeout, config.read_timeout) == (3.0, 7.5)
    assert (AWSProvider().clients._config().read_timeout) == 60.0


def test_an_endpoint_that_never_answers_fails_after_the_read_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket
    import time
    from datetime import datetime

    import boto3

    from cloudbalance.exceptions import ProviderError

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    host, port = server.getsockname()[:2]
    try:
        provider = AWSProvider(read_timeout=0.3, max_attempts=1, billing_account_id="123456789012")
        provider.sleep = lambda _seconds: None
        client = boto3.Session(region_name="us-east-1").client(
            "ce", endpoint_url=f"http://{host}:{port}", config=provider.clients._config()
        )
        provider.clients.register("ce", "us-east-1", client)
        started = time.monotonic()
        with pytest.raises(ProviderError):
            provider.costs(datetime(2026, 11, 1), datetime(2026, 11, 3))
        assert time.monotonic() - started < 5
    finally:
        server.close()


def test_data_exports_reread_a_month_because_they_rewrite_it() -> None:
    exported = AWSProvider(source="export", export_bucket="billing")
    assert exported.revision_days == 35
    assert AWSProvider().revision_days == 3
    assert AWSProvider(source="export", export_bucket="b", revision_days=7).revision_days == 7
