"""`list`, `synth` and `bench`, and the inputs every subcommand shares: the text (`--text`,
`--text-file` or standard input), a reference clip to clone (`--ref-audio`), a pronunciation lexicon
(`--lexicon FILE.json`, `engines.lexicon`'s file form), the output flags."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from engines.audio import FORMATS, OutputSettings, process, write
from engines.base import EngineError, SynthesisRequest
from engines.lexicon import Entry, mapping, read_file
from engines.runtime import registry
from engines.runtime.timing import RunStats
from engines.voice_library import OPERATOR, list_voices
from service import speech as speak
from service import voices
from service.caller import operator


def add_list(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("list", help="engines, voices and weights as JSON")


def add_synth(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="write speech to a file")
    request_flags(synth)
    synth.add_argument("--text")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--format", choices=sorted(FORMATS), default=None, help="default: from --out's suffix, else wav")
    output_flags(synth)


def add_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="time one synthesis; prints JSON")
    request_flags(bench)
    bench.add_argument("--text")


def request_flags(p: argparse.ArgumentParser) -> None:
    """What one synthesis request takes (`synth`, `bench`)."""
    p.add_argument("--engine", default=registry.default_engine(), choices=sorted(registry.ENGINES))
    p.add_argument(
        "--voice",
        default="",
        help="Kokoro voice or blend (af_heart:0.7,af_bella:0.3), Qwen speaker, or saved clone",
    )
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--lang", default=None, help="language code or name (default: from the voice)")
    p.add_argument("--text-file", type=Path)
    p.add_argument(
        "--instruct", help="style instruction (Qwen3-TTS 1.7B CustomVoice), or the voice described (qwen-design)"
    )
    p.add_argument("--ref-audio", type=Path, help="reference clip to clone (qwen-clone)")
    p.add_argument("--ref-text", help="exact transcript of the reference (default: transcribed)")
    p.add_argument("--x-vector-only", action="store_true", help="clone the timbre only, no transcript needed")
    p.add_argument("--max-new-tokens", type=int, help="cap on generated codec frames (Qwen3-TTS)")
    lexicon_flag(p)


def lexicon_flag(p: argparse.ArgumentParser) -> None:
    """`--lexicon FILE.json` (`synth`, `bench`, `batch`, `compare`)."""
    p.add_argument(
        "--lexicon", type=Path,
        help='pronunciations: {"entries": [{"word", "phonemes" (Kokoro), "respelling" (Qwen3-TTS)}]}',
    )  # fmt: skip


def lexicon_entries(args: argparse.Namespace) -> tuple[Entry, ...]:
    """The entries of `--lexicon` (none without it), checked."""
    return read_file(args.lexicon) if getattr(args, "lexicon", None) is not None else ()


def output_flags(p: argparse.ArgumentParser) -> None:
    """The post-processing of a written clip (`synth`, `batch`)."""
    p.add_argument("--lufs", help="loudness target in LUFS, -40 to -5 (e.g. -23, -16, -14); true peak <= -1 dBFS")
    p.add_argument("--peak-normalize", action="store_true", help="true peak to -1 dBFS (when no --lufs)")
    p.add_argument("--trim", action="store_true", help="cut silence at both ends")
    p.add_argument("--denoise", action="store_true", help="noise reduction (noisereduce)")
    p.add_argument("--fade", action="store_true", help="20 ms fades at both ends")


def settings(args: argparse.Namespace) -> OutputSettings:
    return OutputSettings(
        lufs=args.lufs, peak_normalize=args.peak_normalize, trim=args.trim, denoise=args.denoise, fade=args.fade
    )


def read_text(args: argparse.Namespace) -> str:
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


def reference(args: argparse.Namespace) -> tuple:
    """The decoded --ref-audio with its settled transcript and mode (None when not given)."""
    clip, ref_text, x_vector_only = None, args.ref_text, args.x_vector_only
    if args.ref_audio is not None:
        from engines.reference import load_reference

        try:
            data = args.ref_audio.read_bytes()
        except OSError as exc:
            raise EngineError(f"Cannot read the reference audio {args.ref_audio}: {exc.strerror or exc}") from None
        clip = load_reference(data)
        ref_text, x_vector_only, notice = voices.settle(operator(), clip, ref_text, x_vector_only)
        if notice:
            print(notice, file=sys.stderr)
    return clip, ref_text, x_vector_only


def request(args: argparse.Namespace) -> SynthesisRequest:
    clip, ref_text, x_vector_only = reference(args)
    return SynthesisRequest(
        text=read_text(args),
        voice=args.voice or _designed_voice(args.engine),
        speed=args.speed,
        language=args.lang,
        instruct=args.instruct,
        reference=clip,
        reference_text=ref_text,
        x_vector_only=x_vector_only,
        max_new_tokens=args.max_new_tokens,
        owner=OPERATOR,  # the machine's operator: every saved voice
        lexicon=mapping(lexicon_entries(args), registry.capabilities(args.engine).lexicon),
    )


def _designed_voice(engine_id: str) -> str:
    """Without --voice, an engine that designs voices speaks its default described voice (--instruct replaces it)."""
    capabilities = registry.capabilities(engine_id)
    return capabilities.default_voice if capabilities.designs_voices else ""


def run_list(args: argparse.Namespace) -> int:
    engines = []
    for info in registry.status():
        entry = asdict(info)
        entry["voices"] = [asdict(v) for v in info.voices]
        engines.append(entry)
    listing = {"engines": engines, "saved_voices": list_voices(OPERATOR)}  # every owner's: `<owner folder>/<name>`
    print(json.dumps(listing, ensure_ascii=False, indent=1))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    speech = request(args)
    suffix = args.out.suffix.lstrip(".").lower()
    fmt = args.format or (suffix if suffix in FORMATS else "wav")
    audio, _, stats = speak.synthesize(operator(), args.engine, speech)
    audio, notes = process(audio, settings=settings(args))
    try:
        write(args.out, audio, fmt)
    except OSError as exc:
        raise EngineError(f"Cannot write {args.out}: {exc.strerror or exc}") from None
    for note in notes:
        print(note, file=sys.stderr)
    print(json.dumps({"out": str(args.out), "format": fmt, **stats.summary()}))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    speech = request(args)
    registry.get(args.engine)  # load outside the timed run
    stats = RunStats(engine=args.engine)
    for _ in speak.stream(operator(), args.engine, speech, stats):
        pass
    print(json.dumps(stats.summary()))
    return 0
