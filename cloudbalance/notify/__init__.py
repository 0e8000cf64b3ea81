"""Notifications: tell people about spikes, anomalies, budgets, plans, reverts and failed steps.

Events are frozen values (:mod:`cloudbalance.notify.events`) built from a run's outputs;
:func:`notify_run` routes them by the rules of ``notifications:`` in ``cloudbalance.yaml`` to
apprise channels (Slack, Microsoft Teams, e-mail, generic webhooks...), once each,
rate-limited, never with a secret, and never failing the run. See docs/notifications.md.
"""

from __future__ import annotations

from cloudbalance.notify.events import (
    AnomalyDetected,
    BudgetAlert,
    Event,
    PlanApplied,
    RevertProposed,
    SpikePredicted,
    StepFailed,
    anomaly_events,
    budget_events,
    events_from_steps,
    plan_events,
    revert_events,
    spike_events,
    step_failed_events,
)
from cloudbalance.notify.send import (
    Delivery,
    NotifyResult,
    Sender,
    delivered,
    notify_run,
    notify_test,
    redact,
    route,
)
from cloudbalance.notify.settings import (
    EVENT_KINDS,
    Channel,
    NotificationSettings,
    QuietHours,
    Rule,
)

__all__ = [
    "EVENT_KINDS",
    "AnomalyDetected",
    "BudgetAlert",
    "Channel",
    "Delivery",
    "Event",
    "NotificationSettings",
    "NotifyResult",
    "PlanApplied",
    "QuietHours",
    "RevertProposed",
    "Rule",
    "Sender",
    "SpikePredicted",
    "StepFailed",
    "anomaly_events",
    "budget_events",
    "delivered",
    "events_from_steps",
    "notify_run",
    "notify_test",
    "plan_events",
    "redact",
    "revert_events",
    "route",
    "spike_events",
    "step_failed_events",
]
