"""Check GitHub's ``X-Hub-Signature-256`` header against the exact bytes of a webhook delivery.

The HMAC is computed over the raw request body before any JSON parsing. Re-serialising the
parsed payload changes spacing, key order and the escaping of non-ASCII characters, so a
valid delivery would no longer match. Only the SHA-256 header counts: the older
``X-Hub-Signature`` (SHA-1) is never a fallback.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


class SignatureError(ValueError):
    """A delivery whose signature is missing or wrong; the server responds with 401 and does nothing else."""


def sign(secret: str, body: bytes) -> str:
    """Return the header value GitHub sends for ``body``: ``sha256=`` and the hex HMAC."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Return a header regardless of the case of its name (HTTP header names are case-insensitive)."""
    target = name.lower()
    return next((value for key, value in headers.items() if key.lower() == target), None)


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise SignatureError unless ``headers`` carry a valid SHA-256 signature of ``body``."""
    if not secret:
        raise ValueError("the webhook secret is empty; set GITHUB_WEBHOOK_SECRET")
    received = header_value(headers, HEADER)
    if received is None:
        sha1_only = header_value(headers, "X-Hub-Signature") is not None
        raise SignatureError("sha256 signature required: only X-Hub-Signature (SHA-1) was sent" if sha1_only
                             else f"sha256 signature required: the {HEADER} header is missing")
    if not received.startswith(PREFIX):
        raise SignatureError(f"the {HEADER} header must start with {PREFIX!r}")
    # compare_digest takes the same time wherever the strings differ.
    if not hmac.compare_digest(received.encode("ascii", "replace"), sign(secret, body).encode("ascii")):
        raise SignatureError(f"the {HEADER} header does not match the body; check GITHUB_WEBHOOK_SECRET")
