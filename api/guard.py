"""The door: one small ASGI middleware in front of every way in. It never reads a body to decide what
costs: whether a request costs is decided where the cost is spent (`service.admission`).

`Guard(app)` wraps the whole server (the page, its Gradio API, MCP, `/v1` and `/kokoro/`):

- **Routes** (`allowed`): only the routes this app uses answer; anything else (Gradio's own
  `/gradio_api/process_recording`, `/monitoring`, `/proxy=`, the vibe-editing routes, ...) is 404.
- **Keys** (`API_KEYS` set): every `/v1` request needs `Authorization: Bearer <key>`, else 401 in
  OpenAI's error shape. The page, the Gradio API and MCP stay open (the page has no key to send).
- **No cross-site writes**: a request that can change state (every method but GET, HEAD and OPTIONS)
  whose `Origin` is not the page's own, or whose `Sec-Fetch-Site` is `cross-site`, is 403 with one
  sentence, whatever its cookies. `/v1` writes need a JSON `Content-Type` (saving a voice: a
  multipart form), else 415.
- **Body size** (`body_limit`): every POST, PUT or PATCH body is capped as it arrives (413 past it):
  `MAX_BODY_KB` (default 256) for most routes; uploads (`/gradio_api/upload`) `MAX_UPLOAD_MB` per file
  times `MAX_UPLOAD_FILES` (default 4) files, and at most that many files a request; Gradio's queue
  and direct calls room for the Compare tab's two browser-rendered clips
  (`evaluation.kokoro_in_browser_clip.MAX_PAYLOAD_CHARS` each); saving a voice through `/v1` one upload.
- **CORS**: Gradio's own middleware answers any origin with `Access-Control-Allow-Origin` unless the
  server runs on localhost; here that header (and `...-Allow-Credentials`) only reaches the page's own
  origin (the `Origin` whose host and port are the request's `Host`), so no other site's script can
  read an answer or pass a preflight.

It must be the outermost layer (outside Gradio's CORS middleware): `install(app)` wraps an already
built Starlette/FastAPI app's middleware stack.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engines.reference import upload_limit_bytes
from engines.settings import settings
from evaluation.kokoro_in_browser_clip import MAX_PAYLOAD_CHARS
from service.caller import REQUEST_ADDRESS

from .auth import api_key, client_address, keys_required, presented_key, trusted_proxy_hops
from .errors import ApiError

log = logging.getLogger(__name__)

GRADIO_PREFIX = "/gradio_api"
FORM_OVERHEAD = 64 * 1024  # a form's other fields and part headers, beside its files
_CORS_HEADERS = (b"access-control-allow-origin", b"access-control-allow-credentials")
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# The routes this app uses. GET (and HEAD): the page, its assets and config, files and streams Gradio
# serves for events, the API description, the queue's event stream, MCP, sign-in; POST: events (queue,
# direct calls), uploads, cancel and reset, MCP; /v1 and /kokoro/ are this app's own.
READ_EXACT = frozenset({
    "/", "/config", "/config/", "/favicon.ico", "/robots.txt", "/manifest.json", "/theme.css", "/pwa_icon",
    "/gradio_api/info", "/gradio_api/info/", "/gradio_api/openapi.json", "/gradio_api/queue/data",
    "/gradio_api/upload_progress", "/gradio_api/startup-events", "/gradio_api/theme.css", "/gradio_api/app_id",
    "/gradio_api/app_id/", "/gradio_api/user", "/gradio_api/user/", "/gradio_api/login_check",
    "/gradio_api/login_check/", "/gradio_api/token", "/gradio_api/token/", "/gradio_api/deep_link",
    "/login/huggingface", "/login/callback", "/logout", "/v1",
})  # fmt: skip
READ_PREFIXES = (
    "/static/", "/assets/", "/svelte/", "/pwa_icon/", "/gradio_api/file=", "/gradio_api/stream/",
    "/gradio_api/heartbeat/", "/gradio_api/call/", "/gradio_api/mcp", "/v1/", "/kokoro/",
)  # fmt: skip
WRITE_EXACT = frozenset({
    "/gradio_api/queue/join", "/gradio_api/upload", "/gradio_api/cancel", "/gradio_api/reset", "/gradio_api/reset/",
})  # fmt: skip
WRITE_PREFIXES = (
    "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/", "/gradio_api/stream/", "/gradio_api/mcp",
    "/v1/", "/kokoro/",
)  # fmt: skip
# Gradio's event routes, which may carry the Compare tab's browser-rendered clips (one per slot)
EVENT_ROUTES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
UPLOAD_ROUTE = "/gradio_api/upload"
VOICE_UPLOAD_ROUTE = "/v1/audio/voices"
CROSS_SITE = "Requests from another site cannot change anything here."
NOT_JSON = "The request body must be JSON sent with Content-Type: application/json."  # as /v1's own reader says


def allowed(method: str, path: str) -> bool:
    """True for a route this app uses (OPTIONS: any, the CORS answer decides)."""
    if method == "OPTIONS":
        return True
    if method in ("GET", "HEAD"):
        return path in READ_EXACT or path.startswith(READ_PREFIXES)
    if path.startswith("/v1/"):
        return method in ("POST", "PUT", "DELETE", "PATCH")
    return method == "POST" and (path in WRITE_EXACT or path.startswith(WRITE_PREFIXES))


def max_upload_files() -> int:
    """`MAX_UPLOAD_FILES`: files one upload request may carry (default 4)."""
    return settings().max_upload_files


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    if path.rstrip("/") == UPLOAD_ROUTE:
        return upload_limit_bytes() * max_upload_files() + FORM_OVERHEAD
    if path.rstrip("/") == VOICE_UPLOAD_ROUTE:
        return upload_limit_bytes() + FORM_OVERHEAD
    default = settings().max_body_kb * 1024
    if path.startswith(EVENT_ROUTES) or path.startswith(GRADIO_PREFIX + "/mcp"):
        return max(default, 2 * MAX_PAYLOAD_CHARS + FORM_OVERHEAD)
    return default


class Guard:
    """ASGI middleware: routes, keys on /v1, no cross-site writes, body sizes, CORS for the page's own origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        REQUEST_ADDRESS.set(client_address(connection))  # for what this request opens (Gradio's sessions)
        own = _own_origin(connection)
        if not own:
            send = _without_cors(send)
        path, method = scope.get("path", ""), scope.get("method", "GET").upper()
        refusal = self._refusal(connection, path, method, own)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if method in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        await _capped(self.app, scope, receive, send, path)

    def _refusal(self, connection: HTTPConnection, path: str, method: str, own: bool) -> JSONResponse | None:
        v1 = path == "/v1" or path.startswith("/v1/")
        if not allowed(method, path):
            log.info("Refused a request to a route this app does not use: %s %s", method, path[:200])
            return _refuse(404, "There is nothing here.", "not_found", v1)
        if v1 and method != "OPTIONS":
            missing = self._missing_key(connection)
            if missing is not None:
                return missing
        if method in _SAFE_METHODS:
            return None
        if not own or connection.headers.get("sec-fetch-site", "").lower() == "cross-site":
            return _refuse(403, CROSS_SITE, "cross_site_request", v1)
        if v1 and method in ("POST", "PUT", "PATCH") and not _json_or_form(connection, path):
            return _refuse(415, NOT_JSON, "unsupported_media_type", v1)
        declared = connection.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > body_limit(path):
            return _too_large(path)
        return None

    @staticmethod
    def _missing_key(connection: HTTPConnection) -> JSONResponse | None:
        if not keys_required() or api_key(connection) is not None:
            return None
        if presented_key(connection) is None:
            error = ApiError(401, "This API needs a key: send it as Authorization: Bearer <key>.", "missing_api_key")
        else:
            error = ApiError(401, "The API key is not valid.", "invalid_api_key")
        response = error.response()
        response.headers["WWW-Authenticate"] = "Bearer"
        return response


def install(app) -> Guard:
    """Put a `Guard` outside everything an already created Starlette/FastAPI app runs (including the
    middleware Gradio added), building the app's middleware stack now if it was not built yet."""
    stack = app.middleware_stack or app.build_middleware_stack()
    guard = Guard(stack)
    app.middleware_stack = guard
    return guard


def _refuse(status: int, sentence: str, code: str, v1: bool) -> JSONResponse:
    """One sentence: OpenAI's error shape on /v1, `{"detail": ...}` elsewhere (what Gradio's page shows)."""
    if v1:
        return ApiError(status, sentence, code).response()
    return JSONResponse({"detail": sentence, "error": sentence}, status)


def _too_large(path: str) -> JSONResponse:
    limit = body_limit(path)
    sentence = f"The request body is over {_size(limit)}."  # the sentence /v1's own reader says (`api.speech_request`)
    if path.rstrip("/") == UPLOAD_ROUTE:
        sentence = (
            f"The upload is too large: at most {max_upload_files()} files of "
            f"{_size(upload_limit_bytes())} each in one request."
        )
    return _refuse(413, sentence, "body_too_large", path.startswith("/v1/"))


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:.3g} MiB" if nbytes >= 2**20 else f"{nbytes // 1024} KiB"


def _json_or_form(connection: HTTPConnection, path: str) -> bool:
    kind = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json")):
        return True
    return kind == "multipart/form-data" and path.rstrip("/") == VOICE_UPLOAD_ROUTE


async def _capped(app: ASGIApp, scope: Scope, receive: Receive, send: Send, path: str) -> None:
    """Run the request, its body counted as it arrives: past `body_limit(path)` (or, for uploads, past
    `MAX_UPLOAD_FILES` files) the app sees the client leave and the client gets 413."""
    limit = body_limit(path)
    files = _PartCounter(scope) if path.rstrip("/") == UPLOAD_ROUTE else None
    state = {"size": 0, "over": False, "started": False}

    async def counted() -> Message:
        if state["over"]:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            state["size"] += len(body)
            too_many = files is not None and files.feed(body) > max_upload_files()
            if state["size"] > limit or too_many:
                state["over"] = True
                if not state["started"]:
                    await _too_large(path)(scope, _nothing, send)
                    state["started"] = True
                return {"type": "http.disconnect"}
        return message

    async def sending(message: Message) -> None:
        if state["over"]:
            return  # the 413 is the answer
        if message["type"] == "http.response.start":
            state["started"] = True
        await send(message)

    await app(scope, counted, sending)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


class _PartCounter:
    """Counts the parts of a multipart body as it streams by (its boundary lines), across chunk edges."""

    def __init__(self, scope: Scope) -> None:
        kind = HTTPConnection(scope).headers.get("content-type", "")
        params = [p.strip() for p in kind.split(";")]
        boundary = next((p.split("=", 1)[1].strip('"').strip() for p in params if p.startswith("boundary=")), "")
        self.marker = b"--" + boundary.encode("latin-1", "replace") if boundary else b""
        self.tail = b""
        self.parts = 0

    def feed(self, chunk: bytes) -> int:
        """The parts begun so far (the closing boundary, `--boundary--`, is not a part)."""
        if not self.marker:
            return 0
        data = self.tail + chunk
        start = 0
        while (found := data.find(self.marker, start)) != -1:
            after = data[found + len(self.marker) : found + len(self.marker) + 2]
            if len(after) < 2:
                break  # decide with the next chunk
            if after != b"--":
                self.parts += 1
            start = found + len(self.marker)
        keep = max(start, len(data) - len(self.marker) - 2)
        self.tail = data[keep:]
        return self.parts


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
