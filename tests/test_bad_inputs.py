# ruff: noqa: E501  (the table: one row a line)
"""Bad inputs, table-driven: each way in (/v1, the page's handlers, the Gradio API, MCP, the CLI) with
the exact sentence each one gets; then the server still serves a good request. docs/bad-input.md
lists this table.

/v1 runs in process (FastAPI's TestClient on the api router behind `api.guard`), the page's handlers
are called as Gradio calls them, the Gradio API and MCP rows use the running app (`app_url`), the
CLI rows run `python -m engines`.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import router
from api.guard import Guard

SR = 24_000
INTERNAL = re.compile(r"/tmp|/root|/home|/work|/usr|Traceback|ffmpeg -|\.py\b|\b[A-Z][A-Za-z]+(Error|Exception)\b")


@dataclass(frozen=True)
class Row:
    way: str  # /v1, page, Gradio API, MCP, CLI
    case: str  # the bad input, in words
    run: Callable[[dict], tuple[object, str]]  # ctx -> (status or exit code or "error", the sentence)
    code: object
    sentence: str

    def __str__(self) -> str:
        return f"{self.way}: {self.case}"


# ----- how each way in is driven ------------------------------------------------------------------


def v1(body: bytes | str | dict | list, content_type: str | None = "application/json", **headers: str):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body

    def run(ctx: dict) -> tuple[int, str]:
        sent = {**({"content-type": content_type} if content_type else {}), **headers}
        response = ctx["v1"].post("/v1/audio/speech", content=data, headers=sent)
        return response.status_code, response.json()["error"]["message"]

    return run


def speech(**fields) -> dict:
    return {"model": "kokoro", "input": "Hello there.", "voice": "jm_kumo", "response_format": "wav", **fields}


def page(handler: str, *args, files: dict[str, bytes] | None = None):
    """Call a page handler as Gradio does (`files`: uploads written to a temp folder, passed as paths)."""

    def run(ctx: dict) -> tuple[str, str]:
        module, name = handler.rsplit(".", 1)
        fn = getattr(__import__(module, fromlist=[name]), name)
        paths = {}
        for file_name, data in (files or {}).items():
            folder = ctx["tmp"] / f"upload-{len(list(ctx['tmp'].iterdir()))}"
            folder.mkdir()
            (folder / file_name).write_bytes(data)
            paths[file_name] = str(folder / file_name)
        call = [paths.get(a, a) if isinstance(a, str) else a for a in args]
        try:
            out = fn(*call)
            if hasattr(out, "__next__"):
                for _ in out:
                    pass
        except gr.Error as exc:
            return "error", exc.message
        return "ok", ""

    return run


def cli(*args: str, stdin: bytes | None = None, files: dict[str, bytes] | None = None):
    def run(ctx: dict) -> tuple[int, str]:
        for file_name, data in (files or {}).items():
            (ctx["tmp"] / file_name).write_bytes(data)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.pop("KOKORO_MODEL", None)
        done = subprocess.run(
            [sys.executable, "-m", "engines", *args], cwd=ctx["tmp"], env={**env, "PYTHONPATH": str(ROOT)},
            input=stdin, capture_output=True, timeout=300,
        )  # fmt: skip
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return done.returncode, (lines[-1] if lines else "").removeprefix("error: ")

    return run


def gradio_api(api_name: str, *data):
    """POST /gradio_api/call/<name>, then read its event stream: the error event's sentence."""

    def run(ctx: dict) -> tuple[str, str]:
        base = ctx["app_url"]() + "gradio_api/call/" + api_name
        request = urllib.request.Request(
            base, json.dumps({"data": list(data)}).encode(), {"Content-Type": "application/json"}
        )
        event_id = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
        stream = urllib.request.urlopen(f"{base}/{event_id}", timeout=300).read().decode()
        event, payload = "", None
        for line in stream.splitlines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
        answer = json.loads(payload) if payload else None
        return event, (answer.get("error") or "") if isinstance(answer, dict) else ""

    return run


def mcp(tool: str, **arguments):
    """One JSON-RPC tools/call on the streamable-HTTP MCP endpoint: whether it failed, and its text."""

    def run(ctx: dict) -> tuple[str, str]:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        request = urllib.request.Request(
            ctx["app_url"]() + "gradio_api/mcp/", json.dumps(body).encode(),
            {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
        )  # fmt: skip
        text = urllib.request.urlopen(request, timeout=300).read().decode()
        message = json.loads(next(line[5:] for line in text.splitlines() if line.startswith("data:")))
        if "error" in message:
            return "error", message["error"]["message"]
        result = message["result"]
        return ("error" if result.get("isError") else "ok"), result["content"][0]["text"]

    return run


# ----- hostile files ----------------------------------------------------------------------------


def wav(audio: np.ndarray, rate: int = SR) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def speechlike(seconds: float, rate: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone


def wav_claiming_2_31_samples() -> bytes:
    """A 16-bit mono WAV whose header says 2^31 samples (4 GiB of data) but holds half a second."""
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, SR, 2 * SR, 2, 16)
    header = struct.pack("<4sI4s", b"RIFF", 0xFFFFFFFF, b"WAVE") + fmt_chunk + struct.pack("<4sI", b"data", 2**32 - 2)
    return header + (speechlike(0.5) * 32767).astype("<i2").tobytes()


def zip_bomb_like() -> bytes:
    """A small zip whose one member inflates to 10 MB of text (the batch reader must not unpack it)."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("lines.txt", "a\n" * 5_000_000)
    return buffer.getvalue()


LONG = "a" * 5001
SYNTH_REST = (1.0, "Auto", "wav", "Off", False, False, False, False)  # /synthesize after text and voice
RTL_ZERO_WIDTH = "\u200f\u200b\u202e\u200d\u2066"
UNKNOWN_VOICE = "Unknown Kokoro voice '../../etc/passwd'; pick one from the voice list (e.g. jf_alpha)."
FMT = "Unknown audio format 'exe'; choose one of: wav, flac, mp3, ogg, opus."
NOTHING = "There is nothing to pronounce in this text (only punctuation, symbols or emoji)."

ROWS = [
    # --- /v1 (OpenAI-compatible) -------------------------------------------------------------------
    Row("/v1", "a number of 5,000 digits", v1('{"model":"kokoro","input":"Hi.","voice":"jm_kumo","speed":' + "1" * 5000 + "}"), 400, "The request body has a number over 40 characters long."),
    Row("/v1", "arrays nested 3,000 deep", v1("[" * 3000 + "]" * 3000), 400, "The request body is nested more than 32 levels deep."),
    Row("/v1", "a body that is not UTF-8", v1(b'{"model":"kokoro","input":"\xff\xfe","voice":"jm_kumo"}'), 400, "The request body is not UTF-8 text."),
    Row("/v1", "a duplicate key", v1('{"model":"kokoro","input":"Hi.","input":"Bye.","voice":"jm_kumo"}'), 400, "The request body repeats the key 'input'."),
    Row("/v1", "NaN as the speed", v1('{"model":"kokoro","input":"Hi.","voice":"jm_kumo","speed":NaN}'), 400, "The request body holds NaN, which is not a JSON number."),
    Row("/v1", "a speed of 1e999", v1('{"model":"kokoro","input":"Hi.","voice":"jm_kumo","speed":1e999}'), 400, "The request body has a number too large for a double."),
    Row("/v1", "Content-Type: text/plain", v1(speech(), "text/plain"), 415, "The request body must be JSON sent with Content-Type: application/json."),
    Row("/v1", "no Content-Type", v1(speech(), None), 415, "The request body must be JSON sent with Content-Type: application/json."),
    Row("/v1", "a form post", v1("model=kokoro&input=Hi", "application/x-www-form-urlencoded"), 415, "The request body must be JSON sent with Content-Type: application/json."),
    Row("/v1", "JSON in Latin-1", v1(speech(), "application/json; charset=latin-1"), 415, "The request body must be JSON sent with Content-Type: application/json."),
    Row("/v1", "an empty body", v1(""), 400, "The request body is not valid JSON."),
    Row("/v1", "truncated JSON", v1('{"model": "kokoro", "input": "Hi'), 400, "The request body is not valid JSON."),
    Row("/v1", "a JSON array body", v1([1, 2]), 400, "The request body must be a JSON object."),
    Row("/v1", "input missing", v1({"model": "kokoro", "voice": "jm_kumo"}), 400, "The field 'input' is required."),
    Row("/v1", "input as a number", v1(speech(input=42)), 400, "The field 'input' is invalid: Input should be a valid string."),
    Row("/v1", "speed as a string", v1(speech(speed="fast")), 400, "The field 'speed' is invalid: Input should be a valid number."),
    Row("/v1", "trim as a string", v1(speech(trim="yes")), 400, "The field 'trim' is invalid: Input should be a valid boolean."),
    Row("/v1", "speed 0", v1(speech(speed=0)), 400, "Speed must be between 0.5 and 2.0; got 0."),
    Row("/v1", "a body over 256 KiB", v1(speech(input="a" * 300_000)), 413, "The request body is over 256 KiB."),
    Row("/v1", "input of 5,001 characters", v1(speech(input=LONG)), 413, "The input is 5,001 characters long; the limit is 5,000."),
    Row("/v1", "an unknown model", v1(speech(model="../../bin/sh")), 404, "There is no model called '../../bin/sh'; choose one of: kokoro, qwen-custom, qwen-clone, qwen-design, tts-1, tts-1-hd, qwen3-tts-design."),
    Row("/v1", "a voice with path separators", v1(speech(voice="../../etc/passwd")), 404, "The model 'kokoro' has no voice called '../../etc/passwd'; for example: jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo, af_heart."),
    Row("/v1", "response_format exe", v1(speech(response_format="exe")), 400, "Unknown response_format 'exe'; choose one of: wav, flac, mp3, ogg, opus, pcm."),
    Row("/v1", "a loudness target of 99 LUFS", v1(speech(lufs=99)), 400, "The loudness target must be between -40 and -5 LUFS; got 99.0."),
    Row("/v1", "a control character in the input", v1(speech(input="Hi\u0007there.")), 400, "The text contains a control character (U+0007); please remove it."),
    Row("/v1", "only RTL and zero-width marks", v1(speech(input=RTL_ZERO_WIDTH)), 400, NOTHING),
    # --- the page's handlers -------------------------------------------------------------------------
    Row("page", "Kokoro: empty text", page("ui.kokoro_tab.kokoro_synthesize", "", "jm_kumo"), "error", "Please enter some text to speak."),
    Row("page", "Kokoro: 5,001 characters", page("ui.kokoro_tab.kokoro_synthesize", LONG, "jm_kumo"), "error", "The text is 5,001 characters long; the limit is 5,000."),
    Row("page", "Kokoro: an escape character", page("ui.kokoro_tab.kokoro_synthesize", "Hi \x1b[31m", "jm_kumo"), "error", "The text contains a control character (U+001B); please remove it."),
    Row("page", "Kokoro: only RTL and zero-width marks", page("ui.kokoro_tab.kokoro_synthesize", RTL_ZERO_WIDTH, "jm_kumo"), "error", NOTHING),
    Row("page", "Kokoro: a voice with path separators", page("ui.kokoro_tab.kokoro_synthesize", "Hello.", "../../etc/passwd"), "error", UNKNOWN_VOICE),
    Row("page", "Kokoro: a blend weight that is not a number", page("ui.kokoro_tab.kokoro_stream", "Hello.", "jm_kumo", "jm_kumo:abc", 1.0, "Auto"), "error", "The weight 'abc' of jm_kumo is not a number."),
    Row("page", "Kokoro: speed 9", page("ui.kokoro_tab.kokoro_synthesize", "Hello.", "jm_kumo", 9), "error", "Speed must be between 0.5 and 2.0; got 9."),
    Row("page", "Kokoro: loudness 'loud'", page("ui.kokoro_tab.kokoro_synthesize", "Hello.", "jm_kumo", 1.0, "Auto", "wav", "loud"), "error", "The loudness target must be a number of LUFS, like -16; got 'loud'."),
    Row("page", "Kokoro: format exe", page("ui.kokoro_tab.kokoro_synthesize", "Hello.", "jm_kumo", 1.0, "Auto", "exe"), "error", FMT),
    Row("page", "clone: a WAV header claiming 2^31 samples", page("ui.qwen_tab.transcribe_reference", "huge.wav", files={"huge.wav": wav_claiming_2_31_samples()}), "error", "The reference is only 0.5 s long; please use at least 1 second of speech."),
    Row("page", "clone: 64-channel audio", page("ui.qwen_tab.transcribe_reference", "many.wav", files={"many.wav": wav(speechlike(2.0, 16_000, 64), 16_000)}), "error", "The reference has 64 channels; please use a mono or stereo clip."),
    Row("page", "clone: random bytes named .wav", page("ui.qwen_tab.transcribe_reference", "noise.wav", files={"noise.wav": os.urandom(4096)}), "error", "The reference file is not audio that can be read (try WAV, FLAC, MP3 or OGG)."),
    Row("page", "clone: an empty file", page("ui.qwen_tab.transcribe_reference", "empty.wav", files={"empty.wav": b""}), "error", "The reference audio is empty; upload or record a few seconds of speech."),
    Row("page", "clone: 8 kHz audio", page("ui.qwen_tab.transcribe_reference", "phone.wav", files={"phone.wav": wav(speechlike(3.0, 8000), 8000)}), "error", "The reference is sampled at 8 kHz; please use audio recorded at 16 kHz or more."),
    Row("page", "clone: silence", page("ui.qwen_tab.transcribe_reference", "quiet.wav", files={"quiet.wav": wav(np.zeros(3 * SR, np.float32))}), "error", "The reference audio is silent; please upload a clip in which someone speaks."),
    Row("page", "clone: 0.3 s of audio", page("ui.qwen_tab.transcribe_reference", "short.wav", files={"short.wav": wav(speechlike(0.3))}), "error", "The reference is only 0.3 s long; please use at least 1 second of speech."),
    Row("page", "clone: over 50 MB", page("ui.qwen_tab.transcribe_reference", "big.wav", files={"big.wav": b"RIFF" + bytes(50 * 2**20)}), "error", "The reference clip is over the 50 MB limit; please upload a smaller file."),
    Row("page", "batch: a zip-bomb-like zip", page("ui.batch_tab.batch_render", "lines.txt", files={"lines.txt": zip_bomb_like()}), "error", "The batch file is not UTF-8 text; save it as UTF-8 and upload it again."),
    Row("page", "batch: 900,000 empty lines", page("ui.batch_tab.batch_render", "empty.txt", files={"empty.txt": b"\n" * 900_000}), "error", "The batch file has nothing to speak: it has no non-empty lines."),
    Row("page", "batch: over 1 MB", page("ui.batch_tab.batch_render", "big.txt", files={"big.txt": b"a\n" * 600_000}), "error", "The batch file is over 1 MB; please split it."),
    Row("page", "batch: 201 lines", page("ui.batch_tab.batch_render", "many.txt", files={"many.txt": b"Hello.\n" * 201}), "error", "The batch file has 201 items; the limit is 200."),
    Row("page", "batch: a CSV with no text column", page("ui.batch_tab.batch_render", "rows.csv", files={"rows.csv": b"voice,engine\njm_kumo,kokoro\n"}), "error", "The CSV file has no 'text' column; its first row must name the columns text, engine, voice."),
    Row("page", "batch: a CSV field of 200,000 characters", page("ui.batch_tab.batch_render", "wide.csv", files={"wide.csv": b'text\n"' + b"a" * 200_000 + b'"\n'}), "error", "The CSV file cannot be read (field larger than field limit (131072))."),
    Row("page", "compare: an unknown engine", page("ui.compare_tab.compare_api", "Hello.", "nope:x", "kokoro:jm_kumo"), "error", "Unknown engine 'nope' in 'nope:x'; use one of: kokoro, qwen-custom, qwen-clone, qwen-design."),
    # --- the Gradio API and MCP (the running app) ------------------------------------------------------
    Row("Gradio API", "/synthesize with empty text", gradio_api("synthesize", "", "jm_kumo", *SYNTH_REST), "error", "Please enter some text to speak."),
    Row("Gradio API", "/stream with a blend naming a path", gradio_api("stream", "Hello.", "jm_kumo", "../../etc/passwd", *SYNTH_REST), "error", UNKNOWN_VOICE),
    Row("Gradio API", "/synthesize with a NUL character", gradio_api("synthesize", "Hi\u0000", "jm_kumo", *SYNTH_REST), "error", "The text contains a control character (U+0000); please remove it."),
    Row("MCP", "kokoro_synthesize with empty text", mcp("kokoro_synthesize", text="", voice="jm_kumo"), "error", "Please enter some text to speak."),
    Row("MCP", "kokoro_synthesize with speed 9", mcp("kokoro_synthesize", text="Hello.", voice="jm_kumo", speed=9), "error", "Value 9 is greater than maximum value 2.0."),
    Row("MCP", "an unknown tool", mcp("../../etc/passwd", text="Hello."), "error", "Unknown tool for this Gradio app: ../../etc/passwd"),
    # --- the CLI -------------------------------------------------------------------------------------
    Row("CLI", "synth with empty text", cli("synth", "--voice", "jm_kumo", "--text", "", "--out", "x.wav"), 2, "Please enter some text to speak."),
    Row("CLI", "synth with a voice with path separators", cli("synth", "--voice", "../../etc/passwd", "--text", "Hi.", "--out", "x.wav"), 2, UNKNOWN_VOICE),
    Row("CLI", "synth at speed 9", cli("synth", "--voice", "jm_kumo", "--text", "Hi.", "--out", "x.wav", "--speed", "9"), 2, "Speed must be between 0.5 and 2.0; got 9."),
    Row("CLI", "batch of a zip-bomb-like file", cli("batch", "--in", "bomb.txt", "--out-dir", "out", files={"bomb.txt": zip_bomb_like()}), 2, "The batch file is not UTF-8 text; save it as UTF-8 and upload it again."),
]  # fmt: skip

LIVE = ("Gradio API", "MCP")


def test_the_table_has_at_least_40_rows_across_every_way_in():
    assert len(ROWS) >= 40
    assert {row.way for row in ROWS} == {"/v1", "page", "Gradio API", "MCP", "CLI"}


@pytest.fixture(scope="module")
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.delenv("KOKORO_MODEL", raising=False)
        mp.delenv("KOKORO_BACKEND", raising=False)
        yield


@pytest.fixture(scope="module")
def v1_client(offline):
    app = FastAPI()
    app.include_router(router)
    return TestClient(Guard(app))  # the limits have their own tests (test_guard.py, test_service_admission.py)


@pytest.mark.parametrize("row", [r for r in ROWS if r.way not in LIVE], ids=str)
def test_bad_input_gets_its_sentence(row: Row, v1_client, tmp_path, request):
    ctx = {"v1": v1_client, "tmp": tmp_path, "app_url": lambda: request.getfixturevalue("app_url")}
    code, sentence = row.run(ctx)
    assert (code, sentence) == (row.code, row.sentence)
    assert not INTERNAL.search(sentence)


@pytest.mark.parametrize("row", [r for r in ROWS if r.way in LIVE], ids=str)
def test_bad_input_through_the_running_app_gets_its_sentence(row: Row, app_url, tmp_path):
    code, sentence = row.run({"tmp": tmp_path, "app_url": lambda: app_url})
    assert (code, sentence) == (row.code, row.sentence)
    assert not INTERNAL.search(sentence)


def test_after_the_table_the_server_still_serves_a_good_request(v1_client, app_url):
    response = v1_client.post("/v1/audio/speech", json=speech())
    assert response.status_code == 200 and response.content[:4] == b"RIFF"
    body = json.dumps(speech()).encode()
    live = urllib.request.Request(app_url + "v1/audio/speech", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(live, timeout=300) as answer:
        assert answer.status == 200 and answer.read(4) == b"RIFF"
    code, _ = gradio_api("synthesize", "Hello there.", "jm_kumo", *SYNTH_REST)({"app_url": lambda: app_url})
    assert code == "complete"


def _no_leak(text: str) -> None:
    assert not INTERNAL.search(text), text


def test_weights_are_named_by_their_source_never_by_path(tiny_kokoro_dir, monkeypatch):
    from engines.kokoro.engine import KokoroEngine

    monkeypatch.setenv("KOKORO_MODEL", str(tiny_kokoro_dir))
    info = KokoroEngine().info()
    assert info.weights_source == "local folder"
    monkeypatch.setenv("KOKORO_MODEL", str(Path(tiny_kokoro_dir) / "missing" / "folder"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info = KokoroEngine().info()
    _no_leak(info.reason)
