"""Removing secrets from text a user, a log or a report will see: the one home of that rule.

A secret leaks in more shapes than its literal text: a server echoes a request's
``Authorization: Basic ...`` header (the token in base64, behind ``user:``), cuts it in an error
message (a long prefix), or quotes it URL-encoded; a proxy's error page quotes an AWS request's
``Credential=AKIA...`` scope. :func:`redact` removes each of these shapes.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable

__all__ = ["MIN_PREFIX", "redact"]

#: The shortest piece of a secret that is still removed when a server echoes only its start.
MIN_PREFIX = 8

_MASK = "***"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
#: AWS access key ids (long-term ``AKIA``, temporary ``ASIA``): an identifier, but one that
#: names a credential, so it is never shown.
_AWS_ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")


def _base64_cores(secret: bytes) -> set[str]:
    """The base64 text that encodes ``secret`` wherever it sits in a longer encoded value.

    Base64 turns each 3 bytes into 4 characters, so the secret's encoding depends on where it
    starts modulo 3 (``x-access-token:<token>`` puts it at 15). For each of the three offsets
    the encoding of the whole 3-byte groups inside the secret is the same whatever surrounds it.
    """
    cores: set[str] = set()
    for skip in range(3):
        inner = secret[skip:]
        inner = inner[: len(inner) - len(inner) % 3]
        if len(inner) >= 6:
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                cores.add(encode(inner).decode("ascii"))
    return cores


def _shapes(secret: str) -> list[str]:
    """Every text form of ``secret`` to remove, longest first (so a longer match wins)."""
    raw = secret.encode("utf-8")
    shapes = {secret, urllib.parse.quote(secret, safe=""), *_base64_cores(raw)}
    shapes.update(secret[:k] for k in range(MIN_PREFIX, len(secret)))
    return sorted(
        (s for s in shapes if len(s) >= min(MIN_PREFIX, len(secret))), key=len, reverse=True
    )


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove credentials from ``text``.

    Removed: ``scheme://user:password@`` in URLs, AWS access key ids, and each of ``secrets``
    as written, URL-encoded, in base64 (alone or inside a longer encoded value such as a Basic
    auth header) and as any prefix of at least :data:`MIN_PREFIX` characters.
    """
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _AWS_ACCESS_KEY_ID.sub(_MASK, text)
    for secret in secrets:
        if not secret:
            continue
        for shape in _shapes(secret):
            if shape in text:
                text = text.replace(shape, _MASK)
    return text
