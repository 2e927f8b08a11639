"""Word alignment (`evaluation.alignment`), captions (`evaluation.captions`) and the ways in that use them:
`python -m engines align`, `batch --align`, compare's `words`, `/v1/audio/speech` with `timestamps`.

The slow tests run the real packaged Kokoro (int8 ONNX, voice jm_kumo) and the real ASR (Whisper
tiny.en). A tiny random Qwen3-TTS clip is not aligned: its audio is noise, so no word in it can be
heard (see `test_a_tiny_random_qwen_clip_is_not_aligned`).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT

from engines.asr import HeardWord
from engines.base import SAMPLE_RATE, AudioChunk, WordTiming
from evaluation import captions, metrics
from evaluation.alignment import DROPPED, OK, SUBSTITUTED, align_clip, align_words

VOICE = "jm_kumo"
SAID = "Rice is often served in round bowls. The juice of lemons makes fine punch."
STAMP = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)"


def heard(*triples) -> list[HeardWord]:
    return [HeardWord(w, a, b) for w, a, b in triples]


def assert_timed_inside(words: list[dict], duration_s: float) -> None:
    last = 0.0
    for w in words:
        if w["status"] == DROPPED:
            assert w["start"] is None and w["end"] is None and w["heard"] is None
            continue
        assert last <= w["start"] <= w["end"] <= duration_s + 1e-6, w
        last = w["start"]


# --- the alignment itself, on recognised words given as they would come from the ASR ---


def test_each_input_word_is_ok_substituted_or_dropped_with_what_was_heard():
    found = align_words(
        "The cat sat on the mat, quickly.",
        heard(("The", 0.0, 0.2), ("bat", 0.2, 0.5), ("sat", 0.5, 0.8), ("on", 0.8, 1.0), ("mat.", 1.1, 1.5)),
        "en",
        2.0,
    )
    table = [(w["word"], w["status"], w["heard"]) for w in found.words]
    assert table == [
        ("The", OK, "The"), ("cat", SUBSTITUTED, "bat"), ("sat", OK, "sat"), ("on", OK, "on"),
        ("the", DROPPED, None), ("mat", OK, "mat"), ("quickly", DROPPED, None),
    ]  # fmt: skip
    assert found.words[1]["start"] == 0.2 and found.words[1]["end"] == 0.5
    assert found.error_unit == "word"
    assert found.error_rate == round(metrics.error_rate("The cat sat on the mat, quickly.", found.transcript, "en"), 4)
    assert_timed_inside(found.words, 2.0)


def test_numbers_pair_with_their_spoken_words_as_the_error_rate_counts_them():
    found = align_words("I have 42 cats.", heard(("I", 0, 0.1), ("have", 0.1, 0.3), ("forty-two", 0.3, 0.8),
                                                 ("cats", 0.8, 1.2)), "en", 1.5)  # fmt: skip
    assert [w["status"] for w in found.words] == [OK] * 4 and found.error_rate == 0.0


def test_inserted_words_are_listed_and_a_repeat_is_a_run():
    found = align_words(
        "the cat sat on the mat",
        heard(("the", 0, 0.2), ("cat", 0.2, 0.4), ("sat", 0.4, 0.6), ("sat", 0.6, 0.8), ("sat", 0.8, 1.0),
              ("on", 1.0, 1.1), ("the", 1.1, 1.2), ("mat", 1.2, 1.5), ("please", 1.5, 1.9)),
        "en", 2.0,
    )  # fmt: skip
    assert all(w["status"] == OK for w in found.words)
    assert [w["word"] for w in found.inserted] == ["sat sat", "please"]
    assert found.repeated == [{"word": "sat sat", "start": 0.6, "end": 1.0, "times": 3}]


def test_times_stay_monotonic_and_inside_the_clip_when_the_asr_overlaps_or_overruns():
    found = align_words("one two three", heard(("one", 0.5, 1.0), ("two", 0.3, 0.9), ("three", 1.8, 2.6)), "en", 2.0)
    assert [w["status"] for w in found.words] == [OK] * 3
    assert_timed_inside(found.words, 2.0)
    assert found.words[-1]["end"] == 2.0


def test_nothing_heard_drops_every_word():
    found = align_words("Hello there.", [], "en", 1.0)
    assert [w["status"] for w in found.words] == [DROPPED, DROPPED] and found.error_rate == 1.0


def test_japanese_is_aligned_by_reading_word_by_word():
    found = align_words("今日は晴れ。", heard(("きょう", 0.0, 0.4), ("わ", 0.4, 0.6), ("雨", 0.6, 1.0)), "ja", 1.2)
    assert found.error_unit == "character"  # counted in kana of the reading
    assert [(w["word"], w["status"]) for w in found.words] == [
        ("今日", OK), ("は", OK), ("晴れ", SUBSTITUTED),
    ]  # fmt: skip  # kana for kanji, and the particle は heard as わ, are the same reading
    assert found.words[0]["heard"] == "きょう" and found.words[2]["heard"] == "雨"


# --- captions ---


def parse_cues(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of every cue of an .srt or .vtt, read by a regular expression."""

    def seconds(h, m, s, ms) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    found = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.strip().splitlines()
        for i, line in enumerate(lines):
            times = re.fullmatch(rf"{STAMP} --> {STAMP}", line.strip())
            if times:
                g = times.groups()
                found.append((seconds(*g[:4]), seconds(*g[4:]), " ".join(lines[i + 1 :])))
    return found


def test_srt_and_vtt_parse_back_with_the_same_words_and_times():
    words = [
        {"word": w, "start": round(0.3 * i + 0.01, 3), "end": round(0.3 * i + 0.25, 3), "status": OK, "heard": w}
        for i, w in enumerate("Rice is often served in round bowls and the juice of lemons makes fine punch".split())
    ]
    words.insert(3, {"word": "never", "start": None, "end": None, "status": DROPPED, "heard": None})
    said = [w for w in words if w["start"] is not None]
    for text in (captions.srt(words), captions.vtt(words, "asr")):
        cues = parse_cues(text)
        assert len(cues) >= 2
        assert " ".join(c[2] for c in cues).split() == [w["word"] for w in said]  # dropped words are not captioned
        assert cues[0][0] == pytest.approx(said[0]["start"], abs=1e-3)
        assert cues[-1][1] == pytest.approx(said[-1]["end"], abs=1e-3)
        assert all(a <= b for a, b, _ in cues) and all(cues[i][1] <= cues[i + 1][0] for i in range(len(cues) - 1))
    vtt = captions.vtt(words, "model")
    assert vtt.startswith("WEBVTT\n") and "model's own durations" in vtt
    assert re.search(r"^1\n\d\d:\d\d:\d\d,\d{3} --> ", captions.srt(words), re.M)


def test_the_model_s_own_word_times_run_across_chunks():
    chunk = np.zeros(SAMPLE_RATE, np.float32)
    chunks = [
        AudioChunk(
            chunk, "Hello world.", "", 0, (WordTiming("Hello", "", 0.1, 0.4), WordTiming("world", "", 0.5, 0.9))
        ),
        AudioChunk(chunk, "Again.", "", 1, (WordTiming("Again", "", 0.2, 0.6),)),
    ]
    assert captions.model_words(chunks) == [
        {"word": "Hello", "start": 0.1, "end": 0.4}, {"word": "world", "start": 0.5, "end": 0.9},
        {"word": "Again", "start": 1.2, "end": 1.6},
    ]  # fmt: skip
    assert captions.model_words([AudioChunk(chunk, "x", "", 0)]) == []


def test_compare_keeps_the_words_of_the_transcription_it_already_made(monkeypatch, tmp_path):
    from engines.runtime.timing import RunStats
    from evaluation.compare import ClipResult, Slot, measure, slot_summary, write_pair

    calls = []

    def fake(audio, rate, language):
        calls.append(language)
        return "Hello word", "en", heard(("Hello", 0.1, 0.5), ("word", 0.5, 0.9))

    monkeypatch.setattr(metrics, "transcribe_words", fake)
    monkeypatch.setattr(metrics, "predicted_mos", lambda audio, rate: 3.0)
    noise = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    results = []
    for voice in ("jm_kumo", "jf_alpha"):
        result = ClipResult(Slot("kokoro", voice), RunStats(engine="kokoro", ttfa_s=0.1, total_s=0.5, audio_s=1.0))
        timed = (WordTiming("Hello", "", 0.1, 0.4), WordTiming("world.", "", 0.5, 0.9)) if voice == "jf_alpha" else ()
        result.chunks.append(AudioChunk(noise, "Hello world.", "", 0, timed))  # B's model times its words
        result.metrics = measure(result, "Hello world.")
        results.append(result)
    assert calls == ["en", "en"]  # one transcription per slot: the words come from it
    summary = slot_summary(results[0])
    assert [(w["word"], w["status"], w["heard"]) for w in summary["words"]] == [
        ("Hello", OK, "Hello"), ("world", SUBSTITUTED, "word"),
    ]  # fmt: skip
    written = write_pair(*results, "Hello world.", tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["a"]["words"] == summary["words"] and on_disk["b"]["inserted"] == []
    assert written["a"]["captions"] == ["a.asr.srt", "a.asr.vtt"] and (tmp_path / "a.asr.vtt").is_file()
    assert written["b"]["captions"] == ["b.asr.srt", "b.asr.vtt", "b.model.srt", "b.model.vtt"]
    assert parse_cues((tmp_path / "b.model.srt").read_text()) == [(0.1, 0.9, "Hello world.")]

    from ui.compare_tab import caption_files  # the Compare tab's downloads: the same files

    monkeypatch.setenv("TTS_OUTPUT_DIR", str(tmp_path / "page"))
    files = caption_files(dict(zip("AB", results, strict=True)))
    assert [os.path.basename(f) for f in files] == [
        "compare-a.asr.srt", "compare-a.asr.vtt", "compare-b.asr.srt", "compare-b.asr.vtt",
        "compare-b.model.srt", "compare-b.model.vtt",
    ]  # fmt: skip
    assert parse_cues(open(files[0], encoding="utf-8").read()) == [
        (0.1, 0.9, "Hello world")
    ]  # the text, at the times heard


@pytest.mark.slow
def test_a_tiny_qwen_clip_reports_every_input_word_timed_inside_the_clip_or_dropped(qwen_dirs):
    """A tiny random-weight Qwen3-TTS checkpoint makes noise, not words, and the runaway guard ends its
    sentences: whatever the ASR makes of it, every input word is reported, in order, each either timed
    (monotonic, inside the clip) or dropped with no times, and the error rate says how far it is."""
    from engines.audio import join
    from engines.base import SynthesisRequest
    from engines.qwen.engine import QwenCustomEngine

    text = "Rice is often served in round bowls."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom"]))
        mp.setenv("TORCH_THREADS", "1")
        engine = QwenCustomEngine()
        engine.load("cpu")
        try:
            audio = join(engine.stream(SynthesisRequest(text=text, voice="Ryan", language="English")))
        finally:
            engine.unload()
    assert len(audio) > 0
    found = align_clip(audio, SAMPLE_RATE, text)
    assert [w["word"] for w in found.words] == re.sub(r"[.,]", "", text).split()
    assert_timed_inside(found.words, len(audio) / SAMPLE_RATE)
    assert found.error_rate == round(metrics.error_rate(text, found.transcript), 4)
    assert found.error_unit == "word"


# --- the real model and ASR ---


@pytest.fixture(scope="module")
def kokoro_clip(packaged_kokoro, tmp_path_factory):
    from engines.audio import join, write
    from engines.base import SynthesisRequest

    def render(text: str) -> tuple[np.ndarray, str]:
        audio = join(packaged_kokoro.stream(SynthesisRequest(text=text, voice=VOICE)))
        path = tmp_path_factory.mktemp("align") / "clip.wav"
        write(path, audio, "wav")
        return audio, str(path)

    return render


@pytest.mark.slow
def test_a_kokoro_clip_has_every_word_ok_with_monotonic_times_inside_the_clip(kokoro_clip):
    audio, _ = kokoro_clip(SAID)
    found = align_clip(audio, SAMPLE_RATE, SAID)
    assert [w["word"] for w in found.words] == re.sub(r"[.,]", "", SAID).split()
    assert all(w["status"] == OK for w in found.words), found.words
    assert_timed_inside(found.words, len(audio) / SAMPLE_RATE)
    assert found.words[-1]["start"] > found.words[0]["end"]  # the times move through the clip
    assert found.error_rate == 0.0 and found.error_unit == "word" and found.inserted == []


@pytest.mark.slow
def test_a_word_the_audio_never_says_is_dropped_and_a_changed_one_is_heard_as_said(kokoro_clip):
    audio, _ = kokoro_clip("Rice is often served in square bowls.")
    found = align_clip(audio, SAMPLE_RATE, "Rice is very often served in round bowls.")
    status = {w["word"]: w for w in found.words}
    assert status["very"]["status"] == DROPPED and status["very"]["start"] is None
    assert status["round"]["status"] == SUBSTITUTED and status["round"]["heard"].lower() == "square"
    assert status["Rice"]["status"] == status["bowls"]["status"] == OK
    assert_timed_inside(found.words, len(audio) / SAMPLE_RATE)
    assert found.error_rate == round(
        metrics.error_rate("Rice is very often served in round bowls.", found.transcript), 4
    )


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("KOKORO_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", "engines", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_the_align_command_prints_the_json_and_writes_captions(kokoro_clip, tmp_path):
    audio, path = kokoro_clip(SAID)
    srt, vtt = tmp_path / "clip.srt", tmp_path / "clip.vtt"
    done = run_cli("align", "--audio", path, "--text", SAID + " Twice.", "--srt", str(srt), "--vtt", str(vtt))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert set(found) >= {"words", "inserted", "repeated", "error_rate", "error_unit"}
    assert set(found["words"][0]) == {"word", "start", "end", "status", "heard"}
    assert found["words"][-1] == {"word": "Twice", "start": None, "end": None, "status": DROPPED, "heard": None}
    said = [w for w in found["words"] if w["start"] is not None]
    for text in (srt.read_text(), vtt.read_text()):
        cues = parse_cues(text)
        assert " ".join(c[2] for c in cues).split() == [w["word"] for w in said]
        assert cues[0][0] == pytest.approx(said[0]["start"], abs=1e-3)
        assert cues[-1][1] == pytest.approx(said[-1]["end"], abs=1e-3)


def test_the_align_command_says_one_sentence_for_a_file_that_is_not_audio(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"not audio at all")
    done = run_cli("align", "--audio", str(bad), "--text", "Hello.")
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr and "not an audio file" in done.stderr
    )


@pytest.mark.slow
def test_batch_align_adds_words_per_item_and_captions_per_clip(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("Rice is often served in round bowls.\nThe juice of lemons makes fine punch.\n", encoding="utf-8")
    out = tmp_path / "out"
    done = run_cli("batch", "--in", str(lines), "--voice", VOICE, "--out-dir", str(out), "--align")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    for item in manifest["items"]:
        assert [w["status"] for w in item["words"]] == [OK] * len(item["text"].split())
        assert item["error_unit"] == "word" and item["error_rate"] == 0.0
        stem = item["file"].rsplit(".", 1)[0]
        assert item["captions"] == [f"{stem}.asr.srt", f"{stem}.asr.vtt"]
        assert parse_cues((out / f"{stem}.asr.srt").read_text())


# --- /v1/audio/speech with "timestamps" ---


@pytest.fixture(scope="module")
def client(v1_client):
    return v1_client


@pytest.mark.slow
def test_v1_timestamps_answers_the_clip_and_its_words_in_json(client):
    body = {"model": "kokoro", "input": "Rice is often served in round bowls.", "voice": VOICE}
    response = client.post("/v1/audio/speech", json={**body, "response_format": "wav", "timestamps": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert set(answer) == {
        "audio",
        "format",
        "words",
        "inserted",
        "repeated",
        "error_rate",
        "error_unit",
        "words_source",
    }
    assert answer["words_source"] == "asr"
    audio, rate = sf.read(io.BytesIO(base64.b64decode(answer["audio"])), dtype="float32")
    assert answer["format"] == "wav" and rate == SAMPLE_RATE
    assert [w["word"] for w in answer["words"]] == ["Rice", "is", "often", "served", "in", "round", "bowls"]
    assert all(w["status"] == OK for w in answer["words"]) and answer["error_unit"] == "word"
    assert_timed_inside(answer["words"], len(audio) / rate)
    assert float(response.headers["x-audio-seconds"]) == pytest.approx(len(audio) / rate, abs=0.01)

    plain = client.post("/v1/audio/speech", json={**body, "response_format": "wav"})
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("audio/")  # without it: as before

    sse = client.post("/v1/audio/speech", json={**body, "stream_format": "sse", "timestamps": True})
    assert sse.status_code == 200, sse.text
    events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
    done = events[-1]
    assert done["type"] == "speech.audio.done" and [w["word"] for w in done["words"]][-1] == "bowls"
    assert done["error_unit"] == "word" and "inserted" in done
    # the ONNX model times no words itself: the deltas carry audio only, the recogniser's words come at the end
    assert done["words_source"] == "asr" and not any("words" in e for e in events[:-1])
    streamed_s = (
        sum(len(base64.b64decode(e["audio"])) for e in events if e["type"] == "speech.audio.delta") / 2 / SAMPLE_RATE
    )
    assert_timed_inside(done["words"], streamed_s)


def test_v1_timestamps_on_a_raw_audio_stream_is_a_clear_400(client):
    response = client.post(
        "/v1/audio/speech",
        json={"model": "kokoro", "input": "Hello.", "voice": VOICE, "stream_format": "audio", "timestamps": True},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "timestamps" and error["message"].endswith(".") and "sse" in error["message"]


def test_another_language_with_an_english_only_recogniser_is_one_clear_sentence(monkeypatch):
    from engines.base import UnavailableError

    monkeypatch.setattr("evaluation.alignment.asr_is_multilingual", lambda: False)
    with pytest.raises(UnavailableError, match="hears English only; set ASR_MODEL"):
        align_clip(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE, "今日は晴れ。")


@pytest.fixture()
def tiny_torch_client(tiny_kokoro_dir, monkeypatch):
    """The `/v1` routes on the tiny random-weight Kokoro (PyTorch back-end: its chunks carry word times)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import router
    from engines.runtime import registry

    monkeypatch.setenv("KOKORO_MODEL", str(tiny_kokoro_dir))
    monkeypatch.delenv("KOKORO_BACKEND", raising=False)
    registry.unload("kokoro")
    app = FastAPI()
    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    registry.unload("kokoro")


def test_v1_sse_deltas_carry_the_model_words_of_their_audio_and_the_recogniser_is_not_run(
    tiny_torch_client, monkeypatch
):
    recognised = []
    monkeypatch.setattr("api.speech_stream.align_clip", lambda *a, **k: recognised.append(a))
    text = "The birch canoe slid on the smooth planks. Rice is often served in round bowls."
    body = {"model": "kokoro", "input": text, "voice": "af_heart", "stream_format": "sse", "timestamps": True}
    response = tiny_torch_client.post("/v1/audio/speech", json=body)
    assert response.status_code == 200, response.text
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    deltas, done = events[:-1], events[-1]
    assert all(e["type"] == "speech.audio.delta" for e in deltas) and done["type"] == "speech.audio.done"
    streamed, carried = 0.0, []
    for delta in deltas:  # PCM: 2 bytes a sample
        before, streamed = streamed, streamed + len(base64.b64decode(delta["audio"])) / 2 / SAMPLE_RATE
        for w in delta.get("words", []):  # in the stream's time: after the audio before, inside what came so far
            assert before - 1e-3 <= w["start"] <= w["end"] <= streamed + 1e-3, (w, before, streamed)
            carried.append(w)
    assert sum("words" in d for d in deltas) >= 2  # the text is two chunks: the second one's times are offset
    assert [w["word"] for w in carried] == re.sub(r"[.,]", "", text).split()
    starts = [w["start"] for w in carried]
    assert starts == sorted(starts) and set(carried[0]) == {"word", "start", "end"}
    assert done["words_source"] == "model" and recognised == []
    assert done["words"] == [{**w, "status": None, "heard": None} for w in carried]
    assert done["error_rate"] is None and done["inserted"] is None
