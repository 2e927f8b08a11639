"""The clip a browser sends back for Compare's "Kokoro in this browser" slot: bounded, checked, measured."""

from __future__ import annotations

import base64
import io
import json
import struct

import numpy as np
import pytest
import soundfile as sf

from engines.base import SAMPLE_RATE, InputError
from evaluation import kokoro_in_browser_clip
from evaluation.kokoro_in_browser_clip import MAX_SECONDS, decode, encode


def tone(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def one_sentence(message: str) -> bool:
    return message.count(".") <= 2 and "Traceback" not in message and "/" not in message.replace("16 to 48", "")


def test_a_good_clip_decodes_with_the_browsers_figures():
    clip = decode(encode(tone(1.5), backend="wasm", ttfa_s=0.8, rtf=2.5, model_download_s=3.4, chunks=2))
    assert clip.audio.dtype == np.float32 and len(clip.audio) == int(1.5 * SAMPLE_RATE)
    assert clip.backend == "wasm"
    assert clip.figures == {"ttfa_s": 0.8, "rtf": 2.5, "total_s": None, "model_download_s": 3.4, "chunks": 2.0}


def test_the_sample_rate_is_read_from_the_samples_and_resampled():
    clip = decode(encode(tone(1.0, 48_000), sample_rate=48_000))
    assert abs(clip.duration_s - 1.0) < 0.01 and len(clip.audio) == pytest.approx(SAMPLE_RATE, abs=5)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ("", "sent no audio"),
        ("not json", "could not be read"),
        ("[1, 2]", "could not be read"),
        (json.dumps({"wav": "%%%not base64"}), "not a WAV"),
        (json.dumps({"wav": base64.b64encode(b"RIFF1234WAVEjunk").decode()}), "not a WAV"),
        (json.dumps({"error": "Kokoro failed while rendering in this browser."}), "failed while rendering"),
        (encode(tone(0.05)), "too short"),
        (encode(np.zeros(SAMPLE_RATE, np.float32)), "silent"),
        (encode(tone(1.0, 8_000), sample_rate=8_000), "8000 Hz"),
        (encode(tone(MAX_SECONDS + 5, 16_000), sample_rate=16_000), "long"),
    ],
)
def test_bad_clips_are_refused_with_one_sentence(payload, says):
    with pytest.raises(InputError) as refused:
        decode(payload)
    assert says in str(refused.value)
    assert one_sentence(str(refused.value))


def test_a_payload_over_the_size_limit_is_refused_before_it_is_parsed(monkeypatch):
    monkeypatch.setattr(kokoro_in_browser_clip, "MAX_PAYLOAD_CHARS", 1000)
    with pytest.raises(InputError, match="too large"):
        decode(encode(tone(1.0)))


def test_a_wav_over_the_byte_limit_is_refused(monkeypatch):
    monkeypatch.setattr(kokoro_in_browser_clip, "MAX_WAV_BYTES", 10_000)
    with pytest.raises(InputError, match="too large"):
        decode(encode(tone(1.0)))


def test_a_header_that_lies_about_its_length_is_not_believed():
    buffer = io.BytesIO()
    sf.write(buffer, tone(1.0), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", 0x7FFFFFF0)  # claims about 12 hours of samples
    data[4:8] = struct.pack("<I", 0x7FFFFFF8)
    clip = decode(json.dumps({"wav": base64.b64encode(bytes(data)).decode()}))
    assert abs(clip.duration_s - 1.0) < 0.01


def test_a_stereo_clip_is_refused():
    with pytest.raises(InputError, match="not a WAV"):
        decode(encode(np.stack([tone(1.0), tone(1.0)], axis=1)))


@pytest.mark.parametrize("value", ["NaN", -1.0, 1e12, "1.0", True, None])
def test_figures_that_are_not_plausible_numbers_are_dropped(value):
    payload = json.loads(encode(tone(1.0)))
    payload.update(ttfa_s=value, rtf=value, backend="<script>")
    clip = decode(json.dumps(payload))
    assert clip.figures["ttfa_s"] is None and clip.figures["rtf"] is None and clip.backend is None


def test_a_payload_that_is_not_strict_json_is_refused_in_one_sentence():
    # NaN is not JSON (a browser's JSON.stringify writes null): the strict parser of every caller's JSON
    payload = json.loads(encode(tone(1.0)))
    payload.update(ttfa_s=float("nan"))
    with pytest.raises(InputError, match="could not be read"):
        decode(json.dumps(payload))
    with pytest.raises(InputError, match="could not be read"):
        decode("[" * 5_000 + "]" * 5_000)  # was a RecursionError


def test_the_browsers_own_error_is_cut_to_one_short_line():
    with pytest.raises(InputError) as refused:
        decode(json.dumps({"error": "x" * 5000 + "\n\nat worker.js:12"}))
    assert len(str(refused.value)) < 260 and "\n" not in str(refused.value)


def test_a_browser_that_cannot_run_it_asks_for_the_server_instead():
    reason = "This browser cannot run Kokoro itself (it lacks WebAssembly SIMD), so the server renders it."
    assert kokoro_in_browser_clip.fallback_reason(json.dumps({"error": reason, "fallback": True})) == reason
    assert kokoro_in_browser_clip.fallback_reason(json.dumps({"error": reason})) is None
    assert kokoro_in_browser_clip.fallback_reason(encode(tone(1.0))) is None
    assert kokoro_in_browser_clip.fallback_reason("{not json") is None


def test_a_browser_slot_is_measured_like_any_slot_with_the_browsers_own_figures(monkeypatch):
    from evaluation import metrics
    from evaluation.compare import IN_BROWSER, ClipResult, Slot, browser_slot, same_slot_notice, slot_summary
    from evaluation.pair import MetricsReady, SlotChunk, pair_events

    monkeypatch.setattr(metrics, "transcribe_words", lambda audio, rate, language: ("a tone", "en", []))
    monkeypatch.setattr(metrics, "predicted_mos", lambda audio, rate: 3.0)
    clip = decode(encode(tone(5.0), backend="wasm", ttfa_s=0.9, rtf=2.5, model_download_s=3.0))
    slot = browser_slot("jm_kumo", clip)
    assert slot.system == f"{IN_BROWSER}:jm_kumo" and slot.engine == "kokoro"
    assert not same_slot_notice(slot, Slot("kokoro", "jm_kumo"))  # the server's voice is another system
    events = list(pair_events("A tone.", {"B": slot}))
    pieces = [e for e in events if isinstance(e, SlotChunk)]
    assert len(pieces) >= 2  # handed to the player in pieces, levelled like any slot
    result = next(e for e in events if isinstance(e, MetricsReady)).results["B"]
    figures = result.metrics
    assert figures["ttfa_s"] == 0.9 and figures["rtf"] == 2.5 and figures["duration_s"] == 5.0
    assert figures["transcript"] == "a tone" and figures["error_rate"] is not None and figures["mos"] == 3.0
    summary = slot_summary(result)
    assert summary["rendered_in"] == "browser" and summary["system"] == "kokoro@browser:jm_kumo"
    assert summary["browser"] == {
        "backend": "wasm", "ttfa_s": 0.9, "rtf": 2.5, "total_s": None, "model_download_s": 3.0, "chunks": None,
    }  # fmt: skip
    assert "rendered_in" not in slot_summary(ClipResult(Slot("kokoro", "jm_kumo"), result.stats))  # unchanged


def test_the_api_says_a_browser_slot_runs_on_the_page_only():
    from evaluation.compare import parse_slot

    with pytest.raises(InputError, match="Compare page only"):
        parse_slot("kokoro@browser:jm_kumo")


def test_the_compare_tab_offers_the_browser_slot_and_falls_back_to_the_server_when_asked():
    from evaluation.compare import IN_BROWSER
    from ui.compare_tab import browser_js, engine_choices, make_slot, voice_choices

    assert engine_choices()[-1] == ("Kokoro in this browser", IN_BROWSER)
    assert voice_choices(IN_BROWSER) == voice_choices("kokoro")
    slot = make_slot(IN_BROWSER, "jm_kumo", None, "", None, encode(tone(1.0)))
    assert slot.browser is not None and slot.system == "kokoro@browser:jm_kumo"
    reason = "This browser cannot run Kokoro itself (it lacks WebAssembly SIMD), so the server renders it."
    fallback = make_slot(IN_BROWSER, "jm_kumo", None, "", None, json.dumps({"error": reason, "fallback": True}))
    assert fallback.browser is None and fallback.system == "kokoro:jm_kumo"
    with pytest.raises(InputError, match="sent no audio back"):
        make_slot(IN_BROWSER, "jm_kumo", None, "", None, "")  # the page's step did not run (a script)
    assert make_slot("kokoro", "jm_kumo", None, "").browser is None  # the server's slots as before
    assert browser_js().startswith("async (...args) =>") and IN_BROWSER in browser_js()


@pytest.mark.slow
def test_the_compare_buttons_page_step_finds_each_input_where_the_click_puts_it(monkeypatch):
    """`browser_js`'s spec names argument positions of the Compare click: each slot's engine and voice, its
    clip, and the visitor's owner token (a voice they found plans for them in the browser too)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import app
    from ui.compare_tab import browser_js

    demo = app.build()
    click = next(fn for fn in demo.fns.values() if fn.js and "compare-stop" in str(fn.js))
    ids = [getattr(block, "elem_id", None) for block in click.inputs]
    spec = json.loads(browser_js().rsplit(")(", 1)[1].removesuffix(", args)"))
    assert ids[spec["owner"]] == "owner-token"
    for slot in spec["slots"]:
        name = slot["name"]
        assert (ids[slot["engine"]], ids[slot["voice"]]) == (f"compare-{name}-engine", f"compare-{name}-voice")
        assert ids[slot["clip"]] == f"compare-{name}-browser-clip"
