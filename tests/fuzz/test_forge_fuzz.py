"""Forge API answers that are not what the API documents: a clear GitOpsError, never a KeyError.

A proxy's HTML page, a body cut short, a ``201 Created`` without the pull request's number:
each is refused with the method and path asked, and the token never appears, in any shape.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cloudbalance.exceptions import GitOpsError
from cloudbalance.gitops import Forge, PullRequest

TOKEN = "ghp_fuzz_token_0123456789abcdefABCDEF"


class _Server:
    """Answers every request with ``status`` and ``body`` as given."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            do_GET = do_POST = do_PATCH = do_PUT = _any

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.httpd.serve_forever, daemon=True)
    thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


BASIC = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()

ANSWERS: list[tuple[str, int, bytes]] = [
    ("truncated-json", 200, b'{"number": 1, "html_url": "https://gith'),
    ("created-without-number", 201, b'{"html_url": "https://github.example/pull/1"}'),
    ("created-empty-object", 201, b"{}"),
    ("created-null", 201, b"null"),
    ("created-list", 201, b"[]"),
    ("number-as-text", 201, b'{"number": "7", "html_url": "https://x/7"}'),
    ("number-as-bool", 201, b'{"number": true, "html_url": "https://x/7"}'),
    ("url-missing", 201, b'{"number": 7}'),
    ("html-page", 200, b"<html><body>502 Bad Gateway</body></html>"),
    ("not-utf8", 200, b"\xff\xfe\x00junk"),
    ("nan", 201, b'{"number": NaN, "html_url": "x"}'),
    ("server-error-echoing-token", 500, f"bad token {TOKEN[:20]} / {BASIC}".encode()),
]


@pytest.mark.parametrize(("name", "status", "body"), ANSWERS, ids=[a[0] for a in ANSWERS])
@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_an_unexpected_answer_to_opening_a_pull_request_is_a_clear_error(
    server: _Server, monkeypatch: pytest.MonkeyPatch, kind: str, name: str, status: int, body: bytes
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN" if kind == "github" else "GITLAB_TOKEN", TOKEN)
    server.status, server.body = status, body
    forge = Forge(kind, api_url=server.url, read_timeout=5)  # type: ignore[arg-type]
    with pytest.raises(GitOpsError) as caught:
        forge.open("acme/infra", branch="cloudbalance/p1", base="main", title="t", body="b")
    text = str(caught.value)
    assert "POST" in text
    assert TOKEN[:8] not in text
    assert BASIC[8:40] not in text


@pytest.mark.parametrize("body", [b'{"message": "rate limited"}', b"[1, 2", b"5"])
def test_a_list_answer_that_is_not_a_list_is_a_clear_error(
    server: _Server, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    server.status, server.body = 200, body
    with pytest.raises(GitOpsError, match="GET"):
        Forge("github", api_url=server.url, read_timeout=5).find_open("acme/infra", "main")


def test_items_of_a_list_that_are_not_objects_are_skipped(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    server.status, server.body = 200, b'[1, "x", null, {"head": null}]'
    assert (
        Forge("github", api_url=server.url, read_timeout=5).find_open("acme/infra", "main") is None
    )


def test_a_well_formed_answer_still_gives_the_pull_request(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    server.status, server.body = 201, b'{"number": 7, "html_url": "https://x/7"}'
    pull = Forge("github", api_url=server.url, read_timeout=5).open(
        "acme/infra", branch="cloudbalance/p1", base="main", title="t", body="b"
    )
    assert pull == PullRequest(7, "https://x/7", "cloudbalance/p1", True)
