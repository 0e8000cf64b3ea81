"""Pull requests on GitHub and merge requests on GitLab, through their REST APIs.

Only the standard library is used (``urllib``, which honours ``HTTPS_PROXY``): four calls per
forge do not justify a client dependency. The token comes from ``GITHUB_TOKEN`` /
``GITLAB_TOKEN`` (or a variable named in :class:`Forge`) at call time; it is sent in a header,
never stored on disk, never put in a URL, and removed from every error message. The API base URL
is configurable for GitHub Enterprise, self-hosted GitLab, and tests against a local server.

A daily job must never hang on a forge that accepts the connection and then says nothing, so
every request has a connect timeout, a read timeout (per socket read) and an overall deadline.
A redirect is followed only within the same scheme, host and port: ``urllib`` would otherwise
carry the ``Authorization`` header to whatever host the redirect names.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal
from urllib.request import Request

from cloudbalance.exceptions import GitOpsError
from cloudbalance.gitops._git import redact

__all__ = ["Forge", "PullRequest", "repository_from_url"]

#: Hidden marker in every pull-request body cloudbalance opens; later runs find their own by it.
MARKER = "<!-- cloudbalance:managed -->"
#: Marker of revert pull requests: distinct, so a later plan is never pushed onto a revert.
REVERT_MARKER = "<!-- cloudbalance:revert -->"
BRANCH_PREFIX = "cloudbalance/"

_REMOTE = re.compile(
    r"^(?:[a-z+]+://(?:[^@/]+@)?[^/:]+(?::\d+)?/|[^@/]+@[^:/]+:|[^:/]+:)(?P<path>.+?)(?:\.git)?/?$"
)


def repository_from_url(url: str) -> str:
    """``owner/name`` (or ``group/subgroup/name``) from a Git remote URL.

    Raises:
        GitOpsError: When the URL has no such path (a local path, for example).
    """
    match = _REMOTE.match(url.strip())
    if not match or "/" not in match.group("path"):
        raise GitOpsError(
            f"cannot tell the repository from the remote URL {redact(url)!r}; "
            "pass the repository (owner/name) explicitly"
        )
    return match.group("path")


@dataclass(frozen=True)
class PullRequest:
    """A pull (merge) request cloudbalance opened or updated.

    Attributes:
        number: The PR number (GitHub) or merge request iid (GitLab).
        url: Its web address.
        branch: The source branch.
        created: True when opened by this run, False when an existing one was updated.
    """

    number: int
    url: str
    branch: str
    created: bool


class _TimedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket waits ``read_timeout`` per read once connected."""

    read_timeout: float = 30.0

    def connect(self) -> None:
        super().connect()  # bounded by the connect timeout (``timeout``)
        self.sock.settimeout(self.read_timeout)


class _TimedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection: TCP and TLS handshake within the connect timeout, then reads."""

    read_timeout: float = 30.0

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TimedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def _connection(self, host: str, **kwargs: Any) -> http.client.HTTPConnection:
        connection = _TimedHTTPConnection(host, **kwargs)
        connection.read_timeout = self.read_timeout
        return connection

    def http_open(self, req: Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _TimedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float) -> None:
        super().__init__()
        self.read_timeout = read_timeout

    def _connection(self, host: str, **kwargs: Any) -> http.client.HTTPSConnection:
        connection = _TimedHTTPSConnection(host, **kwargs)
        connection.read_timeout = self.read_timeout
        return connection

    def https_open(self, req: Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._context)  # type: ignore[attr-defined]


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme, host and port: the token goes nowhere else."""

    def redirect_request(
        self,
        req: Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> Request | None:
        old = urllib.parse.urlsplit(req.full_url)
        new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            return None  # not followed: the caller sees the 3xx answer
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True)
class Forge:
    """Where pull requests are opened.

    Attributes:
        kind: ``github`` or ``gitlab``.
        repository: ``owner/name`` (GitLab: the project path). None: read from the remote URL.
        api_url: API base, e.g. ``https://api.github.com``, ``https://ghe.example.com/api/v3``,
            ``https://gitlab.com/api/v4``. None: the public service's.
        token_env: Environment variable holding the token (default ``GITHUB_TOKEN`` or
            ``GITLAB_TOKEN``).
        connect_timeout: Seconds to connect (TCP and TLS handshake).
        read_timeout: Seconds to wait for each read of the answer.
        deadline: Seconds one request may take in all (a server trickling bytes is cut off).
    """

    kind: Literal["github", "gitlab"] = "github"
    repository: str | None = None
    api_url: str | None = None
    token_env: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 120.0

    def __post_init__(self) -> None:
        if self.kind not in ("github", "gitlab"):
            raise GitOpsError(f"unknown forge {self.kind!r}; use github or gitlab")
        for name in ("connect_timeout", "read_timeout", "deadline"):
            if not getattr(self, name) > 0:
                raise GitOpsError(f"forge {name} must be > 0 seconds, got {getattr(self, name)}")

    @property
    def base_url(self) -> str:
        """The API base URL without a trailing slash."""
        default = "https://api.github.com" if self.kind == "github" else "https://gitlab.com/api/v4"
        return (self.api_url or default).rstrip("/")

    def _token(self) -> str:
        name = self.token_env or ("GITHUB_TOKEN" if self.kind == "github" else "GITLAB_TOKEN")
        token = os.environ.get(name, "")
        if not token:
            raise GitOpsError(
                f"opening a pull request needs a token in ${name} (it is read from the "
                "environment only, never stored)"
            )
        return token

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        token = self._token()
        headers = {"Accept": "application/json", "User-Agent": "cloudbalance"}
        if self.kind == "github":
            headers["Accept"] = "application/vnd.github+json"
            headers["X-GitHub-Api-Version"] = "2022-11-28"
            headers["Authorization"] = f"Bearer {token}"
        else:
            headers["PRIVATE-TOKEN"] = token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        url = self.base_url + path
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        opener = urllib.request.build_opener(
            _TimedHTTPHandler(self.read_timeout),
            _TimedHTTPSHandler(self.read_timeout),
            _SameOriginRedirects(),
        )
        give_up = time.monotonic() + self.deadline
        try:
            with opener.open(request, timeout=self.connect_timeout) as response:
                chunks = []
                while chunk := response.read1(65536):
                    chunks.append(chunk)
                    if time.monotonic() > give_up:
                        raise TimeoutError(f"no complete answer within {self.deadline:g} s")
                payload = b"".join(chunks)
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:500]
            if 300 <= err.code < 400:
                detail = f"redirect to {err.headers.get('Location')!r} not followed ({detail})"
            raise GitOpsError(
                redact(f"{self.kind} API {method} {path} answered {err.code}: {detail}", [token])
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(reason, TimeoutError) or isinstance(err, TimeoutError):
                reason = (
                    f"timed out ({reason or 'no answer'}; connect {self.connect_timeout:g} s, "
                    f"read {self.read_timeout:g} s)"
                )
            raise GitOpsError(
                redact(f"{self.kind} API at {self.base_url} unreachable: {reason}", [token])
            ) from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError as err:  # truncated, HTML from a proxy, not UTF-8...
            raise GitOpsError(
                redact(
                    f"{self.kind} API {method} {path} answered with a body that is not JSON "
                    f"({err}); is {self.base_url} the API address?",
                    [token],
                )
            ) from None

    def _pull(
        self, item: Any, method: str, path: str, branch: str, *, created: bool
    ) -> PullRequest:
        """The pull (merge) request an API answer describes; a clear error when it does not."""
        number_key, url_key = (
            ("number", "html_url") if self.kind == "github" else ("iid", "web_url")
        )
        number = item.get(number_key) if isinstance(item, dict) else None
        url = item.get(url_key) if isinstance(item, dict) else None
        if isinstance(number, bool) or not isinstance(number, int) or not isinstance(url, str):
            raise GitOpsError(
                f"{self.kind} API {method} {path} answered without a pull request "
                f"({number_key!r} and {url_key!r} missing or not a number and an address)"
            )
        return PullRequest(number, url, branch, created)

    def _items(self, answer: Any, method: str, path: str) -> list[dict[str, Any]]:
        """A list answer's objects; a clear error when the answer is not a list."""
        if answer is None:
            return []
        if not isinstance(answer, list):
            raise GitOpsError(
                f"{self.kind} API {method} {path} answered {type(answer).__name__}, not a list"
            )
        return [item for item in answer if isinstance(item, dict)]

    # -- GitHub ------------------------------------------------------------------------------

    def find_open(self, repository: str, base: str) -> PullRequest | None:
        """The open pull request a previous cloudbalance run opened against ``base``, if any.

        Recognised by its source branch (``cloudbalance/...``) in the same repository (a
        fork's pull request is never taken for ours) and the marker in its body.
        """
        if self.kind == "github":
            query = urllib.parse.urlencode(
                {"state": "open", "base": base, "sort": "created", "direction": "desc"}
                | {"per_page": 100}
            )
            path = f"/repos/{repository}/pulls?{query}"
            for item in self._items(self._request("GET", path), "GET", path):
                head = item.get("head") or {}
                ref = head.get("ref", "")
                same_repo = ((head.get("repo") or {}).get("full_name") or "").lower()
                if (
                    ref.startswith(BRANCH_PREFIX)
                    and same_repo == repository.lower()  # never a fork's branch
                    and MARKER in (item.get("body") or "")
                ):
                    return self._pull(item, "GET", path, ref, created=False)
            return None
        project = urllib.parse.quote(repository, safe="")
        query = urllib.parse.urlencode(
            {"state": "opened", "target_branch": base, "order_by": "created_at", "per_page": 100}
        )
        path = f"/projects/{project}/merge_requests?{query}"
        for item in self._items(self._request("GET", path), "GET", path):
            ref = item.get("source_branch", "")
            if (
                ref.startswith(BRANCH_PREFIX)
                and item.get("source_project_id") == item.get("target_project_id")
                and MARKER in (item.get("description") or "")
            ):
                return self._pull(item, "GET", path, ref, created=False)
        return None

    def open(
        self, repository: str, *, branch: str, base: str, title: str, body: str
    ) -> PullRequest:
        """Open a pull (merge) request from ``branch`` into ``base``."""
        if self.kind == "github":
            path = f"/repos/{repository}/pulls"
            item = self._request(
                "POST", path, {"title": title, "head": branch, "base": base, "body": body}
            )
            return self._pull(item, "POST", path, branch, created=True)
        project = urllib.parse.quote(repository, safe="")
        path = f"/projects/{project}/merge_requests"
        item = self._request(
            "POST",
            path,
            {
                "source_branch": branch,
                "target_branch": base,
                "title": title,
                "description": body,
                "remove_source_branch": True,
            },
        )
        return self._pull(item, "POST", path, branch, created=True)

    def update(self, repository: str, pull: PullRequest, *, title: str, body: str) -> PullRequest:
        """Replace the title and body of an open pull (merge) request."""
        if self.kind == "github":
            path = f"/repos/{repository}/pulls/{pull.number}"
            item = self._request("PATCH", path, {"title": title, "body": body})
            return self._pull(item, "PATCH", path, pull.branch, created=False)
        project = urllib.parse.quote(repository, safe="")
        path = f"/projects/{project}/merge_requests/{pull.number}"
        item = self._request("PUT", path, {"title": title, "description": body})
        return self._pull(item, "PUT", path, pull.branch, created=False)

    def close(self, repository: str, pull: PullRequest) -> PullRequest:
        """Close an open pull (merge) request (its change became empty)."""
        if self.kind == "github":
            path = f"/repos/{repository}/pulls/{pull.number}"
            item = self._request("PATCH", path, {"state": "closed"})
            return self._pull(item, "PATCH", path, pull.branch, created=False)
        project = urllib.parse.quote(repository, safe="")
        path = f"/projects/{project}/merge_requests/{pull.number}"
        item = self._request("PUT", path, {"state_event": "close"})
        return self._pull(item, "PUT", path, pull.branch, created=False)
