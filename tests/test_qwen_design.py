"""Qwen3-TTS VoiceDesign (`qwen-design`) on a tiny random checkpoint built at test time, loaded by the real
loader: a voice from a description streams; a designed clip is kept as a cloned voice and spoken with it;
`/v1` and the CLI take the description; offline without weights it names the variable to set."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from engines import voice_library
from engines.base import SAMPLE_RATE, InputError, SynthesisRequest, UnavailableError
from engines.qwen.design import PRESETS, QwenDesignEngine
from engines.runtime import registry

SAMPLES_PER_FRAME = 1920
DESCRIPTION = "A warm, low-pitched narrator in his sixties, slow and calm."
ENGINES = ("qwen-design", "qwen-clone")


@pytest.fixture(scope="module")
def design_env(qwen_design_dir, qwen_dirs, tmp_path_factory):
    library = tmp_path_factory.mktemp("design-library")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QWEN_VOICE_DESIGN_MODEL", str(qwen_design_dir))
        mp.setenv("QWEN_BASE_MODEL", str(qwen_dirs["clone"]))
        mp.setenv("VOICE_LIBRARY_DIR", str(library))
        mp.setenv("TORCH_THREADS", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield library
        for engine_id in ENGINES:  # the registry's copies were loaded from this module's checkpoints
            registry.unload(engine_id)
            registry._instances.pop(engine_id, None)


@pytest.fixture(scope="module")
def design(design_env):
    return registry.get("qwen-design")


@pytest.fixture()
def described(monkeypatch):
    """The descriptions each `generate` call was given, row by row."""
    calls: list[list[str]] = []
    original = QwenDesignEngine._generate

    def spy(self, model, texts, languages, conditionings, cap):
        calls.append([c["instruct"] for c in conditionings])
        return original(self, model, texts, languages, conditionings, cap)

    monkeypatch.setattr(QwenDesignEngine, "_generate", spy)
    return calls


def test_a_described_voice_streams_one_chunk_per_sentence_with_the_description(design, described):
    text = "Hello there. How are you today?"
    request = SynthesisRequest(text, "narrator", language="English", instruct=DESCRIPTION, max_new_tokens=6)
    chunks = list(design.stream(request))
    assert [c.text for c in chunks] == ["Hello there.", "How are you today?"] and [c.index for c in chunks] == [0, 1]
    # whole frames, never past the cap, and the cap reached (random weights may sample the end code early)
    frames = [len(c.audio) / SAMPLES_PER_FRAME for c in chunks]
    assert all(f.is_integer() and 0 < f <= 5 for f in frames) and max(frames) == 5, frames
    assert described and all(row == DESCRIPTION for call in described for row in call)


def test_without_a_description_the_voice_is_a_ready_made_one(design, described):
    assert {v.id for v in design.info().voices} == set(PRESETS) and design.info().follows_instructions
    list(design.stream(SynthesisRequest("Hello there.", "Whisper", max_new_tokens=4)))
    assert described == [[PRESETS["whisper"][1]]]


def test_a_voice_that_is_neither_described_nor_ready_made_is_refused_in_one_sentence(design):
    with pytest.raises(InputError, match="Describe the voice") as refused:
        list(design.stream(SynthesisRequest("Hello there.", "nobody", max_new_tokens=4)))
    assert "narrator" in str(refused.value) and "\n" not in str(refused.value)


def test_offline_without_weights_it_says_which_variable_to_set(monkeypatch):
    monkeypatch.delenv("QWEN_VOICE_DESIGN_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info = QwenDesignEngine().info()
    assert not info.available and "QWEN_VOICE_DESIGN_MODEL" in info.reason
    assert info.reason.count(". ") == 0 and info.reason.endswith(".")
    with pytest.raises(UnavailableError, match="QWEN_VOICE_DESIGN_MODEL"):
        QwenDesignEngine().load("cpu")


def test_a_designed_clip_is_kept_as_a_cloned_voice_and_speaks_everywhere_by_its_name(design, design_env, tmp_path):
    from ui.owner import new_token, owner_of_token
    from ui.qwen_tab import keep_designed

    text = "Good morning! How are you today?"
    spoken = SynthesisRequest(text, "narrator", language="English", instruct=DESCRIPTION, max_new_tokens=20)
    clip = np.concatenate([c.audio for c in design.stream(spoken)])
    assert len(clip) / SAMPLE_RATE > 1.0  # long enough to clone
    path = tmp_path / "designed.wav"
    sf.write(path, clip, SAMPLE_RATE)

    token = new_token()
    owner = owner_of_token(token)
    listed = keep_designed(str(path), text, "My Narrator", owner_token=token)
    assert listed["value"] == "my-narrator" and "my-narrator" in listed["choices"]
    meta, _ = voice_library.stored_voice("my-narrator", owner)
    assert meta["icl_mode"] and meta["ref_text"] == text  # the Base model's clone prompt from the clip and its text
    assert voice_library.voice_exists("my-narrator", owner) and not voice_library.voice_exists("my-narrator", None)

    cloner = registry.engines_that("saved_voices")[0]
    again = SynthesisRequest("Hello there.", "my-narrator", owner=owner, max_new_tokens=6)
    chunks = list(registry.get(cloner).stream(again))
    assert len(chunks) == 1 and len(chunks[0].audio) == 5 * SAMPLES_PER_FRAME

    with pytest.raises(Exception, match="already have a voice called 'my-narrator'"):
        keep_designed(str(path), text, "my-narrator", owner_token=token)  # no silent overwrite
    with pytest.raises(Exception, match="Generate a clip"):
        keep_designed(None, text, "other", owner_token=token)


def test_v1_takes_the_description_in_instructions_and_needs_no_voice(design, described):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import router

    app = FastAPI()
    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as client:
        models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
        assert models["qwen-design"]["capabilities"]["designs_voices"] is True
        body = {"model": "qwen3-tts-design", "input": "Hello.", "instructions": DESCRIPTION, "response_format": "wav"}
        answer = client.post("/v1/audio/speech", json=body)
        assert answer.status_code == 200, answer.text
        audio, rate = sf.read(io.BytesIO(answer.content), dtype="float32")
        assert rate == SAMPLE_RATE and len(audio) > 0.5 * SAMPLE_RATE
        assert described and described[-1] == [DESCRIPTION]
        ready_made = client.post("/v1/audio/speech", json={**body, "instructions": None, "voice": "announcer"})
        assert ready_made.status_code == 200 and ready_made.headers["X-Voice"] == "announcer"
        assert described[-1] == [PRESETS["announcer"][1]]
        # a model that does not design voices still needs one
        refused = client.post("/v1/audio/speech", json={"model": "kokoro", "input": "Hello."})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "voice"


def test_the_cli_speaks_a_described_voice(design, described, tmp_path, capsys):
    from engines.__main__ import main

    out = tmp_path / "designed.wav"
    argv = ["synth", "--engine", "qwen-design", "--instruct", DESCRIPTION, "--text", "Hello there."]
    assert main([*argv, "--max-new-tokens", "6", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["out"] == str(out)
    audio, _ = sf.read(out, dtype="float32")
    assert len(audio) > 0 and described[-1] == [DESCRIPTION]


def test_the_gradio_api_and_mcp_design_a_voice_and_keep_it_with_its_text():
    import gradio as gr

    from ui import qwen_tab

    with gr.Blocks() as page:
        qwen_tab.build_tab(gr.Textbox(visible=False))
    endpoints = page.get_api_info()["named_endpoints"]
    parameters = {name: [p["parameter_name"] for p in endpoints[name]["parameters"]] for name in endpoints}
    assert parameters["/qwen_design_stream"][:3] == ["text", "description", "language"]
    kept = ["clip", "text", "name", "overwrite", "share_in_arena", "owner_token"]
    assert parameters["/qwen_keep_designed_voice"] == kept
