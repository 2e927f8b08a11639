"""Who is calling: the caller's API key (`API_KEYS`), the owner id derived from it, the client address.

`API_KEYS` is a comma-separated list of keys; unset or empty, the API is open (as before keys
existed). A key is compared in constant time against each configured one. The client address is the
socket peer, unless `TRUSTED_PROXY_HOPS=N` says that N proxies in front of this server each append the
address they saw to `X-Forwarded-For` (a Hugging Face Space: 1): then the N-th address from the right
is the client's, and whatever a client wrote further left (a forged header) is never used.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

from starlette.requests import HTTPConnection

from engines.settings import env_int

__all__ = ["api_key", "client_address", "configured_keys", "keys_required", "owner_of_key", "presented_key"]


def configured_keys() -> tuple[str, ...]:
    """The keys of `API_KEYS` (read on every call, so that tests and operators can change it)."""
    return tuple(key.strip() for key in os.environ.get("API_KEYS", "").split(",") if key.strip())


def keys_required() -> bool:
    """True when `API_KEYS` is set: every /v1 request must then carry one of them."""
    return bool(configured_keys())


def presented_key(request: HTTPConnection) -> str | None:
    """The bearer token of the `Authorization` header, whatever it is (None without one)."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def api_key(request: HTTPConnection) -> str | None:
    """The caller's key when `API_KEYS` is set and `Authorization: Bearer <key>` matches one of them;
    None when no key is given, it matches none, or `API_KEYS` is unset."""
    token = presented_key(request)
    if token is None:
        return None
    given = token.encode("utf-8", "surrogatepass")
    match = None
    for key in configured_keys():  # every key is compared, so the time does not say which one matched
        if hmac.compare_digest(given, key.encode("utf-8", "surrogatepass")):
            match = key
    return match


def owner_of_key(key: str) -> str:
    """A stable owner id for a key ("key:" + 32 hex digits of its SHA-256), never the key itself."""
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def trusted_proxy_hops() -> int:
    """`TRUSTED_PROXY_HOPS` (default 0: the socket peer is the client); a bad value counts as 0."""
    return env_int("TRUSTED_PROXY_HOPS", 0, minimum=0)


def client_address(request: HTTPConnection) -> str:
    """The socket peer, or with `TRUSTED_PROXY_HOPS=N` the N-th address from the right of
    X-Forwarded-For (the one the outermost trusted proxy saw). A header shorter than N entries, or an
    entry that is not an IP address, falls back to the socket peer."""
    peer = request.client.host if request.client else "unknown"
    hops = trusted_proxy_hops()
    if hops == 0:
        return peer
    forwarded = [part.strip() for value in request.headers.getlist("x-forwarded-for") for part in value.split(",")]
    if len(forwarded) < hops:
        return peer
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer
