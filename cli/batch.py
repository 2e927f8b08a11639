"""`batch`: a .txt (one line per clip) or CSV (text,engine,voice) rendered into numbered clips and
`manifest.json` (`engines.batch_files`, `service.batch`), optionally zipped; `--align` checks each clip's words
(`evaluation.alignment`: `words` per item and `.srt`/`.vtt` captions); `--lexicon FILE.json`
pronounces its words as the file says."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engines.audio import FORMATS
from engines.base import EngineError
from engines.runtime import registry
from evaluation.alignment import align_manifest
from service import batch
from service.caller import operator

from .speech import lexicon_entries, lexicon_flag, output_flags, settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    batch = sub.add_parser("batch", help="a .txt (one line per clip) or CSV (text,engine,voice) to clips + manifest")
    batch.add_argument("--in", dest="input", type=Path, required=True, help=".txt or .csv file")
    batch.add_argument(
        "--engine", default=registry.default_engine(), choices=sorted(registry.ENGINES), help="default engine"
    )
    batch.add_argument("--voice", default="", help="default voice (CSV rows may name their own)")
    batch.add_argument("--out-dir", type=Path, required=True)
    batch.add_argument("--format", choices=sorted(FORMATS), default="wav")
    batch.add_argument("--speed", type=float, default=1.0)
    batch.add_argument("--lang", default=None, help="language code or name (default: from the voice)")
    batch.add_argument("--max-new-tokens", type=int, help="cap on generated codec frames (Qwen3-TTS)")
    batch.add_argument("--zip", type=Path, help="also write the clips and manifest to this zip file")
    batch.add_argument(
        "--align", action="store_true", help="check each clip's words with the ASR: `words` per item, .srt/.vtt"
    )
    lexicon_flag(batch)
    output_flags(batch)


def run(args: argparse.Namespace) -> int:
    from engines.batch_files import parse, zip_folder

    output = settings(args)
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        raise EngineError(f"Cannot read the batch file {args.input}: {exc.strerror or exc}") from None
    items = parse(data, args.input.name, args.engine, args.voice)
    try:
        manifest = batch.render(
            operator(), items, args.out_dir, args.format, output, args.speed, args.lang, args.max_new_tokens,
            lexicon=lexicon_entries(args),
        )  # fmt: skip
        if args.align:
            manifest = align_manifest(args.out_dir, manifest, args.lang)
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
