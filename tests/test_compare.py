"""`python -m engines compare`: two slots on one text, loudness-matched files and the metrics JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
from conftest import ROOT

from engines import audio
from evaluation.compare import MATCH_LUFS, METRIC_KEYS, Slot, parse_slot, same_slot_notice

TEXT = "The birch canoe slid on the smooth planks."


def run_compare(out_dir, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TORCH_THREADS": "1", **env_extra}
    env.pop("KOKORO_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", "engines", "compare", "--text", TEXT, "--out-dir", str(out_dir), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_slot_specs_parse_engine_and_voice_including_blends():
    assert parse_slot("kokoro:af_heart:0.7,af_bella:0.3") == Slot("kokoro", "af_heart:0.7,af_bella:0.3")
    assert parse_slot("qwen-custom:Ryan").system == "qwen-custom:Ryan"
    with pytest.raises(Exception, match="Unknown engine 'piper'"):
        parse_slot("piper:amy")


@pytest.mark.parametrize(
    ("slot", "text", "unit"),
    [
        (Slot("kokoro", "jm_kumo"), "The birch canoe slid on the smooth planks.", "word"),
        (Slot("kokoro", "jf_alpha"), "こんにちは、世界。今日はいい天気ですね。", "character"),
        (Slot("qwen-custom", "Ryan", language="Japanese"), "東京に行きます。", "character"),
        (Slot("qwen-custom", "Ryan", language="French"), "Bonjour à tous.", "word"),
    ],
)
def test_an_error_rate_always_says_its_unit(monkeypatch, slot, text, unit):
    import numpy as np

    from engines.base import AudioChunk
    from engines.runtime.timing import RunStats
    from evaluation import metrics
    from evaluation.compare import ClipResult, measure

    heard = text[:-1]  # the ASR drops the last character or word
    monkeypatch.setattr(metrics, "asr_is_multilingual", lambda: True)
    monkeypatch.setattr(metrics, "transcribe_words", lambda audio, rate, language: (heard, language or "en", []))
    monkeypatch.setattr(metrics, "predicted_mos", lambda audio, rate: 3.0)
    noise = np.random.default_rng(0).normal(0, 0.1, 48_000).astype(np.float32)
    result = ClipResult(slot, RunStats(engine=slot.engine, ttfa_s=0.1, total_s=0.5, audio_s=2.0))
    result.chunks.append(AudioChunk(noise, text, "", 0))
    figures = measure(result, text)
    assert set(METRIC_KEYS) <= set(figures)
    assert figures["error_unit"] == figures["wer_unit"] == unit
    assert (
        figures["error_rate"]
        == figures["wer"]
        == round(metrics.error_rate(text, heard, "ja" if unit == "character" else "en"), 3)
    )


def test_the_same_system_twice_is_allowed_but_said():
    assert "same voice twice" in same_slot_notice(Slot("kokoro", "jm_kumo"), Slot("kokoro", "jm_kumo"))
    assert same_slot_notice(Slot("kokoro", "jm_kumo"), Slot("kokoro", "jf_alpha")) == ""


@pytest.mark.slow
def test_two_kokoro_voices_give_two_matched_clips_and_every_metric(tmp_path):
    result = run_compare(tmp_path, "--a", "kokoro:jm_kumo", "--b", "kokoro:jf_alpha")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("a", "b"):
        slot = summary[name]
        assert set(METRIC_KEYS) <= set(slot) and slot["error"] is None
        clip, rate = sf.read(tmp_path / f"{name}.wav", dtype="float32")
        assert rate == 24_000
        assert audio.integrated_loudness(clip, rate) == pytest.approx(MATCH_LUFS, abs=0.5)
        assert slot["duration_s"] == pytest.approx(len(clip) / rate, abs=0.05)
        assert 0 < slot["ttfa_s"] <= slot["total_s"] and slot["rtf"] > 0
        assert slot["wer"] <= 0.5 and "smooth planks" in slot["transcript"].lower()
        assert slot["error_rate"] == slot["wer"] and slot["error_unit"] == slot["wer_unit"] == "word"
        assert slot["similarity"] is None  # no reference clip
        assert 1.0 <= slot["mos"] <= 5.0 and slot["lufs"] < -5
        assert [w["word"] for w in slot["words"]] == TEXT.rstrip(".").split()  # the alignment of the same transcript
        assert slot["captions"] == [f"{name}.asr.srt", f"{name}.asr.vtt"] and (tmp_path / f"{name}.asr.srt").is_file()
    assert summary["a"]["system"] == "kokoro:jm_kumo" and summary["b"]["system"] == "kokoro:jf_alpha"


@pytest.mark.slow
def test_a_failing_slot_is_reported_and_the_other_still_renders(tmp_path):
    result = run_compare(
        tmp_path, "--a", "kokoro:jm_kumo", "--b", "qwen-custom:Ryan", QWEN_CUSTOM_VOICE_MODEL=str(tmp_path / "absent")
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["a"]["error"] is None and (tmp_path / "a.wav").is_file()
    assert summary["b"]["error"] and not (tmp_path / "b.wav").exists()
    assert summary["b"]["mos"] is None and summary["b"]["wer"] is None
    assert "error in slot B" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_engine_is_one_line_and_exit_2(tmp_path):
    result = run_compare(tmp_path, "--a", "piper:amy", "--b", "kokoro:jm_kumo")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Unknown engine 'piper'" in result.stderr


@pytest.mark.slow
def test_cross_model_cloning_scores_similarity_to_the_kokoro_clip(tmp_path, qwen_dirs):
    result = run_compare(
        tmp_path, "--a", "kokoro:jm_kumo", "--b", "qwen-clone:@a", QWEN_BASE_MODEL=str(qwen_dirs["clone"])
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["b"]["error"] is None and summary["b"]["engine"] == "qwen-clone"
    assert -1.0 <= summary["b"]["similarity"] <= 1.0  # tiny random weights: a number, not a good one
    assert summary["a"]["similarity"] is None
    assert sf.info(tmp_path / "b.wav").duration > 0.5


def test_slots_run_in_turn_on_a_cpu_without_loading_slot_b_first(monkeypatch):
    import torch

    from engines.runtime import registry
    from evaluation.compare import runs_together

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: auto would run the slots together")
    monkeypatch.setattr(registry, "get", lambda engine_id: pytest.fail(f"{engine_id} loaded to decide"))
    a, b = Slot("kokoro", "jm_kumo"), Slot("qwen-custom", "Ryan")
    monkeypatch.delenv("COMPARE_PARALLEL", raising=False)
    assert not runs_together(a, b)  # auto: a CPU only shares its cores
    monkeypatch.setenv("COMPARE_PARALLEL", "1")
    assert not runs_together(a, Slot("kokoro", "jf_alpha"))  # one model speaks one request at a time
    assert not runs_together(a, "@a")  # cloning slot A's clip needs it finished
    monkeypatch.setenv("COMPARE_PARALLEL", "0")
    assert not runs_together(a, b)


def test_interleave_drains_both_streams_at_the_same_time():
    import threading

    from evaluation.compare import interleave

    b_started = threading.Event()

    def a():
        yield "a1"
        # in turn, A would wait here for B forever; together, B's first item arrives meanwhile
        assert b_started.wait(timeout=20), "slot B never started while slot A was running"
        yield "a2"

    def b():
        b_started.set()
        yield "b1"

    got = list(interleave({"a": a(), "b": b()}))
    assert sorted(got) == [("a", "a1"), ("a", "a2"), ("b", "b1")]
    assert got.index(("b", "b1")) < got.index(("a", "a2"))


def test_interleave_raises_a_streams_error_and_stops_the_other():
    import threading

    from evaluation.compare import interleave

    closed = threading.Event()

    def endless():
        try:
            while True:
                yield "x"
        finally:
            closed.set()

    def broken():
        yield "y"
        raise ValueError("slot crashed")

    with pytest.raises(ValueError, match="slot crashed"):
        for _ in interleave({"a": endless(), "b": broken()}):
            pass
    assert closed.wait(timeout=20)  # the other stream's thread ends and closes its generator


@pytest.mark.slow
def test_two_models_run_together_when_asked_and_both_clips_are_measured(tmp_path, qwen_dirs):
    result = run_compare(
        tmp_path,
        "--a", "kokoro:jm_kumo", "--b", "qwen-custom:Ryan",
        QWEN_CUSTOM_VOICE_MODEL=str(qwen_dirs["custom"]), COMPARE_PARALLEL="1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("a", "b"):
        assert summary[name]["error"] is None and summary[name]["ran_together"] is True
        assert summary[name]["duration_s"] > 0.3 and summary[name]["ttfa_s"] > 0
        clip, rate = sf.read(tmp_path / f"{name}.wav", dtype="float32")
        assert audio.integrated_loudness(clip, rate) == pytest.approx(MATCH_LUFS, abs=0.5)
    assert "smooth planks" in summary["a"]["transcript"].lower()  # Kokoro unharmed by sharing the CPU
