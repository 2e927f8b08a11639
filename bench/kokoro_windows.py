"""Kokoro inside a sentence (issue #23): the decoder in windows against the whole-sentence render, the
text-cut plan and the `kokoro-onnx` peer, on the packaged int8 model; prints JSON.

Same model file, voice pack, phonemes (the peer gets ours with `is_phonemes=True`), machine and run.
Rows: `windows`, `whole`, `clauses` (`KOKORO_STREAM`'s three plans, one loaded model) and the peer's
`create_stream`. Figures: first audio (median of `--runs` warm runs: the stream is closed after its
first chunk), total time, real-time factor and stalls (chunks not ready when the audio before them
had finished playing) of one full run, Whisper tiny.en WER of the paragraph and of the dev sentences,
and, per sentence of the paragraph, the log-mel distance (`evaluation.parity.mel_distance`) between
the windowed and the whole render next to the bar: the same sentence in another packaged voice.

    python bench/kokoro_windows.py [--voice jm_kumo] [--runs 3] [--out bench/results-kokoro-windows.json]
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

import numpy as np  # noqa: E402

from engines.audio import join  # noqa: E402
from engines.base import SAMPLE_RATE, SynthesisRequest  # noqa: E402
from engines.kokoro.engine import KokoroEngine  # noqa: E402
from engines.runtime.timing import RunStats, measured  # noqa: E402
from engines.runtime.weights import packaged_kokoro  # noqa: E402

PLANS = ("windows", "whole", "clauses")
BAR_VOICE = "jf_alpha"  # the two-voices bar, as bench/results-kokoro-parity.json


def first_audio(engine: KokoroEngine, text: str, voice: str) -> float:
    start = time.perf_counter()
    stream = engine.stream(SynthesisRequest(text, voice))
    next(stream)
    stream.close()
    return time.perf_counter() - start


def peer_first_audio(peer, phonemes: str, voice: str) -> float:
    async def first() -> float:
        start = time.perf_counter()
        async for _ in peer.create_stream(phonemes, voice=voice, speed=1.0, is_phonemes=True):
            return time.perf_counter() - start
        return float("nan")

    return asyncio.run(first())


def full_run(engine: KokoroEngine, text: str, voice: str) -> tuple[dict, list]:
    stats = RunStats(engine="kokoro")
    chunks = list(measured(engine, SynthesisRequest(text, voice), stats))
    return {**stats.summary(), "stalls": stats.underruns}, chunks


def peer_full(peer, phonemes: str, voice: str) -> tuple[dict, np.ndarray]:
    async def run() -> tuple[dict, np.ndarray]:
        start, first, pieces, ready, durations = time.perf_counter(), None, [], [], []
        async for audio, rate in peer.create_stream(phonemes, voice=voice, speed=1.0, is_phonemes=True):
            now = time.perf_counter() - start
            first = first if first is not None else now
            pieces.append(np.asarray(audio, dtype=np.float32))
            ready.append(now)
            durations.append(len(audio) / rate)
        stats = RunStats(engine="kokoro-onnx", ttfa_s=first, total_s=time.perf_counter() - start)
        stats.ready_s, stats.durations_s, stats.audio_s, stats.chunks = ready, durations, sum(durations), len(pieces)
        return {**stats.summary(), "stalls": stats.underruns}, np.concatenate(pieces)

    return asyncio.run(run())


def wer(audio: np.ndarray, text: str, rate: int = SAMPLE_RATE) -> tuple[float, str]:
    from engines.asr import transcribe
    from evaluation.metrics import word_error_rate

    heard = transcribe(audio, rate, "en")
    return round(word_error_rate(text, heard), 4), heard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-file", type=Path, default=HERE / "paragraph.txt")
    parser.add_argument("--voice", default="jm_kumo")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dev", type=int, default=10, help="how many dev sentences (first audio, WER)")
    parser.add_argument("--sentences", type=int, default=3, help="paragraph sentences compared by log-mel distance")
    parser.add_argument("--out", type=Path, help="also write the JSON here (rewritten after every stage)")
    args = parser.parse_args()

    import kokoro_onnx
    import onnxruntime as ort
    import soxr

    from evaluation.parity import mel_distance

    text = args.text_file.read_text(encoding="utf-8").strip()
    dev_path = HERE.parent / "tests" / "data" / "dev_sentences.txt"
    dev = [s for s in dev_path.read_text(encoding="utf-8").splitlines() if s.strip()][: args.dev]
    weights = packaged_kokoro()
    loaded = KokoroEngine(stream_plan="whole")
    loaded.load("cpu")
    engines = {}
    for name in PLANS:
        engine = KokoroEngine(stream_plan=name)
        engine._backend, engine.measured_speed, engine.measured_rate = (
            loaded._backend,
            loaded.measured_speed,
            loaded.measured_rate,
        )
        engine.plan = engine.calibrate(engine._base_plan)
        engines[name] = engine
    peer = kokoro_onnx.Kokoro(str(weights.model_path), str(weights.voices_npz), vocab_config=str(weights.vocab_path))
    phonemes = " ".join(c.phonemes for c in engines["whole"].front_end(SynthesisRequest(text, args.voice)))

    result: dict = {
        "bench": "kokoro int8 inside a sentence: decoder windows vs whole sentence vs text cut vs kokoro-onnx",
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "onnxruntime": ort.__version__, "kokoro_onnx": getattr(kokoro_onnx, "__version__", None)},
        "under_load": "the 2-core CPU was shared with other work: compare rows of this run, not absolute times",
        "input": {"text_file": args.text_file.name, "chars": len(text), "voice": args.voice, "dev_sentences": len(dev)},
        "runs": args.runs,
    }  # fmt: skip

    def save(stage: str) -> None:
        result["stage_done"], result["load_average"] = stage, os.getloadavg()
        if args.out:
            args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    # warm-up: the split graphs, the G2P, the peer
    for engine in engines.values():
        first_audio(engine, dev[0], args.voice)
    peer_first_audio(peer, phonemes[:100], args.voice)

    # first audio, alternated, median of `runs`
    firsts: dict[str, list[float]] = {name: [] for name in (*PLANS, "peer")}
    for _ in range(args.runs):
        for name, engine in engines.items():
            firsts[name].append(first_audio(engine, text, args.voice))
        firsts["peer"].append(peer_first_audio(peer, phonemes, args.voice))
    rows: dict[str, dict] = {
        name: {"first_audio_s": round(statistics.median(v), 3), "first_audio_runs": [round(x, 3) for x in v]}
        for name, v in firsts.items()
    }
    result["rows"] = rows
    save("first audio, paragraph")

    # one full run each: total, real-time factor, stalls, WER
    audio: dict[str, np.ndarray] = {}
    for name, engine in engines.items():
        figures, chunks = full_run(engine, text, args.voice)
        audio[name] = join(chunks)
        rows[name].update(figures)
        rows[name]["first_chunk_s"] = round(chunks[0].duration_s, 3)
    figures, peer_audio = peer_full(peer, phonemes, args.voice)
    rows["peer"].update(figures)
    save("full runs")
    for name in PLANS:
        rows[name]["wer"], rows[name]["heard"] = wer(audio[name], text)
    rows["peer"]["wer"], rows["peer"]["heard"] = wer(soxr.resample(peer_audio, 24_000, SAMPLE_RATE), text)
    for name in (*PLANS, "peer"):
        rows[name]["total_over_peer"] = round(rows[name]["total_s"] / rows["peer"]["total_s"], 3)
        rows[name]["first_audio_over_peer"] = round(rows[name]["first_audio_s"] / rows["peer"]["first_audio_s"], 3)
    save("paragraph WER")

    # the dev sentences: first audio (one run each, median over sentences) and WER, windows vs whole
    dev_rows = {}
    for name in ("windows", "whole"):
        engine = engines[name]
        times = [first_audio(engine, s, args.voice) for s in dev]
        heard = [wer(join(list(engine.stream(SynthesisRequest(s, args.voice)))), s)[1] for s in dev]
        from evaluation.metrics import word_error_rate

        dev_rows[name] = {
            "first_audio_median_s": round(statistics.median(times), 3),
            "wer": round(word_error_rate(" ".join(dev), " ".join(heard)), 4),
        }
    result["dev_sentences"] = dev_rows
    save("dev sentences")

    # log-mel distance windows vs whole, next to the two-voices bar
    sentences = [s.strip() + "." for s in text.replace("!", ".").replace("?", ".").split(".") if s.strip()]
    distance = []
    for sentence in sentences[: args.sentences]:
        whole = join(list(engines["whole"].stream(SynthesisRequest(sentence, args.voice))))
        windowed = join(list(engines["windows"].stream(SynthesisRequest(sentence, args.voice))))
        other = join(list(engines["whole"].stream(SynthesisRequest(sentence, BAR_VOICE))))
        d, bar = mel_distance(whole, windowed), mel_distance(whole, other)
        distance.append(
            {
                "sentence": sentence,
                "duration_diff_pct": round(100 * abs(len(windowed) - len(whole)) / len(whole), 3),
                "mel_distance": round(d, 3),
                "two_voices_bar": round(bar, 3),
                "fraction_of_bar": round(d / bar, 3),
            }
        )
    result["windows_vs_whole"] = distance
    save("complete")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
