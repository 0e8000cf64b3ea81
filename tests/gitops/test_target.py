"""One Git target per configuration: apply, revert and verify's reverts agree on it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from cloudbalance.config import Settings, load_config
from cloudbalance.gitops import apply, forge_kind, target_from_settings
from cloudbalance.verify import Verification, propose_reverts

CURRENT = {"checkout": {"aws:us-east-1": 6, "gcp:us-central1": 2}}
SHIFT = {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 5}}


def settings_for(tmp_path: Path, infra_root: Path, **git: str) -> Settings:
    lines = [f"  repo: {infra_root}"] + [f"  {k}: {v}" for k, v in git.items()]
    path = tmp_path / "cloudbalance.yaml"
    path.write_text("version: 1\ngit:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return load_config(path)


def test_pr_mode_goes_to_the_configured_api_remote_and_base(
    infra, plan_factory, github, tmp_path
) -> None:
    infra.git("remote", "rename", "origin", "upstream")
    infra.git("branch", "-q", "release")
    infra.git("push", "-q", "upstream", "release")
    settings = settings_for(
        tmp_path,
        infra.root,
        mode="pr",
        remote="upstream",
        base="release",
        github_repo="acme/infra",
        api_url=github.url,
    )
    target = target_from_settings(settings, policies=False)
    assert (target.remote, target.base, target.mode) == ("upstream", "release", "pr")
    assert (target.forge.api_url, target.forge.repository) == (github.url, "acme/infra")

    result = target.apply(plan_factory(SHIFT, current=CURRENT))
    assert result.pull_request is not None
    assert result.pull_request.created
    assert github.pulls[1]["base"]["ref"] == "release"
    assert github.requests, "the configured API was called"
    assert infra.remote_git("rev-parse", "cloudbalance/p-20261124-a1") == result.commit


def test_verify_reverts_use_the_configured_forge_and_remote(
    infra, plan_factory, github, tmp_path
) -> None:
    infra.git("remote", "rename", "origin", "upstream")
    settings = settings_for(
        tmp_path, infra.root, remote="upstream", github_repo="acme/infra", api_url=github.url
    )
    applied = apply(plan_factory(SHIFT, current=CURRENT), infra.root, mode="commit")
    assert applied.pushed
    bad = Verification(
        "p-20261124-a1",
        "revert",
        datetime(2026, 11, 24),
        datetime(2026, 11, 25),
        1,
        "USD",
        reasons=("cost rose above the rollback threshold",),
    )
    outcomes = propose_reverts([bad], target_from_settings(settings, policies=False), mode="pr")
    assert [o.status for o in outcomes] == ["proposed"], outcomes[0].detail
    assert github.pulls[1]["head"]["ref"] == "cloudbalance/revert-p-20261124-a1"
    assert infra.remote_git("rev-parse", "cloudbalance/revert-p-20261124-a1")


@pytest.mark.parametrize(
    ("api_url", "remote_url", "kind"),
    [
        ("https://gitlab.example.com/api/v4", None, "gitlab"),
        ("https://code.example.com/api/v4/", None, "gitlab"),
        ("https://ghe.example.com/api/v3", "git@gitlab.com:acme/infra.git", "github"),
        (None, "git@gitlab.com:acme/infra.git", "gitlab"),
        (None, "https://github.com/acme/infra.git", "github"),
        (None, None, "github"),
    ],
)
def test_the_forge_kind_is_told_by_the_api_url_else_the_remote(
    api_url: str | None, remote_url: str | None, kind: str
) -> None:
    assert forge_kind(api_url, remote_url) == kind
