"""The one admission (`service.admission`): requests, compute, bytes and characters per caller."""

from __future__ import annotations

import pytest

from engines.base import InputError, RateLimited
from service import admission
from service.admission import Admission
from service.caller import Caller, operator
from service.limits import RateLimiter


def test_a_caller_is_limited_by_its_key_else_by_its_address():
    assert Caller("1.2.3.4", "v1", key="key:abc").bucket == "key:abc"
    assert Caller("1.2.3.4", "page", owner="visitor:x").bucket == "ip:1.2.3.4"  # owner tokens are free
    assert operator().bucket == "operator"


def test_requests_past_the_rate_are_refused_with_a_retry_time_and_one_sentence():
    gate, caller = Admission(rate=2, compute_s=60, upload_mb=64, chars=1000), Caller("10.0.0.1")
    gate.admit(caller)
    gate.admit(caller)
    with pytest.raises(RateLimited) as refused:
        gate.admit(caller)
    assert str(refused.value) == "Too many requests: at most 2 a minute from one client; try again in 30 s."
    assert refused.value.retry_after_s == pytest.approx(30, abs=1)
    gate.admit(Caller("10.0.0.2"))  # another address has its own allowance


def test_compute_is_spent_by_cost_and_a_refusal_spends_nothing():
    gate, caller = Admission(rate=100, compute_s=60, upload_mb=64, chars=1000), Caller("10.0.0.3")
    gate.admit(caller, compute_s=100)  # larger than the bucket: passes on a full one, leaves a debt
    with pytest.raises(RateLimited, match="share of the server's compute") as refused:
        gate.admit(caller, compute_s=1)
    assert refused.value.retry_after_s > 39  # the 40 s of debt plus the 1 s asked, at 1 s a second
    requests_left = gate.requests.wait(caller.bucket, 99)
    assert requests_left == 0  # the refused call took no request from the rate allowance


def test_a_call_no_allowance_can_hold_is_refused_as_too_large():
    gate, caller = Admission(rate=100, compute_s=60, upload_mb=1, chars=1000), Caller("10.0.0.4")
    with pytest.raises(InputError, match="split it"):
        gate.admit(caller, compute_s=60 * admission.MAX_CALL_MINUTES + 1)
    with pytest.raises(InputError, match="too long"):
        gate.admit(caller, chars=4_000_000)
    with pytest.raises(InputError, match="larger than"):
        gate.admit(caller, nbytes=2 * 1024 * 1024)
    gate.admit(caller, compute_s=1, nbytes=1000, chars=10)


def test_the_servers_admission_follows_its_settings(monkeypatch):
    monkeypatch.setenv("API_RATE_PER_MIN", "1")
    caller = Caller("10.0.0.5")
    admission.admit(caller)
    with pytest.raises(RateLimited):
        admission.admit(caller)
    monkeypatch.setenv("API_RATE_PER_MIN", "0")  # 0 turns the request limit off
    for _ in range(5):
        admission.admit(caller)


def test_speech_costs_more_for_longer_text():
    assert admission.speech_cost("kokoro", "x" * 5000) == pytest.approx(1000 * admission.speech_cost("kokoro", "xxxxx"))
    assert admission.plan_cost("x" * 5000) > admission.plan_cost("x" * 50) > 0


def test_an_amount_is_spent_and_refilled():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    assert limiter.take("a", 50) == 0.0
    assert limiter.take("a", 20) == pytest.approx(10.0)  # 10 left, 20 asked: 10 s at one a second
    now[0] += 10
    assert limiter.take("a", 20) == 0.0


def test_the_recogniser_on_a_reference_clip_is_admitted_by_the_seconds_heard(monkeypatch):
    """`service.voices.transcribe`: a caller whose compute is spent is refused before the recogniser
    runs; a transcript given, or timbre only, asks no compute at all."""
    import numpy as np

    from engines.reference import Reference
    from service import voices

    heard = []

    def recogniser(reference, transcript, x_vector_only):
        heard.append(reference)
        return "two words", False, ""

    monkeypatch.setattr(voices, "settle_transcript", recogniser)
    monkeypatch.setenv("CALLER_COMPUTE_S_PER_MIN", "2")
    caller = Caller("10.0.0.9")
    clip = Reference(np.zeros(24_000 * 15, np.float32), 24_000, 24_000, 1, "d")  # 15 s heard
    assert voices.transcribe(caller, clip) == ("two words", "")  # 1.5 s of the 2 s allowance
    with pytest.raises(RateLimited, match="share of the server's compute"):
        voices.transcribe(caller, clip)
    assert len(heard) == 1  # the refused one never reached the recogniser
    assert voices.settle(caller, clip, "the words", False)[0] == "two words"  # typed: nothing to hear, admitted
    assert voices.settle(caller, clip, None, True)[0] == "two words"


def test_a_voice_typo_is_metered_like_any_request_and_refused_before_a_model_loads(monkeypatch):
    """`service.speech.enter` meters first, then asks the engine (`registry.check`): a typo is refused
    at once with no model loaded, and a stream of typos meets the rate limit like any request."""
    from engines.base import SynthesisRequest
    from engines.kokoro.engine import KokoroEngine
    from engines.runtime import registry
    from service import speech

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("KOKORO_MODEL", raising=False)
    monkeypatch.setenv("API_RATE_PER_MIN", "2")
    monkeypatch.setattr(registry, "_instances", {})
    monkeypatch.setattr(KokoroEngine, "load", lambda self, device: pytest.fail("a model was loaded"))
    caller, typo = Caller("10.0.0.9"), SynthesisRequest("Hello.", "zz_nobody")
    for _ in range(2):
        with pytest.raises(InputError, match="Unknown Kokoro voice 'zz_nobody'"):
            speech.enter(caller, "kokoro", typo)
    with pytest.raises(RateLimited, match="at most 2 a minute"):
        speech.enter(caller, "kokoro", typo)
