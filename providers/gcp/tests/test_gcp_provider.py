from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cloudbalance_gcp import GCPProvider
from google.auth import exceptions as auth
from google.auth.credentials import AnonymousCredentials, Credentials

from cloudbalance.exceptions import ConfigError, CredentialsError
from cloudbalance.provider import get_provider

TABLE = "billing-proj.billing_export.gcp_billing_export_v1_0A1B2C_3D4E5F_6A7B8C"


def test_an_unknown_option_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        GCPProvider(billing_table=TABLE, dataset="x")
    assert "dataset" in str(info.value)
    assert "billing_table" in str(info.value)
    assert "machine_types" in str(info.value)
    assert info.value.key == "providers.gcp.dataset"


def test_the_registry_builds_it_from_yaml_options() -> None:
    provider = get_provider("gcp", {"billing_table": TABLE, "labels": ["workload"]})
    assert isinstance(provider, GCPProvider)
    assert provider.export == "standard"
    with pytest.raises(ConfigError, match="unknown option"):
        get_provider("gcp", {"billing_tabel": TABLE})


@pytest.mark.parametrize(
    ("table", "export"),
    [
        (TABLE, "standard"),
        ("p.d.gcp_billing_export_resource_v1_0A1B2C_3D4E5F_6A7B8C", "detailed"),
    ],
)
def test_the_export_kind_is_inferred_from_the_table_name(table: str, export: str) -> None:
    assert GCPProvider(billing_table=table).export == export


def test_a_view_needs_its_kind_spelled_out() -> None:
    with pytest.raises(ConfigError, match="set export") as info:
        GCPProvider(billing_table="p.d.my_focus_view")
    assert info.value.key == "providers.gcp.export"
    assert GCPProvider(billing_table="p.d.my_focus_view", export="focus").export == "focus"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"export": "csv"}, "export"),
        ({"granularity": "monthly"}, "granularity"),
        ({"labels": "workload"}, "labels"),
        ({"labels": ["ok", ""]}, "labels"),
        ({"revision_days": -1}, "revision_days"),
        ({"revision_days": "3"}, "revision_days"),
        ({"maximum_bytes_billed": 0}, "maximum_bytes_billed"),
        ({"machine_types": ["n2-custom-4-16384"]}, "machine_types"),
        ({"machine_types": ["m3-ultramem-32"]}, "machine_types"),
        ({"resources": True}, "resources"),
        ({"partition_filter": "yes"}, "partition_filter"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_bad_option_values_are_config_errors_naming_the_key(
    options: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        GCPProvider(billing_table=TABLE, **options)
    assert info.value.key == f"providers.gcp.{key}"


def test_labels_default_to_the_workload_tag_the_store_attributes_by() -> None:
    assert GCPProvider(billing_table=TABLE).labels == ("workload",)
    assert GCPProvider(billing_table=TABLE, labels=[]).labels == ()


def test_machine_type_shapes_follow_the_family_ratios() -> None:
    provider = GCPProvider(machine_types=["n1-standard-2", "c3-highcpu-8", "e2-highmem-4"])
    shapes = {m.name: (m.vcpus, m.memory_gib) for m in provider.machine_types}
    assert shapes == {
        "n1-standard-2": (2.0, 7.5),
        "c3-highcpu-8": (8.0, 16.0),
        "e2-highmem-4": (4.0, 32.0),
    }


def test_importing_and_building_touch_neither_sdk_nor_network() -> None:
    code = (
        "import sys\n"
        "from cloudbalance_gcp import GCPProvider\n"
        f"GCPProvider(billing_table={TABLE!r}, labels=['team'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('google.cloud', 'google.auth', "
        "'grpc', 'requests')))\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_check_reports_the_identity_and_the_table(
    make_provider: Callable[..., GCPProvider],
) -> None:
    result = make_provider().check()
    assert result.ok
    assert "anonymous credentials" in result.detail
    assert TABLE in result.detail
    assert result.missing == ""


def test_check_without_a_billing_table_says_costs_need_it(
    make_provider: Callable[..., GCPProvider],
) -> None:
    result = make_provider(billing_table=None).check()
    assert not result.ok
    assert "billing_table" in result.missing


def test_check_without_any_credentials_says_how_to_log_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    result = GCPProvider(billing_table=TABLE).check()
    assert not result.ok
    assert "gcloud auth application-default login" in result.missing


def test_check_names_a_service_account_but_never_its_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = tmp_path / "sa.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "shop-prod",
                "private_key_id": "0123456789abcdef0123456789abcdef01234567",
                "private_key": pem,
                "client_email": "cloudbalance@shop-prod.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": "http://127.0.0.1:9/token",
            }
        )
    )
    provider = GCPProvider(billing_table=TABLE, credentials_file=str(key))
    result = provider.check()
    text = f"{result.detail} {result.missing}"
    assert "cloudbalance@shop-prod.iam.gserviceaccount.com" in text
    assert "shop-prod" in text
    assert "PRIVATE KEY" not in text
    assert "0123456789abcdef0123456789abcdef01234567" not in text
    # the token endpoint is unreachable: reported, not raised
    assert not result.ok


class _RevokedCredentials(Credentials):  # type: ignore[misc]
    def refresh(self, request: object) -> None:
        raise auth.RefreshError("invalid_grant: Token has been expired or revoked.")


def test_check_reports_expired_credentials_instead_of_raising() -> None:
    result = GCPProvider(billing_table=TABLE, credentials=_RevokedCredentials()).check()
    assert not result.ok
    assert "expired or revoked" in result.missing


def test_costs_with_no_credentials_at_all_raise_credentials_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datetime import datetime

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(CredentialsError, match="no Google credentials found"):
        GCPProvider(billing_table=TABLE).costs(datetime(2024, 1, 1), datetime(2024, 1, 2))


def test_anonymous_credentials_are_described_as_such() -> None:
    from cloudbalance_gcp._auth import describe

    assert describe(AnonymousCredentials()) == "anonymous credentials"
