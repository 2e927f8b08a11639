"""The PyTorch back-end on a tiny random Kokoro built at test time through the real loader."""

from __future__ import annotations

import numpy as np
import pytest

from engines.base import InputError, SynthesisRequest, UnavailableError
from engines.kokoro.engine import KokoroEngine
from engines.runtime.weights import resolve_kokoro


def _tiny_env(mp: pytest.MonkeyPatch, folder) -> None:
    mp.setenv("KOKORO_MODEL", str(folder))
    mp.delenv("KOKORO_BACKEND", raising=False)


@pytest.fixture(scope="module")
def loaded(tiny_kokoro_dir):
    """Loaded once for the module (a load builds the G2P and times three warm-up renders)."""
    with pytest.MonkeyPatch.context() as mp:
        _tiny_env(mp, tiny_kokoro_dir)
        eng = KokoroEngine()
        eng.load("cpu")
    return eng


@pytest.fixture()
def engine(loaded, tiny_kokoro_dir, monkeypatch):
    """The module's tiny engine, with the environment it was loaded in (the tests only read it)."""
    _tiny_env(monkeypatch, tiny_kokoro_dir)
    return loaded


def test_local_folder_resolves_to_torch(tiny_kokoro_dir, monkeypatch):
    monkeypatch.setenv("KOKORO_MODEL", str(tiny_kokoro_dir))
    weights = resolve_kokoro()
    assert weights.backend == "torch"
    assert weights.source == "local folder"


def test_audio_length_follows_text(engine):
    short = list(engine.stream(SynthesisRequest("Hello there.", "af_heart")))
    long = list(engine.stream(SynthesisRequest("Hello there. " * 12, "af_heart")))
    short_s = sum(c.duration_s for c in short)
    long_s = sum(c.duration_s for c in long)
    assert len(long) > len(short) == 1
    assert long_s > 4 * short_s
    assert all(c.audio.dtype == np.float32 and c.sample_rate == 24_000 for c in long)
    assert [c.index for c in long] == list(range(len(long)))


def test_chunks_carry_their_phonemes_and_word_timings(engine):
    chunks = list(engine.stream(SynthesisRequest("The birch canoe slid on the smooth planks.", "af_heart")))
    words = [w for c in chunks for w in c.words]
    assert [w.word for w in words] == ["The", "birch", "canoe", "slid", "on", "the", "smooth", "planks"]
    assert "bˈɜɹʧ" in chunks[0].phonemes
    for chunk in chunks:  # times are relative to each chunk
        starts = [w.start_s for w in chunk.words]
        assert starts == sorted(starts)
        assert all(w.end_s > w.start_s for w in chunk.words)
        assert chunk.words[-1].end_s <= chunk.duration_s + 1e-6


def test_slower_speed_gives_longer_audio(engine):
    text = "Speed changes how long this sentence takes to say."
    normal = sum(c.duration_s for c in engine.stream(SynthesisRequest(text, "af_heart", speed=1.0)))
    slow = sum(c.duration_s for c in engine.stream(SynthesisRequest(text, "af_heart", speed=0.5)))
    assert slow > 1.5 * normal


def test_blend_of_two_voices_speaks(engine):
    chunks = list(engine.stream(SynthesisRequest("A blended voice.", "af_heart:0.7,af_bella:0.3")))
    assert sum(c.duration_s for c in chunks) > 0.3


def test_voice_missing_from_the_folder_names_the_available_ones(engine):
    with pytest.raises(UnavailableError, match="af_bella, af_heart"):
        list(engine.stream(SynthesisRequest("Hello.", "bf_emma")))


def test_nothing_to_pronounce(engine):
    with pytest.raises(InputError, match="nothing to pronounce"):
        list(engine.stream(SynthesisRequest("?!... 😀 — …", "af_heart")))
    assert list(engine.stream(SynthesisRequest("Still works.", "af_heart")))
