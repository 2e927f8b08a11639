"""How far the Arena's board can be trusted: votes counted per person, patterns flagged (weight 0, with the
reason), built-in prompts apart from typed texts, each (prompt, pair) once per voter, anonymous votes off the
board where sign-in is required, an audit export, CSV cells a spreadsheet cannot run, shared voices of two
owners as two systems, and votes of the older schema migrated and judged by the same rules."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from evaluation import arena as arena_module
from evaluation.arena import ALIKE, FAST, HOURLY, ONE_SIDED, UNHEARD, Arena, Rules, flags
from evaluation.ballot import counting_key
from evaluation.prompts import prompts

SCHEMA_1 = """
CREATE TABLE votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, text TEXT NOT NULL,
    a_system TEXT NOT NULL, a_engine TEXT NOT NULL, a_voice TEXT NOT NULL,
    b_system TEXT NOT NULL, b_engine TEXT NOT NULL, b_voice TEXT NOT NULL,
    left_system TEXT NOT NULL, right_system TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_bad')),
    a_metrics TEXT NOT NULL, b_metrics TEXT NOT NULL, a_run_id INTEGER, b_run_id INTEGER
);
PRAGMA user_version = 1;
"""  # the first schema: votes without category, voter or flags
PROMPTS = [p.text for p in prompts("short")] + [p.text for p in prompts("names")]


def clip(system: str) -> dict:
    engine, voice = system.split(":")
    return {"engine": engine, "voice": voice, "metrics": {"ttfa_s": 0.2}}


@pytest.fixture()
def arena(tmp_path, monkeypatch):
    for name in ("ARENA_REQUIRE_LOGIN", "ARENA_SECRET", "ARENA_EXPORT_TEXTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARENA_FLAG_FAST_S", "0")  # votes stored in a loop here; the rule has a test of its own
    board = Arena(tmp_path / "arena.sqlite3")
    yield board
    board.close()


def total(board: list[dict]) -> int:
    return sum(r["votes"] for r in board) // 2


def honest(arena: Arena, voters: int = 6) -> None:
    """Voters who each heard three prompts and favour kokoro:x two times in three."""
    for v in range(voters):
        for i, choice in enumerate(("a", "a", "b")):
            arena.record_vote(
                PROMPTS[i], clip("kokoro:x"), clip("qwen:y"), choice, voter=counting_key(None, f"10.0.1.{v}"),
                listened=True,
            )  # fmt: skip


def test_a_voter_who_always_picks_one_system_is_flagged_at_the_fifth_vote_and_the_board_is_unchanged(arena):
    honest(arena)
    before = arena.leaderboard()
    stuffer = counting_key(None, "203.0.113.5")
    ids = []
    for i in range(7):
        left = "a" if i % 2 else "b"  # the stuffer's system on either side: always picked
        sides = (clip("qwen:y"), clip("kokoro:x")) if left == "a" else (clip("kokoro:x"), clip("qwen:y"))
        for side, error in zip(sides, (0.1, 0.3) if left == "a" else (0.3, 0.1), strict=True):
            side["metrics"] = {"error_rate": error}  # the stuffer's pick always measured better
        ids.append(arena.record_vote(PROMPTS[i], *sides, "a" if left == "a" else "b", voter=stuffer, listened=True))
        if i == 3:
            assert arena.flag_of(ids[-1]) is None  # four votes: not yet a pattern
    assert {arena.flag_of(i) for i in ids} == {ONE_SIDED.format(share=0.8)}
    after = arena.leaderboard()
    assert [(r["system"], r["votes"], r["rating"]) for r in after] == [
        (r["system"], r["votes"], r["rating"]) for r in before
    ]
    assert {r["system"]: r["flagged"] for r in after} == {"kokoro:x": 7, "qwen:y": 7}
    assert arena.agreement()[0]["votes"] == 0  # flagged votes say nothing of the figures either
    trust = arena.trust()
    assert trust["counted"] == 18 and trust["flagged"] == 7 and trust["flags"] == {ONE_SIDED.format(share=0.8): 7}


def test_each_prompt_and_pair_counts_once_per_voter_and_typed_texts_have_their_own_board(arena):
    me = counting_key(None, "10.0.0.1")
    for _ in range(3):
        arena.record_vote(PROMPTS[0], clip("kokoro:x"), clip("qwen:y"), "tie", voter=me)
        arena.record_vote("My own words, typed.", clip("kokoro:x"), clip("qwen:y"), "tie", voter=me)
    arena.record_vote(PROMPTS[0], clip("kokoro:x"), clip("kokoro:z"), "tie", voter=me)  # another pair: counts
    arena.record_vote(PROMPTS[0], clip("kokoro:x"), clip("qwen:y"), "tie", voter=counting_key(None, "10.0.0.2"))
    main = {r["system"]: r for r in arena.leaderboard()}
    assert main["kokoro:x"]["votes"] == 3 and main["qwen:y"]["votes"] == 2 and main["kokoro:x"]["left_out"] == 2
    assert main["kokoro:x"]["board"] == "all votes"
    typed = arena.leaderboard(board="typed")
    assert total(typed) == 1 and typed[0]["board"] == "typed texts" and typed[0]["left_out"] == 2
    assert arena.trust()["left_out_for"] == {arena_module.REPEAT: 2}
    assert arena.trust(board="typed") == {
        "counted": 1, "flagged": 0, "left_out": 2, "flags": {}, "left_out_for": {arena_module.REPEAT: 2},
    }  # fmt: skip
    with pytest.raises(Exception, match="A board is"):
        arena.leaderboard(board="everything")


def test_with_sign_in_required_anonymous_votes_are_stored_but_left_out(arena, monkeypatch):
    arena.record_vote(PROMPTS[0], clip("kokoro:x"), clip("qwen:y"), "a", voter=counting_key(None, "10.0.0.1"))
    arena.record_vote(PROMPTS[0], clip("kokoro:x"), clip("qwen:y"), "a", voter=counting_key("hf:alice", "10.0.0.1"))
    assert total(arena.leaderboard()) == 2
    monkeypatch.setenv("ARENA_REQUIRE_LOGIN", "1")
    assert total(arena.leaderboard()) == 1 and len(arena.votes()) == 2
    assert arena.trust()["left_out_for"] == {arena_module.ANONYMOUS: 1}
    voters = [v["voter"] for v in arena.votes()]
    assert voters[0].startswith("ip:") and voters[1].startswith("hf:")
    assert all("10.0.0.1" not in v and "alice" not in v for v in voters)  # keyed hashes, not the key


def vote(i: int, voter: str, seconds: float, choice: str = "a", pair=("kokoro:x", "qwen:y"), listened=True) -> dict:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "id": i, "voter": voter, "created_at": (start + timedelta(seconds=seconds)).isoformat(),
        "a_system": pair[0], "b_system": pair[1], "choice": choice, "listened": listened,
    }  # fmt: skip


def test_each_pattern_is_flagged_with_its_reason_and_thresholds_are_settings(monkeypatch):
    rules = Rules()
    fast = [vote(i, "ip:f", 2.0 * i, "tie") for i in range(5)]
    assert set(flags(fast, rules).values()) == {FAST.format(s=3.0)}
    assert flags([vote(i, "ip:f", 10.0 * i, "tie") for i in range(5)], rules) == {}
    hourly = [vote(i, "ip:h", 100.0 * i, "tie") for i in range(32)]
    assert flags(hourly, rules) == {30: HOURLY.format(n=30), 31: HOURLY.format(n=30)}
    deaf = [vote(i, "ip:d", 60.0 * i, "tie", listened=False) for i in range(5)]
    assert set(flags(deaf, rules).values()) == {UNHEARD} and flags(deaf[:4], rules) == {}
    alike = [vote(10 * k + i, f"ip:g{k}", 600.0 * i + k, "b") for k in range(3) for i in range(5)]
    assert set(flags(alike, Rules(one_sided=1.0, min_votes=99)).values()) == {ALIKE}
    assert flags(alike[:10], Rules(one_sided=1.0, min_votes=99)) == {}  # two voters alike: not a group
    assert flags([{**v, "voter": None} for v in fast + deaf], rules) == {}  # older votes without a voter
    monkeypatch.setenv("ARENA_FLAG_PER_HOUR", "40")
    monkeypatch.setenv("ARENA_FLAG_MIN_VOTES", "6")
    assert Rules.from_env().per_hour == 40 and flags(hourly, Rules.from_env()) == {}
    assert flags(deaf, Rules.from_env()) == {}
    assert "more than 40 an hour" in Rules.from_env().describe()


def test_the_audit_lists_flagged_and_left_out_votes_and_csv_cells_cannot_run(arena, monkeypatch):
    monkeypatch.setenv("ARENA_EXPORT_TEXTS", "1")
    me = counting_key(None, "10.0.0.1")
    for text in ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tcmd", "\rcmd", "=cmd"):
        arena.record_vote(text, clip("kokoro:x"), clip("qwen:y"), "tie", voter=me)
    arena.record_vote("=cmd", clip("kokoro:x"), clip("qwen:y"), "tie", voter=me)  # a repeat: left out
    rows = list(csv.DictReader(io.StringIO(arena.export_csv("votes"))))
    assert [r["text"] for r in rows[:7]] == [
        '\'=HYPERLINK("http://x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tcmd",
        "'\rcmd",
        "'=cmd",
    ]
    assert json.loads(arena.export_json("votes"))[0]["text"] == '=HYPERLINK("http://x")'  # JSON keeps it as it is
    audit = list(csv.DictReader(io.StringIO(arena.export_audit())))
    assert [(r["id"], r["standing"], r["flag"]) for r in audit] == [("8", "left out", arena_module.REPEAT)]
    assert audit[0]["voter"].startswith("ip:") and "10.0.0.1" not in arena.export_audit()


def test_two_owners_shared_voices_of_one_name_are_two_systems(arena, monkeypatch):
    from evaluation.compare import Slot
    from ui import arena_tab

    monkeypatch.setattr(arena_tab, "ARENA", arena)
    # owner names with letters no hex tag has (a tag is 8 hex digits: "aa" was in one by chance)
    owners = ("visitor:quinn", "hf:bob")
    one, two = (Slot("qwen-clone", "narrator", owner=o, owner_tag=arena.owner_tag(o)) for o in owners)
    assert one.system != two.system and one.system.startswith("qwen-clone:narrator")
    assert "bob" not in two.system and "quinn" not in one.system
    assert arena.owner_tag("hf:bob") == Arena(arena.path).owner_tag("hf:bob")  # stable across restarts
    assert len(arena_tab.draw([one, two], set())) == 2


def test_votes_of_the_older_schema_keep_counting_and_are_judged_where_their_data_allows(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_1)
    for i in range(6):
        conn.execute(
            "INSERT INTO votes (created_at, text, a_system, a_engine, a_voice, b_system, b_engine, b_voice,"
            " left_system, right_system, choice, a_metrics, b_metrics)"
            " VALUES (?, ?, 'kokoro:x', 'kokoro', 'x', 'qwen:y', 'qwen', 'y', 'kokoro:x', 'qwen:y', 'a', '{}', '{}')",
            (f"2026-01-01T00:00:0{i}+00:00", PROMPTS[0] if i < 4 else "typed words"),
        )
    conn.commit()
    conn.close()
    arena = Arena(path)
    assert total(arena.leaderboard()) == 4 and total(arena.leaderboard(board="typed")) == 2  # all still count
    assert {v["builtin"] for v in arena.votes()} == {0, 1} and all(v["flag"] is None for v in arena.votes())
    arena.close()
