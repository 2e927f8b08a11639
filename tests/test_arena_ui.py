"""The arena as the page uses it: a blind pair names nothing before the vote, the vote opens only after
listening, a damaged vote database turns votes off, and comparing still works."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from engines.base import AudioChunk, EngineError
from engines.timing import RunStats
from evaluation.arena import Arena
from evaluation.ballot import Ballots
from evaluation.compare import ClipResult, Slot
from ui import arena_tab, compare_tab


@pytest.fixture()
def damaged(tmp_path, monkeypatch):
    path = tmp_path / "votes.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    arena = Arena(path)
    monkeypatch.setattr(compare_tab, "ARENA", arena)
    monkeypatch.setattr(arena_tab, "ARENA", arena)
    return arena


def finished_clip() -> ClipResult:
    result = ClipResult(Slot("kokoro", "jm_kumo"), RunStats(engine="kokoro"))
    result.chunks.append(AudioChunk(audio=np.zeros(2400, np.float32), text="hi", phonemes="", index=0))
    result.metrics = {"ttfa_s": 0.1}
    return result


def test_a_damaged_database_turns_votes_off_with_one_sentence(damaged):
    line = arena_tab.db_line()
    assert line.startswith("**Votes are off:**") and "damaged" in line
    assert arena_tab.leaderboard() == []


def test_runs_are_not_stored_but_comparing_goes_on(damaged):
    result = finished_clip()
    assert compare_tab.remember(result, "hi") is None and result.run_id is None


def test_a_vote_without_a_finished_pair_is_refused(damaged):
    import gradio as gr

    with pytest.raises(gr.Error, match="Both clips must finish before you vote."):
        arena_tab.vote_on(None, "a", "me")
    with pytest.raises(gr.Error, match="Both clips must finish before you vote."):
        arena_tab.vote_on({"text": "hi", "results": {"A": finished_clip()}, "voted": False}, "a", "me")


def heard_pair(who: str, ballots, clock) -> dict:
    """A finished pair served to `who`, both clips sent 5 s ago and reported played for 4 s."""
    second = finished_clip()
    second.slot = Slot("kokoro", "jf_alpha")
    token = ballots.serve(who)
    for slot in "AB":
        ballots.sent(token, slot)
        ballots.finished(token, slot, 6.0)
    clock.now += 5.0
    report = json.dumps({"run": token, "played_s": 4.0, "ended": False})
    assert arena_tab.heard(report, report, {"token": token, "results": {}}, who) is False  # not measured yet
    return {"token": token, "text": "hi", "results": {"A": finished_clip(), "B": second}, "voted": False}


@pytest.fixture()
def ballots(monkeypatch):
    clock = Clock()
    ballots = Ballots(clock=clock)
    monkeypatch.setattr(arena_tab, "BALLOTS", ballots)
    return ballots, clock


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_finished_pair_is_revealed_even_when_votes_are_off(damaged, ballots):
    current = heard_pair("me", *ballots)
    reveal, table, state, board, line, status_a, status_b = arena_tab.vote_on(current, "b", "me")
    assert "Not stored" in reveal and "kokoro:jf_alpha" in reveal and state["voted"]
    assert board == [] and "Votes are off" in line
    assert status_a.startswith("A was **kokoro:jm_kumo**") and "time to first audio" in status_a  # figures now


def test_the_vote_opens_only_after_both_clips_were_heard_by_this_visitor(tmp_path, monkeypatch, ballots):
    import gradio as gr

    monkeypatch.setattr(arena_tab, "ARENA", Arena(tmp_path / "votes.sqlite3"))
    ballot, clock = ballots
    second = finished_clip()
    second.slot = Slot("kokoro", "jf_alpha")
    token = ballot.serve("me")
    current = {"token": token, "text": "hi", "results": {"A": finished_clip(), "B": second}, "voted": False}
    for slot in "AB":
        ballot.sent(token, slot)
        ballot.finished(token, slot, 6.0)
    clock.now += 1.0
    early = json.dumps({"run": token, "played_s": 1.0, "ended": False})
    assert arena_tab.heard(early, early, current, "me") is False
    with pytest.raises(gr.Error, match="Listen to at least three seconds"):
        arena_tab.vote_on(current, "a", "me")
    clock.now += 3.0
    enough = json.dumps({"run": token, "played_s": 3.2, "ended": False})
    assert arena_tab.heard(enough, "not json", current, "me") is False  # B's report is not ours
    stale = json.dumps({"run": "an earlier pair", "played_s": 9.0, "ended": True})
    assert arena_tab.heard(enough, stale, current, "me") is False  # nor is a report on another run
    assert arena_tab.heard(enough, enough, current, "someone else") is False  # not their pair
    assert arena_tab.heard(enough, enough, current, "me") is True
    with pytest.raises(gr.Error, match="not served to you"):
        arena_tab.vote_on(current, "a", "someone else")
    reveal, *_ = arena_tab.vote_on(current, "a", "me")
    assert reveal.startswith("Vote stored: A is better.")
    with pytest.raises(gr.Error, match="already voted"):
        arena_tab.vote_on(current, "a", "me")
    assert len(arena_tab.ARENA.votes()) == 1


def test_the_compare_tab_streams_both_slots_at_once_when_they_run_together(damaged, monkeypatch):
    import threading

    from evaluation import compare, pair

    b_started = threading.Event()

    def fake_stream(engine_id, request, stats):
        if engine_id == "qwen-custom":
            b_started.set()
        for i in range(2):
            if engine_id == "kokoro" and i == 1:
                assert b_started.wait(timeout=20), "slot B did not start while slot A was speaking"
            stats.audio_s += 0.5
            noise = np.random.default_rng(i).standard_normal(12_000).astype(np.float32) * 0.1
            yield AudioChunk(audio=noise, text=request.text, phonemes="", index=i)

    monkeypatch.setattr(compare, "timed_stream", fake_stream)
    monkeypatch.setattr(pair, "runs_together", lambda a, b: True)
    monkeypatch.setattr(pair, "measure", lambda result, text: {"duration_s": result.audio.size / 24_000})
    ui = {"A": ("player-a", "status-a"), "B": ("player-b", "status-b")}
    ui.update({key: key for key in ("notice", "table", "chart", "pictures", "file", "state", "captions")})
    slots = {"A": Slot("kokoro", "jm_kumo"), "B": Slot("qwen-custom", "Ryan")}
    events = list(compare_tab.run_slots("Hello there.", slots, ui))
    a_plays = [i for i, e in enumerate(events) if "player-a" in e]
    b_started = next(i for i, e in enumerate(events) if "Loading" in str(e.get("status-b", "")))
    assert len(a_plays) >= 2 and any("player-b" in e for e in events)
    assert b_started < a_plays[-1]  # slot B was speaking before slot A's clip was through
    assert any("run together" in str(e.get("notice", "")) for e in events)
    results = events[-1]["state"]
    assert all(r.together and r.finished and r.metrics["duration_s"] == 1.0 for r in results.values())


def test_the_blind_pool_holds_preset_voices_and_saved_clones_when_cloning_is_there(monkeypatch):
    import dataclasses

    from engines import registry

    monkeypatch.delenv("ARENA_SYSTEMS", raising=False)
    monkeypatch.setattr(arena_tab, "arena_voices", lambda: [("owner-1", "narrator")])  # shared by its owner
    real = registry.info
    for cloning in (False, True):

        def info(engine_id, cloning=cloning):
            found = real(engine_id)
            return dataclasses.replace(found, available=cloning) if engine_id == "qwen-clone" else found

        monkeypatch.setattr(arena_tab.registry, "info", info)
        systems = {slot.system for slot in arena_tab.pool()}
        assert "kokoro:jm_kumo" in systems  # a packaged preset voice
        assert ("qwen-clone:narrator" in systems) is cloning


# Words and figures that would tell a listener which system spoke (engines, voices, back-ends, devices,
# weights) or how it performed, before the vote.
FORBIDDEN = re.compile(
    r"kokoro|qwen|82m|0\.6b|1\.7b|onnx|torch|cuda|cpu|int8|weights|packaged|back-?end|jm_kumo|jf_alpha|ryan|vivian"
    r"|real-time|first audio|lufs|\bwer\b|mos|similarity|\d+(\.\d+)?\s*(s|ms|sec|seconds|%)\b",
    re.IGNORECASE,
)


def strings(value) -> list[str]:
    """Every string in an update (plain values, gr.update dicts, tables), for scanning."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(k) + strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


@pytest.fixture()
def blind_engines(monkeypatch, tmp_path):
    """Two systems of two engines; Qwen's voice Ryan fails with a sentence that names it when asked."""
    from evaluation import compare, pair

    failing: set[str] = set()

    def fake_stream(engine_id, request, stats):
        if request.voice in failing:
            raise EngineError(f"Voice {request.voice!r} of Qwen3-TTS on cpu failed after 1.25 s.")
        for i in range(3):
            stats.audio_s += 0.5
            stats.ttfa_s = 0.42
            yield AudioChunk(audio=np.full(12_000, 0.05, np.float32), text=request.text, phonemes="", index=i)

    monkeypatch.setattr(compare, "timed_stream", fake_stream)
    monkeypatch.setattr(pair, "runs_together", lambda a, b: False)
    monkeypatch.setattr(pair, "measure", lambda result, text: {"ttfa_s": 0.42, "transcript": "hello", "mos": 3.1})
    monkeypatch.setenv("ARENA_SYSTEMS", "kokoro:jm_kumo qwen-custom:Ryan kokoro:jf_alpha")
    monkeypatch.setattr(arena_tab, "ARENA", Arena(tmp_path / "votes.sqlite3"))
    monkeypatch.setattr(arena_tab, "BALLOTS", Ballots())
    return failing


UI = {"A": ("player-A", "status-A"), "B": ("player-B", "status-B"), "notice": "notice", "table": "table"}
UI.update(pair="pair", buttons=["vote-a", "vote-b"])


def test_a_blind_pair_names_no_system_and_shows_no_figure_before_the_vote(blind_engines):
    for _ in range(4):
        updates = list(arena_tab.pair_updates("Hello there.", "me", UI))
        shown = [
            s for u in updates for k, v in u.items() if k not in ("pair", "player-A", "player-B") for s in strings(v)
        ]
        assert shown and not [s for s in shown if FORBIDDEN.search(s)], shown
        assert {"A is speaking…", "A is ready.", "B is speaking…", "B is ready."} <= set(shown)
        assert any(u.get("notice") == arena_tab.READY for u in updates)
        assert all(u["vote-a"]["interactive"] is False for u in updates if "vote-a" in u)  # nothing heard yet
        played = [json.loads(v) for u in updates for k, v in u.items() if k.startswith("player-")]
        assert {m["k"] for m in played} == {"start", "piece", "end"}  # the players' messages
        assert all(m["sr"] == 24_000 and m["pcm"] for m in played if m["k"] == "piece")
        assert not [m for m in played if "ttfa" in m]  # no figure travels to the page before the vote
        final = [u["pair"] for u in updates if u.get("pair") and u["pair"]["results"]][-1]
        assert {r.slot.system for r in final["results"].values()} <= {
            "kokoro:jm_kumo",
            "qwen-custom:Ryan",
            "kokoro:jf_alpha",
        }


def test_a_failing_slot_redraws_the_pair_without_saying_why(blind_engines, monkeypatch):
    blind_engines.add("Ryan")
    draws = iter([(Slot("qwen-custom", "Ryan"), Slot("kokoro", "jm_kumo"))])
    real = arena_tab.draw
    monkeypatch.setattr(arena_tab, "draw", lambda systems, excluded: next(draws, None) or real(systems, excluded))
    updates = list(arena_tab.pair_updates("Hello there.", "me", UI))
    shown = [s for u in updates for k, v in u.items() if k not in ("pair", "player-A", "player-B") for s in strings(v)]
    assert not [s for s in shown if FORBIDDEN.search(s)], shown
    assert "A could not be played; new pair…" in shown
    final = [u["pair"] for u in updates if u.get("pair") and u["pair"]["results"]][-1]
    assert "qwen-custom:Ryan" not in {r.slot.system for r in final["results"].values()}  # drawn again without it


def test_a_slot_failing_after_the_other_played_voids_the_pair(blind_engines, monkeypatch):
    blind_engines.add("Ryan")
    monkeypatch.setattr(
        arena_tab, "draw", lambda systems, excluded: (Slot("kokoro", "jm_kumo"), Slot("qwen-custom", "Ryan"))
    )
    updates = list(arena_tab.pair_updates("Hello there.", "me", UI))
    shown = [s for u in updates for k, v in u.items() if k not in ("pair", "player-A", "player-B") for s in strings(v)]
    assert not [s for s in shown if FORBIDDEN.search(s)], shown
    assert updates[-2]["notice"] == arena_tab.COULD_NOT_PLAY and updates[-2]["status-B"] == "B could not be played."
    assert json.loads(updates[-1]["player-B"])["k"] == "end"  # B's player is told the pair ended without it
    token = updates[0]["pair"]["token"]
    assert arena_tab.BALLOTS.problem("me", token) is not None
