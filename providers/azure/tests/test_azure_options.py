from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from cloudbalance_azure import OPTIONS, AzureProvider
from cloudbalance_azure.testing import SUB, AzureServer, FakeCredential

from cloudbalance.exceptions import ConfigError
from cloudbalance.provider import get_provider


def test_unknown_option_names_it_and_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        AzureProvider(subscription_id=SUB, subscripton="typo")
    assert "subscripton" in str(info.value)
    assert "subscription_id" in str(info.value)
    assert info.value.key == "providers.azure.subscripton"


def test_unknown_option_through_the_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="granularity"):
        get_provider("azure", {"subscription_id": SUB, "granularity": "Hourly"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of"),
        ({"subscription_id": SUB, "management_group": "mg"}, "exactly one of"),
        ({"resource_group": "rg"}, "needs providers.azure.subscription_id"),
        ({"scope": "/subscriptions/x/resourceGroups/y/providers/Foo"}, "is not a subscription"),
        ({"subscription_id": SUB, "chunk_days": 400}, "chunk_days"),
        ({"subscription_id": SUB, "revision_days": -1}, "revision_days"),
        ({"subscription_id": SUB, "max_attempts": "3"}, "max_attempts"),
        ({"subscription_id": SUB, "reservation_term": "5 Years"}, "reservation_term"),
        ({"subscription_id": SUB, "vm_sizes": {"Standard_X": [0, 4]}}, "vm_sizes.Standard_X"),
        ({"subscription_id": SUB, "tag_keys": [1, 2]}, "tag_keys"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AzureProvider(**options)


@pytest.mark.parametrize(
    ("options", "path", "account"),
    [
        ({"subscription_id": SUB}, f"/subscriptions/{SUB}", SUB),
        ({"scope": f"subscriptions/{SUB}/"}, f"/subscriptions/{SUB}", SUB),
        (
            {"subscription_id": SUB, "resource_group": "rg"},
            f"/subscriptions/{SUB}/resourceGroups/rg",
            f"{SUB}/resourceGroups/rg",
        ),
        (
            {"management_group": "mg"},
            "/providers/Microsoft.Management/managementGroups/mg",
            "managementGroups/mg",
        ),
        (
            {"billing_account": "1234:5678_2019-05-31"},
            "/providers/Microsoft.Billing/billingAccounts/1234:5678_2019-05-31",
            "1234:5678_2019-05-31",
        ),
        (
            {"scope": "/providers/Microsoft.Billing/billingAccounts/12/billingProfiles/BP1"},
            "/providers/Microsoft.Billing/billingAccounts/12/billingProfiles/BP1",
            "12/billingProfiles/BP1",
        ),
    ],
)
def test_scopes_and_their_billing_account_ids(
    options: dict[str, Any], path: str, account: str
) -> None:
    provider = AzureProvider(**options)
    assert provider.scope is not None
    assert provider.scope.path == path
    assert provider.scope.billing_account_id == account


def test_every_documented_option_is_accepted() -> None:
    assert "subscription_id" in OPTIONS
    assert list(OPTIONS) == sorted(OPTIONS)


def test_constructor_touches_no_network_and_no_credential() -> None:
    credential = FakeCredential()
    AzureProvider(subscription_id=SUB, credential=credential, endpoint="https://127.0.0.1:9")
    assert credential.calls == 0


def test_importing_the_plugin_loads_no_azure_sdk() -> None:
    code = (
        "import sys, cloudbalance_azure\n"
        "p = cloudbalance_azure.AzureProvider(subscription_id='x')\n"
        "print(sorted(m for m in sys.modules if m.startswith('azure')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_reports_the_scope_and_credential_without_the_token(
    make_provider: Any,
) -> None:
    result = make_provider().check()
    assert result.ok
    assert f"/subscriptions/{SUB}" in result.detail
    assert "FakeCredential" in result.detail
    assert "fixture-token" not in f"{result.detail} {result.missing}"


def test_check_with_failing_credentials_says_what_is_missing(make_provider: Any) -> None:
    result = make_provider(credential=FakeCredential(fail=True)).check()
    assert not result.ok
    assert "az login" in result.missing
    assert "refresh token" not in result.detail


def test_check_sends_no_request(make_provider: Any, azure_server: AzureServer) -> None:
    make_provider().check()
    assert azure_server.requests == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"endpoint": "http://management.example.com"}, "providers.azure.endpoint"),
        ({"prices_endpoint": "ftp://prices"}, "providers.azure.prices_endpoint"),
        ({"credential": "my-secret"}, "TokenCredential"),
    ],
)
def test_unsafe_endpoints_and_non_credentials_are_config_errors(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        AzureProvider(subscription_id=SUB, **options)
    assert "my-secret" not in str(info.value)


def test_focus_cost_exports_reread_a_month_because_they_rewrite_it() -> None:
    assert AzureProvider(export_paths="exports/").revision_days == 35
    assert AzureProvider(subscription_id=SUB).revision_days == 5
