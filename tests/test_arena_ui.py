"""The arena as the page uses it: a blind pair names nothing before the vote, the vote opens only after
listening, a damaged vote database turns votes off, and comparing still works."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from engines.base import AudioChunk, EngineError
from engines.runtime.timing import RunStats
from evaluation.arena import Arena
from evaluation.ballot import Ballots
from evaluation.compare import ClipResult, Slot
from ui import arena_tab, compare_tab


@pytest.fixture(autouse=True)
def no_proof_of_work(monkeypatch):
    """These tests are about listening and limits; the proof of work has tests of its own."""
    monkeypatch.setenv("ARENA_POW_BITS", "0")


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
    reveal, table, state, board, line, status_a, status_b, agreed = arena_tab.vote_on(current, "b", "me")
    assert "Not stored" in reveal and "kokoro:jf_alpha" in reveal and state["voted"]
    assert board == [] == agreed and "Votes are off" in line
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

    def fake_stream(engine_id, request, stats, **turn):
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

    from engines.runtime import registry

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
        assert any(s.startswith("qwen-clone:narrator~") for s in systems) is cloning  # with its owner's tag


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

    def fake_stream(engine_id, request, stats, **turn):
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


# ----- prompt categories, reason tags and the figures after the vote -------------------------------------


@pytest.fixture()
def votes(tmp_path, monkeypatch, ballots):
    arena = Arena(tmp_path / "votes.sqlite3")
    monkeypatch.setattr(arena_tab, "ARENA", arena)
    yield arena
    arena.close()


NAMES = "Siobhan and Niamh met Saoirse outside the theatre in Galway."  # built-in prompts: the main board
SPANISH = "El tren salió temprano y llegamos a la ciudad antes del mediodía."


def measured_pair(who: str, ballots, clock, text: str = NAMES) -> dict:
    current = heard_pair(who, ballots, clock)
    current["text"] = text
    current["results"]["A"].metrics = {"error_rate": 0.0, "error_unit": "word", "mos": 3.1, "duration_s": 2.0}
    current["results"]["B"].metrics = {"error_rate": 0.25, "error_unit": "word", "mos": 3.4, "ttfa_s": 0.5}
    return current


def test_a_vote_stores_its_reason_tags_and_shows_the_figures_next_to_the_outcome(votes, ballots):
    import gradio as gr

    current = measured_pair("me", *ballots)
    with pytest.raises(gr.Error) as caught:  # a tag that is not one: one sentence, and the vote is not used up
        arena_tab.vote_on(current, "a", "me", ["loudness"])
    assert caught.value.message.startswith("A reason is one or more of naturalness, pronunciation, pacing")
    reveal, _, state, board, _, _, _, agreed = arena_tab.vote_on(current, "a", "me", ["pacing", "voice_quality"])
    assert reveal.startswith("Vote stored: A is better. Why: pacing, voice quality. A was **kokoro:jm_kumo**")
    table = [line for line in reveal.splitlines() if line.startswith("| ")]
    assert table[0] == "| | system | vote | error rate | predicted MOS | duration | first audio |"
    assert table[1] == "| A | kokoro:jm_kumo | chosen | 0.0% of words (better) | 3.10 | 2.0 s | not measured |"
    assert table[2] == "| B | kokoro:jf_alpha | not chosen | 25.0% of words | 3.40 (better) | not measured | 0.50 s |"
    assert "The clip with the lower error rate was A: your choice." in reveal
    assert "The clip with the higher predicted MOS was B: not your choice." in reveal
    assert votes.votes()[0]["reasons"] == ["pacing", "voice_quality"] and votes.votes()[0]["category"] == "names"
    assert board[0][8] == "pacing 1, voice quality 1" and board[1][9] == "pacing 1, voice quality 1"
    assert board[0][12] == "all votes" and len(board[0]) == len(arena_tab.BOARD_HEADERS)
    assert board[0][10:12] == [0, 0]  # none flagged, none left out
    assert agreed[0] == ["lower error rate", "all", 1, 1, "100% (21% – 100%)", 0]  # one vote: a wide interval
    assert ["lower error rate", "Names", 1, 1, "100% (21% – 100%)", 0] in agreed
    assert ["higher predicted MOS", "all", 1, 0, "0% (0% – 79%)", 0] in agreed


def test_a_stranger_cannot_vote_on_a_pair_or_vote_twice_with_reason_tags(votes, ballots):
    import gradio as gr

    current = measured_pair("me", *ballots)
    with pytest.raises(gr.Error, match="not served to you"):
        arena_tab.vote_on(current, "a", "stranger", ["pronunciation"])
    arena_tab.vote_on(current, "b", "me", ["artefacts"])
    for who, tags in (("me", ["naturalness"]), ("me", []), ("stranger", ["pacing"])):
        with pytest.raises(gr.Error, match="already voted|not served to you"):
            arena_tab.vote_on(current, "a", who, tags)
    assert [(v["choice"], v["reasons"]) for v in votes.votes()] == [("b", ["artefacts"])]


def test_the_tab_boards_come_from_their_category_and_language_and_say_which_they_are(votes, ballots):
    import gradio as gr

    arena_tab.vote_on(measured_pair("me", *ballots), "a", "me")
    arena_tab.vote_on(measured_pair("me", *ballots, text=SPANISH), "b", "me")
    arena_tab.vote_on(measured_pair("me", *ballots, text="My own typed words."), "b", "me")
    names, spanish = arena_tab.leaderboard("names"), arena_tab.leaderboard("all", "es")
    assert [(r[0].split(" ")[0], r[3], r[4], r[12]) for r in names] == [
        ("kokoro:jm_kumo", 1, 1, "category names"), ("kokoro:jf_alpha", 1, 0, "category names"),
    ]  # fmt: skip
    assert [r[0].split(" ")[0] for r in spanish] == ["kokoro:jf_alpha", "kokoro:jm_kumo"] and spanish[0][
        12
    ] == "language es"
    assert arena_tab.leaderboard("dialogue") == [] and len(arena_tab.leaderboard()) == 2
    line = arena_tab.board_line("names", "all")
    assert line == "Board: **category names** · 1 vote counted · 0 flagged · 0 left out."
    assert arena_tab.board_line() == "Board: **all votes** · 2 votes counted · 0 flagged · 0 left out."
    assert arena_tab.board_line(prompts_of="typed").startswith("Board: **typed texts** · 1 vote counted")
    typed = arena_tab.leaderboard(prompts_of="typed")
    assert [r[12] for r in typed] == ["typed texts"] * 2 and sum(r[3] for r in typed) == 2
    for bad in (("poetry", "all"), ("all", "klingon")):
        with pytest.raises(gr.Error) as caught:
            arena_tab.leaderboard(*bad)
        assert caught.value.message.startswith(("A prompt category is one of", "A language is an ISO code"))
    with pytest.raises(gr.Error, match="A language is an ISO code"):
        arena_tab.better_measured_chosen("klingon")


def test_a_drawn_prompt_is_of_the_chosen_category_and_not_one_just_heard():
    import gradio as gr

    recent: list = []
    for _ in range(5):
        text, line, recent = arena_tab.pick_prompt("numbers", recent)
        assert line.startswith("Prompt: **Numbers, dates, URLs**") and recent[-1] == text
    assert len(set(recent)) == 5
    assert arena_tab.kind_line("Hola, ¿cómo estás? Hace mucho que no te veo.") == "Prompt: **Non-English** · Spanish"
    with pytest.raises(gr.Error) as caught:
        arena_tab.pick_prompt("poetry", [])
    assert caught.value.message.startswith("A prompt category is one of short, long")


def test_a_non_english_pair_is_spoken_in_its_language_and_its_kind_is_shown_without_naming_a_system(
    blind_engines, monkeypatch
):
    from evaluation import compare

    asked = []
    real = compare.timed_stream

    def stream(engine_id, request, stats, **turn):
        asked.append((engine_id, request.language))
        yield from real(engine_id, request, stats, **turn)

    monkeypatch.setattr(compare, "timed_stream", stream)
    ui = {**UI, "kind": "kind", "reasons": "reasons"}
    text = "Il pleuvait depuis le matin, alors nous sommes restés à la maison."
    updates = list(arena_tab.pair_updates(text, "me", ui))
    assert updates[0]["kind"] == "Prompt: **Non-English** · French" and updates[0]["reasons"]["value"] == []
    assert len(asked) == 2 and {language for _, language in asked} == {"fr"}  # both engines list French
    shown = [s for u in updates for k, v in u.items() if k not in ("pair", "player-A", "player-B") for s in strings(v)]
    assert not [s for s in shown if FORBIDDEN.search(s)], shown
    asked.clear()
    list(arena_tab.pair_updates("Hello there.", "me", ui))
    assert {language for _, language in asked} == {None}  # English: as before, the voice's own reading


def test_the_board_says_how_it_is_protected_with_the_settings_in_force(monkeypatch):
    for name in ("ARENA_POW_BITS", "ARENA_REQUIRE_LOGIN", "ARENA_VOTES_PER_HOUR", "ARENA_VOTES_PER_DAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARENA_POW_BITS", "15")
    line = arena_tab.protection_line()
    assert "once per person" in line and "at most 60 an hour and 200 a day" in line and "(15 bits)" in line
    assert "more than 30 an hour" in line and "80% or more" in line and "fewer than 30 counted votes" in line
    assert "only signed-in votes count" not in line
    monkeypatch.setenv("ARENA_POW_BITS", "0")
    monkeypatch.setenv("ARENA_REQUIRE_LOGIN", "1")
    monkeypatch.setenv("ARENA_VOTES_PER_HOUR", "5")
    line = arena_tab.protection_line()
    assert "proof of work" not in line and "only signed-in votes count" in line and "at most 5 an hour" in line


def test_the_counting_key_is_the_account_else_the_address_never_the_session():
    from types import SimpleNamespace

    def request(session: str, account: str | None = None):
        scope = {"session": {"oauth_info": {"userinfo": {"sub": account}}} if account else {}}
        inner = SimpleNamespace(
            scope=scope, session=scope["session"], client=SimpleNamespace(host="10.1.2.3"), headers=Headers()
        )
        return SimpleNamespace(session_hash=session, request=inner, client=inner.client, headers=inner.headers)

    class Headers(dict):
        def getlist(self, name):
            return []

    assert arena_tab.voter(request("s1")) == arena_tab.voter(request("s2"))  # a new session is the same person
    assert arena_tab.voter(request("s1", "12345")) == "hf:12345"
    assert arena_tab.visitor(request("s1")) != arena_tab.visitor(request("s2"))  # pairs stay bound to a session
