"""The `qwen_tts` package, imported quietly: a leaf that `engines.qwen.engine` (the model class) and
`engines.voice_library` (the saved prompt's item class) both use, so neither imports the other."""

from __future__ import annotations

import contextlib
import os


def import_qwen_tts():
    """Import qwen_tts without its flash-attn notice (printed to stdout, it would corrupt the CLI's JSON)."""
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        import qwen_tts.inference.qwen3_tts_model as module
    return module
