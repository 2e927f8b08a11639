"""The arena as the page uses it: a damaged vote database turns votes off, and comparing still works."""

from __future__ import annotations

import numpy as np
import pytest

from engines.base import AudioChunk
from engines.timing import RunStats
from evaluation.arena import Arena
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
        arena_tab.vote_on(None, "a")
    with pytest.raises(gr.Error, match="Both clips must finish before you vote."):
        arena_tab.vote_on({"text": "hi", "results": {"A": finished_clip()}, "voted": False}, "a")


def test_a_finished_pair_is_revealed_even_when_votes_are_off(damaged):
    second = finished_clip()
    second.slot = Slot("kokoro", "jf_alpha")
    reveal, table, state, board, line = arena_tab.vote_on(
        {"text": "hi", "results": {"A": finished_clip(), "B": second}, "voted": False}, "b"
    )
    assert "Not stored" in reveal and "kokoro:jf_alpha" in reveal and state["voted"]
    assert board == [] and "Votes are off" in line


def test_the_compare_tab_streams_both_slots_at_once_when_they_run_together(damaged, monkeypatch):
    import threading

    from evaluation import compare

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
    monkeypatch.setattr(compare_tab, "runs_together", lambda a, b: True)
    monkeypatch.setattr(compare_tab, "measure", lambda result, text: {"duration_s": result.audio.size / 24_000})
    ui = {"A": ("player-a", "status-a"), "B": ("player-b", "status-b")}
    ui.update({key: key for key in ("notice", "table", "chart", "pictures", "file", "state")})
    slots = {"A": Slot("kokoro", "jm_kumo"), "B": Slot("qwen-custom", "Ryan")}
    events = list(compare_tab.run_slots("Hello there.", slots, ui))
    plays = [("A" if "player-a" in e else "B") for e in events if "player-a" in e or "player-b" in e]
    assert plays.count("A") >= 2 and "B" in plays and plays.index("B") < len(plays) - 1 - plays[::-1].index("A")
    assert any("run together" in str(e.get("notice", "")) for e in events)
    results = events[-1]["state"]
    assert all(r.together and r.finished and r.metrics["duration_s"] == 1.0 for r in results.values())


def test_the_blind_pool_holds_preset_voices_and_saved_clones_when_cloning_is_there(monkeypatch):
    import dataclasses

    from engines import registry

    monkeypatch.delenv("ARENA_SYSTEMS", raising=False)
    monkeypatch.setattr(arena_tab, "list_voices", lambda: ["narrator"])
    real = registry.info
    for cloning in (False, True):

        def info(engine_id, cloning=cloning):
            found = real(engine_id)
            return dataclasses.replace(found, available=cloning) if engine_id == "qwen-clone" else found

        monkeypatch.setattr(arena_tab.registry, "info", info)
        systems = {slot.system for slot in arena_tab.pool()}
        assert "kokoro:jm_kumo" in systems  # a packaged preset voice
        assert ("qwen-clone:narrator" in systems) is cloning
