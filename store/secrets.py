"""Secrets: deploy tokens and node API keys.

A secret is 32 random bytes written as 64 hex characters (the length the hosted service's
integrations expect). Only its SHA-256 is stored; with 256 bits of entropy a fast hash is enough
and lets us look a secret up by its hash. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["hash_secret", "new_secret", "secret_prefix", "secrets_equal"]

SECRET_BYTES = 32


def new_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secrets_equal(stored_hash: str, presented: str) -> bool:
    return hmac.compare_digest(stored_hash, hash_secret(presented))


def secret_prefix(secret: str) -> str:
    """The first characters, safe to show in listings so a person can tell tokens apart."""
    return secret[:8]
