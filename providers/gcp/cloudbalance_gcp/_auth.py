"""Google credentials through Application Default Credentials, described without secrets.

``google.auth.default()`` looks, in order, at ``GOOGLE_APPLICATION_CREDENTIALS``, the gcloud
user's application-default login, and the metadata server of the VM, Cloud Run or GKE workload.
We only ever show *which* identity was found (a service-account e-mail, "user login", "metadata
server"), never a key or token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudbalance.exceptions import ConfigError

__all__ = ["SCOPES", "default_credentials", "describe"]

#: Read-only scopes suffice for both APIs (BigQuery jobs need the bigquery scope to run queries).
SCOPES: tuple[str, ...] = (
    "https://www.googleapis.com/auth/bigquery",
    "https://www.googleapis.com/auth/cloud-billing.readonly",
)


def default_credentials(credentials_file: str | None = None) -> tuple[Any, str | None]:
    """Credentials and their default project, from a key file or Application Default Credentials.

    Raises:
        ConfigError: ``credentials_file`` cannot be read or is not a Google credentials file.
        google.auth.exceptions.DefaultCredentialsError: None found (the caller classifies it).
    """
    import google.auth

    if credentials_file is not None:
        return _from_file(credentials_file)
    creds, project = google.auth.default(scopes=SCOPES)
    return creds, project


def _from_file(path: str) -> tuple[Any, str | None]:
    """Load a service-account, authorized-user or external-account (federation) file."""
    key = "providers.gcp.credentials_file"
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read credentials: {err}", key=key) from err
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            sa: Any = service_account.Credentials  # untyped classmethods in google-auth
            creds: Any = sa.from_service_account_info(info, scopes=SCOPES)
            return creds, info.get("project_id")
        if kind == "authorized_user":
            from google.oauth2 import credentials as user

            au: Any = user.Credentials
            creds = au.from_authorized_user_info(info, scopes=SCOPES)
            return creds, info.get("quota_project_id")
        if kind == "external_account":
            from google.auth import identity_pool

            ea: Any = identity_pool.Credentials
            creds = ea.from_info(info, scopes=SCOPES)
            return creds, None
    except (ValueError, KeyError) as err:
        # the message of these errors names fields, never their values
        raise ConfigError(f"{path}: invalid {kind} credentials: {err}", key=key) from err
    raise ConfigError(
        f"{path}: unsupported credentials type {kind!r} (expected service_account, "
        "authorized_user or external_account)",
        key=key,
    )


def describe(credentials: Any) -> str:
    """Where the credentials come from, in words, without any secret."""
    email = getattr(credentials, "service_account_email", None)
    kind = type(credentials).__module__.rsplit(".", 1)[-1] + "." + type(credentials).__name__
    if kind.endswith("AnonymousCredentials"):
        return "anonymous credentials"
    if isinstance(email, str) and "@" in email:
        return f"service account {email}"
    if "compute_engine" in type(credentials).__module__:
        return "metadata server identity"
    if "external_account" in type(credentials).__module__ or "identity_pool" in kind:
        return "workload identity federation"
    if "oauth2.credentials" in type(credentials).__module__:
        return "gcloud application-default user login"
    return type(credentials).__name__
