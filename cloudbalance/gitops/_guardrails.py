"""Guardrails: what a plan may do without a person, when nothing may change, and policies.

:class:`~cloudbalance.models.Guardrails` (re-exported here) hold the user's limits, as
``cloudbalance.yaml`` sets them; gitops reads them only to route ``auto`` mode (commit or pull
request). :class:`PolicyResult` and :data:`PolicyCheck` are the hook through which the Rego
policies, the home of every deny, see a change before it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloudbalance.gitops._diff import StackDiff
from cloudbalance.models import MODES, FreezeWindow, Guardrails, Mode, Plan

if TYPE_CHECKING:
    pass

__all__ = ["MODES", "FreezeWindow", "Guardrails", "Mode", "PolicyCheck", "PolicyResult"]


@dataclass(frozen=True)
class PolicyResult:
    """What a policy check said about a change: ``denies`` stop it, ``warnings`` are listed."""

    denies: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


#: The hook the policy engine plugs into: called with the plan and the diff before anything is
#: written.
PolicyCheck = Callable[[Plan, StackDiff], PolicyResult]
