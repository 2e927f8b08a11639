"""Qwen3-TTS batching across visitors: throughput of concurrent requests, batched vs one at a time.

Four visitors each ask for a three-sentence text from one Qwen3-TTS CustomVoice model (a tiny random
checkpoint built here, `tests/qwen_tiny.py`, so it runs offline; on a real model the step's compute,
not Python, dominates). Two modes, alternated in the same run:

- `one_at_a_time` (baseline: what one work-queue slot per engine gave): the requests run one after
  another, each still through the batcher (its own sentences grouped), `BATCH_WAIT_MS=0`;
- `batched`: the four run at once (the Qwen lines' four slots) and share `generate` calls through
  `engines.qwen.batcher` (`BATCH_WAIT_MS=20`).

Generation is greedy in both modes (the same codes, so the same work: a row's output in a batch equals
the request's alone, `tests/test_qwen_batching.py`). Reported per mode: wall time for all four, seconds of
audio per second of wall time, time to first audio of each visitor from the moment all four asked, and
the `generate` calls with their rows.

    python bench/qwen_batching.py [--rounds 3] [--frames 40] [--device cpu|cuda] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXTS = [
    ("Good morning to you all. The weather is fine today. We will walk to the park.", "Ryan", "English"),
    ("Guten Morgen zusammen. Das Wetter ist heute schön. Wir gehen in den Park.", "Aiden", "German"),
    ("Bonjour a tous. Il fait beau aujourd'hui. Nous allons au parc.", "Serena", "French"),
    ("Buenos dias a todos. Hace buen tiempo hoy. Vamos a caminar al parque.", "Vivian", "Spanish"),
]


def run_mode(engine, requests, batched: bool) -> dict:
    """All requests, together or one after another: wall time, audio, first audio per visitor."""
    os.environ["BATCH_WAIT_MS"] = "20" if batched else "0"
    calls_before = len(engine.bench_calls)
    first: list = [None] * len(requests)
    audio = [0.0] * len(requests)
    start = time.perf_counter()

    def visitor(n: int) -> None:
        for chunk in engine.stream(requests[n]):
            if first[n] is None:
                first[n] = time.perf_counter() - start
            audio[n] += chunk.duration_s

    if batched:
        threads = [threading.Thread(target=visitor, args=(n,)) for n in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for n in range(len(requests)):
            visitor(n)
    wall = time.perf_counter() - start
    rows = engine.bench_calls[calls_before:]
    return {
        "wall_s": round(wall, 3),
        "audio_s": round(sum(audio), 3),
        "audio_s_per_wall_s": round(sum(audio) / wall, 3),
        "ttfa_s": [round(t, 3) for t in first],
        "generate_calls": len(rows),
        "rows_per_call": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40, help="max_new_tokens per sentence")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(HERE / "results-qwen-batching.json"))
    args = parser.parse_args()
    os.environ.setdefault("TORCH_THREADS", "1")

    import torch
    from qwen_tiny import build_one

    from engines.base import SynthesisRequest
    from engines.qwen.engine import QwenCustomEngine

    # the checkpoint builder prints progress: keep stdout for the JSON
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        os.environ["QWEN_CUSTOM_VOICE_MODEL"] = build_one(str(Path(folder) / "customvoice"), "custom_voice")
        engine = QwenCustomEngine()
        engine.load(args.device)
    original = engine._model.generate_custom_voice
    engine.bench_calls = []

    def greedy(**kwargs):
        engine.bench_calls.append(len(kwargs["text"]))
        return original(**kwargs, do_sample=False, subtalker_dosample=False)

    engine._model.generate_custom_voice = greedy
    requests = [SynthesisRequest(t, v, language=lang, max_new_tokens=args.frames) for t, v, lang in TEXTS]
    run_mode(engine, requests, batched=False)  # warm-up
    run_mode(engine, requests, batched=True)
    rounds = []
    for _ in range(args.rounds):
        rounds.append({"one_at_a_time": run_mode(engine, requests, False), "batched": run_mode(engine, requests, True)})

    def median(mode: str, key: str) -> float:
        return round(statistics.median(r[mode][key] for r in rounds), 3)

    def ttfa(mode: str, pick) -> float:
        return round(statistics.median(pick(r[mode]["ttfa_s"]) for r in rounds), 3)

    summary = {
        mode: {
            "wall_s": median(mode, "wall_s"),
            "audio_s_per_wall_s": median(mode, "audio_s_per_wall_s"),
            "ttfa_mean_s": ttfa(mode, statistics.mean),
            "ttfa_max_s": ttfa(mode, max),
        }
        for mode in ("one_at_a_time", "batched")
    }
    summary["throughput_ratio"] = round(
        summary["batched"]["audio_s_per_wall_s"] / summary["one_at_a_time"]["audio_s_per_wall_s"], 2
    )
    result = {
        "bench": "qwen_batching",
        "baseline": "one_at_a_time (one request per model at a time, as with one work-queue slot)",
        "model": "tiny random Qwen3-TTS 12Hz CustomVoice (tests/qwen_tiny.py), greedy",
        "device": str(engine._device),
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "visitors": len(requests),
        "sentences_each": 3,
        "max_new_tokens": args.frames,
        "summary": summary,
        "rounds": rounds,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
