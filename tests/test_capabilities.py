"""Capabilities are data: a third engine registered with one line shows up on every way in.

`sine_engine` adds one entry to the registry's table pointing to `SineEngine` below (a sine tone per
sentence, two voices); nothing else is edited, and the page's tabs, `/v1`, the CLI, batch files and
compare find it. The other tests check that capabilities are read without loading a model and that
no code outside an engine's own modules and tab tests an engine id.
"""

from __future__ import annotations

import ast
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engines.base import SAMPLE_RATE, AudioChunk, Capabilities, EngineInfo, InputError, SynthesisRequest, VoiceInfo
from engines.runtime import registry

ROOT = Path(__file__).resolve().parent.parent
SINE = "sine"
TONES = {"low": 220.0, "high": 440.0}  # voice -> pitch (Hz)
TEXT = "One sentence here. And a second one."


class SineEngine:
    """A fake engine: each sentence becomes 0.4 s of a sine tone at the voice's pitch."""

    CAPABILITIES = Capabilities(
        name="Sine test engine",
        languages=("Auto",),
        default_voice="high",
        offline_voice="low",
        openai_voices={"alloy": "low", "echo": "high"},
    )

    def __init__(self) -> None:
        self.loaded = False

    def info(self) -> EngineInfo:
        voices = [VoiceInfo(v, f"Sine {v}", "English", "", None, True) for v in TONES]
        return EngineInfo(
            id=SINE, name=self.CAPABILITIES.name, loaded=self.loaded, backend="numpy", device="cpu",
            weights_source="none", voices=voices, capabilities=self.CAPABILITIES,
        )  # fmt: skip

    def load(self, device: str) -> None:
        self.loaded = True

    def unload(self) -> None:
        self.loaded = False

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        if request.voice not in TONES:
            raise InputError(f"The sine engine has no voice called {request.voice!r}.")
        t = np.arange(int(0.4 * SAMPLE_RATE / request.speed)) / SAMPLE_RATE
        tone = (0.3 * np.sin(2 * np.pi * TONES[request.voice] * t)).astype(np.float32)
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", request.text.strip()) if s]
        for index, sentence in enumerate(sentences):
            yield AudioChunk(audio=tone, text=sentence, phonemes="", index=index)


@pytest.fixture()
def sine_engine(monkeypatch):
    """The one registration line; the engine is forgotten again afterwards."""
    monkeypatch.setitem(registry.ENGINES, SINE, f"{__name__}:SineEngine")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    yield SINE
    registry._instances.pop(SINE, None)
    registry._loaded.discard(SINE)


def pitch(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """The strongest frequency of a clip, in Hz."""
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[int(np.argmax(spectrum))])


# ----- capabilities themselves ----------------------------------------------------------------------------


def test_every_engine_declares_its_capabilities_and_its_info_carries_the_same_name():
    for engine_id in registry.ENGINES:
        capabilities = registry.capabilities(engine_id)
        assert isinstance(capabilities, Capabilities) and capabilities.name
        info = registry.info(engine_id)
        assert info.name == capabilities.name == registry.ENGINE_NAMES[engine_id]
        assert info.capabilities == capabilities


def test_the_engines_capabilities_say_what_the_code_used_to_find_out_from_their_ids():
    kokoro, custom, clone = (registry.capabilities(e) for e in ("kokoro", "qwen-custom", "qwen-clone"))
    assert (
        kokoro.blends and not kokoro.clones and not kokoro.batches and kokoro.default_voices == ("af_heart", "jm_kumo")
    )
    assert kokoro.openai_models == ("tts-1", "tts-1-hd") and kokoro.openai_voices["alloy"] == "af_alloy"
    assert custom.batches and custom.instructions and custom.default_voices == ("Ryan", "Aiden")
    assert clone.clones and clone.saved_voices and not clone.openai_voices and not clone.default_voices
    assert registry.engines_that("clones") == ["qwen-clone"] and registry.engines_that("blends") == ["kokoro"]


def test_capabilities_are_read_without_building_or_loading_the_engine(sine_engine):
    assert registry.capabilities(sine_engine).name == "Sine test engine"
    assert registry.ENGINE_NAMES[sine_engine] == "Sine test engine"  # derived, so it follows the table
    assert sine_engine not in registry._instances and sine_engine not in registry._loaded


def test_capabilities_become_json_in_the_order_they_are_declared():
    data = registry.capabilities("kokoro").as_dict()
    assert json.loads(json.dumps(data))["openai_voices"]["nova"] == "af_nova"
    assert list(data)[:3] == ["name", "languages", "default_voice"]


def test_a_name_that_is_no_registry_engine_keeps_its_id_as_its_name_and_is_unavailable():
    """A slot rendered elsewhere (e.g. in the browser) is not a registry engine: nothing breaks on it."""
    assert registry.name("browser-kokoro") == "browser-kokoro"
    info = registry.info("browser-kokoro")
    assert not info.available and "Unknown engine" in info.reason


def test_no_code_outside_an_engines_own_modules_and_tab_tests_an_engine_id():
    own = {"engines/runtime/registry.py", "ui/kokoro_tab.py", "ui/qwen_tab.py"}
    ids = set(registry.ENGINES)
    found = []
    for folder in ("api", "ui", "evaluation", "engines", "cli", "serve"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in own or re.fullmatch(r"engines/(kokoro|qwen)/[a-z_]*\.py", name):
                continue
            found += _id_literals(path, ids)
    found += _id_literals(ROOT / "app.py", ids)
    assert not found, f"engine ids written outside their own modules: {found}"


def _id_literals(path: Path, ids: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(ROOT).as_posix()}:{node.lineno} {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in ids
    ]


# ----- a third engine, registered in one line, everywhere --------------------------------------------------


def test_a_registered_engine_appears_in_every_tab_that_lists_engines(sine_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path / "library"))
    monkeypatch.delenv("ARENA_SYSTEMS", raising=False)
    import app
    from ui import arena_tab, batch_tab, compare_tab

    demo = app.build()
    dropdowns = [block for block in demo.blocks.values() if type(block).__name__ == "Dropdown"]

    def values(block) -> list:
        return [choice[1] if isinstance(choice, tuple | list) else choice for choice in block.choices]

    compare_slots = [d for d in dropdowns if (d.elem_id or "").startswith("compare-") and d.label == "Engine"]
    assert len(compare_slots) == 2 and all(sine_engine in values(d) for d in compare_slots)
    assert ("Sine test engine", sine_engine) in compare_tab.engine_choices()
    batch_engines = [d for d in dropdowns if d.label == "Default engine"]
    assert len(batch_engines) == 1 and sine_engine in values(batch_engines[0])
    assert {s.system for s in arena_tab.pool()} >= {f"{sine_engine}:low", f"{sine_engine}:high"}
    # choosing it in a slot offers its voices, its default first where the tab picks one
    choices, _ = compare_tab.voice_choices(sine_engine)
    assert [value for _, value in choices] == ["low", "high"]
    assert batch_tab.voices_for(sine_engine) == ["low", "high"]
    assert batch_tab.default_voice(sine_engine, batch_tab.voices_for(sine_engine)) == "high"


def test_a_registered_engine_is_a_v1_model_with_voices_and_speaks(sine_engine):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import router

    api = FastAPI()
    api.include_router(router)
    with TestClient(api, raise_server_exceptions=False) as client:
        models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
        assert models[sine_engine]["name"] == "Sine test engine" and models[sine_engine]["available"]
        assert models[sine_engine]["capabilities"]["default_voice"] == "high"
        assert models["kokoro"]["capabilities"]["blends"] is True  # every model carries its capabilities
        assert client.get(f"/v1/models/{sine_engine}").json()["id"] == sine_engine

        listed = client.get("/v1/audio/voices", params={"model": sine_engine}).json()
        assert [(v["id"], v["model"]) for v in listed["data"]] == [("low", sine_engine), ("high", sine_engine)]
        aliases = listed["openai_voices"][sine_engine]
        assert aliases["alloy"] == "low" and aliases["echo"] == "high" and aliases["nova"] == "high"  # default
        assert sine_engine in client.get("/v1/audio/voices").json()["openai_voices"]

        body = {"model": sine_engine, "input": TEXT, "voice": "alloy", "response_format": "wav"}
        answer = client.post("/v1/audio/speech", json=body)
        assert answer.status_code == 200 and answer.headers["X-Voice"] == "low"
        audio, rate = sf.read(io.BytesIO(answer.content), dtype="float32")
        assert rate == SAMPLE_RATE and abs(pitch(audio) - 220.0) < 5 and len(audio) >= 0.8 * SAMPLE_RATE
        wrong = client.post("/v1/audio/speech", json={**body, "voice": "nobody"})
        assert wrong.status_code == 404 and "low" in wrong.json()["error"]["message"]


def test_the_cli_lists_a_registered_engine_and_speaks_with_it(sine_engine, tmp_path, capsys):
    from engines.__main__ import main

    assert main(["list"]) == 0
    engines = {e["id"]: e for e in json.loads(capsys.readouterr().out)["engines"]}
    assert engines[sine_engine]["name"] == "Sine test engine"
    assert engines[sine_engine]["capabilities"]["openai_voices"] == {"alloy": "low", "echo": "high"}
    assert [v["id"] for v in engines[sine_engine]["voices"]] == ["low", "high"]
    assert "capabilities" in engines["kokoro"] and engines["kokoro"]["name"] == "Kokoro-82M"  # extended, not renamed

    out = tmp_path / "sine.wav"
    assert main(["synth", "--engine", sine_engine, "--voice", "high", "--text", TEXT, "--out", str(out)]) == 0
    audio, _ = sf.read(out, dtype="float32")
    assert abs(pitch(audio) - 440.0) < 5


def test_a_registered_engine_renders_batch_files(sine_engine, tmp_path):
    from engines.batch_files import parse
    from service.batch import render_items as render

    rows = f"text,engine,voice\nFirst line.,{sine_engine},low\nSecond line.,,\nThird.,{sine_engine},nobody\n"
    items = parse(rows.encode(), "rows.csv", sine_engine, "high")
    manifest = render(items, tmp_path, "wav")
    assert manifest["rendered"] == 2 and manifest["failed"] == 1
    first, second, third = manifest["items"]
    assert (first["engine"], first["voice"], second["voice"]) == (sine_engine, "low", "high")
    assert "no voice called 'nobody'" in third["error"]
    for item, tone in ((first, 220.0), (second, 440.0)):
        audio, _ = sf.read(tmp_path / item["file"], dtype="float32")
        assert abs(pitch(audio) - tone) < 5


def test_a_registered_engine_takes_part_in_a_comparison(sine_engine, tmp_path):
    from evaluation.compare import METRIC_KEYS, parse_second, parse_slot, write_pair
    from evaluation.pair import run_pair

    first, second = run_pair(parse_slot(f"{sine_engine}:low"), parse_second(f"{sine_engine}:high"), TEXT)
    assert first.finished and second.finished and first.error is None
    assert abs(pitch(first.audio) - 220.0) < 5 and abs(pitch(second.audio) - 440.0) < 5
    assert first.stats.ttfa_s is not None and set(METRIC_KEYS) <= set(first.metrics)
    summary = write_pair(first, second, TEXT, tmp_path)
    assert summary["a"]["system"] == f"{sine_engine}:low" and (tmp_path / "a.wav").is_file()


# ----- an engine that designs voices (Qwen3-TTS VoiceDesign), found by its capability -----------------------


def test_an_engine_that_designs_voices_appears_by_its_capability_on_every_way_in(monkeypatch, tmp_path):
    import gradio as gr

    from api.voices import resolve_model
    from ui import arena_tab, batch_tab, compare_tab, qwen_tab

    monkeypatch.setenv("QWEN_VOICE_DESIGN_MODEL", str(tmp_path))  # a local folder: usable here, never loaded
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path / "library"))
    monkeypatch.delenv("ARENA_SYSTEMS", raising=False)
    designers = registry.engines_that("designs_voices")
    assert len(designers) == 1
    designer = designers[0]
    capabilities = registry.capabilities(designer)
    assert capabilities.instructions and capabilities.default_voice and not capabilities.clones
    described = capabilities.default_voice

    assert designer in [engine for _, engine in compare_tab.engine_choices()]
    assert described in [value for _, value in compare_tab.voice_choices(designer)[0]]
    assert described in batch_tab.voices_for(designer)
    assert f"{designer}:{described}" in {slot.system for slot in arena_tab.pool()}
    assert resolve_model(capabilities.openai_models[0]) == designer

    def design_tabs() -> list:
        with gr.Blocks() as page:
            qwen_tab.build_tab(gr.Textbox(visible=False))
        tabs = [b for b in page.blocks.values() if type(b).__name__ == "Tab"]
        return [tab.label for tab in tabs if tab.label == "Voice design"]

    assert design_tabs() == ["Voice design"]  # a sub-tab of the Qwen3-TTS tab, built from the capability
    monkeypatch.delitem(registry.ENGINES, designer)
    assert design_tabs() == [] and designer not in [engine for _, engine in compare_tab.engine_choices()]
