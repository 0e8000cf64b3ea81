from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date, datetime

import pytest

from cloudbalance.exceptions import (
    ConflictError,
    GitOpsError,
    PolicyDeniedError,
    StackConfigError,
)
from cloudbalance.gitops import (
    Forge,
    FreezeWindow,
    Guardrails,
    PolicyResult,
    StackDiff,
    apply,
    parse_trailers,
    read_placements,
    repository_lock,
    revert,
)
from cloudbalance.gitops._git import Git
from cloudbalance.models import Location, Move, Plan, Workload

AWS = Location("aws", "us-east-1")
GCP = Location("gcp", "us-central1")

CURRENT = {"checkout": {"aws:us-east-1": 6, "gcp:us-central1": 2}}
SHIFT = {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 5}}


def shift_plan(plan_factory, **kwargs) -> Plan:
    return plan_factory(SHIFT, current=CURRENT, **kwargs)


def test_dry_run_is_the_default_and_changes_nothing(infra, plan_factory) -> None:
    head = infra.head()
    before = infra.prod.read_bytes()
    result = apply(shift_plan(plan_factory), infra.root)
    assert result.mode == "dry-run"
    assert result.commit is None
    assert infra.head() == head
    assert infra.prod.read_bytes() == before
    assert infra.git("status", "--porcelain") == ""
    diff = result.diff.unified()
    assert "-        - {cloud: aws, region: us-east-1, replicas: 6}    # primary" in diff
    assert "+        - {cloud: aws, region: us-east-1, replicas: 3}    # primary" in diff
    assert diff.startswith("--- a/shop/Pulumi.prod.yaml\n+++ b/shop/Pulumi.prod.yaml\n")


def test_commit_mode_commits_only_the_stack_file_with_trailers_and_pushes(
    infra, plan_factory
) -> None:
    (infra.root / "scratch.txt").write_text("untracked notes\n")
    result = apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert result.mode == "commit"
    assert result.pushed
    assert infra.head() == result.commit
    assert infra.remote_git("rev-parse", "main") == result.commit
    assert infra.files_in() == ["shop/Pulumi.prod.yaml"]
    assert infra.git("status", "--porcelain") == "?? scratch.txt"
    message = infra.message()
    trailers = parse_trailers(message)
    assert trailers["Cloudbalance-Plan"] == "p-20261124-a1"
    assert trailers["Cloudbalance-Confidence"] == "0.87"
    assert trailers["Cloudbalance-Saving"] == "100.00 USD"
    # git itself reads the same trailers.
    parsed = infra.git("log", "-1", "--format=%(trailers:key=Cloudbalance-Plan,valueonly)")
    assert parsed == "p-20261124-a1"
    subject = message.splitlines()[0]
    assert subject == "cloudbalance: move 3 replicas of checkout (saves 100.00 USD)"
    assert "| checkout | aws:us-east-1 | 6 | 3 | 8 | 12.50 | 0.90 | cheaper at aws:us-east-1 |" in (
        message
    )
    assert "| checkout | gcp:us-central1 | 2 | 5 |" in message
    assert read_placements(infra.prod.read_text())["checkout"] == {AWS: 3, GCP: 5}


def test_applying_the_same_plan_twice_changes_nothing_the_second_time(infra, plan_factory) -> None:
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    head = infra.head()
    again = apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert again.commit is None
    assert infra.head() == head
    assert any("already matches" in note for note in again.notes)


def test_branch_mode_pushes_a_new_branch_and_leaves_the_working_copy_alone(
    infra, plan_factory
) -> None:
    head = infra.head()
    result = apply(shift_plan(plan_factory), infra.root, mode="branch")
    assert result.branch == "cloudbalance/p-20261124-a1"
    assert infra.git("branch", "--show-current") == "main"
    assert infra.head() == head
    assert infra.git("status", "--porcelain") == ""
    assert infra.remote_git("rev-parse", "cloudbalance/p-20261124-a1") == result.commit
    assert infra.git("rev-parse", f"{result.commit}^") == head
    assert infra.files_in(result.commit or "") == ["shop/Pulumi.prod.yaml"]
    on_branch = infra.git("show", f"{result.commit}:shop/Pulumi.prod.yaml")
    assert read_placements(on_branch)["checkout"] == {AWS: 3, GCP: 5}
    again = apply(shift_plan(plan_factory), infra.root, mode="branch")
    assert again.commit == result.commit
    assert any("already proposed" in note for note in again.notes)
    infra.git("branch", "-q", "-D", "cloudbalance/p-20261124-a1")  # only the remote has it now
    assert apply(shift_plan(plan_factory), infra.root, mode="branch").commit == result.commit
    other = plan_factory({"checkout": {"aws:us-east-1": 1, "gcp:us-central1": 7}}, current=CURRENT)
    with pytest.raises(GitOpsError, match="already exists"):
        apply(other, infra.root, mode="branch")


def test_pr_mode_opens_a_pull_request_with_the_checked_request(
    infra, plan_factory, github, token
) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    result = apply(shift_plan(plan_factory), infra.root, mode="pr", forge=forge)
    assert github.errors == []
    post = [r for r in github.requests if r["method"] == "POST"]
    assert len(post) == 1
    request = post[0]
    assert request["path"] == "/repos/acme/infra/pulls"
    assert request["headers"]["authorization"] == f"Bearer {token}"
    body = request["body"]
    assert body["head"] == "cloudbalance/p-20261124-a1"
    assert body["base"] == "main"
    assert body["title"].startswith("cloudbalance: move 3 replicas of checkout")
    assert "| checkout | aws:us-east-1 | 6 | 3 |" in body["body"]
    assert "<!-- cloudbalance:managed -->" in body["body"]
    assert parse_trailers(body["body"])["Cloudbalance-Plan"] == "p-20261124-a1"
    assert result.pull_request is not None
    assert result.pull_request.created
    assert result.pull_request.url.endswith("/pull/1")
    assert infra.remote_git("rev-parse", "main") == infra.head()  # main untouched


def test_a_later_run_updates_its_open_pull_request_instead_of_opening_another(
    infra, plan_factory, github
) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    first = apply(shift_plan(plan_factory), infra.root, mode="pr", forge=forge)
    second_plan = plan_factory(
        {"checkout": {"aws:us-east-1": 2, "gcp:us-central1": 6}},
        current=CURRENT,
        plan_id="p-20261125-b2",
    )
    second = apply(second_plan, infra.root, mode="pr", forge=forge)
    assert [r["method"] for r in github.requests] == ["GET", "POST", "GET", "PATCH"]
    assert len(github.pulls) == 1
    assert second.pull_request is not None
    assert not second.pull_request.created
    assert second.branch == first.branch
    # A new commit on top of the first one: a fast-forward, never a force-push.
    tip = infra.remote_git("rev-parse", first.branch or "")
    assert tip == second.commit
    assert infra.remote_git("rev-parse", f"{tip}^") == first.commit
    assert parse_trailers(github.pulls[1]["body"])["Cloudbalance-Plan"] == "p-20261125-b2"
    text = infra.remote_git("show", f"{tip}:shop/Pulumi.prod.yaml")
    assert read_placements(text)["checkout"] == {AWS: 2, GCP: 6}
    # The pull request describes its whole effect on main; the new commit, its own step.
    assert [(c.before, c.after) for c in second.diff.changes] == [(6, 2), (2, 6)]
    assert "| checkout | aws:us-east-1 | 6 | 2 |" in github.pulls[1]["body"]
    assert "| checkout | aws:us-east-1 | 3 | 2 |" in infra.remote_git(
        "log", "-1", "--format=%B", tip
    )


def test_a_plan_back_to_the_base_values_closes_the_open_pull_request(
    infra, plan_factory, github
) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    first = apply(shift_plan(plan_factory), infra.root, mode="pr", forge=forge)
    back = plan_factory(CURRENT, current=CURRENT, plan_id="p-back")
    result = apply(back, infra.root, mode="pr", forge=forge)
    assert github.pulls[1]["state"] == "closed"
    assert any("closed pull request #1" in note for note in result.notes)
    tip = infra.remote_git("rev-parse", first.branch or "")
    assert infra.remote_git("diff", "main", tip) == ""


def test_pull_request_on_gitlab_opens_a_merge_request(infra, plan_factory, gitlab, token) -> None:
    forge = Forge(kind="gitlab", api_url=gitlab.url, repository="acme/infra")
    result = apply(shift_plan(plan_factory), infra.root, mode="pr", forge=forge)
    post = next(r for r in gitlab.requests if r["method"] == "POST")
    assert post["path"] == "/projects/acme%2Finfra/merge_requests"
    assert post["headers"]["private-token"] == token
    assert post["body"]["source_branch"] == "cloudbalance/p-20261124-a1"
    assert post["body"]["target_branch"] == "main"
    assert "Cloudbalance-Plan: p-20261124-a1" in post["body"]["description"]
    assert result.pull_request is not None
    assert result.pull_request.url.endswith("/merge_requests/1")
    again = apply(
        plan_factory(
            SHIFT | {"checkout": {"aws:us-east-1": 1, "gcp:us-central1": 7}},
            current=CURRENT,
            plan_id="p2",
        ),
        infra.root,
        mode="pr",
        forge=forge,
    )
    assert again.pull_request is not None
    assert not again.pull_request.created
    assert gitlab.requests[-1]["method"] == "PUT"


def test_api_errors_never_show_the_token(infra, plan_factory, github, token) -> None:
    github.fail_with = 422
    forge = Forge(api_url=github.url, repository="acme/infra")
    with pytest.raises(GitOpsError) as caught:
        apply(shift_plan(plan_factory), infra.root, mode="pr", forge=forge)
    assert "422" in str(caught.value)
    assert token not in str(caught.value)


def test_pr_mode_without_a_token_says_which_variable_to_set(infra, plan_factory) -> None:
    forge = Forge(api_url="http://127.0.0.1:9", repository="acme/infra")
    with pytest.raises(GitOpsError, match=r"\$GITHUB_TOKEN"):
        apply(shift_plan(plan_factory), infra.root, mode="pr", forge=forge)


def test_dirty_working_copy_is_refused(infra, plan_factory) -> None:
    (infra.root / "README.md").write_text("edited\n")
    with pytest.raises(GitOpsError, match=r"uncommitted changes \(README.md\)"):
        apply(shift_plan(plan_factory), infra.root, mode="commit")


def test_detached_head_is_refused(infra, plan_factory) -> None:
    infra.git("checkout", "-q", "--detach", "HEAD")
    with pytest.raises(GitOpsError, match="detached"):
        apply(shift_plan(plan_factory), infra.root, mode="commit")


def test_a_second_run_cannot_interleave_with_one_holding_the_lock(infra, plan_factory) -> None:
    with (
        repository_lock(Git.open(infra.root)),
        pytest.raises(GitOpsError, match="another cloudbalance run"),
    ):
        apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert apply(shift_plan(plan_factory), infra.root, mode="commit").commit is not None


def test_lock_held_by_another_process_is_respected(infra, plan_factory) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from cloudbalance.gitops import repository_lock
        from cloudbalance.gitops._git import Git
        with repository_lock(Git.open({str(infra.root)!r})):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(GitOpsError, match=f"pid {holder.pid}"):
            apply(shift_plan(plan_factory), infra.root, mode="commit")
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_workload_a_person_edited_since_the_last_plan_is_held_showing_both_values(
    infra, plan_factory
) -> None:
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    text = infra.prod.read_text().replace(
        "region: us-central1, replicas: 5", "region: us-central1, replicas: 9"
    )
    infra.prod.write_text(text)
    infra.commit_all("ops: more overflow capacity for the sale")
    head = infra.head()
    later = plan_factory(
        {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 4}}, current=CURRENT, plan_id="p2"
    )
    held = apply(later, infra.root, mode="commit")  # the run goes on: nothing to write
    assert held.commit is None
    assert not held.diff
    (note,) = [n for n in held.notes if n.startswith("checkout held:")]
    assert "shop/Pulumi.prod.yaml" in note
    assert "cloudbalance:workloads.checkout.placements[gcp:us-central1].replicas" in note
    assert "5" in note
    assert "9" in note
    assert infra.head() == head
    assert read_placements(infra.prod.read_text())["checkout"][GCP] == 9  # the person's value
    # A plan that agrees with the person overwrites nothing, so it goes through.
    agreeing = plan_factory(
        {"checkout": {"aws:us-east-1": 2, "gcp:us-central1": 9}}, current=CURRENT, plan_id="p3"
    )
    assert apply(agreeing, infra.root, mode="commit").commit is not None


def test_a_held_workload_is_reported_in_a_dry_run_too(infra, plan_factory) -> None:
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    infra.prod.write_text(infra.prod.read_text().replace("replicas: 3}", "replicas: 1}"))
    infra.commit_all("hand edit")
    dry = apply(plan_factory(CURRENT, plan_id="p2"), infra.root)
    assert any(n.startswith("checkout held:") for n in dry.notes)
    assert not dry.diff


def test_revert_restores_the_file_byte_for_byte_in_a_new_commit(infra, plan_factory) -> None:
    original = infra.prod.read_bytes()
    applied = apply(shift_plan(plan_factory), infra.root, mode="commit")
    result = revert("p-20261124-a1", infra.root)
    assert result.commit == infra.head()
    assert infra.prod.read_bytes() == original
    assert infra.git("rev-parse", "HEAD^") == applied.commit  # history kept, not rewritten
    trailers = parse_trailers(infra.message())
    assert trailers["Cloudbalance-Revert"] == "p-20261124-a1"
    assert trailers["Cloudbalance-Reverted-Commit"] == applied.commit
    assert infra.remote_git("rev-parse", "main") == result.commit
    with pytest.raises(GitOpsError, match="already reverted"):
        revert("p-20261124-a1", infra.root)
    # The revert counts as cloudbalance's own write: the next plan sees no conflict.
    assert apply(shift_plan(plan_factory, plan_id="p4"), infra.root, mode="commit").commit


def test_revert_of_an_unknown_plan_is_a_clear_error(infra) -> None:
    with pytest.raises(GitOpsError, match="no commit of plan nope"):
        revert("nope", infra.root)


def test_revert_refuses_to_overwrite_a_later_human_edit(infra, plan_factory) -> None:
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    infra.prod.write_text(infra.prod.read_text().replace("replicas: 3}", "replicas: 4}"))
    infra.commit_all("hand edit")
    with pytest.raises(ConflictError) as caught:
        revert("p-20261124-a1", infra.root)
    assert (caught.value.expected, caught.value.found) == (3, 4)


def test_auto_mode_commits_at_or_above_the_confidence_threshold(infra, plan_factory) -> None:
    rails = Guardrails(min_confidence_commit=0.87)
    result = apply(shift_plan(plan_factory), infra.root, mode="auto", guardrails=rails)
    assert result.mode == "commit"
    assert result.commit == infra.head()


def test_auto_mode_below_the_threshold_opens_a_pull_request(infra, plan_factory, github) -> None:
    rails = Guardrails(min_confidence_commit=0.95)
    forge = Forge(api_url=github.url, repository="acme/infra")
    head = infra.head()
    result = apply(shift_plan(plan_factory), infra.root, mode="auto", guardrails=rails, forge=forge)
    assert result.mode == "pr"
    assert infra.head() == head
    assert "confidence 0.87 < 0.95" in github.pulls[1]["body"]


def test_auto_mode_over_the_move_limit_asks_a_human(infra, plan_factory, github) -> None:
    rails = Guardrails(min_confidence_commit=0.5, max_moves=1)
    forge = Forge(api_url=github.url, repository="acme/infra")
    result = apply(shift_plan(plan_factory), infra.root, mode="auto", guardrails=rails, forge=forge)
    assert result.mode == "pr"
    assert "max_moves=1" in github.pulls[1]["body"]


def _gate(mode: str, **guardrails: object) -> object:
    """The Rego policy gate of settings with these guardrails: where limits are enforced."""
    import dataclasses

    from cloudbalance.config import Settings
    from cloudbalance.policy import policy_gate

    settings = Settings()
    settings = dataclasses.replace(
        settings, guardrails=dataclasses.replace(settings.guardrails, **guardrails)
    )
    return policy_gate(settings, mode=mode)


def test_commit_mode_over_the_share_limit_is_refused_by_the_policy(infra, plan_factory) -> None:
    rails = Guardrails(max_share_moved=0.25)  # the shift relocates 3 of 8 replicas: 38%
    with pytest.raises(PolicyDeniedError, match="max_share_moved: the change moves 3 of 8"):
        apply(
            shift_plan(plan_factory),
            infra.root,
            mode="commit",
            guardrails=rails,
            policy_check=_gate("commit", max_share_moved=0.25),  # type: ignore[arg-type]
        )
    # on a branch for a person's review, over the limit goes ahead, with a note
    proposed = apply(
        shift_plan(plan_factory),
        infra.root,
        mode="branch",
        guardrails=rails,
        policy_check=_gate("branch", max_share_moved=0.25),  # type: ignore[arg-type]
        push=False,
    )
    assert any("max_share_moved=25%" in n for n in proposed.notes)


def test_freeze_window_stops_every_mode_but_a_dry_run(infra, plan_factory) -> None:
    from cloudbalance.config import FreezeWindow as FreezeSetting

    window = FreezeWindow(date(2026, 12, 20), date(2027, 1, 3), "year end")
    rails = Guardrails(freeze=(window,))
    frozen = (FreezeSetting(window.start, window.end, window.reason),)
    during = datetime(2026, 12, 24, 10)

    def gate(mode: str, now: datetime) -> object:
        check = _gate(mode, freeze=frozen)
        check.now = now  # type: ignore[attr-defined]
        return check

    with pytest.raises(PolicyDeniedError, match=r"freeze: .*year end"):
        apply(
            shift_plan(plan_factory),
            infra.root,
            mode="commit",
            guardrails=rails,
            now=during,
            policy_check=gate("commit", during),  # type: ignore[arg-type]
        )
    dry = apply(
        shift_plan(plan_factory),
        infra.root,
        guardrails=rails,
        now=during,
        policy_check=gate("dry-run", during),  # type: ignore[arg-type]
    )
    assert dry.diff
    assert any("freeze window" in n for n in dry.notes)
    after = datetime(2027, 1, 4)
    assert apply(
        shift_plan(plan_factory),
        infra.root,
        mode="commit",
        guardrails=rails,
        now=after,
        policy_check=gate("commit", after),  # type: ignore[arg-type]
    ).commit


def test_freeze_window_text_is_parsed_and_checked() -> None:
    window = FreezeWindow.parse("2026-12-20..2027-01-03")
    assert window.contains(datetime(2027, 1, 3, 23, 59))
    assert not window.contains(datetime(2027, 1, 4))
    with pytest.raises(GitOpsError, match="YYYY-MM-DD"):
        FreezeWindow.parse("next week")


def test_an_in_place_scale_up_without_saving_reaches_git(infra, plan_factory) -> None:
    # The minimum saving is the planner's guardrail alone: gitops writes what the plan decided,
    # so a scale-up in place (no relocation, no saving) is committed, not skipped.
    from dataclasses import replace

    rails = Guardrails(min_saving=500.0)
    scale = replace(
        plan_factory({"checkout": {"aws:us-east-1": 8, "gcp:us-central1": 2}}, current=CURRENT),
        expected_cost=1000.0,
    )
    assert scale.saving == 0.0
    result = apply(scale, infra.root, mode="commit", guardrails=rails)
    assert result.mode == "commit"
    assert result.commit is not None
    assert infra.head() == result.commit


def test_policy_denies_stop_the_change_and_warnings_reach_the_message(infra, plan_factory) -> None:
    seen: list[StackDiff] = []

    def deny(plan: Plan, diff: StackDiff) -> PolicyResult:
        seen.append(diff)
        return PolicyResult(denies=("checkout may not leave aws below 4 replicas",))

    head = infra.head()
    with pytest.raises(PolicyDeniedError, match="below 4 replicas"):
        apply(shift_plan(plan_factory), infra.root, mode="commit", policy_check=deny)
    assert infra.head() == head
    assert seen[0].paths == ("shop/Pulumi.prod.yaml",)

    def warn(plan: Plan, diff: StackDiff) -> PolicyResult:
        return PolicyResult(warnings=("gcp budget 80% used",))

    apply(shift_plan(plan_factory), infra.root, mode="commit", policy_check=warn)
    assert "- policy: gcp budget 80% used" in infra.message()


def test_workload_in_no_stack_is_a_stack_config_error(infra, plan_factory) -> None:
    plan = plan_factory({"billing": {"aws:us-east-1": 2}})
    with pytest.raises(StackConfigError, match="'billing' is in no stack file"):
        apply(plan, infra.root)


def test_workload_stack_names_the_project_and_stack_to_write(infra, plan_factory) -> None:
    other = infra.root / "shop" / "Pulumi.dr.yaml"
    other.write_text(infra.prod.read_text())
    infra.commit_all("disaster-recovery stack")
    plan = shift_plan(plan_factory)
    with pytest.raises(StackConfigError, match="several stack files"):
        apply(plan, infra.root)
    result = apply(
        plan, infra.root, mode="commit", workloads=[Workload("checkout", stack="shop/dr")]
    )
    assert infra.files_in() == ["shop/Pulumi.dr.yaml"]
    assert result.diff.paths == ("shop/Pulumi.dr.yaml",)
    with pytest.raises(StackConfigError, match="names stack 'shop/qa'"):
        apply(plan, infra.root, workloads={"checkout": "shop/qa"})


def test_plan_spanning_two_projects_changes_both_in_one_commit(infra, plan_factory) -> None:
    search = infra.root / "search"
    search.mkdir()
    (search / "Pulumi.yaml").write_text("name: search\nruntime: python\n")
    (search / "Pulumi.prod.yaml").write_text(
        "config:\n  cloudbalance:workloads:\n    index:\n      placements:\n"
        "        - {cloud: azure, region: westeurope, replicas: 2}\n"
    )
    infra.commit_all("search project")
    plan = plan_factory(SHIFT | {"index": {"azure:westeurope": 1, "gcp:us-central1": 1}})
    result = apply(plan, infra.root, mode="commit")
    assert sorted(infra.files_in()) == ["search/Pulumi.prod.yaml", "shop/Pulumi.prod.yaml"]
    assert len(result.diff.changes) == 4


def test_a_branch_behind_its_remote_is_fast_forwarded_and_nothing_is_forced(
    infra, plan_factory, tmp_path
) -> None:
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(infra.remote), str(other)], check=True)
    (other / "README.md").write_text("someone else\n")
    subprocess.run(["git", "-C", str(other), "commit", "-qam", "docs"], check=True)
    subprocess.run(["git", "-C", str(other), "push", "-q"], check=True)
    remote_main = infra.remote_git("rev-parse", "main")
    result = apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert any("fast-forwarded main by 1 commit(s) from origin/main" in n for n in result.notes)
    assert infra.git("rev-parse", "HEAD^") == remote_main  # on top of theirs, nothing forced
    assert infra.remote_git("rev-parse", "main") == result.commit
    assert (infra.root / "README.md").read_text() == "someone else\n"


def test_a_refused_push_leaves_nothing_that_blocks_the_next_run(infra, plan_factory) -> None:
    hook = infra.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    head = infra.head()
    with pytest.raises(GitOpsError, match=r"protected branch.*local commit .* was undone"):
        apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert infra.head() == head
    assert infra.git("status", "--porcelain") == ""
    assert not (infra.root / ".git" / "cloudbalance-journal.json").exists()
    hook.unlink()
    result = apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert result.pushed
    assert infra.remote_git("rev-parse", "main") == result.commit


def test_failing_commit_hook_leaves_the_working_copy_clean(infra, plan_factory) -> None:
    hook = infra.root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint failed' >&2\nexit 1\n")
    hook.chmod(0o755)
    head = infra.head()
    with pytest.raises(GitOpsError, match="lint failed"):
        apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert infra.head() == head
    assert infra.git("status", "--porcelain") == ""


def test_commit_without_upstream_stays_local_and_says_so(infra, plan_factory) -> None:
    infra.git("switch", "-q", "-c", "local-only")
    result = apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert not result.pushed
    assert any("no upstream" in n for n in result.notes)


def test_plan_id_that_cannot_name_a_branch_is_refused(infra, plan_factory) -> None:
    with pytest.raises(GitOpsError, match="cannot name a branch"):
        apply(shift_plan(plan_factory, plan_id="../main"), infra.root)


def test_reason_and_forecast_of_each_move_are_in_the_message(infra, plan_factory) -> None:
    plan = plan_factory(
        SHIFT,
        current=CURRENT,
        moves=(
            Move("checkout", AWS, 6, 3, 40.0, 0.91, "us-east-1 spot prices spike on Black Friday"),
            Move("checkout", GCP, 2, 5, 60.0, 0.84, "us-central1 | committed use discount"),
        ),
        later=({"checkout": {"aws:us-east-1": 2, "gcp:us-central1": 8}},),
        notes=("throttled checkout to 3 added replicas per day",),
    )
    result = apply(plan, infra.root)
    assert (
        "| checkout | aws:us-east-1 | 6 | 3 | 8 → 10 | 40.00 | 0.91 | "
        "us-east-1 spot prices spike on Black Friday |"
    ) in result.message
    assert "us-central1 \\| committed use discount" in result.message
    assert "- throttled checkout to 3 added replicas per day" in result.message


def test_a_forks_pull_request_is_never_taken_for_our_own(infra, plan_factory, github) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    github.pulls[1] = {
        "number": 1,
        "state": "open",
        "html_url": "https://github.example/acme/infra/pull/1",
        "title": "cloudbalance: totally legit",
        "body": "<!-- cloudbalance:managed -->",
        "head": {"ref": "cloudbalance/evil", "repo": {"full_name": "mallory/infra"}},
        "base": {"ref": "main"},
    }
    result = apply(shift_plan(plan_factory), infra.root, mode="pr", forge=forge)
    assert result.pull_request is not None
    assert result.pull_request.created
    assert result.pull_request.number == 2
    assert github.pulls[1]["title"] == "cloudbalance: totally legit"


def test_plan_started_from_other_numbers_than_the_file_is_flagged(infra, plan_factory) -> None:
    stale = plan_factory(SHIFT, current={"checkout": {"aws:us-east-1": 7, "gcp:us-central1": 2}})
    result = apply(stale, infra.root)
    assert "plan assumed 7 replicas of checkout at aws:us-east-1, the stack file has 6" in (
        result.message
    )


def test_public_api_exports_apply_and_revert() -> None:
    import cloudbalance
    import cloudbalance.gitops

    assert cloudbalance.apply is cloudbalance.gitops.apply
    assert cloudbalance.revert is cloudbalance.gitops.revert


def test_branch_commits_are_signed_when_git_is_configured_to_sign(infra, plan_factory) -> None:
    infra.git("config", "commit.gpgSign", "true")
    infra.git("config", "gpg.program", "false")  # a signer that always fails
    with pytest.raises(GitOpsError, match="commit-tree failed"):
        apply(shift_plan(plan_factory), infra.root, mode="branch")
    assert infra.git("branch", "--list", "cloudbalance/*") == ""


def test_broken_unrelated_stack_file_is_named_and_skipped_when_the_stack_is_given(
    infra, plan_factory
) -> None:
    (infra.root / "shop" / "Pulumi.qa.yaml").write_text("config:\n  aws:region: [us-east-1\n")
    infra.commit_all("qa stack, half written")
    plan = shift_plan(plan_factory)
    with pytest.raises(StackConfigError) as caught:
        apply(plan, infra.root)
    assert caught.value.file == "shop/Pulumi.qa.yaml"
    assert caught.value.line is not None
    result = apply(plan, infra.root, mode="commit", workloads={"checkout": "shop/prod"})
    assert result.diff.paths == ("shop/Pulumi.prod.yaml",)


def test_revert_as_pull_request_is_not_mistaken_for_the_next_plans(
    infra, plan_factory, github
) -> None:
    forge = Forge(api_url=github.url, repository="acme/infra")
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    reverted = revert("p-20261124-a1", infra.root, mode="pr", forge=forge)
    assert reverted.branch == "cloudbalance/revert-p-20261124-a1"
    assert github.pulls[1]["title"] == "cloudbalance: revert plan p-20261124-a1"
    assert "Cloudbalance-Revert: p-20261124-a1" in github.pulls[1]["body"]
    later = plan_factory(
        {"checkout": {"aws:us-east-1": 2, "gcp:us-central1": 6}}, current=CURRENT, plan_id="p5"
    )
    result = apply(later, infra.root, mode="pr", forge=forge)
    assert result.pull_request is not None
    assert result.pull_request.created
    assert result.branch == "cloudbalance/p5"


def test_unpushed_commits_of_the_user_are_never_pushed_with_ours(infra, plan_factory) -> None:
    (infra.root / "README.md").write_text("work in progress\n")
    infra.git("commit", "-qam", "local only")
    remote_main = infra.remote_git("rev-parse", "main")
    with pytest.raises(GitOpsError, match="1 commit\\(s\\) not on origin/main; push them first"):
        apply(shift_plan(plan_factory), infra.root, mode="branch")
    assert infra.remote_git("rev-parse", "main") == remote_main
    result = apply(shift_plan(plan_factory), infra.root, mode="commit", push=False)
    assert result.commit == infra.head()
    assert not result.pushed


def test_stack_file_with_windows_line_endings_keeps_them_in_every_mode(infra, plan_factory) -> None:
    crlf = infra.prod.read_text().replace("\n", "\r\n")
    infra.prod.write_bytes(crlf.encode())
    infra.commit_all("windows editor")
    expected = crlf.replace("replicas: 6}", "replicas: 3}").replace("replicas: 2}", "replicas: 5}")
    branch = apply(shift_plan(plan_factory), infra.root, mode="branch")
    shown = subprocess.run(
        ["git", "show", f"{branch.commit}:shop/Pulumi.prod.yaml"],
        cwd=infra.root,
        capture_output=True,
        check=True,
    ).stdout
    assert shown == expected.encode()
    apply(shift_plan(plan_factory, plan_id="p-crlf"), infra.root, mode="commit")
    assert infra.prod.read_bytes() == expected.encode()
    assert infra.git("diff", "--stat", "HEAD^", "HEAD").endswith("2 insertions(+), 2 deletions(-)")


def test_untracked_stack_file_is_never_picked(infra, plan_factory) -> None:
    (infra.root / "shop" / "Pulumi.scratch.yaml").write_text(infra.prod.read_text())
    result = apply(shift_plan(plan_factory), infra.root, mode="commit")
    assert result.diff.paths == ("shop/Pulumi.prod.yaml",)
    assert "?? shop/Pulumi.scratch.yaml" in infra.git("status", "--porcelain")


def test_planner_inputs_give_the_forecast_column_and_the_workloads_stack(
    infra, plan_factory
) -> None:
    import dataclasses

    other = infra.root / "shop" / "Pulumi.dr.yaml"
    other.write_text(infra.prod.read_text())
    infra.commit_all("disaster-recovery stack")
    import numpy as np

    from cloudbalance.plan import Problem

    cost = np.ones((1, 2, 3))
    problem = Problem(
        workloads=(Workload("checkout", stack="shop/dr"),),
        locations=(AWS, GCP),
        period_start=datetime(2026, 11, 24),
        period="1D",
        demand=np.array([[8, 11, 15]]),
        cost=cost,
        cost_lower=cost,
        cost_upper=cost,
        current=np.array([[6, 2]]),
        confidence=np.array([0.9]),
    )
    plan = dataclasses.replace(shift_plan(plan_factory), inputs={"problem": problem.to_dict()})
    result = apply(plan, infra.root)
    assert result.diff.paths == ("shop/Pulumi.dr.yaml",)
    assert "| checkout | aws:us-east-1 | 6 | 3 | 8 → 11 → 15 |" in result.message


def test_a_plan_computed_after_the_edit_or_told_to_overwrite_goes_through(
    infra, plan_factory
) -> None:
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    text = infra.prod.read_text().replace("us-central1, replicas: 5", "us-central1, replicas: 9")
    infra.prod.write_text(text)
    infra.commit_all("ops: more overflow capacity")
    edited = {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 9}}
    stale = plan_factory(
        {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 4}}, current=SHIFT, plan_id="p6"
    )
    assert apply(stale, infra.root, mode="commit").commit is None  # held, not overwritten
    assert read_placements(infra.prod.read_text())["checkout"][GCP] == 9
    # Re-planned from the stack file as it is now: the planner saw the 9, nothing is lost.
    fresh = plan_factory(
        {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 4}}, current=edited, plan_id="p7"
    )
    assert apply(fresh, infra.root, mode="dry-run").diff
    # Or a person decides to overwrite.
    done = apply(stale, infra.root, mode="commit", overwrite_edits=True)
    assert read_placements(infra.prod.read_text())["checkout"][GCP] == 4
    assert done.commit == infra.head()


def test_revert_can_be_told_to_overwrite_a_later_edit(infra, plan_factory) -> None:
    original = infra.prod.read_bytes()
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    infra.prod.write_text(infra.prod.read_text().replace("replicas: 3}", "replicas: 4}"))
    infra.commit_all("hand edit")
    revert("p-20261124-a1", infra.root, overwrite_edits=True)
    assert infra.prod.read_bytes() == original


def test_two_worktrees_of_one_repository_share_the_lock(infra, plan_factory, tmp_path) -> None:
    other = tmp_path / "second-worktree"
    infra.git("worktree", "add", "-q", "-b", "side", str(other))
    with (
        repository_lock(Git.open(other)),
        pytest.raises(GitOpsError, match="another cloudbalance run"),
    ):
        apply(shift_plan(plan_factory), infra.root, mode="commit")


def test_revert_removes_the_entries_the_plan_added_byte_for_byte(infra, plan_factory) -> None:
    original = infra.prod.read_bytes()
    grow = {"checkout": {"aws:us-east-1": 3, "gcp:us-central1": 2, "azure:westeurope": 3}}
    applied = apply(plan_factory(grow, current=CURRENT), infra.root, mode="commit")
    assert "azure" in applied.diff.unified()
    result = revert("p-20261124-a1", infra.root)
    assert infra.prod.read_bytes() == original  # no `replicas: 0` entry left behind
    assert [(c.location.key, c.before, c.after) for c in result.diff.changes] == [
        ("aws:us-east-1", 3, 6),
        ("azure:westeurope", 3, 0),
    ]


def test_revert_keeps_later_unrelated_edits_of_a_person(infra, plan_factory) -> None:
    original = infra.prod.read_text()
    apply(
        plan_factory({"checkout": {"aws:us-east-1": 4, "gcp:us-central1": 2}}, current=CURRENT),
        infra.root,
        mode="commit",
    )
    edited = infra.prod.read_text()
    for old, new in (
        ("# Production stack", "# The production stack"),
        ("replicas: 2}  # overflow", "replicas: 1}  # overflow"),  # the line next to ours
        ("          replicas: 4\n", "          replicas: 5\n"),  # another workload
    ):
        edited = edited.replace(old, new)
    infra.prod.write_text(edited)
    infra.commit_all("ops: hand edits")
    revert("p-20261124-a1", infra.root)
    expected = (
        original.replace("# Production stack", "# The production stack")
        .replace("replicas: 2}  # overflow", "replicas: 1}  # overflow")
        .replace("          replicas: 4\n", "          replicas: 5\n")
    )
    assert infra.prod.read_text() == expected


def test_revert_refuses_when_a_person_rewrote_the_lines_the_plan_wrote(infra, plan_factory) -> None:
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    edited = infra.prod.read_text().replace("replicas: 3}    # primary", "replicas: 3}  # keep!")
    infra.prod.write_text(edited)
    infra.commit_all("ops: note")
    with pytest.raises(ConflictError, match="the lines plan commit"):
        revert("p-20261124-a1", infra.root)
    assert infra.prod.read_text() == edited


def test_revert_of_a_plan_a_later_plan_already_undid_changes_nothing(infra, plan_factory) -> None:
    original = infra.prod.read_bytes()
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    apply(plan_factory(CURRENT, current=SHIFT, plan_id="p2"), infra.root, mode="commit")
    assert infra.prod.read_bytes() == original
    head = infra.head()
    result = revert("p-20261124-a1", infra.root)
    assert not result.diff
    assert result.notes == ("nothing to revert: values already restored",)
    assert infra.head() == head


def test_a_held_workload_does_not_stop_the_others(infra, plan_factory) -> None:
    apply(shift_plan(plan_factory), infra.root, mode="commit")
    text = infra.prod.read_text().replace("us-central1, replicas: 5", "us-central1, replicas: 9")
    infra.prod.write_text(text)
    infra.commit_all("ops: more overflow capacity")
    both = plan_factory(
        {
            "checkout": {"aws:us-east-1": 3, "gcp:us-central1": 4},
            "search": {"gcp:europe-west1": 3},
        },
        current={**SHIFT, "search": {"gcp:europe-west1": 1}},
        plan_id="p8",
    )
    done = apply(both, infra.root, mode="commit")
    assert done.commit == infra.head()
    assert done.diff.paths == ("shop/Pulumi.staging.yaml",)
    assert any(n.startswith("checkout held:") for n in done.notes)
    assert read_placements(infra.prod.read_text())["checkout"][GCP] == 9
    staging = (infra.root / "shop" / "Pulumi.staging.yaml").read_text()
    assert read_placements(staging)["search"][Location("gcp", "europe-west1")] == 3
