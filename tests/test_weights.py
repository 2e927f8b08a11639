"""Where Kokoro's weights come from: env overrides, hub, local folder, packaged offline model."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.base import SynthesisRequest, UnavailableError
from engines.kokoro.engine import KokoroEngine
from engines.runtime import weights
from engines.settings import SettingsError


def test_offline_falls_back_to_the_packaged_onnx_model(offline_env):
    chosen = weights.resolve_kokoro()
    assert chosen.backend == "onnx" and chosen.source == weights.PACKAGED_SOURCE
    assert chosen.model_path.stat().st_size == 92_361_271  # the four parts, SHA-256 checked


def test_forcing_torch_offline_names_the_fix(offline_env, monkeypatch):
    monkeypatch.setenv("KOKORO_BACKEND", "torch")
    with pytest.raises(UnavailableError, match="set KOKORO_MODEL to a local folder"):
        weights.resolve_kokoro()


def test_bad_settings_get_one_sentence(offline_env, monkeypatch):
    monkeypatch.setenv("KOKORO_BACKEND", "gpu")
    with pytest.raises(SettingsError, match="KOKORO_BACKEND must be one of auto, torch or onnx"):
        weights.kokoro_location()
    monkeypatch.delenv("KOKORO_BACKEND")
    monkeypatch.setenv("KOKORO_MODEL", "./no/such/folder")
    with pytest.raises(UnavailableError, match="neither a local folder"):
        weights.kokoro_location()


def test_local_folder_missing_pieces(tmp_path, monkeypatch):
    monkeypatch.setenv("KOKORO_MODEL", str(tmp_path))
    with pytest.raises(UnavailableError, match="needs config.json and a .pth"):
        weights.resolve_kokoro()


def test_hub_path_downloads_through_the_same_loader(tiny_kokoro_dir, monkeypatch):
    """With the hub reachable, config, checkpoint and each voice come from `hf_hub_download`."""
    import huggingface_hub

    asked: list[tuple[str, str]] = []

    def fake_download(repo_id: str, filename: str, **_: object) -> str:
        asked.append((repo_id, filename))
        local = tiny_kokoro_dir / filename
        if not local.is_file():
            raise FileNotFoundError(filename)
        return str(local)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("KOKORO_MODEL", raising=False)
    monkeypatch.setattr(weights, "_hub_reachable", lambda endpoint: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    engine = KokoroEngine()
    info = engine.info()
    assert info.backend == "torch" and info.weights_source == "hub: hexgrad/Kokoro-82M"
    assert all(v.available for v in info.voices)  # every voice can be fetched
    engine.load("cpu")
    chunks = list(engine.stream(SynthesisRequest("Hello from the hub.", "af_heart")))
    assert sum(c.duration_s for c in chunks) > 0.2
    assert ("hexgrad/Kokoro-82M", "voices/af_heart.pt") in asked
    assert Path(weights.resolve_kokoro().model_path).name == "kokoro-v1_0.pth"
    with pytest.raises(UnavailableError, match="Could not fetch the voice bf_emma"):
        list(engine.stream(SynthesisRequest("Hello.", "bf_emma")))
