"""The Kokoro voice search (`evaluation.voice_search`) against the stock voices it starts from; prints JSON.

For each packaged voice as the target (its clip: one sentence), the search runs with that voice removed
from the start set. Reported per target, on a held-out sentence: speaker similarity of the found voice,
of the best remaining stock voice (the peer) and of the target voice itself (the ceiling); the word
error rate (Whisper tiny.en) of the found voice and of that stock voice; the search's compute time.
Offline, the packaged int8 model.

    python bench/kokoro_voice_search.py [--budget-s 300] [--max-evaluations N] [--targets jf_alpha ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TARGET_TEXT = "The children ran down to the river to play in the warm afternoon sun."


def main() -> int:
    from engines.asr import transcribe
    from engines.base import SAMPLE_RATE, SynthesisRequest
    from engines.runtime.timing import synthesize
    from engines.runtime.weights import PACKAGED_VOICES
    from evaluation.metrics import word_error_rate
    from evaluation.voice_search import HELD_OUT, VoiceSearch

    parser = argparse.ArgumentParser()
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--max-evaluations", type=int)
    parser.add_argument("--targets", nargs="*", default=list(PACKAGED_VOICES))
    args = parser.parse_args()

    rows = []
    for target in args.targets:
        clip, _, _ = synthesize("kokoro", SynthesisRequest(TARGET_TEXT, target, language="en"))
        search = VoiceSearch(
            clip, TARGET_TEXT, exclude=(target,), budget_s=args.budget_s, max_evaluations=args.max_evaluations
        )
        found = search.run()
        ceiling = search.similarity(search.engine.style_table(target), HELD_OUT)
        stock_table = search.engine.style_table(found.nearest_stock)
        stock_wer = word_error_rate(
            TARGET_TEXT, transcribe(search.engine.speak_table(TARGET_TEXT, stock_table), SAMPLE_RATE)
        )
        rows.append(
            {
                "target": target, "start": found.start, "nearest_stock": found.nearest_stock,
                "held_out_found": round(found.held_out["found"], 4),
                "held_out_nearest_stock": round(found.held_out["nearest_stock"], 4),
                "held_out_start": round(found.held_out["start"], 4), "held_out_target": round(ceiling, 4),
                "wer_found": found.wer, "wer_nearest_stock": stock_wer, "evaluations": found.evaluations,
                "compute_s": round(found.compute_s, 1),
            }
        )  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr)
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform()}
    print(json.dumps({"bench": "kokoro_voice_search", "machine": machine, "budget_s": args.budget_s, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
