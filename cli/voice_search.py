"""`kokoro-voice`: find a Kokoro voice that sounds like a clip (`evaluation.voice_search`) and save it in the
operator's library (`VOICE_LIBRARY_DIR`), to speak as `synth --engine kokoro --voice NAME`. Prints the
search's figures as JSON; progress goes to stderr."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engines.base import EngineError
from engines.kokoro.voices import save_found_voice
from engines.reference import load_reference
from engines.voice_library import OPERATOR
from evaluation.voice_search import Progress, VoiceSearch
from service import voices
from service.caller import operator


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kokoro-voice", help="find a Kokoro voice that sounds like a clip; saved as --out NAME")
    p.add_argument("--audio", type=Path, required=True, help="the clip to sound like (3 to 30 s of speech)")
    p.add_argument("--text", help="the clip's exact transcript (default: transcribed)")
    p.add_argument("--out", required=True, help="name of the found voice (then speak it with --voice NAME)")
    p.add_argument("--budget-s", type=float, default=300.0, help="compute time the search may take (default 300)")
    p.add_argument("--exclude", nargs="*", default=[], metavar="VOICE", help="stock voices not to start from")
    p.add_argument("--max-evaluations", type=int, help="stop after this many candidate voices")
    p.add_argument("--overwrite", action="store_true", help="replace a found voice of the same name")


def run(args: argparse.Namespace) -> int:
    try:
        data = args.audio.read_bytes()
    except OSError as exc:
        raise EngineError(f"Cannot read the clip {args.audio}: {exc.strerror or exc}") from None
    clip = load_reference(data)
    text, _, notice = voices.settle(operator(), clip, args.text, False)
    if not text:
        raise EngineError("No words could be heard in the clip; give its transcript with --text.")
    if notice:
        print(notice, file=sys.stderr)
    search = VoiceSearch(
        clip.audio, text, exclude=tuple(args.exclude), budget_s=args.budget_s, max_evaluations=args.max_evaluations
    )
    found = search.run(progress=_report)
    slug = save_found_voice(args.out, found.table, OPERATOR, args.overwrite, {"text": text, **found.summary()})
    print(json.dumps({"voice": slug, **found.summary()}))
    return 0


def _report(progress: Progress) -> None:
    print(
        f"{progress.stage}: {progress.evaluations} voices tried, best similarity {progress.best_similarity:.3f} "
        f"(start {progress.start_similarity:.3f}), {progress.elapsed_s:.0f} of {progress.budget_s:.0f} s",
        file=sys.stderr,
    )
