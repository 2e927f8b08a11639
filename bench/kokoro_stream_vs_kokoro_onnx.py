"""Our streaming Kokoro ONNX path against the `kokoro-onnx` package on the same input; prints JSON.

Same int8 model file (the packaged Kokoro-82M v1.0 export), same voice pack, same phonemes (ours
are produced by our misaki front-end and handed to the peer with `is_phonemes=True`), same
machine, same run, runs alternated, medians reported. Figures: time to first audio, total time,
real-time factor, and whether each streamed chunk was ready before the audio before it had
finished playing (underruns). The peer is measured both whole (`create`) and streamed
(`create_stream`, which yields per 510-phoneme batch).

    python bench/kokoro_stream_vs_kokoro_onnx.py [--text-file F] [--voice jm_kumo] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engines.base import SynthesisRequest  # noqa: E402
from engines.kokoro import KokoroEngine  # noqa: E402
from engines.timing import RunStats, measured  # noqa: E402
from engines.weights import packaged_kokoro  # noqa: E402


def run_ours(engine: KokoroEngine, request: SynthesisRequest) -> tuple[dict, str]:
    stats = RunStats(engine="kokoro")
    phonemes = [chunk.phonemes for chunk in measured(engine, request, stats)]
    return {**stats.summary(), "underruns": stats.underruns}, " ".join(phonemes)


def run_peer_whole(peer, phonemes: str, voice: str) -> dict:
    start = time.perf_counter()
    audio, rate = peer.create(phonemes, voice=voice, speed=1.0, is_phonemes=True)
    total = time.perf_counter() - start
    return {
        "audio_s": round(len(audio) / rate, 3),
        "total_s": round(total, 3),
        "ttfa_s": round(total, 3),
        "rtf": round(total / (len(audio) / rate), 3),
        "chunks": 1,
    }


def run_peer_stream(peer, phonemes: str, voice: str) -> dict:
    async def consume() -> dict:
        start, first, audio_s, chunks = time.perf_counter(), None, 0.0, 0
        async for audio, rate in peer.create_stream(phonemes, voice=voice, speed=1.0, is_phonemes=True):
            first = first if first is not None else time.perf_counter() - start
            audio_s += len(audio) / rate
            chunks += 1
        total = time.perf_counter() - start
        return {
            "audio_s": round(audio_s, 3),
            "total_s": round(total, 3),
            "ttfa_s": round(first, 3),
            "rtf": round(total / audio_s, 3),
            "chunks": chunks,
        }

    return asyncio.run(consume())


def median_of(runs: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-file", type=Path, default=HERE / "paragraph.txt")
    parser.add_argument("--voice", default="jm_kumo")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import kokoro_onnx
    import onnxruntime as ort

    text = args.text_file.read_text(encoding="utf-8")
    request = SynthesisRequest(text=text, voice=args.voice)
    weights = packaged_kokoro()
    engine = KokoroEngine()
    engine.load("cpu")
    peer = kokoro_onnx.Kokoro(str(weights.model_path), str(weights.voices_npz), vocab_config=str(weights.vocab_path))

    _, phonemes = run_ours(engine, request)  # warm-up, and the phonemes both sides will speak
    run_peer_whole(peer, phonemes, args.voice)
    ours, whole, streamed = [], [], []
    for _ in range(args.runs):
        ours.append(run_ours(engine, request)[0])
        whole.append(run_peer_whole(peer, phonemes, args.voice))
        streamed.append(run_peer_stream(peer, phonemes, args.voice))
    ours_m, whole_m, streamed_m = median_of(ours), median_of(whole), median_of(streamed)
    print(
        json.dumps(
            {
                "bench": "kokoro ONNX int8: our streaming engine vs kokoro-onnx " + kokoro_onnx.__version__
                if hasattr(kokoro_onnx, "__version__")
                else "kokoro ONNX int8: our streaming engine vs kokoro-onnx",
                "machine": {
                    "cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "onnxruntime": ort.__version__,
                },
                "input": {
                    "text_file": str(args.text_file.name),
                    "chars": len(text),
                    "phonemes": len(phonemes),
                    "voice": args.voice,
                },
                "runs": args.runs,
                "ours": ours_m,
                "peer_create": whole_m,
                "peer_create_stream": streamed_m,
                "ratios": {
                    "total_ours_over_peer": round(ours_m["total_s"] / whole_m["total_s"], 3),
                    "ttfa_ours_over_peer": round(ours_m["ttfa_s"] / whole_m["ttfa_s"], 3),
                    "ttfa_ours_over_peer_stream": round(ours_m["ttfa_s"] / streamed_m["ttfa_s"], 3),
                },
                "all_runs": {"ours": ours, "peer_create": whole, "peer_create_stream": streamed},
            }
        )
    )


if __name__ == "__main__":
    main()
