from __future__ import annotations

import subprocess
import sys

import pytest

import cloudbalance


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert cloudbalance.__all__ == sorted(cloudbalance.__all__)
    for name in cloudbalance.__all__:
        assert getattr(cloudbalance, name) is not None, name


def test_lazy_table_matches_all() -> None:
    assert set(cloudbalance._LAZY) | {"__version__"} == set(cloudbalance.__all__)
    assert list(cloudbalance._LAZY) == sorted(cloudbalance._LAZY)


def test_import_is_light() -> None:
    code = (
        "import sys, cloudbalance; heavy = {'prophet', 'duckdb', 'pandas', 'boto3', "
        "'azure', 'google', 'pulumi', 'scipy', 'highspy'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="does_not_exist"):
        cloudbalance.does_not_exist  # noqa: B018


def test_the_contract_suite_flags_secrets_but_not_paths() -> None:
    from cloudbalance.testing import _looks_secret

    assert _looks_secret("key AKIAABCDEFGHIJKLMNOP")
    assert _looks_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY0")
    assert not _looks_secret("s3://acmebillingexports/focus/acmefocusexport/data")
    assert not _looks_secret("profile finops, account 123456789012")
