"""Voice catalogue, blend specs and blending maths, language choice."""

from __future__ import annotations

import numpy as np
import pytest

from engines.base import InputError
from engines.kokoro.voices import auto_language, blend, catalogue, language_code, parse_voice_spec


def test_catalogue_has_the_54_official_voices():
    voices = catalogue()
    assert len(voices) == 54
    assert voices["af_heart"]["grade"] == "A" and voices["af_heart"]["language"] == "American English"
    counts = {}
    for v in voices.values():
        counts[v["lang_code"]] = counts.get(v["lang_code"], 0) + 1
    assert counts == {"a": 20, "b": 8, "j": 5, "z": 8, "e": 3, "f": 1, "h": 4, "i": 2, "p": 3}


def _as_dict(spec):
    return dict(parse_voice_spec(spec))


def test_weighted_blend_spec_is_normalised():
    assert _as_dict("af_heart:0.7,af_bella:0.3") == pytest.approx({"af_heart": 0.7, "af_bella": 0.3})
    assert _as_dict("af_heart:3,af_bella:1") == pytest.approx({"af_heart": 0.75, "af_bella": 0.25})
    assert _as_dict("af_heart,af_bella") == pytest.approx({"af_heart": 0.5, "af_bella": 0.5})
    assert _as_dict(" af_heart ") == {"af_heart": 1.0}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("af_nobody", "Unknown Kokoro voice"),
        ("af_heart:abc", "not a number"),
        ("af_heart:0,af_bella:0", "add up to zero"),
        ("af_heart:-1", "zero or more"),
        ("af_heart,,af_bella", "empty entry"),
        ("af_heart:inf", "zero or more"),
    ],
)
def test_bad_blend_specs_get_one_clear_sentence(spec, message):
    with pytest.raises(InputError, match=message):
        parse_voice_spec(spec)


def test_blend_is_the_weighted_sum_row_by_row():
    a = np.ones((510, 256), np.float32)
    b = np.full((510, 256), 3.0, np.float32)
    out = blend([a, b], [0.25, 0.75])
    assert out.shape == (510, 256)
    assert np.allclose(out, 2.5)


def test_language_names_codes_and_aliases():
    assert language_code("British English") == "b"
    assert language_code("en-gb") == "b"
    assert language_code("j") == "j"
    assert language_code("Auto") is None and language_code(None) is None
    with pytest.raises(InputError, match="Unknown language"):
        language_code("Klingon")


def test_japanese_voices_read_latin_text_as_english():
    assert auto_language([("jm_kumo", 1.0)], "Hello there.") == "a"
    assert auto_language([("jm_kumo", 1.0)], "今日は") == "j"
    assert auto_language([("bf_emma", 0.4), ("ff_siwis", 0.6)], "Bonjour") == "f"
