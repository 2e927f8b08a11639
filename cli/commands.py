"""The parser and the dispatch of `python -m engines list | synth | batch | compare | bench | align |
kokoro-voice | serve`.

`list` prints the engines, their voices, availability and weights source as JSON, and every saved
voice (the operator sees every owner's: `<owner folder>/<name>`). `synth` writes a clip (wav, flac,
mp3, ogg, opus or pcm; `--lufs`, `--peak-normalize`, `--trim`, `--denoise`, `--fade` post-process it).
`batch` renders a .txt or CSV into numbered clips and `manifest.json`. `compare` runs two slots on one
text and writes `a.wav`, `b.wav` and `metrics.json`. `bench` prints one JSON line with `audio_s,
total_s, ttfa_s, rtf, chunks`. `align` prints which words of a text a clip says and when (JSON;
`--srt`/`--vtt` write captions). `kokoro-voice` finds a Kokoro voice that sounds like a clip and saves it
(`cli.voice_search`). `serve` starts the engine tier on a local Ray Serve (`serve.cli`, its own options).
Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from engines.base import EngineError
from engines.settings import settings_or_exit

from . import align, batch, compare, script, speech, voice_search

# subcommand -> (adds its parser to the subparsers, runs it: exit status), in the order `--help` lists them
COMMANDS: dict[str, tuple[Callable, Callable[[argparse.Namespace], int]]] = {
    "list": (speech.add_list, speech.run_list),
    "synth": (speech.add_synth, speech.run_synth),
    "batch": (batch.add_parser, batch.run),
    "compare": (compare.add_parser, compare.run),
    "bench": (speech.add_bench, speech.run_bench),
    "align": (align.add_parser, align.run),
    "kokoro-voice": (voice_search.add_parser, voice_search.run),
    "script": (script.add_parser, script.run),
}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engines", description="Text to speech from the command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    sub.add_parser("serve", help="the engine tier on Ray Serve (python -m engines serve --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    settings_or_exit()  # a bad variable: one sentence and exit status 2, before anything runs
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    # a write that configures transformers, which reads TRANSFORMERS_VERBOSITY: generation chatter is not for a CLI user
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # the engine tier (`serve/`): its own options, and Ray only when asked for
        from serve.cli import main as serve_main

        return serve_main(argv[1:])
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
