from __future__ import annotations

import base64
import urllib.parse

import pytest

from cloudbalance.redaction import redact

TOKEN = "ghp_R3dact10nT0kenValue0123456789abcd"


def test_the_literal_token_and_url_credentials_are_removed() -> None:
    text = f"push to https://x-access-token:{TOKEN}@github.com/acme/infra refused: {TOKEN}"
    assert redact(text, [TOKEN]) == "push to https://***@github.com/acme/infra refused: ***"


@pytest.mark.parametrize("user", ["", "x", "x-access-token:", "ab:", "oauth2:"])
def test_the_token_in_base64_is_removed_wherever_it_starts(user: str) -> None:
    encoded = base64.b64encode(f"{user}{TOKEN}".encode()).decode()
    shown = redact(f"server said: Authorization: Basic {encoded}", [TOKEN])
    assert "***" in shown
    # what remains encodes the user name and at most two bytes of the token on each side
    remaining = shown.replace("server said: Authorization: Basic ", "").replace("***", "")
    assert len(remaining) <= len(base64.b64encode(user.encode())) + 8


def test_a_long_prefix_echoed_by_a_server_is_removed_a_short_one_is_kept() -> None:
    assert TOKEN[:20] not in redact(f"bad credentials for {TOKEN[:20]}...", [TOKEN])
    assert redact("ghp_ is a GitHub prefix", [TOKEN]) == "ghp_ is a GitHub prefix"


def test_the_url_encoded_token_is_removed() -> None:
    secret = "p@ss/word+with=signs"
    assert urllib.parse.quote(secret, safe="") not in redact(
        f"token={urllib.parse.quote(secret, safe='')}", [secret]
    )


def test_aws_access_key_ids_are_never_shown() -> None:
    text = (
        "Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/ce/aws4_request; ASIAY34FZKBOKMUTVV7A"
    )
    shown = redact(text)
    assert "AKIA" not in shown
    assert "ASIA" not in shown
    assert "/20250101/us-east-1/ce/aws4_request" in shown


class _Leaky:
    """A provider whose SDK puts the access key id in its error (a proxy's page, say)."""

    name = "leaky"
    revision_days = 0

    def costs(self, start: object, end: object) -> object:
        raise RuntimeError("403 from proxy: Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1")

    def prices(self, locations: object = None) -> object:
        raise AssertionError("not reached")

    def check(self) -> object:
        raise AssertionError("not reached")


def test_sync_errors_never_carry_an_access_key_id(tmp_path: object) -> None:
    from pathlib import Path

    from cloudbalance.config import Settings
    from cloudbalance.provider import register_provider, unregister_provider
    from cloudbalance.store import Store
    from cloudbalance.sync import sync

    register_provider("leaky", lambda **_options: _Leaky())  # type: ignore[arg-type,return-value]
    try:
        with Store(Path(str(tmp_path)) / "s.duckdb") as store:
            (result,) = sync(Settings(providers={"leaky": {}}), store)
    finally:
        unregister_provider("leaky")
    assert not result.ok
    assert "AKIA" not in (result.error or "")
    assert "Credential=***" in (result.error or "")
