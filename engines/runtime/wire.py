"""The wire format between the web app and the engine tier (`serve/`): a request in, framed chunks out.

One home for both ends: `serve/` builds a `SynthesisRequest` from the JSON body with `request_from_json`
and writes each `AudioChunk` as a frame with `chunk_frame`; `engines/runtime/remote.py` writes the body with
`request_to_json` and reads the frames back with `read_frames`.

Request: `POST /synthesize/<engine id>` with a JSON object:

    text, voice, speed, language, instruct, max_new_tokens, x_vector_only, lexicon   (as in SynthesisRequest)
    reference: {"pcm": base64, "dtype": "float32"|"int16", "sample_rate": int, "transcript": str|null}
    saved_voice: {"meta": {...record as voice_library stores it...}, "tensors": base64 safetensors}
    style_table: {"rows": 510, "data": base64 float32 little-endian, rows x 256}

`reference` is a clone clip (mono, little-endian); `saved_voice` is a saved clone prompt and
`style_table` a found Kokoro voice, each loaded by the web app from its own voice library after its
owner check (replicas keep no visitor state and never unpickle). Answer: `200` and a stream of frames, each

    4-byte big-endian header length H, 4-byte big-endian payload length P, H bytes of UTF-8 JSON, P bytes

with headers `{"type": "chunk", "index", "text", "phonemes", "words": [[word, phonemes, start_s,
end_s], ...], "sample_rate", "replica"}` (and `"notes"`, `"stops"` when the chunk has them: the runaway
guard's; `"language"`, the language spoken, when the engine says it) (payload: float32 little-endian
mono PCM), `{"type": "error", "kind":
"input"|"unavailable"|"busy"|"failed", "message": one sentence}` (no payload; the stream ends) and
`{"type": "end"}` after the last chunk. A stream that stops without `end` or `error` failed.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
from collections.abc import Iterable, Iterator

import numpy as np

from engines.base import AudioChunk, BusyError, EngineError, InputError, SynthesisRequest, UnavailableError, WordTiming

_LENGTHS = struct.Struct(">II")
MAX_HEADER_BYTES = 1 << 20
REPLICA_FAILED = "The engine server lost the replica that was speaking this request; please try again."
SERVER_UNREACHABLE = "The engine server does not answer; please try again in a minute."
NO_REPLICA = "The engine server has no replica of this engine running yet; please try again in a minute."
SERVER_BUSY = "The engine server's replicas are all busy and have not reported yet; please try again soon."
_KINDS = {"input": InputError, "unavailable": UnavailableError, "busy": BusyError, "failed": EngineError}


# ----- frames ------------------------------------------------------------------------------------
def frame(header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return _LENGTHS.pack(len(head), len(payload)) + head + payload


def chunk_frame(chunk: AudioChunk, replica: str | None = None) -> bytes:
    header = {
        "type": "chunk",
        "index": chunk.index,
        "text": chunk.text,
        "phonemes": chunk.phonemes,
        "words": [[w.word, w.phonemes, w.start_s, w.end_s] for w in chunk.words],
        "sample_rate": chunk.sample_rate,
    }
    if chunk.notes or chunk.stops:  # the runaway guard's notice and figures (`engines.qwen.runaway`)
        header["notes"], header["stops"] = list(chunk.notes), list(chunk.stops)
    if chunk.language:  # the language spoken (`AudioChunk.language`)
        header["language"] = chunk.language
    if replica:
        header["replica"] = replica
    return frame(header, np.ascontiguousarray(chunk.audio, dtype="<f4").tobytes())


def error_frame(exc: BaseException) -> bytes:
    """An error as a frame: the engine's own sentence for an `EngineError`, the replica sentence otherwise."""
    if isinstance(exc, BusyError):
        kind = "busy"
    elif isinstance(exc, InputError):
        kind = "input"
    elif isinstance(exc, UnavailableError):
        kind = "unavailable"
    else:
        kind = "failed"
    message = str(exc) if isinstance(exc, EngineError) else REPLICA_FAILED
    return frame({"type": "error", "kind": kind, "message": message})


END_FRAME = frame({"type": "end"})


def read_frames(pieces: Iterable[bytes]) -> Iterator[AudioChunk]:
    """The chunks of a framed stream; an error frame raises its engine error, a cut stream `EngineError`."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= _LENGTHS.size:
            head_len, payload_len = _LENGTHS.unpack_from(buffer)
            if head_len > MAX_HEADER_BYTES:
                raise EngineError(REPLICA_FAILED)
            end = _LENGTHS.size + head_len + payload_len
            if len(buffer) < end:
                break
            header = json.loads(bytes(buffer[_LENGTHS.size : _LENGTHS.size + head_len]).decode("utf-8"))
            payload = bytes(buffer[_LENGTHS.size + head_len : end])
            del buffer[:end]
            kind = header.get("type")
            if kind == "end":
                return
            if kind == "error":
                error = _KINDS.get(header.get("kind"), EngineError)
                message = str(header.get("message") or REPLICA_FAILED)
                raise error(message, 1.0) if error is BusyError else error(message)
            if kind == "chunk":
                yield AudioChunk(
                    audio=np.frombuffer(payload, dtype="<f4").astype(np.float32),
                    text=header.get("text", ""),
                    phonemes=header.get("phonemes", ""),
                    index=int(header.get("index", 0)),
                    words=tuple(
                        WordTiming(str(w), str(p), float(s), float(e)) for w, p, s, e in header.get("words", [])
                    ),
                    sample_rate=int(header.get("sample_rate", 24_000)),
                    notes=tuple(str(n) for n in header.get("notes", [])),
                    stops=tuple(dict(s) for s in header.get("stops", []) if isinstance(s, dict)),
                    language=str(header["language"]) if header.get("language") else None,
                )
    raise EngineError(REPLICA_FAILED)


# ----- requests ----------------------------------------------------------------------------------
def request_to_json(request: SynthesisRequest, saved_voice: tuple[dict, bytes] | None = None) -> dict:
    """The JSON body for `request` (a decoded reference clip as float32 PCM; a saved voice as given)."""
    body: dict = {
        "text": request.text,
        "voice": request.voice,
        "speed": request.speed,
        "language": request.language,
        "instruct": request.instruct,
        "max_new_tokens": request.max_new_tokens,
        "x_vector_only": bool(request.x_vector_only),
        "lexicon": dict(request.lexicon),  # the owner's, looked up by the web app
    }
    reference = request.reference
    if reference is not None:
        audio = np.ascontiguousarray(reference.audio, dtype="<f4")
        body["reference"] = {
            "pcm": base64.b64encode(audio.tobytes()).decode("ascii"),
            "dtype": "float32",
            "sample_rate": int(reference.sample_rate),
            "transcript": request.reference_text,
        }
    if saved_voice is not None:
        meta, tensors = saved_voice
        body["saved_voice"] = {"meta": meta, "tensors": base64.b64encode(tensors).decode("ascii")}
    if request.style_table is not None:
        table = np.ascontiguousarray(request.style_table, dtype="<f4")
        body["style_table"] = {"rows": int(table.shape[0]), "data": base64.b64encode(table.tobytes()).decode("ascii")}
    return body


def request_from_json(body: object) -> SynthesisRequest:
    """A validated `SynthesisRequest` from a request body (`InputError` in one sentence when it is wrong)."""
    if not isinstance(body, dict):
        raise InputError("The request must be a JSON object.")
    reference = reference_text = clone_prompt = None
    ref = body.get("reference")
    if ref is not None:
        reference, reference_text = _reference(ref)
    saved = body.get("saved_voice")
    if saved is not None:
        clone_prompt = _saved_voice(saved)
    try:
        return SynthesisRequest(
            text=body.get("text"),
            voice=body.get("voice") or "",
            speed=body.get("speed", 1.0) if body.get("speed") is not None else 1.0,
            language=body.get("language") or None,
            instruct=body.get("instruct") or None,
            reference=reference,
            reference_text=reference_text,
            x_vector_only=bool(body.get("x_vector_only")),
            max_new_tokens=_int_or_none(body.get("max_new_tokens")),
            clone_prompt=clone_prompt,
            style_table=_style_table(body["style_table"]) if body.get("style_table") is not None else None,
            lexicon=body.get("lexicon") or {},
        )
    except TypeError:
        raise InputError("The request has a field of the wrong type.") from None


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("max_new_tokens must be a whole number.")
    return value


def _b64(value: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"The {what} is not valid base64.") from None


def _reference(ref: object):
    """The clip through `engines.reference.load_reference` (its checks: length, rate, silence) as WAV."""
    import soundfile

    from engines.reference import load_reference

    if not isinstance(ref, dict):
        raise InputError("The reference must be an object with pcm, dtype and sample_rate.")
    dtype = {"float32": "<f4", "int16": "<i2"}.get(ref.get("dtype"))
    rate = ref.get("sample_rate")
    if dtype is None or not isinstance(rate, int) or not 1 <= rate <= 384_000:
        raise InputError("The reference needs dtype float32 or int16 and a sample_rate in Hz.")
    raw = _b64(ref.get("pcm"), "reference audio")
    if len(raw) % np.dtype(dtype).itemsize:
        raise InputError("The reference audio is cut off mid-sample.")
    audio = np.frombuffer(raw, dtype=dtype)
    if dtype == "<i2":
        audio = audio.astype(np.float32) / 32768.0
    wav = io.BytesIO()
    soundfile.write(wav, audio.astype(np.float32), rate, format="WAV", subtype="FLOAT")
    transcript = ref.get("transcript")
    return load_reference(wav.getvalue()), (transcript if isinstance(transcript, str) else None)


def _saved_voice(saved: object) -> list:
    from engines.voice_library import prompt_from_stored

    if not isinstance(saved, dict) or not isinstance(saved.get("meta"), dict):
        raise InputError("The saved voice must be an object with meta and tensors.")
    return prompt_from_stored(saved["meta"], _b64(saved.get("tensors"), "saved voice"))


def _style_table(table: object) -> np.ndarray:
    """A found Kokoro voice's style table: exactly the official rows x 256 float32, every value finite."""
    from engines.kokoro.voices import PACK_SHAPE

    rows, width = PACK_SHAPE[0], PACK_SHAPE[2]
    if not isinstance(table, dict) or table.get("rows") != rows:
        raise InputError(f"The style table must be an object with rows ({rows}) and data.")
    data, size = table.get("data"), rows * width * 4
    if not isinstance(data, str) or len(data) != 4 * -(-size // 3):  # its exact base64 length, before decoding
        raise InputError("The style table's data is not the size of a Kokoro voice.")
    raw = _b64(data, "style table")
    if len(raw) != size:
        raise InputError("The style table's data is not the size of a Kokoro voice.")
    values = np.frombuffer(raw, dtype="<f4").reshape(rows, width).astype(np.float32)
    if not np.isfinite(values).all():
        raise InputError("The style table has a value that is not a number.")
    return values
