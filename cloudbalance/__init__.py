"""cloudbalance: forecast cloud cost spikes and move workloads before they happen.

The public API is re-exported here and loaded lazily, so ``import cloudbalance`` stays fast and
never imports Prophet, a solver or a cloud SDK until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudbalance._version import __version__
    from cloudbalance.checks import check_change
    from cloudbalance.config import Settings, load_config
    from cloudbalance.exceptions import (
        CloudBalanceError,
        ConfigError,
        ConflictError,
        CredentialsError,
        ForecastError,
        GitOpsError,
        InfeasiblePlanError,
        InsufficientHistoryError,
        PlanError,
        PolicyDeniedError,
        PolicyError,
        ProviderError,
        ProviderNotFoundError,
        SchemaError,
        StackConfigError,
        StoreError,
        StoreLockedError,
        ThrottledError,
    )
    from cloudbalance.forecast import backtest, detect_anomalies, forecast
    from cloudbalance.gitops import apply, revert
    from cloudbalance.models import Location, Move, Placement, Plan, RunRecord, Workload
    from cloudbalance.plan import plan
    from cloudbalance.policy import PolicySet, check_policies
    from cloudbalance.provider import CostProvider, get_provider
    from cloudbalance.store import Store
    from cloudbalance.verify import propose_reverts, verify_applied, verify_plan

# name -> module that defines it. Keep sorted; tests check it matches __all__.
_LAZY: dict[str, str] = {
    "CloudBalanceError": "cloudbalance.exceptions",
    "ConfigError": "cloudbalance.exceptions",
    "ConflictError": "cloudbalance.exceptions",
    "CostProvider": "cloudbalance.provider",
    "CredentialsError": "cloudbalance.exceptions",
    "ForecastError": "cloudbalance.exceptions",
    "GitOpsError": "cloudbalance.exceptions",
    "InfeasiblePlanError": "cloudbalance.exceptions",
    "InsufficientHistoryError": "cloudbalance.exceptions",
    "Location": "cloudbalance.models",
    "Move": "cloudbalance.models",
    "Placement": "cloudbalance.models",
    "Plan": "cloudbalance.models",
    "PlanError": "cloudbalance.exceptions",
    "PolicyDeniedError": "cloudbalance.exceptions",
    "PolicyError": "cloudbalance.exceptions",
    "PolicySet": "cloudbalance.policy",
    "ProviderError": "cloudbalance.exceptions",
    "ProviderNotFoundError": "cloudbalance.exceptions",
    "RunRecord": "cloudbalance.models",
    "SchemaError": "cloudbalance.exceptions",
    "Settings": "cloudbalance.config",
    "StackConfigError": "cloudbalance.exceptions",
    "Store": "cloudbalance.store",
    "StoreError": "cloudbalance.exceptions",
    "StoreLockedError": "cloudbalance.exceptions",
    "ThrottledError": "cloudbalance.exceptions",
    "Workload": "cloudbalance.models",
    "apply": "cloudbalance.gitops",
    "backtest": "cloudbalance.forecast",
    "check_change": "cloudbalance.checks",
    "check_policies": "cloudbalance.policy",
    "detect_anomalies": "cloudbalance.forecast",
    "forecast": "cloudbalance.forecast",
    "get_provider": "cloudbalance.provider",
    "load_config": "cloudbalance.config",
    "plan": "cloudbalance.plan",
    "propose_reverts": "cloudbalance.verify",
    "revert": "cloudbalance.gitops",
    "verify_applied": "cloudbalance.verify",
    "verify_plan": "cloudbalance.verify",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = "cloudbalance._version" if name == "__version__" else _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cloudbalance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
