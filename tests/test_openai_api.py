"""The OpenAI-compatible speech API: in process (FastAPI TestClient on the router, offline Kokoro)
and over real HTTP against the launched app, which also serves the MCP schema of the Gradio API."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import router
from engines import registry
from engines.audio import FORMATS, MEDIA_TYPES
from engines.base import MAX_TEXT_CHARS, SAMPLE_RATE

VOICE = "jm_kumo"  # packaged offline voice
SHORT = "Rice is often served in round bowls."
LONG = "Rice is often served in round bowls. The juice of lemons makes fine punch. Four hours of steady work faced us."


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VOICE_LIBRARY_DIR", str(tmp_path_factory.mktemp("api-library")))
        for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
            mp.delenv(name, raising=False)
        app = FastAPI()
        app.include_router(router)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
        registry.unload("kokoro")


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
    assert_error(client.post("/v1/audio/speech", content=b"{not json"), 400, "JSON")
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
    assert_error(client.post("/v1/audio/speech", content=b" " * (300 * 1024)), 413, "KiB")


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

    def broken(engine_id, request):
        raise RuntimeError("deep inside")

    monkeypatch.setattr(api.openai_speech, "synthesize", broken)
    error = assert_error(speak(client), 500, "unexpectedly", "RuntimeError")
    assert "deep inside" not in error["message"]
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
    import app
    from ui import qwen_tab

    status, _, data = http(f"{app_url}gradio_api/mcp/schema")
    assert status == 200
    tools = {tool["name"]: tool for tool in json.loads(data)}
    for fn in (app.kokoro_stream, app.kokoro_synthesize, qwen_tab.preset_stream, qwen_tab.clone_stream):
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
