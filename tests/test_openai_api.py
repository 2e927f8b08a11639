"""The OpenAI-compatible speech API: in process (FastAPI TestClient on the router, offline Kokoro)
and over real HTTP against the launched app, which also serves the MCP schema of the Gradio API."""

from __future__ import annotations

import ast
import asyncio
import base64
import inspect
import io
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection

import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import router
from engines.audio import FORMATS, MEDIA_TYPES, integrated_loudness
from engines.base import MAX_TEXT_CHARS, SAMPLE_RATE, EngineError
from engines.runtime import registry, work_queue

VOICE = "jm_kumo"  # packaged offline voice
SHORT = "Rice is often served in round bowls."
JSON = {"Content-Type": "application/json"}
LONG = "Rice is often served in round bowls. The juice of lemons makes fine punch. Four hours of steady work faced us."


@pytest.fixture(scope="module")
def client(v1_client):
    return v1_client


def speak(client: TestClient, **fields):
    body = {"model": "kokoro", "input": SHORT, "voice": VOICE, **fields}
    return client.post("/v1/audio/speech", json=body)


def decoded_seconds(data: bytes) -> float:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert audio.ndim == 1 and np.abs(audio).max() > 0.01  # mono, and not silence
    return len(audio) / rate


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}
    message = error["message"]
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return error


def test_every_response_format_decodes_with_its_media_type(client):
    wav = speak(client, input="Hello there.", response_format="wav")
    assert wav.status_code == 200, wav.text
    reference_s = decoded_seconds(wav.content)
    assert abs(reference_s - float(wav.headers["x-audio-seconds"])) < 0.01
    for fmt in sorted(set(FORMATS) - {"wav"}):
        response = speak(client, input="Hello there.", response_format=fmt)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(MEDIA_TYPES[fmt].split(";")[0])
        if fmt == "pcm":  # raw 16-bit little-endian mono at 24 kHz: two bytes per sample, no header
            assert len(response.content) % 2 == 0
            seconds = len(response.content) / 2 / SAMPLE_RATE
            samples = np.frombuffer(response.content, "<i2")
            assert np.abs(samples).max() > 300
        else:
            seconds = decoded_seconds(response.content)
        assert abs(seconds - reference_s) < 0.03 * reference_s + 0.06, (fmt, seconds, reference_s)


def test_default_format_is_mp3_and_longer_input_gives_longer_audio(client):
    short, long = speak(client), speak(client, input=LONG)
    assert short.headers["content-type"] == "audio/mpeg" and long.headers["content-type"] == "audio/mpeg"
    assert decoded_seconds(long.content) > 2.2 * decoded_seconds(short.content)
    slow, fast = speak(client, response_format="wav", speed=0.8), speak(client, response_format="wav", speed=1.6)
    assert decoded_seconds(slow.content) > 1.5 * decoded_seconds(fast.content)


def test_openai_names_work_and_resolve_to_an_available_voice(client):
    listed = client.get("/v1/audio/voices", params={"model": "kokoro"}).json()
    available = {v["id"] for v in listed["data"] if v["available"]}
    assert speak(client, model="KOKORO", voice=VOICE.upper(), response_format="wav").headers["x-voice"] == VOICE
    response = speak(client, model="tts-1", voice="alloy", response_format="wav")
    assert response.status_code == 200, response.text
    assert response.headers["x-voice"] in available
    assert response.headers["x-voice"] == listed["openai_voices"]["kokoro"]["alloy"]


def test_bad_input_gets_400_with_one_sentence_and_the_next_request_works(client):
    assert_error(speak(client, response_format="aac"), 400, "'aac'", "wav")
    assert_error(speak(client, input="   "), 400, "enter some text")
    assert_error(speak(client, speed=3.0), 400, "Speed")
    assert_error(speak(client, speed="fast"), 400, "speed")
    assert_error(speak(client, lufs=-99), 400, "loudness")
    assert_error(speak(client, voice="jm_kumo:1,jm_kumo:-1"), 400, "weight")
    assert_error(speak(client, voice=" "), 400, "choose a voice")
    assert_error(client.post("/v1/audio/speech", content=b"{not json", headers=JSON), 400, "JSON")
    assert_error(client.post("/v1/audio/speech", json=["a list"]), 400, "object")
    assert_error(client.post("/v1/audio/speech", json={"model": "kokoro", "voice": VOICE}), 400, "'input'")
    assert speak(client, response_format="wav").status_code == 200


def test_unknown_model_or_voice_gets_404(client):
    assert_error(speak(client, model="tts-9"), 404, "'tts-9'", "kokoro")
    assert_error(speak(client, voice="nobody"), 404, "'nobody'")
    assert_error(speak(client, voice=f"{VOICE}:0.5,nobody:0.5"), 404, "'nobody'")
    assert_error(speak(client, model="qwen-clone", voice="never-saved"), 404, "'never-saved'")
    assert_error(client.get("/v1/models/tts-9"), 404, "'tts-9'")
    assert_error(client.get("/v1/audio/voices", params={"model": "tts-9"}), 404, "'tts-9'")


def test_input_over_the_limit_gets_413(client):
    assert_error(speak(client, input="a" * (MAX_TEXT_CHARS + 1)), 413, f"{MAX_TEXT_CHARS:,}")
    assert_error(client.post("/v1/audio/speech", content=b" " * (300 * 1024), headers=JSON), 413, "KiB")


def test_a_model_that_cannot_be_found_gets_503(client, tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(tmp_path / "missing"))
    error = assert_error(speak(client, model="qwen-custom", voice="Ryan"), 503, "QWEN_CUSTOM_VOICE_MODEL")
    assert error["type"] == "server_error"
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert not models["qwen-custom"]["available"] and "QWEN_CUSTOM_VOICE_MODEL" in models["qwen-custom"]["reason"]
    assert_error(speak(client, model="qwen-custom", voice="Ryan", speed=9), 400, "Speed")  # client errors first
    hub_only = next(v.id for v in registry.info("kokoro").voices if not v.available)  # offline: needs the hub
    assert_error(speak(client, voice=hub_only), 503, hub_only, VOICE)


def test_an_unexpected_failure_is_a_logged_500_in_one_sentence(client, monkeypatch, caplog):
    import api.openai_speech

    def broken(who, engine_id, request, cancelled=None):
        raise RuntimeError("deep inside")

    monkeypatch.setattr(api.openai_speech.speak, "synthesize", broken)  # the service's use case
    error = assert_error(speak(client), 500, "unexpectedly")
    assert "deep inside" not in error["message"] and "RuntimeError" not in error["message"]  # no exception class
    assert any(r.exc_info and "deep inside" in str(r.exc_info[1]) for r in caplog.records)  # the server log has it
    monkeypatch.undo()
    assert speak(client, response_format="wav").status_code == 200


def test_models_list_every_engine_in_openai_shape(client):
    listed = client.get("/v1/models").json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == list(registry.ENGINES)
    for model in listed["data"]:
        assert model["object"] == "model" and isinstance(model["created"], int) and model["owned_by"]
    assert client.get("/v1/models/tts-1").json()["id"] == "kokoro"


def test_voice_list_has_the_engines_voices(client):
    listed = client.get("/v1/audio/voices").json()
    kokoro = {v["id"]: v for v in listed["data"] if v["model"] == "kokoro"}
    assert {v.id for v in registry.info("kokoro").voices} == set(kokoro)
    assert kokoro[VOICE]["available"]
    qwen = {v["id"] for v in listed["data"] if v["model"] == "qwen-custom"}
    assert {v.id for v in registry.info("qwen-custom").voices} == qwen and qwen
    assert set(listed["openai_voices"]) == set(registry.ENGINES)


def test_saved_clones_are_the_clone_models_voices(client, tmp_path, monkeypatch):
    from engines.voice_library import library_dir

    monkeypatch.setenv("QWEN_BASE_MODEL", str(tmp_path / "missing"))
    monkeypatch.setenv("VOICE_LIBRARY_SHARED", "1")  # one library without owners: keyless callers see it
    for suffix in (".json", ".safetensors"):  # how the library lists a saved voice (content is read on use)
        (library_dir() / f"my-voice{suffix}").write_text("{}")
    listed = client.get("/v1/audio/voices", params={"model": "qwen-clone"}).json()
    assert [(v["id"], v["saved"]) for v in listed["data"]] == [("my-voice", True)]
    # the name resolves (as the library writes it), so the answer is the engine's state offline: 503, not 404
    assert_error(speak(client, model="qwen-clone", voice="My Voice"), 503, "QWEN_BASE_MODEL")
    assert_error(speak(client, model="qwen-clone", voice="alloy"), 404, "'alloy'")


# ----- the launched app: the same routes on the page's server, and the MCP schema -----------------


def http(url: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.slow
def test_launched_app_serves_the_speech_api(app_url):
    status, headers, data = http(f"{app_url}v1/audio/speech", {"model": "kokoro", "input": SHORT, "voice": VOICE})
    assert status == 200 and headers["content-type"] == "audio/mpeg"
    assert decoded_seconds(data) > 1.0
    status, _, data = http(f"{app_url}v1/audio/speech", {"model": "nope", "input": SHORT, "voice": VOICE})
    assert status == 404 and "'nope'" in json.loads(data)["error"]["message"]
    status, _, data = http(f"{app_url}v1/audio/speech", {"model": "kokoro", "input": "a" * 5001, "voice": VOICE})
    assert status == 413 and json.loads(data)["error"]["code"] == "input_too_long"
    body = {"model": "qwen-custom", "input": "Hi.", "voice": "echo", "response_format": "wav"}
    status, headers, data = http(f"{app_url}v1/audio/speech", body)  # the tiny random Qwen3-TTS checkpoint
    assert status == 200 and headers["x-voice"] == "Ryan" and decoded_seconds(data) > 0
    status, _, data = http(f"{app_url}v1/models")
    assert status == 200 and [m["id"] for m in json.loads(data)["data"]] == list(registry.ENGINES)
    status, _, page = http(app_url)
    assert status == 200 and b"<html" in page.lower()  # the page itself is still served at /


@pytest.mark.slow
def test_launched_app_lists_the_gradio_api_as_mcp_tools(app_url):
    from ui import kokoro_tab, qwen_tab

    status, _, data = http(f"{app_url}gradio_api/mcp/schema")
    assert status == 200
    tools = {tool["name"]: tool for tool in json.loads(data)}
    for fn in (kokoro_tab.kokoro_stream, kokoro_tab.kokoro_synthesize, qwen_tab.preset_stream, qwen_tab.clone_stream):
        summary = inspect.getdoc(fn).split("\n\n")[0].replace("\n", " ")
        assert tools[fn.__name__]["description"].startswith(summary), tools[fn.__name__]["description"]
        described = tools[fn.__name__]["inputSchema"]["properties"]
        assert all(p.get("description") for p in described.values()), (fn.__name__, described)
    assert tools["kokoro_synthesize"]["meta"]["endpoint_name"] == "synthesize"
    assert "transcribe_reference" not in tools  # UI-only events stay private


@pytest.mark.slow
def test_mcp_client_lists_and_calls_the_tools(app_url):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def session_run():
        async with streamablehttp_client(f"{app_url}gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                arguments = {"text": SHORT, "voice": VOICE, "speed": 1.0, "language": "Auto"}
                return tools, await session.call_tool("kokoro_synthesize", arguments)

    tools, result = asyncio.run(session_run())
    names = {tool.name for tool in tools.tools}
    assert {"kokoro_stream", "kokoro_synthesize", "preset_stream", "clone_stream"} <= names
    assert not result.isError
    clip, figures = ast.literal_eval(result.content[0].text)  # the endpoint's (file, figures) outputs
    assert clip["path"].endswith(".wav") and figures["audio_s"] > 1.0 and figures["rtf"] > 0


# ----- streamed answers (stream_format) -----------------------------------------------------------

TWO = "Rice is often served in round bowls. The juice of lemons makes fine punch."
PARAGRAPH = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch."
)


def stream(client: TestClient, on_piece=None, **fields) -> tuple[object, list[bytes]]:
    """POST a speech request and read the answer piece by piece, as the server sent it."""
    body = {"model": "kokoro", "input": SHORT, "voice": VOICE, "stream_format": "audio", **fields}
    pieces = []
    with client.stream("POST", "/v1/audio/speech", json=body) as response:
        for piece in response.iter_bytes():
            pieces.append(piece)
            if on_piece:
                on_piece(piece)
    return response, pieces


def pcm_samples(data: bytes) -> np.ndarray:
    assert len(data) % 2 == 0
    samples = np.frombuffer(data, "<i2")
    assert len(samples) and np.abs(samples).max() > 300  # not silence
    return samples


def sse_events(pieces: list[bytes]) -> list[dict]:
    """The events of an SSE body: each `data: {json}` followed by a blank line."""
    text = b"".join(pieces).decode()
    assert text.endswith("\n\n")
    blocks = text[:-2].split("\n\n")
    assert all(block.startswith("data: ") and "\n" not in block for block in blocks), blocks
    return [json.loads(block[len("data: ") :]) for block in blocks]


def deltas(events: list[dict]) -> bytes:
    assert all(e["type"] == "speech.audio.delta" for e in events[:-1]), [e["type"] for e in events]
    return b"".join(base64.b64decode(e["audio"]) for e in events[:-1])


def ffmpeg_seconds(data: bytes) -> float:
    """Duration of an encoded clip as ffmpeg decodes it (a second decoder next to libsndfile)."""
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-f", "s16le", "-ac", "1"]
    done = subprocess.run([*command, "-ar", str(SAMPLE_RATE), "-"], input=data, capture_output=True, check=True)
    return len(pcm_samples(done.stdout)) / SAMPLE_RATE


def test_pcm_and_wav_stream_in_pieces_and_follow_the_text(client):
    short, short_pieces = stream(client, response_format="pcm")
    assert short.status_code == 200 and short.headers["content-type"] == "audio/pcm"
    assert short.headers["x-voice"] == VOICE and "x-audio-seconds" not in short.headers
    assert "content-length" not in short.headers  # chunked: the length is not known up front
    long, long_pieces = stream(client, response_format="pcm", input=LONG)
    assert len(long_pieces) > 1  # one piece per chunk of speech, sent as each was ready
    short_n, long_n = len(pcm_samples(b"".join(short_pieces))), len(pcm_samples(b"".join(long_pieces)))
    assert long_n > 2.2 * short_n

    wav, wav_pieces = stream(client, response_format="wav", input=LONG)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav" and len(wav_pieces) > 1
    data = b"".join(wav_pieces)
    assert data[:4] == b"RIFF" and data[4:8] == b"\xff\xff\xff\xff"  # size unknown while streaming
    assert data[36:40] == b"data" and data[40:44] == b"\xff\xff\xff\xff"
    audio, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == SAMPLE_RATE and audio.ndim == 1
    assert np.array_equal(audio, np.frombuffer(b"".join(long_pieces), "<i2"))  # the same synthesis, with a header


def test_sse_deltas_are_the_pcm_stream_and_a_done_event_ends_it(client):
    _, pcm_pieces = stream(client, response_format="pcm", input=TWO)
    response, pieces = stream(client, stream_format="sse", input=TWO)  # no response_format: PCM deltas
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(pieces)
    assert len(events) >= 3  # a delta per chunk of speech (two sentences), then done
    samples = pcm_samples(deltas(events))
    assert len(samples) == len(pcm_samples(b"".join(pcm_pieces)))
    done = events[-1]
    assert done["type"] == "speech.audio.done" and done["voice"] == VOICE
    assert done["usage"] == {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    figures = done["figures"]
    assert abs(figures["audio_s"] - len(samples) / SAMPLE_RATE) < 0.002
    assert 0 < figures["ttfa_s"] <= figures["total_s"] and figures["rtf"] > 0 and figures["chunks"] >= 2

    _, wav_pieces = stream(client, stream_format="sse", response_format="wav")  # deltas of the WAV stream
    assert decoded_seconds(deltas(sse_events(wav_pieces))) > 1.0


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
def test_the_first_audio_is_sent_before_synthesis_has_finished(client, monkeypatch, stream_format):
    import api.speech_stream

    received, waited, produced = threading.Event(), [], []
    real = api.speech_stream.timed_stream

    def watched(engine_id, request, stats, **turn):
        """The engine's chunks; the rest is synthesized only once the client holds the first audio."""
        chunks = real(engine_id, request, stats, **turn)
        produced.append(next(chunks))
        yield produced[-1]
        waited.append(received.wait(timeout=120))  # a server that held the audio back would time out here
        for chunk in chunks:
            produced.append(chunk)
            yield chunk

    monkeypatch.setattr(api.speech_stream, "timed_stream", watched)
    response, pieces = stream(
        client, lambda _: received.set(), input=TWO, stream_format=stream_format, response_format="pcm"
    )
    assert response.status_code == 200 and waited == [True] and len(produced) == 2
    data = b"".join(pieces) if stream_format == "audio" else deltas(sse_events(pieces))
    assert len(pcm_samples(data)) == sum(len(c.audio) for c in produced)


@pytest.fixture(scope="module")
def http_server(client):
    """The router on uvicorn, on a real socket (a real client can drop the connection)."""
    import uvicorn

    app = FastAPI()
    app.include_router(router)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    yield server.servers[0].sockets[0].getsockname()[:2]
    server.should_exit = True
    thread.join(timeout=30)


def test_a_client_that_drops_the_connection_stops_the_synthesis_and_frees_the_engine(client, http_server, monkeypatch):
    import api.speech_stream

    cancelled, pulled, closed = threading.Event(), [], []
    real, real_cancel = api.speech_stream.timed_stream, api.speech_stream._SpeechStream.cancel

    def cancel(stream):
        real_cancel(stream)
        cancelled.set()

    def watched(engine_id, request, stats, **turn):
        """The engine's chunks; after the first, the next only once the server has seen the client go."""
        try:
            for chunk in real(engine_id, request, stats, **turn):
                pulled.append(chunk)
                yield chunk
                cancelled.wait(timeout=120)
        finally:
            closed.append(len(pulled))

    monkeypatch.setattr(api.speech_stream, "timed_stream", watched)
    monkeypatch.setattr(api.speech_stream._SpeechStream, "cancel", cancel)
    body = {"model": "kokoro", "input": PARAGRAPH, "voice": VOICE, "stream_format": "audio", "response_format": "pcm"}
    connection = HTTPConnection(*http_server, timeout=300)
    connection.request("POST", "/v1/audio/speech", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("transfer-encoding") == "chunked"
    assert len(response.read1(1 << 16)) > 0  # the first chunk of speech has arrived
    response.close()
    connection.close()  # the client goes away with five sentences still to come
    line = work_queue.line("kokoro")
    for _ in range(1200):  # wait (up to 2 min) for the worker to stop; no timing is asserted
        if closed and not line.running():
            break
        time.sleep(0.1)
    assert cancelled.is_set() and closed == [2] and not line.running()  # stopped after the chunk in progress
    monkeypatch.undo()
    assert speak(client, response_format="wav").status_code == 200


def test_stream_errors_before_the_first_byte_are_json(client, monkeypatch, tmp_path):
    for mode in ("audio", "sse"):
        assert_error(speak(client, stream_format=mode, model="tts-9"), 404, "'tts-9'")
        assert_error(speak(client, stream_format=mode, voice="nobody"), 404, "'nobody'")
        assert_error(speak(client, stream_format=mode, input="a" * (MAX_TEXT_CHARS + 1)), 413, "5,000")
        assert_error(speak(client, stream_format=mode, response_format="aac"), 400, "'aac'")
        assert_error(speak(client, stream_format=mode, speed=3.0), 400, "Speed")
        assert_error(speak(client, stream_format=mode, input=" "), 400, "enter some text")
        error = assert_error(speak(client, stream_format=mode, response_format="flac"), 400, "'flac'", "pcm, wav")
        assert error["param"] == "response_format"
        assert_error(speak(client, stream_format=mode, input="!!! ..."), 400, "nothing to pronounce")  # engine
    error = assert_error(speak(client, stream_format="chunks"), 400, "'chunks'", "'sse'")
    assert error["param"] == "stream_format" and error["code"] == "invalid_stream_format"
    assert_error(speak(client, stream_format=1), 400, "stream_format")
    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(tmp_path / "missing"))
    assert_error(speak(client, model="qwen-custom", voice="Ryan", stream_format="sse"), 503, "QWEN_CUSTOM")


def test_an_engine_failure_mid_stream_ends_the_stream(client, monkeypatch, caplog):
    import api.speech_stream

    sent = []
    real = api.speech_stream.timed_stream

    def failing(engine_id, request, stats, **turn):
        sent.append(next(real(engine_id, request, stats, **turn)))
        yield sent[-1]
        raise EngineError("The engine ran out of memory.")

    monkeypatch.setattr(api.speech_stream, "timed_stream", failing)
    response, pieces = stream(client, stream_format="sse")
    events = sse_events(pieces)
    assert response.status_code == 200 and [e["type"] for e in events] == ["speech.audio.delta", "error"]
    assert events[-1]["error"]["message"] == "The engine ran out of memory."
    response, pieces = stream(client, response_format="pcm")  # raw audio: it just ends, and the log says why
    assert response.status_code == 200
    assert len(pcm_samples(b"".join(pieces))) == len(sent[-1].audio)
    assert any("ran out of memory" in r.getMessage() for r in caplog.records)


def test_a_stream_is_levelled_to_the_loudness_target(client):
    _, pieces = stream(client, response_format="pcm", input=LONG, lufs=-16)  # three sentences, three chunks
    audio = pcm_samples(b"".join(pieces)).astype(np.float32) / 32767
    measured = integrated_loudness(audio)
    assert abs(measured - -16) < 1.0, measured


def test_mp3_opus_and_ogg_stream_through_ffmpeg_with_the_right_duration(client):
    _, pcm_pieces = stream(client, response_format="pcm")
    reference_s = len(pcm_samples(b"".join(pcm_pieces))) / SAMPLE_RATE
    for fmt in ("mp3", "opus", "ogg"):
        response, pieces = stream(client, response_format=fmt)
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"] == MEDIA_TYPES[fmt]
        seconds = decoded_seconds(b"".join(pieces))  # libsndfile reads the streamed files
        assert abs(seconds - reference_s) < 0.03 * reference_s + 0.06, (fmt, seconds, reference_s)
        assert abs(ffmpeg_seconds(b"".join(pieces)) - reference_s) < 0.03 * reference_s + 0.06, fmt


def test_instructions_reach_a_model_that_follows_them_and_are_said_to_be_ignored_otherwise(client, monkeypatch):
    import dataclasses

    from api import openai_speech

    ignored = speak(client, instructions="Speak like a pirate.", response_format="wav")
    assert ignored.status_code == 200 and decoded_seconds(ignored.content) > 1.0
    assert "instructions ignored" in ignored.headers["x-output-notes"]
    seen = []
    real_info, real_synthesize = openai_speech.registry.info, openai_speech.speak.synthesize

    def following(engine_id):  # Kokoro as if it were a model that follows instructions
        return dataclasses.replace(real_info(engine_id), follows_instructions=True)

    def recording(who, engine_id, request, cancelled=None):
        seen.append(request.instruct)
        return real_synthesize(who, engine_id, request, cancelled)

    monkeypatch.setattr(openai_speech.registry, "info", following)
    monkeypatch.setattr(openai_speech.speak, "synthesize", recording)  # the service's use case
    followed = speak(client, instructions="  Speak like a pirate. ", response_format="wav")
    assert followed.status_code == 200 and "x-output-notes" not in followed.headers
    assert seen == ["Speak like a pirate."]


def test_whole_file_options_shape_the_file_and_are_refused_on_a_stream(client, monkeypatch):
    from api import openai_speech
    from engines import audio

    used = []
    real_process = openai_speech.process
    monkeypatch.setattr(openai_speech, "process", lambda *a: used.append(a[2]) or real_process(*a))
    shaped = speak(client, response_format="wav", peak_normalize=True, trim=True, fade=True)
    assert shaped.status_code == 200, shaped.text
    assert used == [audio.OutputSettings(peak_normalize=True, trim=True, fade=True)]  # as asked, nothing else
    after, rate = sf.read(io.BytesIO(shaped.content), dtype="float32")
    assert audio.true_peak_dbfs(after, rate) == pytest.approx(-1.0, abs=0.1)
    assert np.abs(after[:24]).max() < np.abs(after).max() / 10  # faded in
    error = assert_error(speak(client, stream_format="audio", response_format="pcm", trim=True), 400, "whole clip")
    assert error["code"] == "unsupported_with_stream" and error["param"] == "trim"
    assert_error(speak(client, fade="yes"), 400, "fade")
