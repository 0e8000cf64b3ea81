"""Credentials: default chain, named profiles, assume-role, and what `check` reports."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cloudbalance_aws import AWSProvider

from cloudbalance.exceptions import CredentialsError

SECRET = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key id
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_check_finds_environment_credentials_and_names_the_account(moto: None, aws: Any) -> None:
    result = AWSProvider().check()
    assert result.ok
    assert result.provider == "aws"
    assert "default chain (env)" in result.detail
    assert f"account {aws.ACCOUNT}" in result.detail
    assert "testing" not in result.detail


def test_check_without_any_credentials_says_what_is_missing(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = AWSProvider().check()
    assert not result.ok
    assert "AWS credentials" in result.missing
    assert "aws sso login" in result.missing


def test_named_profile_is_used_and_its_secret_never_printed(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[billing]\naws_access_key_id = {SECRET}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    from moto import mock_aws

    with mock_aws():
        provider = AWSProvider(profile="billing")
        result = provider.check()
        session = provider.clients.session()
    assert result.ok, result
    assert "profile 'billing' (shared-credentials-file)" in result.detail
    assert session.profile_name == "billing"
    assert SECRET not in f"{result.detail} {result.missing}"
    assert SECRET_KEY not in f"{result.detail} {result.missing}"


def test_missing_profile_is_reported_by_check_and_raised_by_costs(aws_env: None, aws: Any) -> None:
    provider = AWSProvider(profile="nobody")
    result = provider.check()
    assert not result.ok
    assert "'nobody'" in result.missing
    day = aws.today() - timedelta(days=2)
    with pytest.raises(CredentialsError, match="profile 'nobody'"):
        provider.costs(day, day + timedelta(days=1))


def test_assumed_role_is_used_for_every_client(moto: None, aws: Any) -> None:
    role = f"arn:aws:iam::{aws.ACCOUNT}:role/billing-reader"
    provider = AWSProvider(role_arn=role, external_id="ext-1", role_session_name="cb-test")
    result = provider.check()
    assert result.ok, result
    assert "(assume-role)" in result.detail
    assert "assumed-role/billing-reader/cb-test" in result.detail
    credentials = provider.clients.session().get_credentials().get_frozen_credentials()
    assert credentials.access_key != "testing"  # the role's, not the base credentials


def test_assume_role_refusal_is_a_credentials_error_naming_the_action(
    aws_env: None, aws: Any
) -> None:
    import boto3
    from botocore.stub import Stubber

    provider = AWSProvider(role_arn=f"arn:aws:iam::{aws.ACCOUNT}:role/nope")
    real_client = boto3.Session.client

    def client(self: Any, service: str, **kwargs: Any) -> Any:
        built = real_client(self, service, **kwargs)
        if service == "sts":
            stubber = Stubber(built)
            stubber.add_client_error("assume_role", "AccessDenied", http_status_code=403)
            stubber.activate()
        return built

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(boto3.Session, "client", client)
        result = provider.check()
    assert not result.ok
    assert "grant sts:AssumeRole" in result.missing


class _Raw:
    """The body of a canned HTTP answer, as botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_kw: Any) -> Any:
        yield self.body


def _answer_with(provider: AWSProvider, body: bytes, status: int = 200) -> None:
    """Every STS request of ``provider`` gets ``body`` back, as from a proxy in the way."""
    from botocore.awsrequest import AWSResponse

    client = provider.clients.client("sts")

    def send(request: Any, **_kw: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {"Content-Type": "text/html"}, _Raw(body))

    client.meta.events.register("before-send.sts.*", send)


@pytest.mark.parametrize("status", [200, 403, 502])
def test_check_reports_a_reply_that_is_not_aws_and_never_echoes_the_key_id(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRET)
    provider = AWSProvider(max_attempts=1)
    page = f"<html><body>Proxy refused Credential={SECRET}/20250101/us-east-1/sts</body>"
    _answer_with(provider, page.encode(), status)
    result = provider.check()  # must not raise
    assert not result.ok
    shown = f"{result.detail} {result.missing}"
    assert "get_caller_identity" in shown
    assert SECRET not in shown
    assert "AKIA" not in shown
