"""Where plans reach Git, built once from ``cloudbalance.yaml``: repository, remote, base, forge.

Every writer of the infrastructure repository (``cloudbalance apply``, ``cloudbalance revert``,
``cloudbalance run``'s apply and verify steps, ``cloudbalance verify --revert``) gets its
:class:`GitTarget` from :func:`target_from_settings`. When each of them built its own forge and
remote, they disagreed: ``run`` in ``pr`` mode ignored ``git.api_url`` (and sent a GitHub
Enterprise token to api.github.com), verify's reverts opened pull requests with no forge and
pushed to ``origin`` whatever ``git.remote`` said. One builder, one answer.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cloudbalance.gitops._apply import ApplyResult, apply, revert
from cloudbalance.gitops._forge import Forge
from cloudbalance.gitops._git import Git, repository_lock
from cloudbalance.gitops._guardrails import Guardrails, PolicyCheck
from cloudbalance.gitops._heal import heal
from cloudbalance.models import Mode, Plan

if TYPE_CHECKING:
    from cloudbalance.config import Settings

__all__ = ["GitTarget", "forge_kind", "target_from_settings"]


@dataclass(frozen=True)
class GitTarget:
    """The infrastructure repository and how to write to it.

    Attributes:
        repo: A directory inside the Git working copy.
        remote: The remote pushed to (``git.remote``).
        base: The branch pull requests target (``git.base``); None: the current branch's
            upstream branch, else the current branch.
        forge: Where pull requests are opened (``git.github_repo``, ``git.api_url``).
        push: Whether to push; None: when ``remote`` is configured in the repository (a local
            repository without a remote is written to, not pushed).
        mode: The mode :meth:`apply` writes in (``git.mode``).
        guardrails: Limits, confidence threshold and freeze windows (``guardrails:``).
        workloads: Workload name -> ``project/stack`` (the ``stack`` of configured workloads).
        policy_check: The Rego policy gate, built for :attr:`mode`; None checks no policy.
    """

    repo: Path
    remote: str = "origin"
    base: str | None = None
    forge: Forge = field(default_factory=Forge)
    push: bool | None = None
    mode: Mode = "dry-run"
    guardrails: Guardrails = field(default_factory=Guardrails)
    workloads: Mapping[str, str] = field(default_factory=dict)
    policy_check: PolicyCheck | None = None

    def pushes(self) -> bool:
        """Whether writes are pushed: :attr:`push`, else whether the remote exists."""
        if self.push is not None:
            return self.push
        found = subprocess.run(
            ["git", "-C", str(self.repo), "remote"], capture_output=True, text=True, check=False
        )
        return self.remote in found.stdout.split()

    def heal(self, *, lock_timeout: float = 0.0) -> list[str]:
        """Finish or undo a write an interrupted run left half done (see ``_heal``).

        :meth:`apply` and :meth:`revert` do this first anyway; a daily run calls it even on a
        day with nothing to write, so the repository is clean again that same day.

        Returns:
            What was finished or undone, in words (empty: nothing was pending).
        """
        git = Git.open(self.repo)
        with repository_lock(git, timeout=lock_timeout):
            return heal(git, forge=self.forge)

    def apply(
        self,
        plan: Plan,
        *,
        now: datetime | None = None,
        lock_timeout: float = 0.0,
        overwrite_edits: bool = False,
    ) -> ApplyResult:
        """Write ``plan`` here in :attr:`mode` (see :func:`cloudbalance.gitops.apply`)."""
        return apply(
            plan,
            self.repo,
            mode=self.mode,
            guardrails=self.guardrails,
            workloads=self.workloads,
            remote=self.remote,
            forge=self.forge,
            policy_check=self.policy_check,
            push=self.pushes(),
            base=self.base,
            now=now,
            lock_timeout=lock_timeout,
            overwrite_edits=overwrite_edits,
        )

    def revert(
        self,
        plan_id: str,
        *,
        mode: Mode = "commit",
        lock_timeout: float = 0.0,
        overwrite_edits: bool = False,
        evidence: str = "",
    ) -> ApplyResult:
        """Revert ``plan_id`` here (see :func:`cloudbalance.gitops.revert`)."""
        return revert(
            plan_id,
            self.repo,
            mode=mode,
            remote=self.remote,
            forge=self.forge,
            push=self.pushes(),
            base=self.base,
            lock_timeout=lock_timeout,
            overwrite_edits=overwrite_edits,
            evidence=evidence,
        )


def forge_kind(api_url: str | None, remote_url: str | None = None) -> Literal["github", "gitlab"]:
    """``gitlab`` when the API URL (else the remote's host) says GitLab, else ``github``.

    GitLab's REST API lives under ``/api/v4``, GitHub Enterprise's under ``/api/v3``; a host
    named ``gitlab...`` is GitLab (the same rule as the token helper in ``_git``).
    """
    for url in (api_url, remote_url):
        if not url:
            continue
        parts = urllib.parse.urlsplit(url if "://" in url else "ssh://" + url.replace(":", "/", 1))
        if "gitlab" in (parts.hostname or "").lower() or parts.path.rstrip("/").endswith("/api/v4"):
            return "gitlab"
        if api_url:
            return "github"  # an API URL that is not GitLab's decides
    return "github"


def _remote_url(repo: Path, remote: str) -> str | None:
    found = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", remote],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() if found.returncode == 0 else None


def target_from_settings(
    settings: Settings,
    *,
    repo: str | Path | None = None,
    mode: Mode | None = None,
    remote: str | None = None,
    base: str | None = None,
    kind: Literal["github", "gitlab"] | None = None,
    api_url: str | None = None,
    repository: str | None = None,
    push: bool | None = None,
    guardrails: Guardrails | None = None,
    workloads: Mapping[str, str] | None = None,
    policies: bool = True,
    now: datetime | None = None,
) -> GitTarget:
    """The one :class:`GitTarget` of ``settings`` (``git:``, ``guardrails:``, ``workloads:``).

    Keyword arguments override the file (the command line's options); None keeps it.

    Args:
        settings: The loaded ``cloudbalance.yaml``.
        repo: Override of ``git.repo`` (resolved against the config file otherwise).
        mode: Override of ``git.mode`` (``dry-run`` for ``run --dry-run``).
        remote: Override of ``git.remote``.
        base: Override of ``git.base``.
        kind: ``github`` or ``gitlab``; None: told by :func:`forge_kind`.
        api_url: Override of ``git.api_url``.
        repository: Override of ``git.github_repo`` (``owner/name``; None: from the remote URL).
        push: Override of pushing (None: when the remote exists).
        guardrails: Override of the guardrails (the command line's limits); the policies are
            evaluated with the settings as given, so pass settings carrying the same limits.
        workloads: More workload -> ``project/stack`` hints, over the configured ones.
        policies: Build the Rego policy gate (``--no-policies`` turns it off).
        now: Today, for the policies' freeze windows (defaults to the clock).

    Returns:
        The target every Git writer of this configuration uses.
    """
    git = settings.git
    where = Path(repo) if repo is not None else settings.resolve(git.repo)
    chosen_remote = remote or git.remote
    chosen_mode: Mode = mode or git.mode
    url = api_url or git.api_url
    forge = Forge(
        kind=kind or forge_kind(url, None if url else _remote_url(where, chosen_remote)),
        repository=repository or git.github_repo,
        api_url=url,
    )
    hints = {w.name: w.stack for w in settings.workload_models() if w.stack}
    hints.update(workloads or {})
    gate: PolicyCheck | None = None
    if policies:
        from cloudbalance.policy import policy_gate

        gate = policy_gate(settings, mode=chosen_mode)
        if now is not None:
            gate.now = now
    return GitTarget(
        repo=where,
        remote=chosen_remote,
        base=base or git.base,
        forge=forge,
        push=push,
        mode=chosen_mode,
        guardrails=guardrails or Guardrails.from_settings(settings),
        workloads=hints,
        policy_check=gate,
    )
