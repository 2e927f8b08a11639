"""Who is calling: one `Caller` per request, resolved once by its face.

A face (the page and the Gradio API/MCP in `ui.caller`, `/v1` and `/kokoro/plan` in `api.caller`, the
CLI with `operator()`) builds the caller from what its wire says; the use cases take it as it is.
The owner is whose saved voices and lexicon the call uses (a signed-in account, an owner token's owner,
an API key's owner, or none); the limits are kept per `bucket`: the API key's owner id when the call
carries a valid key, else the client address (owner tokens are free to mint, so they never make a new
bucket).

The client address is the socket peer, unless `TRUSTED_PROXY_HOPS=N` says that N proxies in front of
this server each append the address they saw to `X-Forwarded-For` (a Hugging Face Space: 1): then the
N-th address from the right is the client's, and whatever a client wrote further left (a forged header)
is never used.
"""

from __future__ import annotations

import hashlib
import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from engines.settings import settings
from engines.voice_library import OPERATOR

FACES = ("page", "gradio", "v1", "plan", "cli", "test")
# The client address of the HTTP request being served, set by the door for whatever the request opens
# (e.g. Gradio's session state, `ui.sessions`); None outside a request.
REQUEST_ADDRESS: ContextVar[str | None] = ContextVar("request_address", default=None)


@dataclass(frozen=True)
class Caller:
    """One request's caller: owner, API key's owner id, client address, session and face."""

    address: str
    face: str = "page"
    owner: str | None = None  # whose saved voices and lexicon (None: nobody's)
    key: str | None = None  # the API key's owner id (`owner_of_key`), never the key itself
    session: str | None = None  # Gradio's session hash, where the face has one
    # one request, however many use cases it calls, counts once towards API_RATE_PER_MIN (None: each call)
    request_id: str | None = field(default=None, compare=False)

    @property
    def bucket(self) -> str:
        """Whose allowances this call spends: the key's owner, the operator, else the address."""
        if self.key:
            return self.key
        if self.is_operator:
            return "operator"
        return "ip:" + self.address

    @property
    def is_operator(self) -> bool:
        """The machine's own operator (the CLI, or code calling in process): no allowances apply."""
        return self.face == "cli"


def operator() -> Caller:
    """The CLI's caller: the machine's operator (its own library; limits are a public server's)."""
    return Caller(address="local", face="cli", owner=OPERATOR)


def owner_of_key(key: str) -> str:
    """A stable owner id for a key ("key:" + 32 hex digits of its SHA-256), never the key itself."""
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def trusted_proxy_hops() -> int:
    """`TRUSTED_PROXY_HOPS` (default 0: the socket peer is the client)."""
    return settings().trusted_proxy_hops


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
