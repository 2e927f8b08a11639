"""Request validation at the boundary."""

from __future__ import annotations

import pytest

from engines.base import MAX_TEXT_CHARS, InputError, SynthesisRequest


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "enter some text"),
        ({"text": "   \n\t "}, "enter some text"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "limit is 5,000"),
        ({"text": "bell \x07 here"}, "control character \\(U\\+0007\\)"),
        ({"text": "ok", "voice": ""}, "choose a voice"),
        ({"text": "ok", "speed": 2.5}, "between 0.5 and 2.0"),
        ({"text": "ok", "speed": 0.1}, "between 0.5 and 2.0"),
        ({"text": "ok", "speed": "fast"}, "must be a number"),
    ],
)
def test_bad_requests_get_one_clear_sentence(kwargs, message):
    with pytest.raises(InputError, match=message):
        SynthesisRequest(**{"voice": "af_heart", **kwargs})


def test_good_request_keeps_newlines_and_tabs():
    req = SynthesisRequest("Line one.\nLine\ttwo.", "af_heart", speed="1.5")
    assert req.speed == 1.5
    assert "\n" in req.text
