"""The one ASGI middleware in front of every way in: API keys, the per-client rate limit, CORS.

`Guard(app, starts_work=...)` wraps the whole server (the page, its Gradio API, MCP and `/v1`):

- **Keys** (`API_KEYS` set): every `/v1` request needs `Authorization: Bearer <key>`, else 401 in
  OpenAI's error shape. The page, the Gradio API and MCP stay open (the page has no key to send).
- **Rate limit** (`API_RATE_PER_MIN`, default 30 a minute, by the caller's key, else by its client
  address: `api.auth.client_address`): only requests that start work count, never page loads,
  heartbeats, uploads or static files. Those are: `POST /v1/...`; a Gradio queue join
  (`/gradio_api/queue/join`, which the page's events and `gradio_client` use) or direct call
  (`/gradio_api/call|run|api/<name>`) of an event that `starts_work(fn_index, api_name)` says runs
  an engine; an MCP `tools/call`. A refused request gets 429, `Retry-After` and one sentence: OpenAI's
  error shape on `/v1`, `{"detail": ...}` for Gradio (the page shows `detail` in its error toast), a
  JSON-RPC error for MCP. Gradio's MCP server runs a queued tool by calling its own queue from
  loopback with `x-gradio-user: mcp`: that join was counted as the tool call and is not counted again.
- **CORS**: Gradio's own middleware answers any origin with `Access-Control-Allow-Origin` unless the
  server runs on localhost; here that header (and `...-Allow-Credentials`) only reaches the page's own
  origin (the `Origin` whose host and port are the request's `Host`), so no other site's script can
  read an answer or pass a preflight.

It must be the outermost layer (outside Gradio's CORS middleware): `install(app, ...)` wraps an
already built Starlette/FastAPI app's middleware stack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.limits import RateLimiter, rate_from_env

from .auth import api_key, client_address, keys_required, owner_of_key, presented_key, trusted_proxy_hops
from .errors import ApiError

GRADIO_PREFIX = "/gradio_api"
MCP_PREFIX = "/gradio_api/mcp"
MAX_PEEK_BYTES = 1 << 20  # bodies read to decide whether a request starts work (a join is ~1 KB)
_CALL_ROUTES = ("call/v2/", "call/", "run/", "api/")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_CORS_HEADERS = (b"access-control-allow-origin", b"access-control-allow-credentials")

StartsWork = Callable[[int | None, str | None], bool]


def _every_event(fn_index: int | None, api_name: str | None) -> bool:  # noqa: ARG001
    return True


class Guard:
    """ASGI middleware: keys on /v1, the rate limit on every way in, CORS for the page's own origin."""

    def __init__(self, app: ASGIApp, starts_work: StartsWork = _every_event, rate_per_min: int | None = None) -> None:
        self.app, self.starts_work = app, starts_work
        self.limiter = RateLimiter(rate_from_env() if rate_per_min is None else rate_per_min)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        if not _own_origin(connection):
            send = _without_cors(send)
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if path == "/v1" or path.startswith("/v1/"):
            refusal = self._v1(connection, method)
        elif method == "POST" and path.startswith(GRADIO_PREFIX + "/"):
            receive, refusal = await self._gradio(connection, path, receive)
        else:
            refusal = None
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    # ----- /v1 ----------------------------------------------------------------------------------
    def _v1(self, connection: HTTPConnection, method: str) -> JSONResponse | None:
        if method == "OPTIONS":
            return None  # a preflight carries no credentials; the CORS answer decides
        key = api_key(connection)
        if keys_required() and key is None:
            if presented_key(connection) is None:
                error = ApiError(
                    401, "This API needs a key: send it as Authorization: Bearer <key>.", "missing_api_key"
                )
            else:
                error = ApiError(401, "The API key is not valid.", "invalid_api_key")
            response = error.response()
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if method != "POST":
            return None
        wait = self.limiter.take(_client(connection, key))
        if not wait:
            return None
        response = ApiError(429, self._too_many(wait), "rate_limit_exceeded").response()
        response.headers["Retry-After"] = RateLimiter.retry_after(wait)
        return response

    # ----- Gradio's queue, direct calls and MCP --------------------------------------------------
    async def _gradio(
        self, connection: HTTPConnection, path: str, receive: Receive
    ) -> tuple[Receive, JSONResponse | None]:
        rest = path[len(GRADIO_PREFIX) + 1 :]
        if path.startswith(MCP_PREFIX + "/") or path == MCP_PREFIX:
            receive, body = await _peek(receive)
            if not _is_tool_call(body):
                return receive, None
            wait = self.limiter.take(_client(connection, api_key(connection)))
            return receive, (self._mcp_refusal(body, wait) if wait else None)
        if rest.rstrip("/") == "queue/join":
            if _mcp_loopback(connection):
                return receive, None  # the MCP tool call that made this join was counted
            receive, body = await _peek(receive)
            fn_index = body.get("fn_index") if isinstance(body, dict) else None
            if not self._counts(fn_index if isinstance(fn_index, int) else None, None):
                return receive, None
        elif rest.startswith(_CALL_ROUTES):
            route = next(prefix for prefix in _CALL_ROUTES if rest.startswith(prefix))
            if not self._counts(None, rest[len(route) :].strip("/")):
                return receive, None
        else:
            return receive, None  # uploads, cancels, heartbeats, resets: no work started
        wait = self.limiter.take(_client(connection, api_key(connection)))
        if not wait:
            return receive, None
        sentence = self._too_many(wait)
        return receive, JSONResponse(
            {"detail": sentence, "error": sentence}, 429, {"Retry-After": RateLimiter.retry_after(wait)}
        )

    def _counts(self, fn_index: int | None, api_name: str | None) -> bool:
        try:
            return bool(self.starts_work(fn_index, api_name))
        except Exception:  # an unknown event counts: when in doubt, limit
            return True

    def _mcp_refusal(self, body: object, wait: float) -> JSONResponse:
        ident = body.get("id") if isinstance(body, dict) else None
        payload = {"jsonrpc": "2.0", "id": ident, "error": {"code": -32000, "message": self._too_many(wait)}}
        return JSONResponse(payload, 429, {"Retry-After": RateLimiter.retry_after(wait)})

    def _too_many(self, wait: float) -> str:
        return (
            f"Too many requests: at most {self.limiter.rate} a minute from one client; "
            f"try again in {RateLimiter.retry_after(wait)} s."
        )


def install(app, starts_work: StartsWork = _every_event) -> Guard:
    """Put a `Guard` outside everything an already created Starlette/FastAPI app runs (including the
    middleware Gradio added), building the app's middleware stack now if it was not built yet."""
    stack = app.middleware_stack or app.build_middleware_stack()
    guard = Guard(stack, starts_work)
    app.middleware_stack = guard
    return guard


def _client(connection: HTTPConnection, key: str | None) -> str:
    """The rate limit's bucket: the key's owner id, else the client address."""
    return owner_of_key(key) if key else "ip:" + client_address(connection)


def _own_origin(connection: HTTPConnection) -> bool:
    """True without an Origin header, or when the Origin is the page's own (its host is the request's)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" and other opaque origins are never the page's own
    hosts = {connection.headers.get("host", "").lower()}
    if trusted_proxy_hops():  # behind a trusted proxy the page's host may be the forwarded one
        forwarded = connection.headers.get("x-forwarded-host", "").split(",")[-1].strip().lower()
        hosts.add(forwarded)
    return parts.netloc.lower() in hosts - {""}


def _without_cors(send: Send) -> Send:
    """`send`, with any Access-Control-Allow-Origin/-Credentials header removed from the response."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [(k, v) for k, v in message.get("headers", []) if k.lower() not in _CORS_HEADERS],
            }
        await send(message)

    return wrapped


def _mcp_loopback(connection: HTTPConnection) -> bool:
    """A queue join made by Gradio's own MCP server for a tool call (from loopback, marked as MCP)."""
    peer = connection.client.host if connection.client else ""
    return peer in _LOOPBACK and connection.headers.get("x-gradio-user") == "mcp"


def _is_tool_call(body: object) -> bool:
    """True for a JSON-RPC `tools/call` (or a batch holding one)."""
    items = body if isinstance(body, list) else [body]
    return any(isinstance(item, dict) and item.get("method") == "tools/call" for item in items)


async def _peek(receive: Receive) -> tuple[Receive, object]:
    """Read the request body (up to `MAX_PEEK_BYTES`) and a `receive` that replays it; the body as
    JSON, or None when it is not JSON or too long to look at."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False) or size > MAX_PEEK_BYTES:
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    try:
        document = json.loads(body) if size <= MAX_PEEK_BYTES else None
    except (ValueError, RecursionError):
        document = None

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return replay, document
