"""Act through Git: write a plan into Pulumi stack config, then commit or open a pull request.

This is where cloudbalance touches production, so it is built to be boring:

- :func:`apply` writes the first period of a :class:`~cloudbalance.models.Plan` into the
  ``cloudbalance:workloads`` key of ``Pulumi.<stack>.yaml`` files, changing only the replicas
  that move (comments, key order, quoting and ``secure:`` values stay byte for byte), and
  validates each file against ``cloudbalance/schemas/stack-config.schema.json`` before and
  after the edit.
- Modes ``dry-run`` (the default), ``commit``, ``branch``, ``pr`` and ``auto`` (the
  :class:`Guardrails` choose ``commit`` or ``pr`` by confidence and limits; freeze windows stop
  everything but dry runs).
- It refuses a dirty working copy or a detached head, holds a lock so two runs cannot
  interleave, never force-pushes nor rewrites history, commits nothing but stack files, and
  raises :class:`~cloudbalance.exceptions.ConflictError` when a person changed a value since the
  last plan instead of overwriting it.
- :func:`revert` restores what a plan changed, as a new commit.

Modules: ``_stackfile`` (discovery, schema, surgical edits), ``_diff`` (the change and its
diff), ``_guardrails`` (limits, freeze windows, the policy hook), ``_git`` (the git CLI, and
why), ``_forge`` (GitHub and GitLab REST), ``_message`` (commit message, PR body, trailers),
``_apply`` (the orchestration), ``_target`` (the repository, remote, base, forge and policy gate
of a configuration, built once by :func:`target_from_settings`).
"""

from __future__ import annotations

from cloudbalance.gitops._apply import ApplyResult, apply, revert
from cloudbalance.gitops._diff import FileChange, StackDiff
from cloudbalance.gitops._forge import Forge, PullRequest
from cloudbalance.gitops._git import repository_lock
from cloudbalance.gitops._guardrails import (
    FreezeWindow,
    Guardrails,
    Mode,
    PolicyCheck,
    PolicyResult,
)
from cloudbalance.gitops._message import parse_trailers
from cloudbalance.gitops._stackfile import (
    WORKLOADS_KEY,
    PlacementChange,
    StackFile,
    discover_stacks,
    edit_placements,
    read_placements,
    validate_stack_config,
)
from cloudbalance.gitops._target import GitTarget, forge_kind, target_from_settings

__all__ = [
    "WORKLOADS_KEY",
    "ApplyResult",
    "FileChange",
    "Forge",
    "FreezeWindow",
    "GitTarget",
    "Guardrails",
    "Mode",
    "PlacementChange",
    "PolicyCheck",
    "PolicyResult",
    "PullRequest",
    "StackDiff",
    "StackFile",
    "apply",
    "discover_stacks",
    "edit_placements",
    "forge_kind",
    "parse_trailers",
    "read_placements",
    "repository_lock",
    "revert",
    "target_from_settings",
    "validate_stack_config",
]
