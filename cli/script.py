"""`script`: a script file (`Name: line` per line, SSML inline or one `<speak>` document) and a cast
(`cast.json`: speaker -> {"engine", "voice"}) rendered into one take, per-line files, their zip and
`manifest.json` (`service.script`). Run again into the same folder, it resumes after the last finished
line; Markdown headings become chapters (`take.m4b`, `take.cue`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engines.base import EngineError
from engines.script import parse, parse_cast, roles
from service.caller import operator
from service.script import DEFAULT_GAP_S, render_take


def add_parser(sub: argparse._SubParsersAction) -> None:
    script = sub.add_parser("script", help="a script with several speakers (and SSML) to one take + manifest")
    script.add_argument("file", type=Path, help="the script: 'Name: line' per line, or one <speak> document")
    script.add_argument("--cast", type=Path, help='cast.json: {"Ann": {"engine": "kokoro", "voice": "jf_alpha"}}')
    script.add_argument("--out", type=Path, required=True, help="folder for the take, lines/ and manifest.json")
    script.add_argument("--gap", type=float, default=DEFAULT_GAP_S, help="seconds of silence between lines")
    script.add_argument("--format", default="wav", help="wav, flac, mp3, ogg, opus or pcm")
    script.add_argument(
        "--check-words", action="store_true", help="check each line's words with the speech recogniser (manifest)"
    )


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"Cannot read the {what} {path}: {getattr(exc, 'strerror', None) or exc}") from None


def run(args: argparse.Namespace) -> int:
    lines = parse(_read(args.file, "script"))
    cast = roles(lines, parse_cast(_read(args.cast, "cast") if args.cast else {}))
    try:
        manifest = render_take(
            lines, cast, args.out, args.format, args.gap, caller=operator(), check_words=args.check_words
        )
    except OSError as exc:
        raise EngineError(f"Cannot write to {args.out}: {exc.strerror or exc}") from None
    for entry in manifest["lines"]:
        if entry["error"]:
            print(f"line {entry['index']}: {entry['error']}", file=sys.stderr)
    summary = {k: manifest.get(k) for k in ("take", "duration_s", "rendered", "failed", "resumed", "m4b", "cue")}
    print(json.dumps({"out_dir": str(args.out), "manifest": str(args.out / "manifest.json"), **summary}))
    return 0 if manifest["rendered"] else 2
