"""Read-along messages (`ui.readalong`, `ui.player.StreamPlayer`): the model's word times offset across
chunks onto the run's clock, the alignment's statuses carried to the player, "Check the words" only on
request, captions named by their source."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from engines.asr import HeardWord
from engines.base import AudioChunk, UnavailableError, WordTiming
from engines.runtime.timing import RunStats
from evaluation.alignment import align_words
from evaluation.compare import ClipResult, Slot
from evaluation.pair import SlotChunk, SlotStarted
from ui import readalong, streaming
from ui.player import StreamPlayer

RATE = 24_000


def chunk(index: int, seconds: float, words: list[tuple[str, float, float]] = ()) -> AudioChunk:
    audio = np.full(int(RATE * seconds), 0.1, np.float32)
    timed = tuple(WordTiming(w, "", a, b) for w, a, b in words)
    return AudioChunk(audio, " ".join(w for w, _, _ in words), "", index, words=timed)


CHUNKS = [chunk(0, 1.0, [("Hello", 0.1, 0.4), ("there", 0.5, 0.9)]), chunk(1, 0.5, [("friend", 0.1, 0.3)])]


def run_of(chunks: list[AudioChunk], sounds: list[bool]):
    """A run's updates that append `chunks` one by one, each with a piece of audio or none (held back)."""
    made: list[AudioChunk] = []
    stats = RunStats(engine="kokoro", ttfa_s=0.2)

    def updates():
        for c, sound in zip(chunks, sounds, strict=True):
            made.append(c)
            yield (np.zeros(10, np.int16) if sound else None, "streaming", stats)

    return made, updates()


def messages(out: list[tuple]) -> list[dict]:
    return [json.loads(o[0]) for o in out if isinstance(o[0], str)]


def test_each_piece_carries_the_models_new_words_timed_from_the_runs_first_sample():
    made, updates = run_of(CHUNKS, [True, True])
    pieces = [m for m in messages(list(streaming.played(StreamPlayer, updates, 2, chunks=made))) if m["k"] == "piece"]
    assert pieces[0]["words"] == [
        {"word": "Hello", "start": 0.1, "end": 0.4},
        {"word": "there", "start": 0.5, "end": 0.9},
    ]
    assert pieces[1]["words"] == [{"word": "friend", "start": 1.1, "end": 1.3}]  # after chunk 0's 1.0 s


def test_words_of_a_held_back_chunk_go_with_the_next_piece_that_plays_them():
    made, updates = run_of(CHUNKS, [False, True])
    pieces = [m for m in messages(list(streaming.played(StreamPlayer, updates, 2, chunks=made))) if m["k"] == "piece"]
    assert len(pieces) == 1 and [w["word"] for w in pieces[0]["words"]] == ["Hello", "there", "friend"]


def test_a_run_without_word_times_sends_pieces_as_before():
    made, updates = run_of([chunk(0, 0.5), chunk(1, 0.5)], [True, True])
    found = messages(list(streaming.played(StreamPlayer, updates, 2, chunks=made)))
    assert [m["k"] for m in found] == ["start", "piece", "piece", "end"]
    assert all("words" not in m for m in found)


def test_the_words_message_carries_each_words_status_and_what_was_heard():
    heard = [HeardWord("The", 0.0, 0.2), HeardWord("cat", 0.3, 0.6), HeardWord("sat", 0.7, 1.0)]
    aligned = align_words("The dog really sat.", heard, "en", 1.2)
    message = json.loads(StreamPlayer.words("run1", "asr", aligned.words))
    assert message["k"] == "words" and message["run"] == "run1" and message["source"] == "asr"
    by_word = {w["word"]: w for w in message["words"]}
    assert by_word["The"]["status"] == "ok" and by_word["The"]["start"] == 0.0
    assert by_word["dog"]["status"] == "substituted" and by_word["dog"]["heard"] == "cat"
    assert by_word["really"] == {"word": "really", "start": None, "end": None, "status": "dropped", "heard": None}
    assert by_word["sat"]["status"] == "ok" and by_word["sat"]["end"] == 1.0


def test_the_models_words_message_has_no_status():
    message = json.loads(StreamPlayer.words("r", "model", [{"word": "Hi", "start": 0.1, "end": 0.2, "status": "ok"}]))
    assert message["words"] == [{"word": "Hi", "start": 0.1, "end": 0.2, "status": None, "heard": None}]


@pytest.fixture()
def out_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TTS_OUTPUT_DIR", str(tmp_path))
    return tmp_path


def fake_alignment(audio, rate, text, language):
    assert rate == RATE and len(audio) == int(1.5 * RATE)  # the run's whole clip
    heard = [HeardWord("Hello", 0.1, 0.4), HeardWord("friend", 1.1, 1.3)]
    return align_words(text, heard, "en", len(audio) / rate)


def test_check_the_words_aligns_the_clip_and_writes_captions_from_both_sources(out_dir, monkeypatch):
    monkeypatch.setattr(readalong, "align_clip", fake_alignment)
    checked = readalong.check_run("r1", CHUNKS, "Hello there friend", "en", True, "kokoro")
    message = json.loads(checked.message)
    assert message["source"] == "asr" and message["run"] == "r1"
    assert [w["status"] for w in message["words"]] == ["ok", "dropped", "ok"]
    names = sorted(Path(f).name for f in checked.files)
    assert names == ["kokoro.asr.srt", "kokoro.asr.vtt", "kokoro.model.srt", "kokoro.model.vtt"]
    srt = Path(next(f for f in checked.files if f.endswith("asr.srt"))).read_text()
    assert srt == "1\n00:00:00,100 --> 00:00:00,400\nHello\n\n2\n00:00:01,100 --> 00:00:01,300\nfriend\n"
    assert "Word error rate 33.3 % (1 dropped)" in checked.line
    assert "speech recogniser's alignment" in checked.line and "model's own durations" in checked.line


def test_without_the_check_no_asr_runs_and_model_words_still_give_captions(out_dir, monkeypatch):
    def no_asr(*args):
        raise AssertionError("the speech recogniser ran")

    monkeypatch.setattr(readalong, "align_clip", no_asr)
    checked = readalong.check_run("r2", CHUNKS, "Hello there friend", "en", False, "kokoro")
    assert json.loads(checked.message)["source"] == "model"
    assert sorted(Path(f).name for f in checked.files) == ["kokoro.model.srt", "kokoro.model.vtt"]
    assert readalong.check_run("r3", [chunk(0, 1.0)], "Hello", "en", False, "kokoro") is None  # nothing to show


def test_a_clip_the_recogniser_cannot_hear_gets_one_sentence(out_dir, monkeypatch):
    def english_only(*args):
        raise UnavailableError("The speech recogniser here hears English only.")

    monkeypatch.setattr(readalong, "align_clip", english_only)
    checked = readalong.check_run("r4", [chunk(0, 1.0)], "Hola amigo", "es", True, "qwen-custom")
    assert checked.message is None and checked.files == []
    assert checked.line == "The speech recogniser here hears English only."


def test_after_the_run_the_status_keeps_its_line_and_gains_the_check(out_dir, monkeypatch):
    monkeypatch.setattr(readalong, "align_clip", fake_alignment)
    made, updates = run_of(CHUNKS, [True, True])
    run = readalong.CheckedRun(updates, status_at=1)
    after = run.after(made, "Hello there friend", "en", True, "qwen-custom")
    out = list(streaming.played(StreamPlayer, run, outputs=3, chunks=made, after=after))
    assert all(len(o) == 3 for o in out)
    assert out[1][2] == gr.update(value=None)  # the last run's captions go as a run starts
    checking, done = out[-2], out[-1]
    assert checking[1] == "streaming · Checking the words…"
    assert json.loads(done[0])["k"] == "words" and json.loads(done[0])["run"] == json.loads(out[0][0])["run"]
    assert done[1].startswith("streaming · Word error rate") and done[2]["visible"] is True


def test_compare_pieces_carry_words_but_the_blind_arenas_do_not():
    result = ClipResult(Slot("kokoro", "af_heart"), RunStats(engine="kokoro"))
    streaming.pair_message(SlotStarted("A", result))
    result.chunks.append(CHUNKS[0])
    assert "words" not in json.loads(streaming.pair_message(SlotChunk("A", CHUNKS[0].audio, result), figures=False))
    result.chunks.append(CHUNKS[1])
    piece = json.loads(streaming.pair_message(SlotChunk("A", CHUNKS[1].audio, result)))
    assert [w["word"] for w in piece["words"]] == ["Hello", "there", "friend"]
    assert json.loads(readalong.slot_words(result))["source"] == "model"
