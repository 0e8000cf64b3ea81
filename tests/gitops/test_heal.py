"""Git that heals: an apply killed at any point is finished or undone by the next run.

Each test kills a real ``apply`` (or ``revert``) process with SIGKILL just before a chosen git
command (or the pull-request call) and then runs again in-process against the same working copy
and bare remote, as tomorrow's scheduled run would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cloudbalance.exceptions import GitOpsError
from cloudbalance.gitops import Forge, GitTarget, apply, parse_trailers, revert

CURRENT = {"checkout": {"aws:us-east-1": 6, "gcp:us-central1": 2}}
SHIFT = {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 5}}
LATER = {"checkout": {"aws:us-east-1": 2, "gcp:us-central1": 6}}

_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from cloudbalance.gitops import Forge, apply, revert
    from cloudbalance.gitops._git import Git
    from cloudbalance.models import Plan

    action, repo, what, mode, point, api_url = sys.argv[1:]
    original = Git.run

    def run(self, *args, **kwargs):
        if args and args[0] == point:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    Git.run = run
    if point == "forge-open":
        Forge.open = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    forge = Forge(api_url=api_url or None, repository="acme/infra")
    if action == "apply":
        with open(what, encoding="utf-8") as stream:
            plan = Plan.from_json(stream.read())
        apply(plan, repo, mode=mode, forge=forge)
    else:
        revert(what, repo, mode=mode, forge=forge)
    """
)


def killed(infra, action: str, what: str, *, mode: str, at: str, api_url: str = "") -> None:
    """Run ``apply`` (``what``: a plan file) or ``revert`` (a plan id), SIGKILLed at ``at``."""
    done = subprocess.run(
        [sys.executable, "-c", _KILLER, action, str(infra.root), what, mode, at, api_url],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def plan_file(tmp_path: Path, plan) -> str:
    path = tmp_path / f"{plan.plan_id}.json"
    path.write_text(plan.to_json(), encoding="utf-8")
    return str(path)


def journal(infra) -> Path:
    return infra.root / ".git" / "cloudbalance-journal.json"


@pytest.mark.parametrize("at", ["add", "commit"])
def test_a_kill_before_the_commit_is_undone_by_the_next_run(
    infra, plan_factory, tmp_path, at
) -> None:
    original = infra.prod.read_bytes()
    head = infra.head()
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at=at)
    assert infra.git("status", "--porcelain", "--untracked-files=no") != ""  # left dirty
    assert journal(infra).exists()

    result = apply(plan_factory(LATER, current=CURRENT, plan_id="p2"), infra.root, mode="commit")
    assert any("undid the interrupted write of plan p-20261124-a1" in n for n in result.notes)
    assert infra.git("rev-parse", "HEAD^") == head  # one commit: the new plan's
    assert parse_trailers(infra.message())["Cloudbalance-Plan"] == "p2"
    assert infra.remote_git("rev-parse", "main") == result.commit
    assert infra.git("status", "--porcelain") == ""
    assert not journal(infra).exists()
    assert infra.prod.read_bytes() != original


def test_a_kill_before_the_push_is_finished_by_the_next_run(infra, plan_factory, tmp_path) -> None:
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="push")
    ours = infra.head()
    assert parse_trailers(infra.message())["Cloudbalance-Plan"] == "p-20261124-a1"
    assert infra.remote_git("rev-parse", "main") != ours  # committed, not pushed

    again = apply(first, infra.root, mode="commit")
    assert any("finished the interrupted write of plan p-20261124-a1" in n for n in again.notes)
    assert infra.remote_git("rev-parse", "main") == ours
    assert again.commit is None  # the plan is already in place: nothing more to write
    assert infra.git("status", "--porcelain") == ""


def test_an_unpushed_commit_whose_push_is_refused_is_undone(infra, plan_factory, tmp_path) -> None:
    head = infra.head()
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="push")
    ours = infra.head()
    # Meanwhile someone pushes to main: our commit can no longer be pushed without a force.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(infra.remote), str(other)], check=True)
    (other / "README.md").write_text("someone else\n")
    subprocess.run(["git", "-C", str(other), "commit", "-qam", "docs"], check=True)
    subprocess.run(["git", "-C", str(other), "push", "-q"], check=True)
    theirs = infra.remote_git("rev-parse", "main")

    result = apply(plan_factory(LATER, current=CURRENT, plan_id="p2"), infra.root, mode="commit")
    assert any(f"undid the unpushed commit {ours[:12]}" in n for n in result.notes)
    assert infra.git("rev-parse", "HEAD^") == theirs
    assert infra.remote_git("rev-parse", "main") == result.commit
    assert infra.git("merge-base", "--is-ancestor", head, "HEAD") == ""
    assert ours not in infra.git("log", "--format=%H")


def test_a_person_s_edit_on_top_of_an_interrupted_write_is_never_discarded(
    infra, plan_factory, tmp_path
) -> None:
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="add")
    edited = infra.prod.read_text().replace("# primary", "# primary, pinned by ops")
    infra.prod.write_text(edited)
    (infra.root / "README.md").write_text("a person's notes\n")
    with pytest.raises(GitOpsError, match=r"Pulumi.prod.yaml has uncommitted changes beyond"):
        apply(first, infra.root, mode="commit")
    assert infra.prod.read_text() == edited
    assert (infra.root / "README.md").read_text() == "a person's notes\n"


def test_a_person_s_other_uncommitted_file_is_kept_and_named(infra, plan_factory, tmp_path) -> None:
    first = plan_factory(SHIFT, current=CURRENT)
    before = infra.prod.read_bytes()
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="commit")
    (infra.root / "README.md").write_text("a person's notes\n")
    with pytest.raises(GitOpsError, match=r"uncommitted changes \(README.md\)"):
        apply(first, infra.root, mode="commit")
    assert infra.prod.read_bytes() == before  # ours undone
    assert (infra.root / "README.md").read_text() == "a person's notes\n"  # theirs kept


def test_a_person_s_commit_on_top_of_ours_is_never_pushed_nor_dropped(
    infra, plan_factory, tmp_path
) -> None:
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="push")
    (infra.root / "README.md").write_text("local work\n")
    infra.git("commit", "-qam", "local work")
    mine = infra.head()
    remote_main = infra.remote_git("rev-parse", "main")
    with pytest.raises(GitOpsError, match=r"2 commit\(s\) not on origin/main"):
        apply(plan_factory(LATER, current=CURRENT, plan_id="p2"), infra.root, mode="commit")
    assert infra.head() == mine
    assert infra.remote_git("rev-parse", "main") == remote_main


def test_a_branch_made_but_not_pushed_is_undone(infra, plan_factory, tmp_path) -> None:
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="branch", at="push")
    assert infra.git("branch", "--list", "cloudbalance/p-20261124-a1")

    result = apply(first, infra.root, mode="branch")
    assert any("undid the unpushed branch cloudbalance/p-20261124-a1" in n for n in result.notes)
    assert infra.remote_git("rev-parse", "cloudbalance/p-20261124-a1") == result.commit
    assert result.pushed


def test_a_branch_pushed_without_its_pull_request_gets_it_next_run(
    infra, plan_factory, tmp_path, github
) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    first = plan_factory(SHIFT, current=CURRENT)
    killed(
        infra, "apply", plan_file(tmp_path, first), mode="pr", at="forge-open", api_url=github.url
    )
    pushed = infra.remote_git("rev-parse", "cloudbalance/p-20261124-a1")
    assert github.pulls == {}

    result = apply(
        plan_factory(LATER, current=CURRENT, plan_id="p2"), infra.root, mode="pr", forge=forge
    )
    assert any("opened pull request #1 for cloudbalance/p-20261124-a1" in n for n in result.notes)
    assert github.pulls[1]["head"]["ref"] == "cloudbalance/p-20261124-a1"
    (opened,) = [r["body"] for r in github.requests if r["method"] == "POST"]
    assert "Cloudbalance-Plan: p-20261124-a1" in opened["body"]
    assert "Cloudbalance-Plan: p2" in github.pulls[1]["body"]  # then brought up to the new plan
    # The new plan goes on top of that pull request, as for any open one.
    assert result.pull_request is not None
    assert result.pull_request.number == 1
    assert infra.remote_git("rev-parse", "cloudbalance/p-20261124-a1^") == pushed
    assert len(github.pulls) == 1


def test_a_failed_pull_request_call_is_retried_by_the_same_plan(
    infra, plan_factory, github, monkeypatch
) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    first = plan_factory(SHIFT, current=CURRENT)

    def bad_gateway(*args: object, **kwargs: object) -> None:
        raise GitOpsError("github API POST /repos/acme/infra/pulls answered 502: Bad Gateway")

    with monkeypatch.context() as patched:
        patched.setattr(Forge, "open", bad_gateway)
        with pytest.raises(GitOpsError, match="502"):
            apply(first, infra.root, mode="pr", forge=forge)
    assert infra.remote_git("rev-parse", "cloudbalance/p-20261124-a1")
    journal(infra).unlink()  # even without the journal: the branch is recognised by its content
    result = apply(first, infra.root, mode="pr", forge=forge)
    assert result.pull_request is not None
    assert result.pull_request.created
    assert github.pulls[1]["head"]["ref"] == "cloudbalance/p-20261124-a1"
    assert any("pushed without its pull request" in n for n in result.notes)


def test_a_killed_revert_is_finished_by_the_next_revert(infra, plan_factory) -> None:
    original = infra.prod.read_bytes()
    apply(plan_factory(SHIFT, current=CURRENT), infra.root, mode="commit")
    killed(infra, "revert", "p-20261124-a1", mode="commit", at="add")
    result = revert("p-20261124-a1", infra.root)
    assert any("undid the interrupted write of the revert of plan" in n for n in result.notes)
    assert infra.prod.read_bytes() == original
    assert infra.remote_git("rev-parse", "main") == result.commit


def test_an_unreadable_journal_is_reported_not_guessed_at(infra, plan_factory) -> None:
    journal(infra).write_text("{not json")
    with pytest.raises(GitOpsError, match="journal of an interrupted write"):
        apply(plan_factory(SHIFT, current=CURRENT), infra.root, mode="commit")
    assert journal(infra).exists()  # left for a person to read


def test_a_day_with_nothing_to_write_still_heals_the_repository(
    infra, plan_factory, tmp_path
) -> None:
    original = infra.prod.read_bytes()
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="commit")
    notes = GitTarget(infra.root).heal()
    assert notes == [
        "undid the interrupted write of plan p-20261124-a1: restored shop/Pulumi.prod.yaml"
    ]
    assert infra.prod.read_bytes() == original
    assert infra.git("status", "--porcelain") == ""
    assert GitTarget(infra.root).heal() == []


def test_an_index_lock_left_by_a_killed_process_group_is_removed(
    infra, plan_factory, tmp_path
) -> None:
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="commit")
    lock = infra.root / ".git" / "index.lock"
    lock.write_text("")
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    result = apply(first, infra.root, mode="commit")
    assert any("removed the stale index.lock" in n for n in result.notes)
    assert result.pushed
    assert infra.git("status", "--porcelain") == ""


def test_a_run_killed_by_a_git_hook_is_finished_by_the_next_run(
    infra, plan_factory, tmp_path
) -> None:
    """The injection a scheduler-level test can use too: a pre-push hook kills the lock holder."""
    hook = infra.root / ".git" / "hooks" / "pre-push"
    hook.write_text(
        '#!/bin/sh\nkill -9 "$(cat "$(git rev-parse --git-common-dir)/cloudbalance.lock")"\n'
        "exit 1\n"
    )
    hook.chmod(0o755)
    first = plan_factory(SHIFT, current=CURRENT)
    killed(infra, "apply", plan_file(tmp_path, first), mode="commit", at="none")
    ours = infra.head()
    assert infra.remote_git("rev-parse", "main") != ours
    hook.unlink()
    again = apply(first, infra.root, mode="commit")
    assert any("finished the interrupted write" in n for n in again.notes)
    assert infra.remote_git("rev-parse", "main") == ours


@pytest.mark.parametrize("mode", ["branch", "pr"])
def test_a_refused_branch_push_leaves_no_branch_behind(infra, plan_factory, github, mode) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    hook = infra.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no new branches today' >&2\nexit 1\n")
    hook.chmod(0o755)
    first = plan_factory(SHIFT, current=CURRENT)
    with pytest.raises(GitOpsError, match="no new branches today"):
        apply(first, infra.root, mode=mode, forge=forge)
    assert infra.git("branch", "--list", "cloudbalance/*") == ""
    assert not journal(infra).exists()
    hook.unlink()
    result = apply(first, infra.root, mode=mode, forge=forge)
    assert result.pushed
    assert infra.remote_git("rev-parse", "cloudbalance/p-20261124-a1") == result.commit
