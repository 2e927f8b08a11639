"""Our streaming Kokoro ONNX path against the `kokoro-onnx` package on the same input; prints JSON.

Same int8 model file (the packaged Kokoro-82M v1.0 export), same voice pack, same phonemes (ours
are produced by our misaki front-end and handed to the peer with `is_phonemes=True`), same
machine, same run, runs alternated, medians reported. Figures: time to first audio, total time,
real-time factor, and whether each streamed chunk was ready before the audio before it had
finished playing (underruns). The peer is measured both whole (`create`) and streamed
(`create_stream`, which yields per 510-phoneme batch).

Every chunk plan tried for an earlier first audio (issue #14) is a row of `techniques`, run in the
same loop from one calibration of the engine's speed, with the Whisper tiny.en error rate of its
joined audio (one run each: the audio does not change between runs), so that plans are compared
on the same machine state. `ours` is the engine's default plan. Rows of earlier runs (a first
chunk of 12 phonemes; the old first chunk with costs x1.0) are in `results-kokoro-first-chunk-run*.json`.
A probe row measures whether two renders at once (a render-ahead thread on the second core) beat
one after the other, and each row also carries the WER of the ten dev sentences rendered alone.

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

from engines.audio import join  # noqa: E402
from engines.base import SAMPLE_RATE, SynthesisRequest  # noqa: E402
from engines.kokoro.engine import KokoroEngine  # noqa: E402
from engines.runtime.timing import RunStats, measured  # noqa: E402
from engines.runtime.weights import packaged_kokoro  # noqa: E402
from engines.text import ChunkPlan  # noqa: E402

# (name, what it does, the plan before calibration); the first is the plan before issue #14
TECHNIQUES = [
    ("old plan", "first chunk: first break after 20-45 phonemes; costs x1.25", ChunkPlan()),
    ("first chunk sized", "first chunk cut at a word to what measured costs render in 0.6 s (>= 20 phonemes); x1.25",
     ChunkPlan(first_audio_s=0.6)),
    ("costs per second rendered", "old first chunk; costs taken as compute per second of audio rendered x (the "
     "boundary silence + the speech), x1.25: later chunks grow faster (fewer calls, fewer silences)",
     ChunkPlan(costs="rate")),
    ("first chunk at a phrase", "first chunk ends where a phrase does (before a verb after the subject, or before "
     "a preposition/conjunction), sized for 0.6 s from the costs per second rendered, >= 15 phonemes; x1.25",
     ChunkPlan(first_audio_s=0.6, first_floor=15, first_cut="phrase", costs="rate")),
    ("first chunk at a phrase, costs x1.0", "as above, later chunks planned without margin",
     ChunkPlan(first_audio_s=0.6, first_floor=15, first_cut="phrase", costs="rate", margin=1.0)),
]  # fmt: skip


def run_ours(engine: KokoroEngine, request: SynthesisRequest) -> tuple[dict, str, list]:
    stats = RunStats(engine="kokoro")
    chunks = list(measured(engine, request, stats))
    return {**stats.summary(), "underruns": stats.underruns}, " ".join(c.phonemes for c in chunks), chunks


def asr_error(audio, text: str) -> tuple[float, str]:
    from engines.asr import transcribe
    from evaluation.metrics import word_error_rate

    heard = transcribe(audio, SAMPLE_RATE, "en")
    return round(word_error_rate(text, heard), 4), heard


def dev_error(engine: KokoroEngine, voice: str) -> float | None:
    """Whisper tiny.en WER over the ten dev sentences, each rendered alone with the engine's plan (as
    `tests/test_kokoro_offline.py` does): a first-chunk cut shows on short sentences."""
    from engines.asr import transcribe
    from evaluation.metrics import word_error_rate

    path = HERE.parent / "tests" / "data" / "dev_sentences.txt"
    if not path.is_file():
        return None
    sentences = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    heard = [transcribe(join(list(engine.stream(SynthesisRequest(s, voice)))), SAMPLE_RATE, "en") for s in sentences]
    return round(word_error_rate(" ".join(sentences), " ".join(heard)), 4)


def render_ahead_probe(weights, engine: KokoroEngine, text: str, voice: str) -> dict:
    """Would a render-ahead thread on the second core help? Two consecutive sentences of the text
    rendered at once by two sessions of one intra-op thread each (no spinning), against one after the
    other by one session of two threads, alternated, medians of 3 (the engine's own session is idle)."""
    import threading

    import numpy as np
    import onnxruntime as ort

    def session(threads: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(weights.model_path), options, providers=["CPUExecutionProvider"])

    g2p = engine._g2p_for("a")
    backend = engine._loaded()
    sentences = [s.strip() + "." for s in text.split(".") if s.strip()][1:3]
    feeds = []
    for sentence in sentences:
        ids = [backend.vocab[ch] for ch in g2p(sentence)[0] if ch in backend.vocab]
        style = backend.pack(voice)[len(ids) - 1].reshape(1, 256)
        feeds.append({"tokens": np.array([[0, *ids, 0]], dtype=np.int64), "style": style,
                      "speed": np.array([1.0], dtype=np.float32)})  # fmt: skip
    ones, two = [session(1), session(1)], session(2)
    for s in (*ones, two):
        s.run(None, feeds[0])
    at_once, serial = [], []
    for _ in range(3):
        start = time.perf_counter()
        threads = [threading.Thread(target=s.run, args=(None, f)) for s, f in zip(ones, feeds, strict=True)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        at_once.append(time.perf_counter() - start)
        start = time.perf_counter()
        for f in feeds:
            two.run(None, f)
        serial.append(time.perf_counter() - start)
    return {
        "name": "render-ahead on the second core (probe)",
        "what": "two consecutive sentences rendered at once, one intra-op thread each, vs one after the other "
        "with two threads (what the engine does); a render-ahead thread helps only if at once is faster",
        "sentences": sentences,
        "two_at_once_1_thread_each_s": round(statistics.median(at_once), 3),
        "one_after_other_2_threads_s": round(statistics.median(serial), 3),
        "at_once_over_serial": round(statistics.median(at_once) / statistics.median(serial), 3),
    }


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
    parser.add_argument("--rows", help="only these rows of TECHNIQUES (names, separated by /; default: all)")
    parser.add_argument("--no-probe", action="store_true", help="skip the render-ahead probe")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file (rewritten after every round)")
    args = parser.parse_args()

    import kokoro_onnx
    import onnxruntime as ort
    import soxr

    text = args.text_file.read_text(encoding="utf-8")
    request = SynthesisRequest(text=text, voice=args.voice)
    weights = packaged_kokoro()
    engine = KokoroEngine()
    engine.load("cpu")
    peer = kokoro_onnx.Kokoro(str(weights.model_path), str(weights.voices_npz), vocab_config=str(weights.vocab_path))

    default_plan, speed = engine.plan, engine.measured_speed
    wanted = set(args.rows.split("/")) if args.rows else None
    plans = [(n, doc, engine.calibrate(plan)) for n, doc, plan in TECHNIQUES if wanted is None or n in wanted]
    engine.plan = plans[0][2]
    _, phonemes, _ = run_ours(engine, request)  # warm-up, and the phonemes both sides will speak (first row)
    run_peer_whole(peer, phonemes, args.voice)
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in plans}
    audio: dict[str, list] = {}
    words: dict[str, tuple] = {}  # per row: (paragraph WER, heard, dev-sentence WER)
    dev_by_first: dict[
        tuple, float | None
    ] = {}  # the dev sentences are one chunk each: only the first-chunk rule counts
    whole, streamed = [], []
    peer_wer = None
    result = ""
    for round_ in range(args.runs):
        for name, _, plan in plans:
            engine.plan = plan
            figures, _, chunks = run_ours(engine, request)
            runs[name].append(figures)
            audio.setdefault(name, chunks)
        whole.append(run_peer_whole(peer, phonemes, args.voice))
        streamed.append(run_peer_stream(peer, phonemes, args.voice))
        if round_ == 0:  # the words do not change between runs: measured once, after the first round
            peer_audio, rate = peer.create(phonemes, voice=args.voice, speed=1.0, is_phonemes=True)
            peer_wer, _ = asr_error(soxr.resample(peer_audio, rate, SAMPLE_RATE), text)
            for name, _, plan in plans:
                key = (plan.first_audio_s, plan.first_floor, plan.first_cut, plan.first_max)
                if key not in dev_by_first:
                    engine.plan = plan
                    dev_by_first[key] = dev_error(engine, args.voice)
                words[name] = (*asr_error(join(audio[name]), text), dev_by_first[key])
        engine.plan = default_plan
        probe = render_ahead_probe(weights, engine, text, args.voice) if round_ == args.runs - 1 else None
        result = report(args, text, phonemes, engine, speed, default_plan, plans, runs, audio, words, whole, streamed,
                        peer_wer, probe, round_ + 1, kokoro_onnx, ort)  # fmt: skip
        if args.out:
            args.out.write_text(result + "\n", encoding="utf-8")
    print(result)


def report(args, text, phonemes, engine, speed, default_plan, plans, runs, audio, words, whole, streamed,
           peer_wer, probe, rounds, kokoro_onnx, ort) -> str:  # fmt: skip
    """The bench's JSON from the rounds run so far."""
    same = [name for name, _, plan in plans if plan == default_plan]  # the default is one of the rows
    ours = runs[same[0]] if same else runs[plans[0][0]]
    ours_m, whole_m, streamed_m = median_of(ours), median_of(whole), median_of(streamed)
    techniques = []
    for name, doc, plan in plans:
        m = median_of(runs[name])
        wer, heard, dev_wer = words[name]
        techniques.append(
            {
                "name": name,
                "what": doc,
                "first_max_phonemes": plan.first_max,
                "first_chunk": audio[name][0].text,
                **m,
                "total_over_peer": round(m["total_s"] / whole_m["total_s"], 3),
                "ttfa_over_peer_stream": round(m["ttfa_s"] / streamed_m["ttfa_s"], 3),
                "wer": wer,
                "dev_sentences_wer": dev_wer,
                "heard": heard,
                "all_runs": runs[name],
            }
        )
    if probe is not None and not args.no_probe:
        techniques.append(probe)
    return json.dumps(
        {
            "bench": "kokoro ONNX int8: our streaming engine vs kokoro-onnx",
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
            "runs": rounds,
            "load_average": os.getloadavg(),
            "measured_speed": {
                "s_per_chunk": round(speed[0], 3),
                "s_per_phoneme": round(speed[1], 4),
                "speech_s_per_phoneme": round(speed[2], 4),
            },
            "measured_rate": {
                "s_per_rendered_s": round(engine.measured_rate[0], 3),
                "boundary_silence_s": round(engine.measured_rate[1], 3),
            },
            "default_plan": {
                "first_audio_s": default_plan.first_audio_s,
                "margin": default_plan.margin,
                "first_cut": default_plan.first_cut,
                "costs": default_plan.costs,
            },
            "ours": ours_m,
            "peer_create": whole_m,
            "peer_create_stream": streamed_m,
            "ratios": {
                "total_ours_over_peer": round(ours_m["total_s"] / whole_m["total_s"], 3),
                "ttfa_ours_over_peer": round(ours_m["ttfa_s"] / whole_m["ttfa_s"], 3),
                "ttfa_ours_over_peer_stream": round(ours_m["ttfa_s"] / streamed_m["ttfa_s"], 3),
            },
            "peer_wer": peer_wer,
            "techniques": techniques,
            "all_runs": {"ours": ours, "peer_create": whole, "peer_create_stream": streamed},
        }
    )


if __name__ == "__main__":
    main()
