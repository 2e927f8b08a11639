"""A Kokoro voice found for a clip (`evaluation.voice_search`), on the packaged int8 model offline: the short
version of the issue's bench (jf_alpha's clip as the target, jf_alpha kept out of the start set), through the
CLI: it must improve on its starting point, be saved in the official layout and speak as `--voice NAME`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from engines.base import SAMPLE_RATE, InputError, SynthesisRequest
from engines.kokoro.voices import PACK_SHAPE, load_found_voice, save_found_voice
from engines.runtime import registry
from engines.voice_library import OPERATOR

TEXT = "The children ran down to the river to play."
TARGET = "jf_alpha"


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ORT_THREADS", "1")  # eight people share two cores: no thread spins for nothing
    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path / "library"))
    for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.slow
def test_a_voice_found_for_a_clip_beats_its_start_is_saved_and_speaks_by_name(offline, capsys):
    from engines.__main__ import main
    from engines.runtime.timing import synthesize

    clip, _, _ = synthesize("kokoro", SynthesisRequest(TEXT, TARGET, language="en"))
    sf.write(offline / "target.wav", clip, SAMPLE_RATE)
    argv = ["kokoro-voice", "--audio", str(offline / "target.wav"), "--text", TEXT, "--out", "Found One"]
    # bounded by its count of candidates, not by time (how long they take depends on who else shares the CPU)
    assert main([*argv, "--exclude", TARGET, "--max-evaluations", "16", "--budget-s", "3600"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["voice"] == "found-one", result
    assert TARGET not in result["start"] and TARGET != result["nearest_stock"], result
    assert result["improved"] and result["similarity"] > result["start_similarity"], result
    assert set(result["held_out"]) == {"found", "start", "nearest_stock"} and "voices tried" in err
    assert result["wer"] <= result["start_wer"] + 0.05  # the ASR guard

    table = load_found_voice("found-one", OPERATOR)
    assert table is not None and table.shape == (PACK_SHAPE[0], PACK_SHAPE[2])
    spoken = offline / "spoken.wav"
    assert main(["synth", "--engine", "kokoro", "--voice", "found-one", "--text", TEXT, "--out", str(spoken)]) == 0
    audio, _ = sf.read(spoken, dtype="float32")
    assert 0.5 * len(clip) < len(audio) < 2 * len(clip)  # the same text, said at a normal pace


def test_found_voices_are_the_owners_and_keep_the_official_layout(offline):
    table = np.random.default_rng(0).standard_normal(PACK_SHAPE).astype(np.float32) * 0.1
    owner = "visitor:" + "1" * 32
    assert save_found_voice("Mine", table, owner) == "mine"
    assert np.array_equal(load_found_voice("mine", owner), table.reshape(-1, 256))
    assert load_found_voice("mine", "visitor:" + "2" * 32) is None and load_found_voice("mine", None) is None
    with pytest.raises(InputError, match="already have a Kokoro voice"):
        save_found_voice("mine", table, owner)
    with pytest.raises(InputError, match="stock Kokoro voice"):
        save_found_voice("jf_alpha", table, owner)
    with pytest.raises(InputError, match="needs an owner"):
        save_found_voice("nobody", table, None)


def test_a_found_voice_is_a_voice_of_its_owner_only_on_v1_compare_and_batch(offline):
    from api.voices import UnknownName, resolve_voice, voices
    from ui import batch_tab, compare_tab

    owner = "visitor:" + "3" * 32
    save_found_voice("Found", np.zeros(PACK_SHAPE, dtype=np.float32), owner)
    engine = next(e for e in registry.ENGINES if registry.capabilities(e).found_voices)
    assert resolve_voice(engine, "found", owner=owner) == "found"
    assert any(v["id"] == "found" and v["saved"] for v in voices(engine, owner=owner))
    with pytest.raises(UnknownName):
        resolve_voice(engine, "found", owner="visitor:" + "4" * 32)
    assert ("Found: found", "found") in compare_tab.voice_choices(engine, owner)[0]
    assert "found" in batch_tab.voices_for(engine, owner) and "found" not in batch_tab.voices_for(engine, None)


def test_the_kokoro_tab_finds_a_voice_with_progress_and_saves_it_as_the_visitors(offline, monkeypatch):
    """The page's handler around the search (the search itself is the slow test above): progress lines while
    it runs, then its figures; the voice lands in the visitor's own library."""
    from evaluation.voice_search import Found, Progress
    from ui import voice_search_panel
    from ui.owner import new_token, owner_of_token

    class Search:  # stands in for `VoiceSearch`: two steps of progress, then a voice
        def __init__(self, clip, text, **options):
            self.text, self.options = text, options

        def run(self, progress, stop):
            for step in (1, 2):
                progress(Progress(step, 0.5 + step / 10, 0.6, step * 1.0, 10.0, "search"))
            table = np.full(PACK_SHAPE, 0.01, dtype=np.float32)
            return Found(table, "jm_kumo", 0.7, 0.6, {"found": 0.7, "start": 0.6, "nearest_stock": 0.6}, "jm_kumo")

    monkeypatch.setattr(voice_search_panel, "VoiceSearch", Search)
    sf.write(offline / "clip.wav", 0.1 * np.sin(np.arange(3 * SAMPLE_RATE) / 7.0), SAMPLE_RATE)
    token = new_token()
    updates = list(voice_search_panel.find_kokoro_voice(str(offline / "clip.wav"), TEXT, [], 60, "Mine", False, token))
    assert [line for line, _ in updates[:2]] == [
        "search: 1 voices tried, best similarity 0.600", "search: 2 voices tried, best similarity 0.700",
    ]  # fmt: skip
    figures, summary = updates[-1]
    assert "Found: `mine`" in figures and "0.700" in figures and summary["voice"] == "mine"
    assert load_found_voice("mine", owner_of_token(token)) is not None
    with pytest.raises(Exception, match="already have a Kokoro voice"):
        list(voice_search_panel.find_kokoro_voice(str(offline / "clip.wav"), TEXT, [], 60, "mine", False, token))
    with pytest.raises(Exception, match="saved as yours"):
        list(voice_search_panel.find_kokoro_voice(str(offline / "clip.wav"), TEXT, [], 60, "x", False, ""))


@pytest.mark.slow
def test_the_kokoro_tab_lists_a_found_voice_for_its_owner_and_speaks_it_for_them_only(offline):
    """The tab's voice list (once the page knows its visitor) and its run (`owner`: the page's visitor), on a
    found voice made of a stock voice's own table: it speaks for its owner, and is unknown to anyone else."""
    from ui import kokoro_tab
    from ui.owner import new_token, owner_of_token

    token, other = new_token(), new_token()
    engine = registry.get("kokoro")
    save_found_voice("Twin", engine.style_table("jm_kumo").reshape(PACK_SHAPE), owner_of_token(token))
    listed, _ = kokoro_tab.voice_choices(owner_of_token(token))
    ready = [v.id for v in registry.info("kokoro").voices if v.available]
    assert [value for _, value in listed].index("twin") == len(ready)  # after the voices that speak here
    assert ("Found: twin", "twin") not in kokoro_tab.voice_choices(owner_of_token(other))[0]
    update = kokoro_tab.on_owner(token, "jm_kumo", None)
    assert ("Found: twin", "twin") in update["choices"] and update["value"] == "jm_kumo"

    def spoken(voice: str, owner: str | None) -> np.ndarray:
        chunks: list = []
        options = ("wav", "Off", False, False, False, False)
        for _ in kokoro_tab._run(TEXT, voice, "", 1.0, "Auto", *options, chunks=chunks, owner=owner):
            pass
        return np.concatenate([c.audio for c in chunks])

    assert np.array_equal(spoken("twin", owner_of_token(token)), spoken("jm_kumo", None))  # the same table
    with pytest.raises(InputError, match="twin"):
        spoken("twin", owner_of_token(other))
