"""`compare`: the same text through two slots (`evaluation.pair`); writes `a.wav`, `b.wav` and
`metrics.json` (`evaluation.compare`); `--lexicon FILE.json` pronounces its words in both slots."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from engines.base import EngineError
from engines.lexicon import mapping
from engines.runtime import registry
from engines.voice_library import OPERATOR
from evaluation.compare import CLONE_OF_A, parse_second, parse_slot, with_reference, write_pair
from service import pair as pairs
from service.caller import operator

from .speech import lexicon_entries, lexicon_flag, read_text, reference


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    lexicon_flag(compare)


def run(args: argparse.Namespace) -> int:
    text = read_text(args)
    clip, ref_text, x_vector_only = reference(args)
    entries = lexicon_entries(args)

    def slot(spec: str):
        parsed = parse_slot(spec, OPERATOR)
        lexicon = mapping(entries, registry.capabilities(parsed.engine).lexicon)
        parsed = replace(parsed, language=args.lang, lexicon=lexicon)
        if registry.capabilities(parsed.engine).clones and not parsed.voice:
            if clip is None:
                engine = parsed.engine
                raise EngineError(f"A {engine} slot needs a saved voice ({engine}:NAME) or --ref-audio.")
            parsed = with_reference(parsed, clip, ref_text, x_vector_only)
        return parsed

    a = slot(args.a)
    b = parse_second(args.b, OPERATOR)
    if b != CLONE_OF_A:
        b = slot(args.b)
    first, second = pairs.run(operator(), a, b, text)
    summary = write_pair(first, second, text, args.out_dir)
    for name, result in (("a", first), ("b", second)):
        if result.error:
            print(f"error in slot {name.upper()}: {result.error}", file=sys.stderr)
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if first.finished or second.finished else 2
