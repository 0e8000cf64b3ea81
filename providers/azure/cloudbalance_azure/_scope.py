"""Cost Management scopes: what the user names in cloudbalance.yaml -> the ARM scope path.

A scope decides which charges a query sees and, through :attr:`Scope.billing_account_id`, the
``BillingAccountId`` of every row. The store replaces whole (provider, billing account, day) keys
on each load, so two configured scopes must never share a billing account id unless one holds the
other's rows: each scope kind gets its own id (the subscription id, the resource group path, the
management group path, the billing account id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudbalance.exceptions import ConfigError

__all__ = ["Scope", "parse_scope"]

_SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/?$", re.IGNORECASE)
_RESOURCE_GROUP = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/?$", re.IGNORECASE
)
_MANAGEMENT_GROUP = re.compile(
    r"^/providers/Microsoft\.Management/managementGroups/(?P<mg>[^/]+)/?$", re.IGNORECASE
)
_BILLING_ACCOUNT = re.compile(
    r"^/providers/Microsoft\.Billing/billingAccounts/(?P<ba>[^/]+)(?P<rest>/.*)?$", re.IGNORECASE
)


@dataclass(frozen=True)
class Scope:
    """One Cost Management scope.

    Attributes:
        path: The ARM scope path (``/subscriptions/<id>``), without a trailing slash.
        kind: ``subscription``, ``resource_group``, ``management_group`` or ``billing_account``.
        billing_account_id: The ``BillingAccountId`` written on every row from this scope.
        subscription_id: The subscription, when the scope lies inside one.
    """

    path: str
    kind: str
    billing_account_id: str
    subscription_id: str | None = None


def parse_scope(
    *,
    scope: str | None = None,
    subscription_id: str | None = None,
    resource_group: str | None = None,
    management_group: str | None = None,
    billing_account: str | None = None,
) -> Scope:
    """Build the scope from exactly one way of naming it.

    Raises:
        ConfigError: None or several ways were given, or the scope path is not one we know.
    """
    given = {
        "scope": scope,
        "subscription_id": subscription_id,
        "management_group": management_group,
        "billing_account": billing_account,
    }
    named = [key for key, value in given.items() if value]
    if resource_group and not subscription_id:
        raise ConfigError(
            "providers.azure.resource_group needs providers.azure.subscription_id",
            key="providers.azure.resource_group",
        )
    if len(named) != 1:
        shown = ", ".join(named) if named else "none"
        raise ConfigError(
            "providers.azure: give exactly one of scope, subscription_id, management_group, "
            f"billing_account (got {shown})",
            key="providers.azure",
        )
    if subscription_id:
        path = f"/subscriptions/{subscription_id.strip()}"
        if resource_group:
            path += f"/resourceGroups/{resource_group.strip()}"
    elif management_group:
        path = f"/providers/Microsoft.Management/managementGroups/{management_group.strip()}"
    elif billing_account:
        path = f"/providers/Microsoft.Billing/billingAccounts/{billing_account.strip()}"
    else:
        path = str(scope).strip()
        if not path.startswith("/"):
            path = "/" + path
    return _classify(path.rstrip("/"))


def _classify(path: str) -> Scope:
    if m := _SUBSCRIPTION.match(path):
        return Scope(path, "subscription", m["sub"], m["sub"])
    if m := _RESOURCE_GROUP.match(path):
        sub = m["sub"]
        return Scope(path, "resource_group", f"{sub}/resourceGroups/{m['rg']}", sub)
    if m := _MANAGEMENT_GROUP.match(path):
        return Scope(path, "management_group", f"managementGroups/{m['mg']}")
    if m := _BILLING_ACCOUNT.match(path):
        rest = (m["rest"] or "").strip("/")
        account = m["ba"] + (f"/{rest}" if rest else "")
        return Scope(path, "billing_account", account)
    raise ConfigError(
        f"providers.azure.scope: {path!r} is not a subscription, resource group, management "
        "group or billing account scope (e.g. /subscriptions/<id>)",
        key="providers.azure.scope",
    )
