"""The command line: `python -m engines list | synth | batch | compare | bench | serve`.

`list` prints the engines, their voices, availability and weights source as JSON, and every saved
voice (the operator sees every owner's: `<owner folder>/<name>`). `synth` writes
a clip (wav, flac, mp3, ogg, opus or pcm; `--lufs`, `--peak-normalize`, `--trim`, `--denoise`,
`--fade` post-process it). `batch` renders a .txt or CSV into numbered clips and `manifest.json`.
`compare` runs two slots on one text and writes `a.wav`, `b.wav`
and `metrics.json`. `bench` prints one JSON line with `audio_s, total_s, ttfa_s, rtf,
chunks`. Bad input ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

from . import registry
from .audio import FORMATS, OutputSettings, process, write
from .base import EngineError, SynthesisRequest
from .timing import RunStats, synthesize, timed_stream
from .voice_library import OPERATOR, list_voices


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engines", description="Text to speech from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="engines, voices and weights as JSON")
    sub.add_parser("serve", help="the engine tier on Ray Serve (python -m engines serve --help)")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--engine", default="kokoro", choices=sorted(registry.ENGINES))
        p.add_argument(
            "--voice",
            default="",
            help="Kokoro voice or blend (af_heart:0.7,af_bella:0.3), Qwen speaker, or saved clone",
        )
        p.add_argument("--speed", type=float, default=1.0)
        p.add_argument("--lang", default=None, help="language code or name (default: from the voice)")
        p.add_argument("--text-file", type=Path)
        p.add_argument("--instruct", help="style instruction (Qwen3-TTS 1.7B CustomVoice)")
        p.add_argument("--ref-audio", type=Path, help="reference clip to clone (qwen-clone)")
        p.add_argument("--ref-text", help="exact transcript of the reference (default: transcribed)")
        p.add_argument("--x-vector-only", action="store_true", help="clone the timbre only, no transcript needed")
        p.add_argument("--max-new-tokens", type=int, help="cap on generated codec frames (Qwen3-TTS)")

    synth = sub.add_parser("synth", help="write speech to a file")
    common(synth)
    synth.add_argument("--text")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--format", choices=sorted(FORMATS), default=None, help="default: from --out's suffix, else wav")
    _output_flags(synth)

    batch = sub.add_parser("batch", help="a .txt (one line per clip) or CSV (text,engine,voice) to clips + manifest")
    batch.add_argument("--in", dest="input", type=Path, required=True, help=".txt or .csv file")
    batch.add_argument("--engine", default="kokoro", choices=sorted(registry.ENGINES), help="default engine")
    batch.add_argument("--voice", default="", help="default voice (CSV rows may name their own)")
    batch.add_argument("--out-dir", type=Path, required=True)
    batch.add_argument("--format", choices=sorted(FORMATS), default="wav")
    batch.add_argument("--speed", type=float, default=1.0)
    batch.add_argument("--lang", default=None, help="language code or name (default: from the voice)")
    batch.add_argument("--max-new-tokens", type=int, help="cap on generated codec frames (Qwen3-TTS)")
    batch.add_argument("--zip", type=Path, help="also write the clips and manifest to this zip file")
    _output_flags(batch)

    compare = sub.add_parser("compare", help="the same text through two engines; writes a.wav, b.wav, metrics.json")
    compare.add_argument("--a", required=True, help="slot A as engine:voice, e.g. kokoro:af_heart")
    compare.add_argument("--b", required=True, help="slot B, e.g. qwen-custom:Ryan, or qwen-clone:@a to clone A")
    compare.add_argument("--text")
    compare.add_argument("--text-file", type=Path)
    compare.add_argument("--out-dir", type=Path, required=True)
    compare.add_argument("--lang", default=None, help="language of the text (default: automatic)")
    compare.add_argument("--ref-audio", type=Path, help="reference clip for a qwen-clone slot without a voice")
    compare.add_argument("--ref-text", help="exact transcript of the reference (default: transcribed)")
    compare.add_argument("--x-vector-only", action="store_true")

    bench = sub.add_parser("bench", help="time one synthesis; prints JSON")
    common(bench)
    bench.add_argument("--text")
    return parser


def _output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lufs", help="loudness target in LUFS, -40 to -5 (e.g. -23, -16, -14); true peak <= -1 dBFS")
    p.add_argument("--peak-normalize", action="store_true", help="true peak to -1 dBFS (when no --lufs)")
    p.add_argument("--trim", action="store_true", help="cut silence at both ends")
    p.add_argument("--denoise", action="store_true", help="noise reduction (noisereduce)")
    p.add_argument("--fade", action="store_true", help="20 ms fades at both ends")


def _settings(args: argparse.Namespace) -> OutputSettings:
    return OutputSettings(
        lufs=args.lufs, peak_normalize=args.peak_normalize, trim=args.trim, denoise=args.denoise, fade=args.fade
    )


def _batch(args: argparse.Namespace) -> int:
    from .batch import parse, render, zip_folder

    settings = _settings(args)
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        raise EngineError(f"Cannot read the batch file {args.input}: {exc.strerror or exc}") from None
    items = parse(data, args.input.name, args.engine, args.voice)
    try:
        manifest = render(
            items, args.out_dir, args.format, settings, args.speed, args.lang, args.max_new_tokens, owner=OPERATOR
        )
        archive = zip_folder(args.out_dir, args.zip) if args.zip else None
    except OSError as exc:
        raise EngineError(f"Cannot write to {args.out_dir}: {exc.strerror or exc}") from None
    for item in manifest["items"]:
        if item["error"]:
            print(f"item {item['index']}: {item['error']}", file=sys.stderr)
    summary = {k: manifest[k] for k in ("format", "rendered", "failed")}
    print(json.dumps({"out_dir": str(args.out_dir), "manifest": str(args.out_dir / "manifest.json"), **summary,
                      "zip": str(archive) if archive else None}))  # fmt: skip
    return 0 if manifest["rendered"] else 2


def _read_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return args.text
    if args.text_file is not None:
        try:
            return args.text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EngineError(f"Cannot read the text file {args.text_file}: {exc}") from None
    if sys.stdin is None or sys.stdin.isatty():
        raise EngineError("Give the text with --text, --text-file or on standard input.")
    return sys.stdin.read()


def _reference(args: argparse.Namespace) -> tuple:
    """The decoded --ref-audio with its settled transcript and mode (None when not given)."""
    reference, ref_text, x_vector_only = None, args.ref_text, args.x_vector_only
    if args.ref_audio is not None:
        from .reference import load_reference, settle_transcript

        try:
            data = args.ref_audio.read_bytes()
        except OSError as exc:
            raise EngineError(f"Cannot read the reference audio {args.ref_audio}: {exc.strerror or exc}") from None
        reference = load_reference(data)
        ref_text, x_vector_only, notice = settle_transcript(reference, ref_text, x_vector_only)
        if notice:
            print(notice, file=sys.stderr)
    return reference, ref_text, x_vector_only


def _request(args: argparse.Namespace) -> SynthesisRequest:
    reference, ref_text, x_vector_only = _reference(args)
    return SynthesisRequest(
        text=_read_text(args),
        voice=args.voice,
        speed=args.speed,
        language=args.lang,
        instruct=args.instruct,
        reference=reference,
        reference_text=ref_text,
        x_vector_only=x_vector_only,
        max_new_tokens=args.max_new_tokens,
        owner=OPERATOR,  # the machine's operator: every saved voice
    )


def _compare(args: argparse.Namespace) -> int:
    from evaluation.compare import CLONE_OF_A, parse_second, parse_slot, with_reference, write_pair
    from evaluation.pair import run_pair

    text = _read_text(args)
    reference, ref_text, x_vector_only = _reference(args)

    def slot(spec: str):
        parsed = replace(parse_slot(spec, OPERATOR), language=args.lang)
        if parsed.engine == "qwen-clone" and not parsed.voice:
            if reference is None:
                raise EngineError("A qwen-clone slot needs a saved voice (qwen-clone:NAME) or --ref-audio.")
            parsed = with_reference(parsed, reference, ref_text, x_vector_only)
        return parsed

    a = slot(args.a)
    b = parse_second(args.b, OPERATOR)
    if b != CLONE_OF_A:
        b = slot(args.b)
    first, second = run_pair(a, b, text)
    summary = write_pair(first, second, text, args.out_dir)
    for name, result in (("a", first), ("b", second)):
        if result.error:
            print(f"error in slot {name.upper()}: {result.error}", file=sys.stderr)
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if first.finished or second.finished else 2


def _list() -> dict:
    engines = []
    for info in registry.status():
        entry = asdict(info)
        entry["voices"] = [asdict(v) for v in info.voices]
        engines.append(entry)
    return {"engines": engines, "saved_voices": list_voices(OPERATOR)}  # every owner's: `<owner folder>/<name>`


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # generation chatter is not for a CLI user
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # the engine tier on Ray Serve (`serve/`, beside `api/`): its own options
        from serve.cli import main as serve_main

        return serve_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            print(json.dumps(_list(), ensure_ascii=False, indent=1))
            return 0
        if args.command == "compare":
            return _compare(args)
        if args.command == "batch":
            return _batch(args)
        request = _request(args)
        if args.command == "synth":
            fmt = args.format or (
                args.out.suffix.lstrip(".").lower() if args.out.suffix.lstrip(".").lower() in FORMATS else "wav"
            )
            settings = _settings(args)
            audio, _, stats = synthesize(args.engine, request)
            audio, notes = process(audio, settings=settings)
            try:
                write(args.out, audio, fmt)
            except OSError as exc:
                raise EngineError(f"Cannot write {args.out}: {exc.strerror or exc}") from None
            for note in notes:
                print(note, file=sys.stderr)
            print(json.dumps({"out": str(args.out), "format": fmt, **stats.summary()}))
            return 0
        registry.get(args.engine)  # load outside the timed run
        stats = RunStats(engine=args.engine)
        for _ in timed_stream(args.engine, request, stats):
            pass
        print(json.dumps(stats.summary()))
        return 0
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
