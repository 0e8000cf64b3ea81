"""Apply a plan to a Git working copy, and revert it: conflicts, modes, pushes.

The order of checks is the order of risk: the lock first (no interleaving), then the state of
the working copy (no dirty tree, no detached head), then the edit itself (validated before and
after), then what a person changed since the last plan (a :class:`ConflictError`, never an
overwrite), then the user's guardrails and policies, and only then a commit, a branch or a pull
request. Every mode but ``commit`` leaves the working copy and the checked-out branch untouched.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cloudbalance.exceptions import (
    ConflictError,
    GitOpsError,
    PolicyDeniedError,
    StackConfigError,
)
from cloudbalance.gitops._diff import FileChange, StackDiff, three_way
from cloudbalance.gitops._forge import BRANCH_PREFIX, Forge, PullRequest, repository_from_url
from cloudbalance.gitops._git import Git, repository_lock
from cloudbalance.gitops._guardrails import Guardrails, PolicyCheck
from cloudbalance.gitops._heal import Intent, digest, heal, write_text_atomic
from cloudbalance.gitops._heal import clear as clear_journal
from cloudbalance.gitops._heal import write as write_journal
from cloudbalance.gitops._message import (
    PLAN_TRAILER,
    REVERT_TRAILER,
    parse_trailers,
    render,
    render_revert,
)
from cloudbalance.gitops._stackfile import (
    WORKLOADS_KEY,
    PlacementChange,
    StackFile,
    discover_stacks,
    edit_placements,
    read_placements,
)
from cloudbalance.models import MODES, REVERT_MODES, Location, Mode, Plan, Workload

__all__ = ["ApplyResult", "apply", "revert"]


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` or :func:`revert` did.

    Attributes:
        plan_id: The plan applied or reverted.
        mode: The mode that acted (``auto`` resolved to ``commit`` or ``pr``).
        diff: The change, per file.
        message: The commit message (subject, blank line, body with trailers).
        commit: The commit made, if any.
        branch: The branch the commit is on.
        pushed: Whether it was pushed.
        pull_request: The pull request opened or updated, in ``pr`` mode.
        notes: Why the mode was chosen, guardrail and policy remarks.
    """

    plan_id: str
    mode: str
    diff: StackDiff
    message: str
    commit: str | None = None
    branch: str | None = None
    pushed: bool = False
    pull_request: PullRequest | None = None
    notes: tuple[str, ...] = ()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _known(plan: Plan) -> dict[tuple[str, Location], int]:
    """The placement the plan started from, by (workload, location)."""
    return {(p.workload, p.location): int(p.replicas) for p in plan.current}


def _targets(plan: Plan) -> dict[str, dict[Location, int]]:
    """Workload -> location -> replicas of the plan's first period (moved workloads included)."""
    targets: dict[str, dict[Location, int]] = defaultdict(dict)
    for placement in plan.first_period:
        if placement.replicas < 0:
            raise GitOpsError(
                f"plan {plan.plan_id}: workload {placement.workload!r} has negative replicas "
                f"at {placement.location}"
            )
        current = targets[placement.workload].get(placement.location, 0)
        targets[placement.workload][placement.location] = current + int(placement.replicas)
    for move in plan.moves:
        targets.setdefault(move.workload, {})
    return dict(targets)


def _stack_hints(plan: Plan, workloads: Iterable[Workload] | Mapping[str, str]) -> dict[str, str]:
    """Workload -> ``project/stack``: from the caller, else from the planner's stored problem."""
    from cloudbalance.plan.problem import Problem

    problem = Problem.of(plan)
    hints: dict[str, str] = problem.stacks() if problem is not None else {}
    if isinstance(workloads, Mapping):
        hints.update({str(k): str(v) for k, v in workloads.items()})
    else:
        hints.update({w.name: w.stack for w in workloads if w.stack})
    return hints


def _read(git: Git, rev: str | None, path: str) -> str:
    if rev is None:
        try:
            # newline="": keep CRLF as written, so the edit stays byte-exact.
            with open(git.root / path, encoding="utf-8", newline="") as stream:
                return stream.read()
        except OSError as err:
            raise StackConfigError(f"cannot read: {err.strerror}", file=path) from err
    text = git.show(rev, path)
    if text is None:
        raise StackConfigError(f"not present at {rev}", file=path)
    return text


def _locate(
    git: Git,
    rev: str | None,
    stacks: Sequence[StackFile],
    targets: Mapping[str, Mapping[Location, int]],
    hints: Mapping[str, str],
) -> dict[StackFile, dict[str, Mapping[Location, int]]]:
    """Which stack file holds each workload: its ``stack`` hint, else the one that lists it."""
    by_ref: dict[str, list[StackFile]] = defaultdict(list)
    for stack in stacks:
        by_ref[stack.ref].append(stack)
    read: dict[StackFile, dict[str, dict[Location, int]]] = {}

    def placed_in(stack: StackFile) -> dict[str, dict[Location, int]]:
        # Read on demand: with every workload's stack given, other stack files are not parsed
        # (an unrelated broken file does not block the change).
        if stack not in read:
            text = _read(git, None, stack.path) if rev is None else git.show(rev, stack.path)
            read[stack] = read_placements(text, file=stack.path) if text is not None else {}
        return read[stack]

    chosen: dict[StackFile, dict[str, Mapping[Location, int]]] = defaultdict(dict)
    for workload, target in targets.items():
        if workload in hints:
            ref = hints[workload]
            matches = by_ref.get(ref, [])
            if len(matches) != 1:
                known = ", ".join(sorted(by_ref)) or "none"
                what = "several projects are" if matches else "no stack file is"
                raise StackConfigError(
                    f"workload {workload!r} names stack {ref!r} but {what} named so "
                    f"(stacks found: {known})"
                )
            stack = matches[0]
            if workload not in placed_in(stack):
                raise StackConfigError(
                    f"workload {workload!r} is not under {WORKLOADS_KEY}; add it with its "
                    "placements first",
                    file=stack.path,
                )
        else:
            holders = [s for s in stacks if workload in placed_in(s)]
            if not holders:
                raise StackConfigError(
                    f"workload {workload!r} is in no stack file's {WORKLOADS_KEY} "
                    f"(searched {len(stacks)} stack file(s) under {git.root.name}); add it to "
                    "a stack file or set the workload's stack"
                )
            if len(holders) > 1:
                raise StackConfigError(
                    f"workload {workload!r} is in several stack files ("
                    + ", ".join(s.path for s in holders)
                    + "); set the workload's stack (project/stack) to choose one"
                )
            stack = holders[0]
        chosen[stack][workload] = target
    return dict(chosen)


def _last_written(git: Git, rev: str, path: str) -> tuple[str, str] | None:
    """``(commit, text)`` of ``path`` as the last cloudbalance commit on ``rev`` wrote it."""
    pattern = f"^({PLAN_TRAILER}|{REVERT_TRAILER}): "
    for sha, message in git.log_messages(rev, grep=pattern, path=path):
        trailers = parse_trailers(message)
        if PLAN_TRAILER in trailers or REVERT_TRAILER in trailers:
            text = git.show(sha, path)
            if text is not None:
                return sha, text
    return None


def _conflicts(
    git: Git,
    rev: str | None,
    change: FileChange,
    targets: Mapping[str, Mapping[Location, int]],
    known: Mapping[tuple[str, Location], int],
) -> dict[str, ConflictError]:
    """Per workload, the value a person changed since the last plan and the plan would change.

    Not a conflict: the plan writes the person's value anyway, or the plan started from it
    (``known``, the plan's ``current`` placement, has that value: it was computed after the
    edit, so re-planning is how a person's edit is accepted).
    """
    found_conflicts: dict[str, ConflictError] = {}
    last = _last_written(git, rev or "HEAD", change.stack.path)
    if last is None:
        return found_conflicts
    sha, text = last
    written = read_placements(text, file=f"{change.stack.path}@{sha[:12]}")
    for workload, current in change.previous.items():
        if workload not in written:
            continue
        then = written[workload]
        target = targets[workload]
        for location in sorted(set(then) | set(current)):
            expected, found = then.get(location), current.get(location)
            if expected == found:
                continue
            if target.get(location, 0) == (found or 0):
                continue  # the plan agrees with the person: nothing would be overwritten
            if known.get((workload, location), 0) == (found or 0) and any(
                w == workload for w, _ in known
            ):
                continue  # the plan was computed from the person's value
            found_conflicts.setdefault(
                workload,
                ConflictError(
                    file=change.stack.path,
                    key=f"{WORKLOADS_KEY}.{workload}.placements[{location.key}].replicas",
                    expected=expected,
                    found=found,
                ),
            )
    return found_conflicts


def _file_change(
    stack: StackFile,
    before: str,
    placed: Mapping[str, Mapping[Location, int]],
    wanted: Mapping[str, Mapping[Location, int]],
) -> FileChange:
    """The edit of one stack file that gives ``wanted`` workloads their placements."""
    after, changes = edit_placements(before, wanted, file=stack.path)
    return FileChange(
        stack=stack,
        before=before,
        after=after,
        changes=tuple(changes),
        previous={w: placed[w] for w in wanted},
    )


def _diff(
    git: Git,
    rev: str | None,
    targets: Mapping[str, Mapping[Location, int]],
    hints: Mapping[str, str],
    *,
    known: Mapping[tuple[str, Location], int] | None = None,
) -> StackDiff:
    """The edit of every stack file the plan touches, read at ``rev`` (None: working copy).

    ``known`` is the plan's current placement, for the conflict check; None skips the check.
    A workload whose value a person changed since the last plan (and the plan would change
    again) is held: left exactly as the person set it, and said so in ``held``. Nothing a
    person did is overwritten, and the other workloads' changes still go ahead, so a daily run
    is not stuck on one edit; the next plan, computed from the new state, takes it over.
    """
    tracked = set(git.out("ls-files", "-z", "--", "*Pulumi.*.y*ml").split("\0"))
    # Only stack files Git tracks: an untracked one is never picked, nor committed.
    stacks = [s for s in discover_stacks(git.root) if s.path in tracked]
    if not stacks:
        raise StackConfigError(
            f"no Pulumi project with a stack file tracked by Git (Pulumi.yaml beside "
            f"Pulumi.<stack>.yaml) found under {git.root.name}"
        )
    chosen = _locate(git, rev, stacks, targets, hints)
    files = []
    held: list[str] = []
    for stack in sorted(chosen, key=lambda s: s.path):
        before = _read(git, rev, stack.path)
        placed = read_placements(before, file=stack.path)
        change = _file_change(stack, before, placed, chosen[stack])
        conflicts = (
            _conflicts(git, rev, change, targets, known)
            if known is not None and change.changes
            else {}
        )
        if conflicts:
            kept = {w: t for w, t in chosen[stack].items() if w not in conflicts}
            change = _file_change(stack, before, placed, kept)
            held.extend(
                f"{w} held: {err} (left as the person set it; --overwrite-edits takes it over)"
                for w, err in sorted(conflicts.items())
            )
        files.append(change)
    return StackDiff(tuple(files), held=tuple(held))


def _stale(plan: Plan, diff: StackDiff) -> list[str]:
    """Where the plan's idea of the current placement differs from the stack file's.

    Not an error (the plan may have counted running replicas, not configured ones), but a
    reviewer should know the plan started from other numbers.
    """
    found = []
    for change in diff.files:
        for move in plan.moves:
            placed = change.previous.get(move.workload)
            if placed is None:
                continue
            actual = placed.get(move.location, 0)
            if actual != move.before:
                found.append(
                    f"plan assumed {move.before} replicas of {move.workload} at {move.location}, "
                    f"the stack file has {actual}"
                )
    return found


def _resolve_forge_repo(git: Git, forge: Forge, remote: str) -> str:
    return forge.repository or repository_from_url(git.remote_url(remote))


def _push_target(git: Git, remote: str) -> tuple[str, str] | None:
    upstream = git.upstream()
    if upstream is not None:
        return upstream
    return None


def _ensure_in_sync(git: Git) -> list[str]:
    """Bring the branch up to its upstream when it is only behind; refuse when it is ahead.

    Behind only: a fast-forward (``git merge --ff-only``, the working copy being clean) loses
    nothing and is what a person would do before writing; a daily job must not stop at "pull
    first" because someone merged a change upstream, or because a refused push was undone.
    Ahead: pushing would publish the user's own unpushed commits with ours, so it refuses.

    Returns:
        A note when the branch was fast-forwarded.

    Raises:
        GitOpsError: Saying how the branch and its upstream differ and what to do.
    """
    upstream = git.upstream()
    if upstream is None:
        return []
    up_remote, up_branch = upstream
    branch = git.current_branch()
    git.fetch(up_remote, f"refs/heads/{up_branch}")
    ahead = git.out("rev-list", "--count", "FETCH_HEAD..HEAD")
    if ahead != "0":
        raise GitOpsError(
            f"{branch} has {ahead} commit(s) not on {up_remote}/{up_branch}; push them first "
            "(cloudbalance pushes only its own commit), or use --no-push"
        )
    behind = git.out("rev-list", "--count", "HEAD..FETCH_HEAD")
    if behind == "0":
        return []
    git.run("merge", "--ff-only", "-q", "FETCH_HEAD")
    return [f"fast-forwarded {branch} by {behind} commit(s) from {up_remote}/{up_branch}"]


def _trailer_of(message: str) -> tuple[str, str]:
    """The trailer that marks a commit as cloudbalance's: ``(key, plan id)``."""
    trailers = parse_trailers(message)
    key = PLAN_TRAILER if PLAN_TRAILER in trailers else REVERT_TRAILER
    return key, trailers.get(key, "")


def _commit_here(
    git: Git, diff: StackDiff, message: str, *, remote: str, push: bool
) -> tuple[str, str, bool, list[str]]:
    """Commit the diff on the checked-out branch; push it to its upstream when asked.

    The write is announced in the journal first (see ``_heal``): a run killed at any point
    after that is finished or undone by the next one. A push the remote refuses undoes the
    local commit, so nothing is left that blocks the next run.
    """
    notes: list[str] = []
    branch = git.current_branch()
    upstream = _push_target(git, remote) if push else None
    parent = git.head()
    files = {c.stack.path: c.after for c in diff.files if c.changes}
    key, plan_id = _trailer_of(message)
    write_journal(
        git,
        Intent(
            kind="commit",
            trailer=key,
            plan_id=plan_id,
            branch=branch,
            parent=parent,
            files={path: digest(text) for path, text in files.items()},
            push=upstream is not None,
            remote=upstream[0] if upstream else None,
            remote_branch=upstream[1] if upstream else None,
        ),
    )
    written: list[Path] = []
    try:
        for change in diff.files:
            if change.changes:
                target = git.root / change.stack.path
                write_text_atomic(target, change.after)
                written.append(target)
        sha = git.commit_files(list(diff.paths), message)
    except BaseException:
        git.run("reset", "-q", "--", *diff.paths, check=False)
        for change in diff.files:
            if change.changes and (git.root / change.stack.path) in written:
                write_text_atomic(git.root / change.stack.path, change.before)
        clear_journal(git)
        raise
    pushed = False
    if push and upstream is not None:
        try:
            git.push(upstream[0], sha, upstream[1])
        except GitOpsError as err:
            git.run("reset", "-q", "--keep", parent)
            clear_journal(git)
            raise GitOpsError(
                f"{err}; the local commit {sha[:12]} was undone, so the next run starts from "
                f"{upstream[0]}/{upstream[1]} again"
            ) from None
        pushed = True
    elif push:
        notes.append(f"not pushed: {branch} has no upstream branch")
    clear_journal(git)
    return sha, branch, pushed, notes


def _base_branch(git: Git) -> str:
    upstream = git.upstream()
    return upstream[1] if upstream else git.current_branch()


def _commit_branch(
    git: Git,
    diff: StackDiff,
    message: str,
    *,
    branch: str,
    parent: str,
    remote: str,
    push: bool,
    existing_remote_tip: str | None = None,
    pull: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """Commit the diff on ``branch`` (new, or continuing ``existing_remote_tip``) and push it.

    The write is announced in the journal (see ``_heal``), with ``pull``, the pull request to
    open once the branch is pushed: the caller clears the journal when it has opened it. A
    refused push puts the local branch back where it was.
    """
    git.check_branch_name(branch)
    files = {c.stack.path: c.after for c in diff.files if c.changes}
    sha = git.commit_tree(parent, files, message)
    local = f"refs/heads/{branch}"
    key, plan_id = _trailer_of(message)
    intent = Intent(
        kind="branch",
        trailer=key,
        plan_id=plan_id,
        branch=branch,
        parent=parent,
        files={path: digest(text) for path, text in files.items()},
        push=push,
        remote=remote,
        remote_branch=branch,
        commit=sha,
        old_tip=git.head(local) if git.ref_exists(local) else None,
        pull=pull,
    )
    if existing_remote_tip is None:
        if git.ref_exists(f"refs/heads/{branch}"):
            raise GitOpsError(
                f"branch {branch} already exists; this plan was already proposed (delete the "
                "branch to propose it again)"
            )
        if push and git.remote_branch(remote, branch) is not None:
            raise GitOpsError(f"branch {branch} already exists on {remote}; refusing to overwrite")
        write_journal(git, intent)
        git.update_branch(branch, sha, None)
    else:
        old = intent.old_tip
        if old is not None and old != existing_remote_tip:
            is_ancestor = git.run(
                "merge-base", "--is-ancestor", old, existing_remote_tip, check=False
            )
            if is_ancestor.returncode != 0:
                raise GitOpsError(
                    f"local branch {branch} has commits that are not on {remote}; push or "
                    "delete them first"
                )
        write_journal(git, intent)
        git.update_branch(branch, sha, old)
    if push:
        try:
            git.push(remote, sha, branch)
        except GitOpsError:
            if intent.old_tip is None:
                git.run("update-ref", "-d", local, sha)
            else:
                git.update_branch(branch, intent.old_tip, sha)
            clear_journal(git)
            raise
    if pull is None:
        clear_journal(git)
    return sha, push


def _already_proposed(
    git: Git, diff: StackDiff, branch: str, *, remote: str, push: bool
) -> str | None:
    """The tip of ``branch`` when it already holds exactly this change (a re-run), else None.

    Makes ``branch`` mode idempotent: a scheduler running the same plan twice gets the same
    answer, not an error. A branch of that name with other content is still an error.
    """
    tip = git.head(f"refs/heads/{branch}") if git.ref_exists(f"refs/heads/{branch}") else None
    if tip is None and push and git.remote_branch(remote, branch) is not None:
        git.fetch(remote, f"refs/heads/{branch}")
        tip = git.head("FETCH_HEAD")
    if tip is None:
        return None
    same = all(git.show(tip, c.stack.path) == c.after for c in diff.files if c.changes)
    return tip if same else None


def _check_plan_id(plan_id: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", plan_id or ""):
        raise GitOpsError(
            f"plan id {plan_id!r} cannot name a branch: use letters, digits, '.', '_' and '-'"
        )


def apply(
    plan: Plan,
    repo: str | Path = ".",
    *,
    mode: Mode | None = None,
    guardrails: Guardrails | None = None,
    workloads: Iterable[Workload] | Mapping[str, str] = (),
    remote: str = "origin",
    forge: Forge | None = None,
    policy_check: PolicyCheck | None = None,
    push: bool = True,
    base: str | None = None,
    now: datetime | None = None,
    lock_timeout: float = 0.0,
    overwrite_edits: bool = False,
) -> ApplyResult:
    """Write a plan's first period into the Pulumi stack config of a Git working copy.

    Modes: ``dry-run`` computes the diff and the message and changes nothing (the default
    unless ``guardrails.default_mode`` says otherwise); ``commit`` commits on the checked-out
    branch and pushes it to its upstream; ``branch`` commits on a new branch
    ``cloudbalance/<plan-id>`` (without touching the working copy) and pushes it; ``pr`` does
    the same and opens a pull request, or updates the one a previous run opened; ``auto`` lets
    the guardrails choose ``commit`` or ``pr``.

    Args:
        plan: The plan; ``plan.first_period`` is written, ``plan.moves`` explain it.
        repo: A directory inside the Git working copy.
        mode: See above.
        guardrails: Confidence threshold, limits and freeze windows.
        workloads: Which stack holds each workload (``Workload.stack`` or a mapping of name
            to ``project/stack``), over the ``stack`` of the workloads in the problem the plan
            carries (``Problem.of(plan)``); others are found by the stack file that lists them.
        remote: The remote branches are pushed to.
        forge: Where pull requests are opened (``pr`` mode; default GitHub).
        policy_check: Called with the plan and the diff before anything is written; its
            denies stop the change, its warnings go into the message.
        push: Push what was committed (``False`` keeps it local; ``pr`` mode needs it).
        base: The branch pull requests target (default: the current branch's upstream, or
            the current branch).
        now: The current time (naive UTC) for freeze windows; defaults to the clock.
        lock_timeout: Seconds to wait for another run's lock.
        overwrite_edits: Write over values a person changed since the last plan (a deliberate
            choice after a :class:`ConflictError`; re-planning is the usual way).

    Returns:
        What was done.

    Raises:
        GitOpsError: Dirty working copy, detached head, freeze window, guardrail exceeded in
            ``commit`` mode, push refused, API failure.
        StackConfigError: A stack file is missing or invalid, or a workload is in none.
        ConflictError: A person changed a value the plan would overwrite since the last plan.
        PolicyDeniedError: The policy check denied the change.
    """
    rails = guardrails or Guardrails()
    chosen_mode: str = mode or "dry-run"
    if chosen_mode not in MODES:
        raise GitOpsError(f"unknown mode {chosen_mode!r}; use one of {', '.join(MODES)}")
    _check_plan_id(plan.plan_id)
    targets = _targets(plan)
    if not targets:
        raise GitOpsError(f"plan {plan.plan_id} places no workload; nothing to write")
    hints = _stack_hints(plan, workloads)
    git = Git.open(repo)
    when = now or _utcnow()
    with repository_lock(git, timeout=lock_timeout):
        notes: list[str] = []
        if chosen_mode != "dry-run":
            notes += heal(git, forge=forge)
            git.ensure_clean()
            git.current_branch()
            if push:
                notes += _ensure_in_sync(git)
        # The working copy (clean outside dry runs, so equal to HEAD up to Git's end-of-line
        # filters, which it keeps): what is written back keeps the file's own line endings.
        known = None if overwrite_edits else _known(plan)
        diff = _diff(git, None, targets, hints, known=known)
        notes.extend(diff.held)
        warnings: list[str] = _stale(plan, diff)
        if policy_check is not None:
            outcome = policy_check(plan, diff)
            if outcome.denies:
                raise PolicyDeniedError(list(outcome.denies))
            warnings.extend(f"policy: {w}" for w in outcome.warnings)
        frozen = rails.frozen(when)
        violations = rails.violations(len(diff.changes), diff.share_moved)
        if chosen_mode == "auto":
            if violations:
                chosen_mode = "pr"
                notes.append("pull request for review: " + "; ".join(violations))
            elif plan.confidence >= rails.min_confidence_commit:
                chosen_mode = "commit"
                notes.append(
                    f"committed: confidence {plan.confidence:.2f} >= "
                    f"{rails.min_confidence_commit:.2f}"
                )
            else:
                chosen_mode = "pr"
                notes.append(
                    f"pull request for review: confidence {plan.confidence:.2f} < "
                    f"{rails.min_confidence_commit:.2f}"
                )
        elif violations:  # a direct commit over them is denied by the max_share_moved policy
            notes.extend(f"guardrail exceeded: {v}" for v in violations)
        if frozen is not None:  # refused by the freeze policy, the one place it is enforced
            notes.append(f"freeze window in force: {frozen}")
        # The minimum saving is the planner's guardrail (one home, cloudbalance.plan.solve): a
        # plan below it relocates nothing, and its in-place scale-ups are written as they are.
        subject, body = render(
            plan,
            diff.changes,
            files=diff.paths,
            warnings=[*warnings, *notes],
            markdown_marker=chosen_mode == "pr",
        )
        message = f"{subject}\n\n{body}"
        if not diff and chosen_mode != "pr":
            return ApplyResult(
                plan.plan_id,
                chosen_mode,
                diff,
                message,
                notes=(*notes, "nothing to change: the stack config already matches the plan"),
            )
        if chosen_mode == "dry-run":
            return ApplyResult(plan.plan_id, "dry-run", diff, message, notes=tuple(notes))
        if chosen_mode == "commit":
            sha, branch, pushed, more = _commit_here(git, diff, message, remote=remote, push=push)
            return ApplyResult(
                plan.plan_id, "commit", diff, message, sha, branch, pushed, notes=(*notes, *more)
            )
        base_branch = base or _base_branch(git)
        if chosen_mode == "branch":
            branch = f"{BRANCH_PREFIX}{plan.plan_id}"
            proposed = _already_proposed(git, diff, branch, remote=remote, push=push)
            if proposed is not None:
                return ApplyResult(
                    plan.plan_id,
                    "branch",
                    diff,
                    message,
                    proposed,
                    branch,
                    False,
                    notes=(*notes, f"already proposed on {branch}: nothing to do"),
                )
            sha, pushed = _commit_branch(
                git, diff, message, branch=branch, parent=git.head(), remote=remote, push=push
            )
            return ApplyResult(
                plan.plan_id, "branch", diff, message, sha, branch, pushed, notes=tuple(notes)
            )
        if not push:
            raise GitOpsError("a pull request needs the branch pushed; drop --no-push")
        return _pull_request(
            git,
            plan,
            diff,
            forge or Forge(),
            remote=remote,
            base_branch=base_branch,
            targets=targets,
            hints=hints,
            remarks=[*warnings, *notes],
            known=known,
        )


def _pull_request(
    git: Git,
    plan: Plan,
    diff: StackDiff,
    forge: Forge,
    *,
    remote: str,
    base_branch: str,
    targets: Mapping[str, Mapping[Location, int]],
    hints: Mapping[str, str],
    remarks: list[str],
    known: Mapping[tuple[str, Location], int] | None,
) -> ApplyResult:
    """Open a pull request for the plan, or bring the open one of an earlier run up to it.

    The pull request's body always describes its whole effect on the base branch (``diff``);
    each commit on its branch describes what that commit changes.
    """
    repository = _resolve_forge_repo(git, forge, remote)
    existing = forge.find_open(repository, base_branch)
    subject, body = render(
        plan, diff.changes, files=diff.paths, warnings=remarks, markdown_marker=True
    )
    message = f"{subject}\n\n{body}"
    if existing is None:
        if not diff:
            return ApplyResult(
                plan.plan_id,
                "pr",
                diff,
                message,
                notes=(*remarks, "nothing to change: the stack config already matches the plan"),
            )
        branch = f"{BRANCH_PREFIX}{plan.plan_id}"
        proposed = _already_proposed(git, diff, branch, remote=remote, push=True)
        if proposed is not None:
            # An earlier run made (and maybe pushed) this very branch, then stopped before
            # its pull request was opened: open it now instead of refusing the branch.
            if git.remote_branch(remote, branch) != proposed:
                git.push(remote, proposed, branch)
            pull = forge.open(repository, branch=branch, base=base_branch, title=subject, body=body)
            return ApplyResult(
                plan.plan_id,
                "pr",
                diff,
                message,
                proposed,
                branch,
                True,
                pull,
                (*remarks, f"{branch} was pushed without its pull request: opened it"),
            )
        created, pushed = _commit_branch(
            git,
            diff,
            message,
            branch=branch,
            parent=git.head(),
            remote=remote,
            push=True,
            pull={"repository": repository, "base": base_branch, "title": subject, "body": body},
        )
        pull = forge.open(repository, branch=branch, base=base_branch, title=subject, body=body)
        clear_journal(git)
        return ApplyResult(
            plan.plan_id, "pr", diff, message, created, branch, pushed, pull, tuple(remarks)
        )
    # A previous run's pull request is still open: add this plan on top of its branch.
    tip = git.remote_branch(remote, existing.branch)
    if tip is None:
        raise GitOpsError(
            f"pull request #{existing.number} is open but its branch {existing.branch} is "
            f"gone from {remote}; close it and run again"
        )
    git.fetch(remote, f"refs/heads/{existing.branch}")
    on_branch = _diff(git, tip, targets, hints, known=known)
    commit_subject, commit_body = render(
        plan,
        on_branch.changes,
        files=on_branch.paths,
        warnings=[*remarks, f"updates pull request #{existing.number}"],
    )
    sha: str | None = None
    pushed = False
    if on_branch:
        sha, pushed = _commit_branch(
            git,
            on_branch,
            f"{commit_subject}\n\n{commit_body}",
            branch=existing.branch,
            parent=tip,
            remote=remote,
            push=True,
            existing_remote_tip=tip,
        )
    notes = [*remarks, f"updated open pull request #{existing.number}"]
    if not diff:
        pull = forge.close(repository, existing)
        notes.append(f"closed pull request #{existing.number}: with this plan it changes nothing")
    else:
        pull = forge.update(repository, existing, title=subject, body=body)
    return ApplyResult(
        plan.plan_id, "pr", diff, message, sha, existing.branch, pushed, pull, tuple(notes)
    )


def _find_plan_commit(git: Git, plan_id: str) -> str:
    pattern = f"^{PLAN_TRAILER}: {re.escape(plan_id)}$"
    for sha, message in git.log_messages("HEAD", grep=pattern):
        if parse_trailers(message).get(PLAN_TRAILER) == plan_id:
            return sha
    raise GitOpsError(
        f"no commit of plan {plan_id} on {git.current_branch()} (looked for the trailer "
        f"'{PLAN_TRAILER}: {plan_id}')"
    )


def _placement_changes(
    before: Mapping[str, Mapping[Location, int]], after: Mapping[str, Mapping[Location, int]]
) -> list[PlacementChange]:
    """Every placement value that differs (an entry removed reads as ``after`` 0)."""
    changes = []
    for workload in sorted(set(before) | set(after)):
        old, new = before.get(workload, {}), after.get(workload, {})
        for location in sorted(set(old) | set(new)):
            if old.get(location) != new.get(location):
                changes.append(
                    PlacementChange(workload, location, old.get(location), new.get(location, 0))
                )
    return changes


def _revert_file(
    git: Git, sha: str, stack: StackFile, current_text: str, overwrite_edits: bool
) -> FileChange | None:
    """The edit that takes back what commit ``sha`` did to one stack file; None: nothing to do.

    A three-way merge of the file's text (:func:`three_way`): the plan's own change (its
    commit's text back to its parent's) is taken out of the current text, so the lines the plan
    wrote, and the entries it added, return exactly as they were (byte for byte) while later
    changes to other lines stay. When a later change touched the same lines, that is a person's
    (or a later plan's) decision the revert would overwrite: :class:`ConflictError`, unless
    ``overwrite_edits``, which restores the values the plan changed by a minimal edit.
    """
    path = stack.path
    parent_text = git.show(f"{sha}^", path) or ""
    plan_text = git.show(sha, path) or ""
    before_plan = read_placements(parent_text, file=path) if parent_text else {}
    plan_wrote = read_placements(plan_text, file=f"{path}@{sha[:12]}")
    current = read_placements(current_text, file=path)
    changed = {
        workload: {
            loc
            for loc in set(wrote) | set(before_plan.get(workload, {}))
            if wrote.get(loc) != before_plan.get(workload, {}).get(loc)
        }
        for workload, wrote in plan_wrote.items()
    }
    changed = {w: locs for w, locs in changed.items() if locs and w in current}
    if not changed:
        return None
    restored = three_way(plan_text, current_text, parent_text)
    exact = restored is not None
    if restored is None:
        for workload, locations in sorted(changed.items()):
            for location in sorted(locations):
                wrote, found = plan_wrote[workload].get(location), current[workload].get(location)
                if found != wrote and not overwrite_edits:
                    raise ConflictError(
                        file=path,
                        key=f"{WORKLOADS_KEY}.{workload}.placements[{location.key}].replicas",
                        expected=wrote,
                        found=found,
                    )
        if not overwrite_edits:
            raise ConflictError(
                file=path,
                key=f"the lines plan commit {sha[:12]} wrote",
                expected="the text the plan wrote",
                found="a later change of the same lines",
            )
        targets = {
            w: {
                **current[w],
                **{loc: before_plan.get(w, {}).get(loc, 0) for loc in changed[w]},
            }
            for w in changed
        }
        restored, _ = edit_placements(current_text, targets, file=path)
    after = read_placements(restored, file=path)
    for workload, locations in changed.items():
        for location in locations:
            want = before_plan.get(workload, {}).get(location)
            got = after.get(workload, {}).get(location)
            if not exact:  # the value edit keeps an added entry, at 0 replicas
                want, got = want or 0, got or 0
            if got != want:
                raise GitOpsError(
                    f"{path}: the revert of {sha[:12]} would not restore {workload} at "
                    f"{location} to {want}; please report this with the stack file"
                )
    changes = _placement_changes(current, after)
    if not changes and restored == current_text:
        return None
    return FileChange(
        stack, current_text, restored, tuple(changes), {w: current.get(w, {}) for w in changed}
    )


def revert(
    plan_id: str,
    repo: str | Path = ".",
    *,
    mode: Mode = "commit",
    remote: str = "origin",
    forge: Forge | None = None,
    push: bool = True,
    base: str | None = None,
    lock_timeout: float = 0.0,
    overwrite_edits: bool = False,
    evidence: str = "",
) -> ApplyResult:
    """Restore the placements a plan changed to the values they had before it.

    The plan's commit is found on the current branch by its ``Cloudbalance-Plan`` trailer. Only
    the placement values that commit changed are restored, by the same minimal edit ``apply``
    makes (entries the plan added go to ``replicas: 0``), and the result is committed with a
    ``Cloudbalance-Revert`` trailer: a new commit, history is never rewritten. Freeze windows do
    not apply: a revert returns to a known state. ``overwrite_edits`` restores even values a
    person changed since the plan. ``evidence`` (Markdown) goes into the commit message and the
    pull-request body, before the trailers.

    Raises:
        GitOpsError: No commit of that plan, already reverted, dirty tree, detached head.
        ConflictError: A value the plan wrote was changed since; the revert would overwrite it.
    """
    if mode not in REVERT_MODES:
        raise GitOpsError(f"unknown mode {mode!r} for revert; use {', '.join(REVERT_MODES)}")
    _check_plan_id(plan_id)
    git = Git.open(repo)
    with repository_lock(git, timeout=lock_timeout):
        healed: list[str] = []
        if mode != "dry-run":
            healed += heal(git, forge=forge)
            git.ensure_clean()
            if push or mode == "pr":
                healed += _ensure_in_sync(git)
        sha = _find_plan_commit(git, plan_id)
        done = git.log_messages("HEAD", grep=f"^{REVERT_TRAILER}: {re.escape(plan_id)}$")
        if any(parse_trailers(m).get(REVERT_TRAILER) == plan_id for _, m in done):
            raise GitOpsError(f"plan {plan_id} was already reverted (in {done[0][0][:12]})")
        stacks = {s.path: s for s in discover_stacks(git.root)}
        touched = git.out("diff-tree", "--no-commit-id", "--name-only", "-r", sha).splitlines()
        files: list[FileChange] = []
        for path in sorted(p for p in touched if p in stacks):
            current_text = _read(git, "HEAD" if mode != "dry-run" else None, path)
            change = _revert_file(git, sha, stacks[path], current_text, overwrite_edits)
            if change is not None:
                files.append(change)
        diff = StackDiff(tuple(files))
        subject, body = render_revert(
            plan_id,
            sha,
            diff.changes,
            files=diff.paths,
            markdown_marker=mode == "pr",
            evidence=evidence,
        )
        message = f"{subject}\n\n{body}"
        if not diff:
            return ApplyResult(
                plan_id,
                mode,
                diff,
                message,
                notes=(*healed, "nothing to revert: values already restored"),
            )
        if mode == "dry-run":
            return ApplyResult(plan_id, mode, diff, message)
        if mode == "commit":
            commit, branch, pushed, notes = _commit_here(
                git, diff, message, remote=remote, push=push
            )
            return ApplyResult(
                plan_id, mode, diff, message, commit, branch, pushed, notes=(*healed, *notes)
            )
        branch = f"{BRANCH_PREFIX}revert-{plan_id}"
        base_branch = base or _base_branch(git)
        the_forge = forge or Forge()
        repository = _resolve_forge_repo(git, the_forge, remote) if mode == "pr" else ""
        commit, pushed = _commit_branch(
            git,
            diff,
            message,
            branch=branch,
            parent=git.head(),
            remote=remote,
            push=push or mode == "pr",
            pull=(
                {"repository": repository, "base": base_branch, "title": subject, "body": body}
                if mode == "pr"
                else None
            ),
        )
        pull = None
        if mode == "pr":
            pull = the_forge.open(
                repository, branch=branch, base=base_branch, title=subject, body=body
            )
            clear_journal(git)
        return ApplyResult(
            plan_id, mode, diff, message, commit, branch, pushed, pull, tuple(healed)
        )
