"""Git that heals: finish or undo an apply that was interrupted, never touching a person's work.

A daily job gets killed: a deploy restarts the host, a scheduler's timeout sends SIGTERM, the
machine runs out of memory. An apply stopped between writing the stack file and pushing leaves
the infrastructure repository dirty, or with an unpushed commit, or with a branch but no pull
request, and every later run would refuse until a person cleaned up.

So every write is announced first in a journal, ``cloudbalance-journal.json`` in the working
copy's git directory (never committed, one per worktree): what is about to be written (the
plan's trailer, the branch, the parent commit, a digest of each file's new text, where it is
pushed, the pull request to open). It is written atomically before the first change and
removed when the write is complete. The next run, holding the repository lock, finds it and
compares the repository with it:

- uncommitted changes that are exactly the journal's file texts (in the working copy or the
  index) are undone (restored from ``HEAD``); anything else in those files is a person's edit,
  and the run refuses, naming the file, without discarding it;
- one commit on top of the journal's parent, carrying the journal's trailer and changing
  exactly the journal's files to the journal's texts, is ours: it is pushed (finished); if the
  remote refuses, it is undone (the branch goes back to the parent, the working copy stays
  clean) so the next run fast-forwards and plans again;
- a branch made but not pushed is removed (or put back where it was); a branch pushed without
  its pull request gets the pull request the journal describes.

A journal that does not match (a person committed on top, or moved the branch) is dropped and
the usual checks speak: cloudbalance never rewrites what it cannot prove is its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cloudbalance.exceptions import GitOpsError
from cloudbalance.gitops._forge import Forge, repository_from_url
from cloudbalance.gitops._git import Git
from cloudbalance.gitops._message import PLAN_TRAILER, parse_trailers

__all__ = ["Intent", "clear", "digest", "heal", "read", "write", "write_text_atomic"]

JOURNAL = "cloudbalance-journal.json"
_TMP_SUFFIX = ".cloudbalance-tmp"
#: An ``index.lock`` older than this, left with a journal, was left by our killed git command.
STALE_INDEX_LOCK = 600.0


def digest(text: str) -> str:
    """SHA-256 of a file's text (UTF-8), as recorded in the journal."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Intent:
    """A write cloudbalance is about to make, recorded before it starts.

    Attributes:
        kind: ``commit`` (on the checked-out branch) or ``branch`` (a commit made with plumbing
            on ``branch``, the working copy untouched).
        trailer: The trailer key that marks the commit (``Cloudbalance-Plan`` or
            ``Cloudbalance-Revert``).
        plan_id: Its value.
        branch: The branch written.
        parent: The commit the new one is made on.
        files: Path -> digest of the new text.
        push: Whether it is pushed.
        remote: The remote it is pushed to.
        remote_branch: The branch on the remote.
        commit: ``branch`` kind: the commit made (known before the branch is moved).
        old_tip: ``branch`` kind: where the local branch pointed before (None: absent).
        pull: ``branch`` kind: the pull request to open once pushed (``repository``, ``base``,
            ``title``, ``body``); None for no pull request.
    """

    kind: Literal["commit", "branch"]
    trailer: str
    plan_id: str
    branch: str
    parent: str
    files: Mapping[str, str]
    push: bool
    remote: str | None = None
    remote_branch: str | None = None
    commit: str | None = None
    old_tip: str | None = None
    pull: Mapping[str, str] | None = field(default=None)

    def what(self) -> str:
        """``plan P`` or ``the revert of plan P``, for notes and errors."""
        if self.trailer == PLAN_TRAILER:
            return f"plan {self.plan_id}"
        return f"the revert of plan {self.plan_id}"


def _path(git: Git) -> Path:
    return git.git_dir() / JOURNAL


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a kill leaves the old or the new file, never half."""
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    with open(tmp, "w", encoding="utf-8", newline="") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def write(git: Git, intent: Intent) -> None:
    """Record ``intent`` (atomically) before the first change it describes."""
    write_text_atomic(_path(git), json.dumps(asdict(intent), indent=2, sort_keys=True))


def read(git: Git) -> Intent | None:
    """The recorded intent, or None. An unreadable journal is reported, not guessed at."""
    path = _path(git)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return Intent(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as err:
        raise GitOpsError(
            f"cannot read cloudbalance's journal of an interrupted write ({path}: {err}); "
            "check the repository and delete the file"
        ) from err


def clear(git: Git) -> None:
    """Forget the intent: the write it described is complete or undone."""
    _path(git).unlink(missing_ok=True)


def _dirty(git: Git) -> list[str]:
    out = git.out("status", "--porcelain=v1", "-z", "--untracked-files=no")
    return [entry[3:] for entry in out.split("\0") if len(entry) > 3]


def _undo_uncommitted(git: Git, intent: Intent) -> list[str]:
    """Restore the journal's files when their uncommitted change is exactly ours."""
    dirty = [p for p in _dirty(git) if p in intent.files]
    if not dirty:
        return []
    for path in dirty:
        head_text = git.show("HEAD", path)
        allowed = {intent.files[path]} | ({digest(head_text)} if head_text is not None else set())
        staged = git.show("", path)  # ":path": the index
        try:
            with open(git.root / path, encoding="utf-8", newline="") as stream:
                worktree: str | None = stream.read()
        except FileNotFoundError:
            worktree = None
        texts = [t for t in (staged, worktree) if t is not None]
        if worktree is None or any(digest(t) not in allowed for t in texts):
            raise GitOpsError(
                f"{path} has uncommitted changes beyond cloudbalance's interrupted write of "
                f"{intent.what()}; they look like a person's, so nothing was discarded: "
                "commit or stash them, then run again"
            )
    git.run("reset", "-q", "--", *dirty)
    git.run("checkout", "-q", "HEAD", "--", *dirty)
    return [f"undid the interrupted write of {intent.what()}: restored " + ", ".join(dirty)]


def _is_our_commit(git: Git, sha: str, intent: Intent) -> bool:
    """Whether ``sha`` is the commit the journal describes (trailer, parent, files, texts)."""
    parents = git.out("rev-list", "--parents", "-n", "1", sha).split()[1:]
    if parents != [intent.parent]:
        return False
    message = git.out("log", "-1", "--format=%B", sha)
    if parse_trailers(message).get(intent.trailer) != intent.plan_id:
        return False
    changed = set(git.out("diff-tree", "--no-commit-id", "--name-only", "-r", sha).splitlines())
    if changed != set(intent.files):
        return False
    return all(digest(git.show(sha, p) or "") == d for p, d in intent.files.items())


def _heal_commit(git: Git, intent: Intent) -> list[str]:
    notes = _undo_uncommitted(git, intent)
    try:
        branch = git.current_branch()
    except GitOpsError:
        return notes
    head = git.head()
    if branch != intent.branch or head == intent.parent or not _is_our_commit(git, head, intent):
        return notes  # nothing of ours on the branch, or a person moved on from it
    if not (intent.push and intent.remote and intent.remote_branch):
        return notes  # a local commit was all that was asked for: it is complete
    git.fetch(intent.remote, f"refs/heads/{intent.remote_branch}")
    on_remote = git.run("merge-base", "--is-ancestor", head, "FETCH_HEAD", check=False)
    if on_remote.returncode == 0:
        return notes
    try:
        git.push(intent.remote, head, intent.remote_branch)
    except GitOpsError as err:
        git.run("reset", "-q", "--keep", intent.parent)
        return [
            *notes,
            f"undid the unpushed commit {head[:12]} of {intent.what()} (the push was refused: "
            f"{err})",
        ]
    return [*notes, f"finished the interrupted write of {intent.what()}: pushed {head[:12]}"]


def _heal_branch(git: Git, intent: Intent, forge: Forge | None) -> list[str]:
    ref = f"refs/heads/{intent.branch}"
    local = git.head(ref) if git.ref_exists(ref) else None
    remote_tip = None
    if intent.push and intent.remote:
        remote_tip = git.remote_branch(intent.remote, intent.branch)
    if intent.commit is not None and remote_tip == intent.commit:
        if intent.pull is None:
            return []
        forge = forge or Forge()
        pull = intent.pull
        repository = pull.get("repository") or repository_from_url(
            git.remote_url(intent.remote or "origin")
        )
        existing = forge.find_open(repository, pull["base"])
        if existing is not None:
            return []
        opened = forge.open(
            repository,
            branch=intent.branch,
            base=pull["base"],
            title=pull["title"],
            body=pull["body"],
        )
        return [
            f"opened pull request #{opened.number} for {intent.branch}, pushed by an "
            "interrupted run without it"
        ]
    if local is not None and local == intent.commit:
        if intent.old_tip is not None:
            git.update_branch(intent.branch, intent.old_tip, local)
        else:
            git.run("update-ref", "-d", ref, local)
        return [f"undid the unpushed branch {intent.branch} of {intent.what()}"]
    return []


def heal(git: Git, *, forge: Forge | None = None) -> list[str]:
    """Finish or undo the write an interrupted run left half done; the notes say which.

    Call it holding the repository lock, before the working copy is checked.

    Raises:
        GitOpsError: When the interrupted write's files also hold a person's uncommitted edit
            (nothing is discarded), or the journal cannot be read.
    """
    intent = read(git)
    if intent is None:
        return []
    for path in intent.files:
        (git.root / path).with_name(Path(path).name + _TMP_SUFFIX).unlink(missing_ok=True)
    notes = []
    index_lock = git.git_dir() / "index.lock"
    if index_lock.exists() and time.time() - index_lock.stat().st_mtime > STALE_INDEX_LOCK:
        # Our git add or commit was killed with us (a whole process group is killed at once)
        # and could not remove its lock; a person's git command does not hold it this long.
        index_lock.unlink(missing_ok=True)
        notes.append(f"removed the stale {index_lock.name} of the interrupted write")
    if intent.kind == "commit":
        notes += _heal_commit(git, intent)
    else:
        notes += _heal_branch(git, intent, forge)
    clear(git)
    return notes
