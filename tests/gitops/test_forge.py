"""The forge HTTP client: bounded in time, and the token goes to the configured API only."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cloudbalance.exceptions import GitOpsError
from cloudbalance.gitops import Forge


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never answers (a hung API behind a load balancer)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_forge_that_never_answers_fails_after_the_read_timeout(
    silent_server: str, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", token)
    forge = Forge(api_url=silent_server, connect_timeout=1.0, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(GitOpsError, match="timed out") as caught:
        forge.find_open("acme/infra", "main")
    assert time.monotonic() - started < 5
    assert token not in str(caught.value)


def test_a_forge_trickling_its_answer_is_cut_off_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b" " * 10)
                self.wfile.flush()
                time.sleep(0.05)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server, url = _serve(Trickle)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    try:
        forge = Forge(api_url=url, read_timeout=1.0, deadline=0.3)
        started = time.monotonic()
        with pytest.raises(GitOpsError, match="timed out"):
            forge.find_open("acme/infra", "main")
        assert time.monotonic() - started < 1.9
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_to_another_host_is_not_followed_with_the_token(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    seen: list[dict[str, str]] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    other, other_url = _serve(Elsewhere)

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", other_url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server, url = _serve(Redirecting)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    try:
        with pytest.raises(GitOpsError, match=r"301.*not followed") as caught:
            Forge(api_url=url).find_open("acme/infra", "main")
        assert token not in str(caught.value)
        assert not any(token in value for headers in seen for value in headers.values())
    finally:
        for s in (server, other):
            s.shutdown()
            s.server_close()


def test_a_redirect_within_the_api_host_is_followed(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    class Renamed(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/repos/acme/old/"):
                self.send_response(301)
                self.send_header("Location", self.path.replace("/acme/old/", "/acme/infra/"))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            assert self.headers.get("Authorization") == f"Bearer {token}"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server, url = _serve(Renamed)
    monkeypatch.setenv("GITHUB_TOKEN", token)
    try:
        assert Forge(api_url=url).find_open("acme/old", "main") is None
    finally:
        server.shutdown()
        server.server_close()


def test_forge_settings_are_checked() -> None:
    with pytest.raises(GitOpsError, match="read_timeout"):
        Forge(read_timeout=0)
    with pytest.raises(GitOpsError, match="unknown forge"):
        Forge(kind="bitbucket")  # type: ignore[arg-type]
