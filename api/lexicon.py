"""`GET` / `PUT /v1/audio/lexicon`: the calling API key's pronunciation lexicon (`engines.lexicon`).

The body and the answer are `{"entries": [{"word", "phonemes", "respelling"}]}` (`PUT` replaces the
whole lexicon; `{"entries": []}` empties it); the answer adds `"object": "lexicon"`. Every
`/v1/audio/speech` request of the key speaks with it (Kokoro: the phonemes; Qwen3-TTS: the
respellings). The lexicon belongs to the key (`API_KEYS`), like its saved voices: no other key reads
or changes it; with `VOICE_LIBRARY_SHARED=1` there is one shared lexicon. 200 with the lexicon; 400 a
bad entry (one sentence naming it: a symbol Kokoro cannot say, a word that is not one word, over
`MAX_LEXICON_ENTRIES` entries), 401 no valid key where keys are set, 403 no keys on this server, 415
not JSON, 413 over 256 KiB.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from engines import lexicon
from engines.voice_library import shared
from service import lexicon as lexicons
from service.caller import Caller

from .auth import keys_required
from .caller import caller
from .errors import ApiError, error_for
from .speech_request import read_json

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible speech"])


def _caller(request: Request) -> Caller:
    """The caller (its key's owner id), or the refusal when this caller cannot have a lexicon here."""
    who = caller(request)
    if who.owner is None and not shared():
        if keys_required():
            raise ApiError(
                401, "Send your API key as 'Authorization: Bearer <key>' to keep a lexicon.", "invalid_api_key"
            )
        raise ApiError(
            403, "A lexicon through /v1 needs API keys on this server (API_KEYS); keep it on the page instead.",
            "api_keys_required",
        )  # fmt: skip
    return who


def _answer(entries) -> JSONResponse:
    return JSONResponse({"object": "lexicon", **lexicon.entries_to_json(entries)})


@router.get("/audio/lexicon")
def read(request: Request) -> JSONResponse:
    """The calling key's lexicon."""
    try:
        return _answer(lexicons.read(_caller(request)))
    except Exception as exc:
        return error_for(exc).response()


@router.put("/audio/lexicon")
async def replace(request: Request) -> JSONResponse:
    """Replace the calling key's lexicon with the body's entries (each checked)."""
    try:
        who = _caller(request)
        entries = await run_in_threadpool(lexicon.entries_from_json, await read_json(request))
        return _answer(await run_in_threadpool(lexicons.replace, who, entries))
    except Exception as exc:
        return error_for(exc).response()
