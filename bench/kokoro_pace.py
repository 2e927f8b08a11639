"""Reference speaking pace for the Qwen3-TTS runaway guard (`engines.qwen.runaway`), measured on Kokoro.

Prints JSON: per language, the packaged Kokoro voice's seconds of speech (edge silence trimmed) per
counted character (`engines.qwen.runaway.units`: letters and digits by script), over a few sentences.
Run: `.venv/bin/python bench/kokoro_pace.py` (offline: the packaged int8 ONNX model and voices);
the figures of `engines.qwen.runaway.PACE_S` are in `bench/results-kokoro-pace.json`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engines.base import SAMPLE_RATE, SynthesisRequest  # noqa: E402
from engines.qwen.runaway import units  # noqa: E402
from engines.runtime import registry  # noqa: E402

SENTENCES = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "She sold the old house and moved to a small town by the sea.",
        "Please call me back when you have a minute to talk.",
        "Our train leaves at seven, so we should pack tonight.",
    ],
    "es": [
        "El perro corre por el parque todas las mañanas.",
        "Mañana vamos a visitar a mis abuelos en el campo.",
        "La comida estaba deliciosa y el servicio fue excelente.",
    ],
    "it": [
        "Il gatto dorme sul divano tutto il pomeriggio.",
        "Domani andiamo al mare con i nostri amici.",
        "Questa città è famosa per la sua cucina e i suoi musei.",
    ],
    "ja": ["吾輩は猫である。名前はまだ無い。", "今日はとても良い天気ですね。", "駅までの道を教えてください。"],
    "zh": ["今天天气很好，我们去公园散步吧。", "这本书非常有意思，我已经看了两遍。", "请问最近的地铁站在哪里？"],
}


def trimmed_seconds(audio: np.ndarray, floor: float = 0.01) -> float:
    """Seconds between the first and last sample above `floor` of the peak (the boundary silence off)."""
    loud = np.flatnonzero(np.abs(audio) > floor * max(float(np.abs(audio).max()), 1e-9))
    return 0.0 if len(loud) == 0 else (loud[-1] - loud[0]) / SAMPLE_RATE


def main() -> None:
    engine = registry.get("kokoro")
    engine.load("cpu")
    voice = {"ja": "jf_alpha", "zh": "jf_alpha"}
    out = {}
    for lang, texts in SENTENCES.items():
        per_unit = []
        for text in texts:
            request = SynthesisRequest(text=text, voice=voice.get(lang, "jm_kumo"), language=lang)
            audio = np.concatenate([c.audio for c in engine.stream(request)])
            seconds = trimmed_seconds(audio)
            per_unit.append(seconds / units(text))
        out[lang] = {
            "sentences": len(texts),
            "s_per_unit_mean": round(float(np.mean(per_unit)), 4),
            "s_per_unit_max": round(float(np.max(per_unit)), 4),
            "units_per_s": round(1.0 / float(np.mean(per_unit)), 2),
        }
    print(json.dumps({"baseline": "Kokoro-82M int8 ONNX (packaged), speed 1.0", "languages": out}, indent=1))


if __name__ == "__main__":
    main()
