"""Real Git repositories with a local bare remote, hand-made plans and a fake forge API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from cloudbalance.models import Location, Move, Placement, Plan

TOKEN = "ghp_test_token_never_shown_0123456789"

GITCONFIG = (
    "[user]\n\tname = Test Operator\n\temail = ops@example.com\n"
    "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    "[advice]\n\tdetachedHead = false\n"
)

PROD_STACK = """\
# Production stack of the shop's web tier.
# Owned by the platform team; cloudbalance edits only placements[].replicas.
secretsprovider: awskms://alias/pulumi-shop?region=us-east-1
encryptedkey: AQICAHhBase64EncryptedKey==
config:
  aws:region: us-east-1            # home region
  azure-native:location: "westeurope"
  gcp:project: 'acme-shop-prod'
  shop:db_password:
    secure: AAABAKm3YlQ0rL7v/Ow0dB6bX8k5s3ZcYvH0W8v+Qe9a
  shop:api-key:
    secure: v1:9c4t8Kq0:AAABBBCCC==
  cloudbalance:workloads:
    # The checkout service: latency-sensitive, two clouds.
    checkout:
      image: ghcr.io/acme/checkout:1.4   # pinned by the release train
      cpu: 0.5
      memory_gib: 1
      spot: false
      placements:
        - {cloud: aws, region: us-east-1, replicas: 6}    # primary
        - {cloud: gcp, region: us-central1, replicas: 2}  # overflow
    # Nightly batch fleet; spot is fine.
    reports:
      instance_type: "m6i.large"
      spot: true
      placements:
        - cloud: aws
          region: us-east-1
          replicas: 4
        - cloud: azure
          region: westeurope
          replicas: 0   # scaled to nothing, kept for the diff
  shop:feature-flags:
    - "new-cart"
    - 'fast-pay'
"""

PROJECT_YAML = """\
name: {name}
runtime:
  name: python
description: {name} workloads placed by cloudbalance
"""


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git configuration leaks in; a fixed identity; no token by default."""
    home = tmp_path_factory.mktemp("home")
    config = home / ".gitconfig"
    config.write_text(GITCONFIG, encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GITHUB_TOKEN", "GITLAB_TOKEN", "GH_TOKEN", "GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Infra:
    """A working copy of an infrastructure repo, cloned from a local bare remote."""

    root: Path
    remote: Path

    @property
    def prod(self) -> Path:
        return self.root / "shop" / "Pulumi.prod.yaml"

    def git(self, *args: str) -> str:
        return git(self.root, *args)

    def remote_git(self, *args: str) -> str:
        return git(self.remote, *args)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def message(self, rev: str = "HEAD") -> str:
        return self.git("log", "-1", "--format=%B", rev)

    def files_in(self, rev: str = "HEAD") -> list[str]:
        return self.git("diff-tree", "--no-commit-id", "--name-only", "-r", rev).splitlines()

    def commit_all(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", "origin", "HEAD")
        return self.head()


@pytest.fixture(scope="session")
def infra_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once: copying it is much cheaper than five git commands per test."""
    base = tmp_path_factory.mktemp("infra-template")
    config = base / "gitconfig"
    config.write_text(GITCONFIG, encoding="utf-8")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}

    def run(cwd: Path, *args: str) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)

    remote = base / "remote.git"
    run(base, "init", "-q", "--bare", str(remote))
    root = base / "infra"
    run(base, "clone", "-q", str(remote), str(root))
    shop = root / "shop"
    shop.mkdir()
    (shop / "Pulumi.yaml").write_text(PROJECT_YAML.format(name="shop"), encoding="utf-8")
    (shop / "Pulumi.prod.yaml").write_text(PROD_STACK, encoding="utf-8")
    (shop / "Pulumi.staging.yaml").write_text(
        "config:\n  cloudbalance:workloads:\n    search:\n      placements:\n"
        "        - {cloud: gcp, region: europe-west1, replicas: 1}\n",
        encoding="utf-8",
    )
    (shop / "__main__.py").write_text("import pulumi\n", encoding="utf-8")
    (root / "README.md").write_text("infra\n", encoding="utf-8")
    run(root, "add", "-A")
    run(root, "commit", "-q", "-m", "initial infrastructure")
    run(root, "push", "-q", "-u", "origin", "main")
    return base


@pytest.fixture
def infra(tmp_path: Path, infra_template: Path) -> Infra:
    """One project ``shop`` with stacks prod and staging, pushed to a bare remote."""
    remote = tmp_path / "remote.git"
    root = tmp_path / "infra"
    shutil.copytree(infra_template / "remote.git", remote, symlinks=True)
    shutil.copytree(infra_template / "infra", root, symlinks=True)
    git(root, "remote", "set-url", "origin", str(remote))
    return Infra(root, remote)


def make_plan(
    placements: Mapping[str, Mapping[str, int]],
    *,
    plan_id: str = "p-20261124-a1",
    current: Mapping[str, Mapping[str, int]] | None = None,
    confidence: float = 0.87,
    moves: tuple[Move, ...] | None = None,
    notes: tuple[str, ...] = (),
    later: tuple[Mapping[str, Mapping[str, int]], ...] = (),
) -> Plan:
    """A plan whose first period is ``placements`` (workload -> 'cloud:region' -> replicas)."""

    def flat(spec: Mapping[str, Mapping[str, int]]) -> tuple[Placement, ...]:
        return tuple(
            Placement(w, Location.parse(loc), n)
            for w, locs in spec.items()
            for loc, n in locs.items()
        )

    first = flat(placements)
    before = flat(current or {})
    if moves is None:
        old = {(p.workload, p.location): p.replicas for p in before}
        new = {(p.workload, p.location): p.replicas for p in first}
        moves = tuple(
            Move(w, loc, old.get((w, loc), 0), new.get((w, loc), 0), 12.5, 0.9, f"cheaper at {loc}")
            for (w, loc) in sorted(set(old) | set(new))
            if old.get((w, loc), 0) != new.get((w, loc), 0)
        )
    return Plan(
        plan_id=plan_id,
        created_at=datetime(2026, 11, 23, 18, 0),
        period_start=datetime(2026, 11, 24),
        period="1D",
        horizon=1 + len(later),
        current=before,
        schedule=(first, *(flat(p) for p in later)),
        moves=moves,
        expected_cost=900.0,
        baseline_cost=1000.0,
        currency="USD",
        confidence=confidence,
        notes=notes,
    )


@dataclass
class FakeForge:
    """A GitHub (or GitLab) REST API on 127.0.0.1 that checks what cloudbalance sends."""

    kind: str
    remote: Path
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    fail_with: int | None = None

    def branch_exists(self, branch: str) -> bool:
        out = git(self.remote, "branch", "--list", branch)
        return bool(out.strip())

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> tuple[int, Any]:
        self.requests.append(
            {
                "method": method,
                "path": path,
                "headers": {k.lower(): v for k, v in headers.items()},
                "body": body,
            }
        )
        if self.kind == "github":
            if headers.get("Authorization") != f"Bearer {TOKEN}":
                return 401, {"message": "Bad credentials"}
            if headers.get("Accept") != "application/vnd.github+json":
                self.errors.append(f"bad Accept header {headers.get('Accept')!r}")
            if headers.get("X-GitHub-Api-Version") != "2022-11-28":
                self.errors.append("missing X-GitHub-Api-Version")
        elif headers.get("PRIVATE-TOKEN") != TOKEN:
            return 401, {"message": "401 Unauthorized"}
        if self.fail_with is not None:
            return self.fail_with, {"message": "Validation Failed"}
        parsed = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        if self.kind == "github":
            return self._github(method, parsed.path, query, body)
        return self._gitlab(method, unquote(parsed.path), query, body)

    def _github(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        prefix = "/repos/acme/infra/pulls"
        if method == "GET" and path == prefix:
            if query.get("state") != "open":
                self.errors.append(f"listing pulls without state=open: {query}")
            return 200, [
                p
                for p in self.pulls.values()
                if p["state"] == "open" and p["base"]["ref"] == query.get("base")
            ]
        if method == "POST" and path == prefix:
            missing = {"title", "head", "base", "body"} - set(body or {})
            if missing:
                return 422, {"message": f"missing {sorted(missing)}"}
            if not self.branch_exists(body["head"]):
                return 422, {"message": f"head {body['head']} does not exist"}
            number = len(self.pulls) + 1
            self.pulls[number] = {
                "number": number,
                "state": "open",
                "html_url": f"https://github.example/acme/infra/pull/{number}",
                "title": body["title"],
                "body": body["body"],
                "head": {"ref": body["head"], "repo": {"full_name": "acme/infra"}},
                "base": {"ref": body["base"]},
            }
            return 201, self.pulls[number]
        if method == "PATCH" and path.startswith(prefix + "/"):
            number = int(path.rsplit("/", 1)[1])
            self.pulls[number].update({k: body[k] for k in ("title", "body", "state") if k in body})
            return 200, self.pulls[number]
        return 404, {"message": "Not Found"}

    def _gitlab(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        prefix = "/projects/acme/infra/merge_requests"
        if method == "GET" and path == prefix:
            return 200, [
                p
                for p in self.pulls.values()
                if p["state"] == "opened" and p["target_branch"] == query.get("target_branch")
            ]
        if method == "POST" and path == prefix:
            if not self.branch_exists(body["source_branch"]):
                return 422, {"message": "source branch missing"}
            iid = len(self.pulls) + 1
            self.pulls[iid] = {
                "iid": iid,
                "state": "opened",
                "web_url": f"https://gitlab.example/acme/infra/-/merge_requests/{iid}",
                "source_project_id": 42,
                "target_project_id": 42,
                **body,
            }
            return 201, self.pulls[iid]
        if method == "PUT" and path.startswith(prefix + "/"):
            iid = int(path.rsplit("/", 1)[1])
            if body.pop("state_event", None) == "close":
                self.pulls[iid]["state"] = "closed"
            self.pulls[iid].update(body)
            return 200, self.pulls[iid]
        return 404, {"message": "Not Found"}


def _serve(forge: FakeForge) -> Iterator[FakeForge]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            if raw and self.headers.get("Content-Type") != "application/json":
                forge.errors.append("body sent without Content-Type: application/json")
            status, payload = forge.handle(self.command, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = _any

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    forge.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield forge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def github(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeForge]:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    yield from _serve(FakeForge("github", infra.remote))


@pytest.fixture
def gitlab(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeForge]:
    monkeypatch.setenv("GITLAB_TOKEN", TOKEN)
    yield from _serve(FakeForge("gitlab", infra.remote))


PlanFactory = Callable[..., Plan]


@pytest.fixture
def plan_factory() -> PlanFactory:
    return make_plan


@pytest.fixture
def token() -> str:
    return TOKEN
