"""`align`: a clip's words aligned to its text (`evaluation.alignment`), printed as JSON; `--srt` and
`--vtt` also write captions from it (`evaluation.captions`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engines.base import EngineError, InputError
from evaluation import captions
from evaluation.alignment import align_clip

from .speech import read_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    align = sub.add_parser("align", help="which words of a text a clip says, and when (JSON); captions")
    align.add_argument("--audio", type=Path, required=True, help="the clip (wav, flac, ogg, mp3)")
    align.add_argument("--text")
    align.add_argument("--text-file", type=Path)
    align.add_argument("--language", default=None, help="language of the text (default: from its script, or English)")
    align.add_argument("--srt", type=Path, help="also write SubRip captions to this file")
    align.add_argument("--vtt", type=Path, help="also write WebVTT captions to this file")


def run(args: argparse.Namespace) -> int:
    text = read_text(args)
    if not text.strip():
        raise InputError("The text is empty; give the words the clip should say.")
    audio, rate = read_audio(args.audio)
    result = align_clip(audio, rate, text, args.language)
    joiner = "" if result.error_unit == "character" else " "
    for path, content in (
        (args.srt, captions.srt(result.words, joiner)),
        (args.vtt, captions.vtt(result.words, "asr", joiner)),
    ):
        if path is not None:
            try:
                path.write_text(content, encoding="utf-8")
            except OSError as exc:
                raise EngineError(f"Cannot write {path}: {exc.strerror or exc}") from None
    print(json.dumps(result.as_dict(), ensure_ascii=False))
    return 0


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate; one sentence when the file cannot be read as audio."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except OSError as exc:
        raise EngineError(f"Cannot read the audio file {path}: {exc.strerror or 'not a sound file'}.") from None
    except (RuntimeError, ValueError, sf.LibsndfileError):
        raise InputError(f"{path} is not an audio file this tool can read (wav, flac, ogg or mp3).") from None
    if not len(audio):
        raise InputError(f"{path} holds no audio.")
    return audio.mean(axis=1).astype(np.float32), int(rate)
