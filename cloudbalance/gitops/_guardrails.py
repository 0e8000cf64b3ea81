"""Guardrails: what a plan may do without a person, when nothing may change, and policies.

:class:`Guardrails` hold the user's limits (confidence threshold for ``auto`` mode, most moves,
most share of replicas moved, least saving worth a change, freeze windows); :class:`PolicyResult`
and :data:`PolicyCheck` are the hook through which the Rego policies (or any callable) see a
change before it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cloudbalance.exceptions import GitOpsError
from cloudbalance.gitops._diff import StackDiff
from cloudbalance.models import MODES, FreezeWindow, Mode, Plan

if TYPE_CHECKING:
    from cloudbalance.config import Settings

__all__ = ["MODES", "FreezeWindow", "Guardrails", "Mode", "PolicyCheck", "PolicyResult"]


@dataclass(frozen=True)
class Guardrails:
    """What a plan may do without a person, and when nothing may change at all.

    Attributes:
        min_confidence: In ``auto`` mode, a plan at or above this confidence is committed;
            below it, a pull request is opened for a human.
        max_moves: Most placement values one plan may change without review.
        max_share_moved: Most replicas one plan may add, as a share of the replicas the
            affected workloads had before (0.25: a quarter).
        freeze: Windows during which no mode but ``dry-run`` acts.
        default_mode: The mode when none is given: ``dry-run`` unless configured otherwise.
    """

    min_confidence: float = 0.8
    max_moves: int | None = None
    max_share_moved: float | None = None
    freeze: tuple[FreezeWindow, ...] = ()
    default_mode: Mode = "dry-run"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise GitOpsError(f"min_confidence must be within 0..1, got {self.min_confidence}")
        if self.max_moves is not None and self.max_moves < 0:
            raise GitOpsError(f"max_moves must be >= 0, got {self.max_moves}")
        if self.max_share_moved is not None and self.max_share_moved < 0:
            raise GitOpsError(f"max_share_moved must be >= 0, got {self.max_share_moved}")
        if self.default_mode not in MODES:
            raise GitOpsError(f"unknown mode {self.default_mode!r}; use one of {', '.join(MODES)}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Guardrails:
        """The guardrails ``cloudbalance.yaml`` sets (``guardrails:`` and ``git.mode``)."""
        rails = settings.guardrails
        return cls(
            min_confidence=rails.min_confidence_commit,
            max_moves=rails.max_moves,
            max_share_moved=rails.max_share_moved,
            freeze=rails.freeze,
            default_mode=settings.git.mode,
        )

    def frozen(self, now: datetime) -> FreezeWindow | None:
        """The freeze window ``now`` falls in, if any."""
        return next((w for w in self.freeze if w.contains(now)), None)

    def violations(self, diff: StackDiff) -> list[str]:
        """The limits a diff exceeds, in words (empty: within every limit)."""
        found = []
        if self.max_moves is not None and len(diff.changes) > self.max_moves:
            found.append(
                f"changes {len(diff.changes)} placements, more than max_moves={self.max_moves}"
            )
        if self.max_share_moved is not None and diff.share_moved > self.max_share_moved:
            found.append(
                f"moves {diff.share_moved:.0%} of replicas, more than "
                f"max_share_moved={self.max_share_moved:.0%}"
            )
        return found


@dataclass(frozen=True)
class PolicyResult:
    """What a policy check said about a change: ``denies`` stop it, ``warnings`` are listed."""

    denies: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


#: The hook the policy engine plugs into: called with the plan and the diff before anything is
#: written.
PolicyCheck = Callable[[Plan, StackDiff], PolicyResult]
