from __future__ import annotations

import pytest

from cloudbalance.exceptions import GitOpsError
from cloudbalance.gitops import Guardrails, parse_trailers
from cloudbalance.gitops._diff import three_way, unified_diff
from cloudbalance.gitops._forge import repository_from_url
from cloudbalance.gitops._git import redact


def test_trailers_are_read_from_the_last_paragraph_only() -> None:
    message = (
        "cloudbalance: move 3 replicas\n\nCloudbalance-Plan: not-this-one\nis prose\n\n"
        "Cloudbalance-Plan: p1\nCloudbalance-Confidence: 0.87\n"
    )
    assert parse_trailers(message) == {
        "Cloudbalance-Plan": "p1",
        "Cloudbalance-Confidence": "0.87",
    }


def test_a_last_paragraph_that_is_not_all_trailers_gives_none() -> None:
    assert parse_trailers("subject\n\nCloudbalance-Plan: p1\nand some prose\n") == {}
    assert parse_trailers("") == {}


@pytest.mark.parametrize(
    ("url", "repository"),
    [
        ("git@github.com:acme/infra.git", "acme/infra"),
        ("https://github.com/acme/infra.git", "acme/infra"),
        ("https://x-access-token:secret@github.com/acme/infra", "acme/infra"),
        ("ssh://git@gitlab.example.com:2222/platform/team/infra.git", "platform/team/infra"),
        ("https://gitlab.example.com/platform/team/infra/", "platform/team/infra"),
    ],
)
def test_repository_is_read_from_the_usual_remote_urls(url: str, repository: str) -> None:
    assert repository_from_url(url) == repository


def test_local_remote_needs_an_explicit_repository() -> None:
    with pytest.raises(GitOpsError, match="pass the repository"):
        repository_from_url("/srv/git/infra.git")


def test_credentials_in_urls_and_known_tokens_are_redacted() -> None:
    text = "fatal: unable to access 'https://bot:ghp_abc123@github.com/acme/infra/': 403"
    assert redact(text) == "fatal: unable to access 'https://***@github.com/acme/infra/': 403"
    assert redact("token ghp_abc123 refused", ["ghp_abc123"]) == "token *** refused"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"max_moves": -1}, "max_moves"),
        ({"max_share_moved": -0.1}, "max_share_moved"),
        ({"default_mode": "yolo"}, "unknown mode"),
    ],
)
def test_guardrails_reject_impossible_limits(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(GitOpsError, match=message):
        Guardrails(**kwargs)  # type: ignore[arg-type]


def test_diff_of_a_long_repetitive_file_shows_only_the_changed_lines() -> None:
    block = "  - cloud: aws\n    region: us-east-1\n    replicas: 4\n"
    before = block * 200
    after = before.replace("replicas: 4", "replicas: 3", 1)
    changed = [
        line
        for line in unified_diff(before, after, "Pulumi.prod.yaml").splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["-    replicas: 4", "+    replicas: 3"]


def test_token_in_the_environment_answers_gits_credential_request_without_being_copied(
    tmp_path, monkeypatch
) -> None:
    import os
    import subprocess

    from cloudbalance.gitops._git import Git

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin", "https://ghe.example/acme/infra"],
        check=True,
    )
    git = Git.open(tmp_path)
    assert git.token_credentials("origin") == {}  # no token, nothing added
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_secret_value")
    extra = git.token_credentials("origin")
    assert "ghs_secret_value" not in "".join(extra.values())
    answer = subprocess.run(
        ["git", "credential", "fill"],
        cwd=tmp_path,
        input="protocol=https\nhost=ghe.example\npath=acme/infra\n\n",
        capture_output=True,
        text=True,
        env={**os.environ, **extra, "GIT_TERMINAL_PROMPT": "0"},
        check=True,
    ).stdout
    assert "username=x-access-token\n" in answer
    assert "password=ghs_secret_value\n" in answer
    other_host = subprocess.run(
        ["git", "credential", "fill"],
        cwd=tmp_path,
        input="protocol=https\nhost=elsewhere.example\n\n",
        capture_output=True,
        text=True,
        env={**os.environ, **extra, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"},
        check=False,
    ).stdout
    assert "ghs_secret_value" not in other_host  # scoped to the remote's host


def test_ssh_remotes_get_no_token_helper(tmp_path, monkeypatch) -> None:
    import subprocess

    from cloudbalance.gitops._git import Git

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:acme/infra.git"],
        check=True,
    )
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_secret_value")
    assert Git.open(tmp_path).token_credentials("origin") == {}


BASE = "a\nb\nc\nd\ne\n"


@pytest.mark.parametrize(
    ("ours", "theirs", "merged"),
    [
        (BASE, "a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n"),  # nothing else changed: theirs exactly
        ("a\nb\nC\nd\ne\n", "a\nB\nc\nd\ne\n", "a\nB\nC\nd\ne\n"),  # adjacent lines merge
        ("x\na\nb\nc\nd\ne\ny\n", "a\nB\nc\nd\n", "x\na\nB\nc\nd\ny\n"),  # shifted by ours
        ("a\nb\nc\nd\ne\nf\n", "a\nb\nc\n", "a\nb\nc\nf\n"),  # a removal next to an append
        ("a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n", "a\nB\nc\nd\ne\n"),  # the same change twice
        ("a\nb2\nc\nd\ne\n", "a\nB\nc\nd\ne\n", None),  # the same line, differently
        ("a\nb\nc\nd\ne\nf\n", "a\nb\nc\nd\ne\ng\n", None),  # two appends: order unknown
    ],
)
def test_three_way_takes_one_change_out_keeping_the_others(
    ours: str, theirs: str, merged: str | None
) -> None:
    assert three_way(BASE, ours, theirs) == merged
