"""Which API key a request carries (`API_KEYS`); the owner id of a key and the client address live in
`service.caller` (re-exported here for the door).

`API_KEYS` is a comma-separated list of keys; unset or empty, the API is open (as before keys
existed). A key is compared in constant time against each configured one. The client address is the
socket peer, unless `TRUSTED_PROXY_HOPS=N` says that N proxies in front of this server each append the
address they saw to `X-Forwarded-For` (a Hugging Face Space: 1): then the N-th address from the right
is the client's, and whatever a client wrote further left (a forged header) is never used.
"""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection

from engines.settings import settings
from service.caller import client_address, owner_of_key, trusted_proxy_hops

__all__ = [
    "api_key", "client_address", "configured_keys", "keys_required", "owner_of_key", "presented_key",
    "trusted_proxy_hops",
]  # fmt: skip


def configured_keys() -> tuple[str, ...]:
    """The keys of `API_KEYS` (read on every call, so that tests and operators can change it)."""
    configured = settings().api_keys
    return tuple(key.strip() for key in (configured.get_secret_value() if configured else "").split(",") if key.strip())


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
