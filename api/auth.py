"""Who is calling: the API key (`API_KEYS`), the client's address, the owner id a key stands for.

Minimal version (owners branch) with the interface of CONTRACTS.md; the apiguard branch's wins.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from fastapi import Request


def _keys() -> list[str]:
    return [key.strip() for key in os.environ.get("API_KEYS", "").split(",") if key.strip()]


def api_key(request: Request) -> str | None:
    """The caller's key when `API_KEYS` is set and `Authorization: Bearer <key>` matches one."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    given = given.strip().encode("utf-8")
    found = None
    for key in _keys():  # every key compared, in constant time
        if hmac.compare_digest(given, key.encode("utf-8")):
            found = key
    return found


def client_address(request: Request) -> str:
    """The socket peer, or with `TRUSTED_PROXY_HOPS=N` the N-th address from the right of X-Forwarded-For."""
    peer = request.client.host if request.client else ""
    hops = int(os.environ.get("TRUSTED_PROXY_HOPS", "0") or 0)
    forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
    return forwarded[-hops] if 0 < hops <= len(forwarded) else peer


def owner_of_key(key: str) -> str:
    """A stable owner id derived from a key, never the key itself."""
    return "key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
