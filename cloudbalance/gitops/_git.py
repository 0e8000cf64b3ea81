"""Git through the ``git`` command line.

Why the CLI and not a library? The git CLI is the one implementation that honours everything a
user has already configured: SSH agent, credential helpers (``gh auth``, osxkeychain, manager),
``includeIf`` identities, commit signing, hooks and proxies. GitPython shells out to it anyway;
pygit2/libgit2 has its own credential and SSH handling that would need the secrets passed in.
Using the CLI, cloudbalance never sees a credential: it never stores or prints one, and it sets
``GIT_TERMINAL_PROMPT=0`` so a missing credential fails at once instead of waiting on a prompt.

Commits for branches and pull requests are built with plumbing (``hash-object``, a temporary
index, ``commit-tree``, ``update-ref`` with the expected old value): the user's working copy and
checked-out branch are never touched, and a concurrent change of the branch makes the update
fail instead of being overwritten. Nothing here force-pushes or rewrites history.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cloudbalance.exceptions import GitOpsError
from cloudbalance.redaction import redact

__all__ = ["Git", "redact", "repository_lock"]

_ZERO = "0" * 40


def _secrets_from_env() -> list[str]:
    return [os.environ.get(name, "") for name in ("GITHUB_TOKEN", "GITLAB_TOKEN", "GH_TOKEN")]


@dataclass
class Git:
    """A Git working copy, driven through the ``git`` CLI.

    Attributes:
        root: The working copy's top-level directory.
    """

    root: Path

    @classmethod
    def open(cls, path: str | Path) -> Git:
        """Open the working copy containing ``path``.

        Raises:
            GitOpsError: When ``path`` is not inside a Git working copy or git is missing.
        """
        start = Path(path)
        if not start.exists():
            raise GitOpsError(f"{start}: no such directory")
        probe = cls(start if start.is_dir() else start.parent)
        top = probe.run("rev-parse", "--show-toplevel", check=False)
        if top.returncode != 0:
            raise GitOpsError(f"{start}: not inside a Git working copy")
        return cls(Path(top.stdout.strip()))

    def run(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``git <args>`` in the working copy.

        Raises:
            GitOpsError: When git fails and ``check`` is true (stderr shown, credentials
                removed).
        """
        full_env = dict(os.environ)
        full_env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANG": "C"})
        if env:
            full_env.update(env)
        try:
            # Bytes, decoded here: text mode would turn CRLF into LF and break byte-exact edits.
            raw = subprocess.run(
                ["git", *args],
                cwd=self.root,
                input=input.encode("utf-8") if input is not None else None,
                capture_output=True,
                env=full_env,
                check=False,
            )
        except FileNotFoundError as err:
            raise GitOpsError("git is not installed or not on PATH") from err
        result = subprocess.CompletedProcess(
            raw.args,
            raw.returncode,
            raw.stdout.decode("utf-8", errors="replace"),
            raw.stderr.decode("utf-8", errors="replace"),
        )
        if check and result.returncode != 0:
            detail = redact((result.stderr or result.stdout).strip(), _secrets_from_env())
            raise GitOpsError(f"git {args[0]} failed: {detail}")
        return result

    def out(self, *args: str) -> str:
        """Run git and return its stdout without the final newline."""
        return self.run(*args).stdout.rstrip("\n")

    # -- state -------------------------------------------------------------------------------

    def git_dir(self) -> Path:
        """The repository's git directory (``.git``, or the worktree's own)."""
        path = Path(self.out("rev-parse", "--git-dir"))
        return path if path.is_absolute() else self.root / path

    def common_dir(self) -> Path:
        """The git directory shared by all worktrees of the repository."""
        path = Path(self.out("rev-parse", "--git-common-dir"))
        return path if path.is_absolute() else self.root / path

    def current_branch(self) -> str:
        """The checked-out branch.

        Raises:
            GitOpsError: On a detached head (there is no branch to commit to safely).
        """
        result = self.run("symbolic-ref", "-q", "--short", "HEAD", check=False)
        if result.returncode != 0:
            raise GitOpsError(
                "HEAD is detached; check out a branch before cloudbalance acts on this repository"
            )
        return result.stdout.strip()

    def head(self, ref: str = "HEAD") -> str:
        """The commit id ``ref`` points to."""
        return self.out("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")

    def ref_exists(self, ref: str) -> bool:
        """Whether ``ref`` names a commit."""
        return (
            self.run(
                "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False
            ).returncode
            == 0
        )

    def ensure_clean(self) -> None:
        """Refuse a dirty working copy or an operation in progress.

        Untracked files are allowed: they are never staged, since cloudbalance stages only the
        stack files it wrote, by name.

        Raises:
            GitOpsError: Listing the changed files, or naming the operation in progress.
        """
        git_dir = self.git_dir()
        for marker, what in (
            ("MERGE_HEAD", "a merge"),
            ("rebase-merge", "a rebase"),
            ("rebase-apply", "a rebase or am"),
            ("CHERRY_PICK_HEAD", "a cherry-pick"),
            ("REVERT_HEAD", "a revert"),
        ):
            if (git_dir / marker).exists():
                raise GitOpsError(f"{what} is in progress in {self.root}; finish or abort it first")
        status = self.out("status", "--porcelain=v1", "--untracked-files=no")
        if status:
            files = [line[3:] for line in status.splitlines()]
            shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
            raise GitOpsError(
                f"the working copy has uncommitted changes ({shown}); commit or stash them first"
            )

    def show(self, rev: str, path: str) -> str | None:
        """The content of ``path`` at ``rev``, or None when it does not exist there."""
        result = self.run("show", f"{rev}:{path}", check=False)
        return result.stdout if result.returncode == 0 else None

    def log_messages(
        self, rev: str, *, grep: str, path: str | None = None
    ) -> list[tuple[str, str]]:
        """``(commit, message)`` of commits reachable from ``rev`` whose message matches ``grep``.

        Newest first; limited to commits touching ``path`` when given.
        """
        args = ["log", "-z", "--format=%H%n%B", "-E", f"--grep={grep}", rev]
        if path is not None:
            args += ["--", path]
        out = self.run(*args).stdout
        entries = []
        for chunk in out.split("\0"):
            if not chunk.strip():
                continue
            sha, _, message = chunk.partition("\n")
            entries.append((sha.strip(), message))
        return entries

    def upstream(self) -> tuple[str, str] | None:
        """``(remote, branch)`` the current branch tracks, or None."""
        result = self.run(
            "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}", check=False
        )
        if result.returncode != 0:
            return None
        remote_ref = result.stdout.strip()
        branch = self.current_branch()
        remote = self.run("config", f"branch.{branch}.remote", check=False).stdout.strip()
        if not remote or not remote_ref.startswith(remote + "/"):
            return None
        return remote, remote_ref[len(remote) + 1 :]

    def remote_url(self, remote: str) -> str:
        """The fetch URL of ``remote``.

        Raises:
            GitOpsError: When the remote is not configured.
        """
        result = self.run("remote", "get-url", remote, check=False)
        if result.returncode != 0:
            raise GitOpsError(f"no Git remote named {remote!r} is configured")
        return result.stdout.strip()

    def check_branch_name(self, name: str) -> None:
        """Raise GitOpsError when ``name`` is not a valid branch name."""
        if self.run("check-ref-format", "--branch", name, check=False).returncode != 0:
            raise GitOpsError(f"{name!r} is not a valid Git branch name")

    # -- writing -----------------------------------------------------------------------------

    def commit_files(self, paths: Sequence[str], message: str) -> str:
        """Stage exactly ``paths`` and commit them on the current branch.

        Raises:
            GitOpsError: When anything but ``paths`` would be committed.
        """
        self.run("add", "--", *paths)
        staged = set(self.out("diff", "--cached", "--name-only", "-z").split("\0")) - {""}
        if not staged <= set(paths):
            raise GitOpsError(
                "refusing to commit files other than stack config: " + ", ".join(sorted(staged))
            )
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write(message)
        try:
            self.run("commit", "-q", "-F", f.name, "--", *paths)
        finally:
            os.unlink(f.name)
        return self.head()

    def commit_tree(self, parent: str, files: Mapping[str, str], message: str) -> str:
        """Make a commit on top of ``parent`` changing only ``files`` (path -> new text).

        The user's index and working copy are not touched (a temporary index is used).
        """
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.run("read-tree", parent, env=env)
            for path, text in files.items():
                mode = "100644"
                listed = self.run("ls-files", "-s", "--", path, env=env).stdout.split()
                if listed:
                    mode = listed[0]
                blob = self.run(
                    "hash-object", "-w", "--stdin", f"--path={path}", input=text
                ).stdout.strip()
                self.run("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            tree = self.run("write-tree", env=env).stdout.strip()
            msg_file = Path(tmp) / "message"
            msg_file.write_text(message, encoding="utf-8")
            # commit-tree ignores commit.gpgSign: honour it here, as `git commit` would.
            signing = self.run("config", "--bool", "commit.gpgSign", check=False).stdout.strip()
            sign = ["-S"] if signing == "true" else []
            return self.out("commit-tree", *sign, tree, "-p", parent, "-F", str(msg_file))

    def update_branch(self, branch: str, new: str, old: str | None) -> None:
        """Point ``refs/heads/<branch>`` at ``new`` if it still points at ``old`` (None: absent)."""
        self.run("update-ref", f"refs/heads/{branch}", new, old or _ZERO)

    def token_credentials(self, remote: str) -> dict[str, str]:
        """Environment that lets git authenticate to an HTTPS remote with a token variable.

        When ``GITHUB_TOKEN`` (or ``GITLAB_TOKEN`` for a host named gitlab) is set and the
        remote is HTTPS, a credential helper scoped to that host is added for this one git
        command, through ``GIT_CONFIG_COUNT``. The helper is a shell function that echoes the
        variable at the time git asks: the token itself is never written to a file, a command
        line or the environment of anything else, and helpers the user configured are asked
        first (configuration from the environment comes last).
        """
        url = self.run("remote", "get-url", remote, check=False).stdout.strip()
        if not url.lower().startswith("https://"):
            return {}
        host = urllib.parse.urlsplit(url).hostname or ""
        variable, user = (
            ("GITLAB_TOKEN", "oauth2") if "gitlab" in host else ("GITHUB_TOKEN", "x-access-token")
        )
        if not host or not os.environ.get(variable):
            return {}
        index = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
        helper = (
            f'!f() {{ test "$1" = get || exit 0; echo username={user}; '
            f'echo "password=${variable}"; }}; f'
        )
        return {
            "GIT_CONFIG_COUNT": str(index + 1),
            f"GIT_CONFIG_KEY_{index}": f"credential.https://{host}.helper",
            f"GIT_CONFIG_VALUE_{index}": helper,
        }

    def fetch(self, remote: str, *refspecs: str) -> None:
        """Fetch from ``remote`` (credentials from the user's git set-up, or a token)."""
        self.run(
            "fetch", "--quiet", "--no-tags", remote, *refspecs, env=self.token_credentials(remote)
        )

    def remote_branch(self, remote: str, branch: str) -> str | None:
        """The commit ``branch`` points to on ``remote`` (asks the remote), or None."""
        out = self.run(
            "ls-remote",
            "--heads",
            remote,
            f"refs/heads/{branch}",
            env=self.token_credentials(remote),
        ).stdout.split()
        return out[0] if out else None

    def push(self, remote: str, local: str, branch: str) -> None:
        """Push ``local`` (a commit or ref) to ``refs/heads/<branch>`` on ``remote``; never forced.

        Raises:
            GitOpsError: When the remote refuses (e.g. it moved on: pull, then run again).
        """
        result = self.run(
            "push",
            "--porcelain",
            remote,
            f"{local}:refs/heads/{branch}",
            check=False,
            env=self.token_credentials(remote),
        )
        if result.returncode != 0:
            text = (result.stderr or result.stdout).strip()
            detail = "; ".join(line.strip() for line in text.splitlines() if line.strip())
            raise GitOpsError(
                f"push of {branch} to {remote} was refused (never forced): "
                f"{redact(detail, _secrets_from_env())}"
            )


def _try_lock(fd: int) -> bool:
    """Take an exclusive OS lock on ``fd`` without waiting; False when another process holds it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def repository_lock(git: Git, *, timeout: float = 0.0) -> Iterator[Path]:
    """Hold cloudbalance's lock on a repository so two runs cannot interleave.

    The lock is ``cloudbalance.lock`` in the git directory shared by every worktree (so it is
    never committed, and two worktrees of one repository cannot interleave either), held
    with an OS file lock (``flock``; ``msvcrt.locking`` on Windows). The OS releases it when
    the process ends, even when killed, so a crashed run never leaves a stale lock behind.
    The file holds the holder's pid, shown to the run that is refused.

    Args:
        git: The working copy.
        timeout: Seconds to wait for another run to finish (0: fail at once).

    Raises:
        GitOpsError: When another run holds the lock.
    """
    path = git.common_dir() / "cloudbalance.lock"
    deadline = time.monotonic() + timeout
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                holder = path.read_text(encoding="utf-8").strip() or "unknown"
                raise GitOpsError(
                    f"another cloudbalance run (pid {holder}) is acting on {git.root}; "
                    "try again when it has finished"
                )
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield path
    finally:
        os.close(fd)
