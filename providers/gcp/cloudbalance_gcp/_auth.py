"""Google credentials through Application Default Credentials, described without secrets.

``google.auth.default()`` looks, in order, at ``GOOGLE_APPLICATION_CREDENTIALS``, the gcloud
user's application-default login, and the metadata server of the VM, Cloud Run or GKE workload.
We only ever show *which* identity was found (a service-account e-mail, "user login", "metadata
server"), never a key or token.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCOPES", "default_credentials", "describe"]

#: Read-only scopes suffice for both APIs (BigQuery jobs need the bigquery scope to run queries).
SCOPES: tuple[str, ...] = (
    "https://www.googleapis.com/auth/bigquery",
    "https://www.googleapis.com/auth/cloud-billing.readonly",
)


def default_credentials(credentials_file: str | None = None) -> tuple[Any, str | None]:
    """Credentials and their default project, from a key file or Application Default Credentials.

    Raises:
        google.auth.exceptions.DefaultCredentialsError: None found (the caller classifies it).
    """
    import google.auth

    if credentials_file is not None:
        load: Any = google.auth.load_credentials_from_file  # untyped in google-auth
        creds, project = load(credentials_file, scopes=SCOPES)
        return creds, project
    creds, project = google.auth.default(scopes=SCOPES)
    return creds, project


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
