"""/v1 saved voices with two API keys: `POST /v1/audio/voices` saves for the calling key, and only
that key lists, speaks and overwrites it (tiny Qwen3-TTS Base checkpoint, FastAPI TestClient)."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from test_qwen import wav_bytes

from api import router
from api.auth import owner_of_key
from engines import voice_library
from engines.runtime import registry

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789"


@pytest.fixture(scope="module")
def client(qwen_dirs, tmp_path_factory):
    library = tmp_path_factory.mktemp("v1-library")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VOICE_LIBRARY_DIR", str(library))
        mp.setenv("QWEN_BASE_MODEL", str(qwen_dirs["clone"]))
        mp.setenv("TORCH_THREADS", "1")
        mp.setenv("API_KEYS", f"{ALICE},{BOB}")
        mp.delenv("VOICE_LIBRARY_SHARED", raising=False)
        app = FastAPI()
        app.include_router(router)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
        registry.unload("qwen-clone")


def auth(key: str | None) -> dict:
    return {"Authorization": f"Bearer {key}"} if key else {}


def save(client, key, name="Narrator", audio=None, **fields):
    form = {"name": name, "x_vector_only": "true", **fields}
    files = {"audio": ("me.wav", audio if audio is not None else wav_bytes(2.0), "audio/wav")}
    return client.post("/v1/audio/voices", data=form, files=files, headers=auth(key))


def saved(client, key) -> list[str]:
    listed = client.get("/v1/audio/voices", params={"model": "qwen-clone"}, headers=auth(key)).json()
    return [v["id"] for v in listed["data"] if v["saved"]]


def speak(client, key, voice):
    body = {"model": "qwen-clone", "input": "Hi.", "voice": voice, "response_format": "wav"}
    return client.post("/v1/audio/speech", json=body, headers=auth(key))


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert message.endswith(".") and "Traceback" not in message
    assert not re.search(r"(^|[\s'\"])/(tmp|home|work|root|usr)\b", message)  # no path
    return message


def test_a_key_saves_lists_and_speaks_its_own_voice_and_no_other_key_can(client):
    created = save(client, ALICE, share_in_arena="true")
    assert created.status_code == 201, created.text
    voice = created.json()
    assert voice["id"] == "narrator" and voice["model"] == "qwen-clone"
    assert voice["share_in_arena"] is True and voice["x_vector_only"] is True
    assert saved(client, ALICE) == ["narrator"]
    assert saved(client, BOB) == [] and saved(client, None) == []
    spoken = speak(client, ALICE, "Narrator")
    assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF"
    for other in (BOB, None):
        assert "no voice called 'narrator'" in error_of(speak(client, other, "narrator"), 404)
    assert (owner_of_key(ALICE), "narrator") in voice_library.arena_voices()


def test_saving_over_a_name_in_any_case_needs_overwrite(client):
    assert save(client, ALICE, "Twin").status_code == 201
    assert "send overwrite=true" in error_of(save(client, ALICE, "TWIN"), 409)
    assert save(client, ALICE, "twin", overwrite="true").status_code == 201
    assert saved(client, ALICE).count("twin") == 1
    assert save(client, BOB, "twin").status_code == 201  # the same name is Bob's own voice
    assert "twin" in saved(client, BOB)


def test_a_wrong_or_missing_key_saves_nothing(client):
    assert "Bearer" in error_of(save(client, None, "Ghost"), 401)
    assert "Bearer" in error_of(save(client, "guessed-key", "Ghost"), 401)
    assert "ghost" not in saved(client, ALICE) + saved(client, BOB)


def test_without_api_keys_the_v1_api_has_no_saved_voices(client, monkeypatch):
    monkeypatch.delenv("API_KEYS")
    assert "needs API keys" in error_of(save(client, ALICE, "Open"), 403)
    assert saved(client, ALICE) == [] and saved(client, None) == []


@pytest.mark.parametrize(
    ("fields", "audio", "status", "words"),
    [
        ({"name": ""}, None, 400, "'name' is required"),
        ({"x_vector_only": "maybe"}, None, 400, "must be true or false"),
        ({}, b"not audio at all", 400, "reference"),
        ({"transcript": "x" * 1001, "x_vector_only": "false"}, None, 400, "transcript is over"),
        ({"name": "../../etc"}, None, 201, ""),  # a name is only ever a slug
    ],
)
def test_bad_forms_get_one_sentence(client, fields, audio, status, words):
    response = save(client, BOB, audio=audio, **{"name": "Form", **fields})
    if status == 201:
        assert response.status_code == 201 and response.json()["id"] == "etc"
        return
    assert words in error_of(response, status)


def test_an_upload_over_the_limit_is_refused_before_it_is_read(client, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_MB", "0.01")  # 10 KiB of clip (plus the form's 64 KiB)
    big = save(client, BOB, "Big", audio=wav_bytes(2.0))  # 96 KB
    assert "over 0.01 MB" in error_of(big, 413)

    def chunks():  # 2 MB with no Content-Length (chunked)
        yield b"--x\r\n"
        for _ in range(32):
            yield b"0" * 65536

    chunked = client.post(
        "/v1/audio/voices", content=chunks(), headers={**auth(BOB), "Content-Type": "multipart/form-data; boundary=x"}
    )  # no Content-Length: counted while read, stopped at the limit
    assert "over 0.01 MB" in error_of(chunked, 413)


def test_a_json_body_is_refused_with_415(client):
    response = client.post("/v1/audio/voices", json={"name": "x"}, headers=auth(BOB))
    assert "multipart/form-data" in error_of(response, 415)
