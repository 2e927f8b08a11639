"""Kokoro rendered in the visitor's browser: the server's half. `GET|POST /kokoro/plan` runs Kokoro's own
front-end (`KokoroEngine.front_end`: G2P, chunk plan, the style row each chunk's token count picks) and
answers the chunks; `GET /kokoro/assets/<name>` serves what the browser runs them with: the packaged int8
model (`engines.runtime.weights.packaged_kokoro`), ONNX Runtime Web from `node_modules/` (npm, `package-lock.json`)
and the page's own scripts. Nothing comes from a CDN.

`/kokoro/plan` takes `text`, `voice`, `speed` and `language` (query or JSON body; the page also sends its
visitor's `lexicon` and `owner_token`, so that a Kokoro voice found for the visitor's clip plans like a
stock one; an API key's owner comes first) with the bounds of
`/v1`: 413 for text over `MAX_TEXT_CHARS`, 404 for an unknown voice, 400 for anything else wrong, 503
when Kokoro or the browser model is not available here, each one sentence in `/v1`'s error shape. It
answers `{"chunks": [{"text", "phonemes", "tokens", "style", "pause_s"}], "sample_rate", "model", "ort",
"trim"}`: `tokens` without the zero pads, `style` 256 floats, `pause_s` the silence the server puts after
the chunk, `model`/`ort` the asset URLs, `trim` the numbers `engines.audio.trim_silence` and `fade_edges`
use (the browser trims its audio with them, so both sides' chunks line up).

Model and ONNX Runtime files have versioned names and answer `Cache-Control: public, max-age=31536000,
immutable`; the page's scripts revalidate (`no-cache`). Every asset has a content ETag, and
`If-None-Match` gets 304.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from engines import audio
from engines.base import MAX_TEXT_CHARS, SAMPLE_RATE, SynthesisRequest, UnavailableError
from engines.runtime import registry
from engines.runtime.weights import packaged_kokoro
from service.caller import Caller, operator
from service.owners import owner_of_token
from service.plan import front_end

from .caller import caller
from .errors import ApiError, error_for
from .speech_request import read_json
from .strict_json import BadJson
from .strict_json import parse as parse_json
from .voices import resolve_voice

log = logging.getLogger(__name__)

PREFIX = "/kokoro/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"
ORT_DIST = NODE_MODULES / "onnxruntime-web" / "dist"
# What the worker loads: the WASM bundle and its module, or the WebGPU bundle and its (asyncify) module.
ORT_FILES = (
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
)
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
# lexicon: word -> phonemes (the page sends its visitor's); owner_token: the page's, for its visitor's found voices
PARAMS = ("text", "voice", "speed", "language", "lexicon", "owner_token")

router = APIRouter()


@dataclass(frozen=True)
class Asset:
    path: Path
    cache_control: str


_page_files: dict[str, Path] = {}
_etags: dict[tuple[str, int, int], str] = {}
_etag_lock = threading.Lock()


def add_page_file(name: str, path: Path) -> str:
    """Serve one of the page's own scripts at `/kokoro/assets/<name>` (revalidated, not immutable);
    returns its URL path."""
    _page_files[name] = Path(path)
    return PREFIX + name


def ort_version() -> str | None:
    """The installed onnxruntime-web version (None when `npm ci` has not run)."""
    try:
        return json.loads((NODE_MODULES / "onnxruntime-web" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def model_name() -> str:
    """The packaged model's asset name (its file name carries its SHA-256): `UnavailableError` without it."""
    return packaged_kokoro().model_path.name


def _assets(name: str) -> Asset | None:
    """The file behind an asset name, from fixed tables only (never a path from the request)."""
    if name in _page_files:
        return Asset(_page_files[name], REVALIDATE)
    version = ort_version()
    if version and name.startswith(f"ort-{version}/") and name.split("/", 1)[1] in ORT_FILES:
        return Asset(ORT_DIST / name.split("/", 1)[1], IMMUTABLE)
    if name.endswith(".onnx"):
        try:
            weights = packaged_kokoro()
        except UnavailableError:
            return None
        if name == weights.model_path.name:
            return Asset(weights.model_path, IMMUTABLE)
    return None


def _etag(path: Path) -> str:
    """A strong ETag from the file's content (hashed once per size and modification time)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _etag_lock:
        if key not in _etags:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            _etags[key] = f'"{digest.hexdigest()[:32]}"'
        return _etags[key]


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


@router.get(PREFIX + "{name:path}")
async def asset(name: str, request: Request) -> Response:
    found = _assets(name)
    if found is None or not found.path.is_file():
        return JSONResponse(
            {"error": {"message": "There is no such asset.", "type": "invalid_request_error", "param": None,
                       "code": "not_found"}},
            status_code=404,
        )  # fmt: skip
    etag = await run_in_threadpool(_etag, found.path)
    headers = {"Cache-Control": found.cache_control, "ETag": etag}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    media = TYPES.get(found.path.suffix, "application/octet-stream")
    return FileResponse(found.path, media_type=media, headers=headers)


@router.get("/kokoro/plan")
async def plan_get(request: Request) -> Response:
    return await _answer(dict(request.query_params), caller(request, "plan"))


@router.post("/kokoro/plan")
async def plan_post(request: Request) -> Response:
    try:
        body = await read_json(request)
    except ApiError as exc:
        return exc.response()
    if not isinstance(body, dict):
        return ApiError(400, "The request body must be a JSON object.", "invalid_json").response()
    return await _answer(body, caller(request, "plan"))


async def _answer(params: dict, who: Caller) -> Response:
    try:
        return JSONResponse(await run_in_threadpool(plan, params, who))
    except Exception as exc:  # one sentence, the right code; unexpected ones are logged by error_for
        return error_for(exc).response()


def plan(params: dict, who: Caller | None = None) -> dict:
    """The chunks Kokoro's server path would synthesize for these parameters, as JSON (admitted as
    `who`'s, by default the operator's)."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ApiError(
            400,
            f"Unknown parameter {unknown[0]!r}; use text, voice, speed, language, lexicon and owner_token.",
            "invalid_value",
        )
    text, voice = params.get("text", ""), params.get("voice", "")
    language = params.get("language") or None
    if not isinstance(text, str) or not isinstance(voice, str) or not isinstance(language, str | None):
        raise ApiError(400, "text, voice and language must be strings.", "invalid_value")
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(413, f"The text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}.", "too_long")
    speed = params.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, str | int | float):
        raise ApiError(400, "speed must be a number.", "invalid_value")
    lexicon = params.get("lexicon") or {}
    if isinstance(lexicon, str):  # a GET query carries it as JSON text, read as strictly as a body
        try:
            lexicon = parse_json(lexicon.encode("utf-8", "replace"))
        except BadJson:
            raise ApiError(400, "lexicon must be a JSON object of words to phonemes.", "invalid_value") from None
    # checks text, speed and the lexicon's shape; the engine's front-end checks its phonemes
    request = SynthesisRequest(text=text, voice=voice, speed=speed, language=language, lexicon=lexicon)
    try:
        model = model_name()
    except UnavailableError:
        raise UnavailableError("This server cannot send Kokoro's model to browsers; use the server instead.") from None
    version = ort_version()
    if version is None:
        raise UnavailableError("This server has no ONNX Runtime Web to send to browsers; use the server instead.")
    engine_id = registry.browser_engine()
    if engine_id is None:
        raise UnavailableError("No engine here renders in a browser; use the server instead.")
    who = who or operator()
    token = params.get("owner_token")
    owner = who.owner or (owner_of_token(token) if isinstance(token, str) else None)  # a key's owner first
    who = replace(who, owner=owner)  # a voice found for the owner's clip (`engines.kokoro.voices`) plans too
    request = replace(request, voice=resolve_voice(engine_id, voice, owner=owner), owner=owner)
    chunks = [
        {
            "text": c.text,
            "phonemes": c.phonemes,
            "tokens": list(c.ids),
            "style": [float(x) for x in c.style],
            "pause_s": round(c.pause_s, 4),
        }
        for c in front_end(who, engine_id, request)
    ]
    return {
        "chunks": chunks,
        "sample_rate": SAMPLE_RATE,
        "model": PREFIX + model,
        "ort": f"{PREFIX}ort-{version}/",
        "trim": {
            "threshold_db": audio.SILENCE_DB,
            "frame": max(1, SAMPLE_RATE // 100),
            "keep_s": inspect.signature(audio.trim_silence).parameters["keep_s"].default,
            "fade_s": audio.FADE_S,
        },
    }
