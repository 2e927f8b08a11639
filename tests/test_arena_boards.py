"""Arena boards per prompt category and language, reason tags, the "better-measured clip chosen" figures, and
a vote database of the first schema migrated in place."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pytest

from engines.base import InputError
from evaluation import arena as arena_module
from evaluation.arena import Arena, agreement, better_measured, rank
from evaluation.arena import store as arena_store

NAMES = "Siobhan and Niamh met Saoirse outside the theatre in Galway."
SHORT = "The kettle clicked off just as the rain began."
SPANISH = "El tren salió temprano y llegamos a la ciudad antes del mediodía."
NUMBERS = "The train leaves platform 9 at 07:42 and arrives at 10:05."

# The first schema, as `evaluation/arena.py` created it before prompt categories (user_version 1)
SCHEMA_1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, text TEXT NOT NULL, engine TEXT NOT NULL,
    voice TEXT NOT NULL, system TEXT NOT NULL, metrics TEXT NOT NULL, manifest TEXT
);
CREATE TABLE votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, text TEXT NOT NULL,
    a_system TEXT NOT NULL, a_engine TEXT NOT NULL, a_voice TEXT NOT NULL,
    b_system TEXT NOT NULL, b_engine TEXT NOT NULL, b_voice TEXT NOT NULL,
    left_system TEXT NOT NULL, right_system TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_bad')),
    a_metrics TEXT NOT NULL, b_metrics TEXT NOT NULL, a_run_id INTEGER, b_run_id INTEGER
);
CREATE INDEX votes_by_system ON votes (a_system, b_system);
PRAGMA user_version = 1;
"""


def clip(system: str, **metrics) -> dict:
    engine, voice = system.split(":")
    return {"engine": engine, "voice": voice, "metrics": metrics or {"ttfa_s": 0.2}}


@pytest.fixture()
def arena(tmp_path):
    board = Arena(tmp_path / "arena.sqlite3")
    yield board
    board.close()


def old_database(path) -> None:
    """A schema-1 file with three votes (two on a names prompt, one on a Spanish one) and a run."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_1)
    row = (
        "INSERT INTO votes VALUES (NULL, '2026-01-01T00:00:00+00:00', ?, ?, 'kokoro', ?, ?, 'qwen', ?, ?, ?, ?, ?, ?,"
        " ?, NULL)"
    )
    for text, choice in ((NAMES, "a"), (NAMES, "tie"), (SPANISH, "b")):
        conn.execute(
            row,
            (
                text,
                "kokoro:x",
                "x",
                "qwen:y",
                "y",
                "kokoro:x",
                "qwen:y",
                choice,
                '{"error_rate": 0.1}',
                '{"error_rate": 0.3}',
                1,
            ),
        )
    conn.execute(
        "INSERT INTO runs VALUES (1, '2026-01-01T00:00:00+00:00', 'hi', 'kokoro', 'x', 'kokoro:x', '{}', NULL)"
    )
    conn.commit()
    conn.close()


def test_a_database_of_the_first_schema_is_migrated_in_place_and_keeps_its_votes(tmp_path):
    path = tmp_path / "old.sqlite3"
    old_database(path)
    board = Arena(path)
    assert board.available()
    votes = board.votes()
    assert [v["choice"] for v in votes] == ["a", "tie", "b"]  # every old vote kept, in order
    assert [(v["category"], v["language"], v["reasons"]) for v in votes] == [
        ("names", "en", []), ("names", "en", []), ("non_english", "es", []),
    ]  # fmt: skip
    assert votes[0]["a_metrics"] == {"error_rate": 0.1} and votes[0]["a_run_id"] == 1 and len(board.runs()) == 1
    board.record_vote(SHORT, clip("kokoro:x"), clip("qwen:y"), "a", reasons=["pacing"])  # new votes go in beside them
    assert board.votes()[-1]["reasons"] == ["pacing"] and board.votes()[-1]["category"] == "short"
    assert {r["system"] for r in board.leaderboard(category="names")} == {"kokoro:x", "qwen:y"}
    board.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == arena_module.SCHEMA_VERSION == 3
    columns = [row[1] for row in conn.execute("PRAGMA table_info(votes)")]
    assert columns[-8:] == ["category", "language", "reasons", "voter", "builtin", "listened", "flag", "weight"]
    conn.close()
    again = Arena(path)  # opening a migrated file again changes nothing
    assert again.votes()[:3] == votes
    again.close()


def test_a_migration_run_twice_on_the_same_file_changes_it_once(tmp_path):
    path = tmp_path / "old.sqlite3"
    old_database(path)
    for _ in range(2):  # as when two processes opened the old file at once: the second finds it done
        conn = sqlite3.connect(path, isolation_level=None)
        arena_store._migrate(conn)
        conn.close()
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(votes)")]
    assert columns.count("category") == 1 and conn.execute("SELECT count(*) FROM votes").fetchone()[0] == 3
    conn.close()


def fill(arena: Arena) -> None:
    """kokoro:x wins on names, qwen:y wins in Spanish; numbers are a draw."""
    for _ in range(4):
        arena.record_vote(NAMES, clip("kokoro:x"), clip("qwen:y"), "a", reasons=["pronunciation"])
        arena.record_vote(SPANISH, clip("kokoro:x"), clip("qwen:y"), "b", reasons=["naturalness", "Voice quality"])
    arena.record_vote(NUMBERS, clip("kokoro:x"), clip("kokoro:z"), "tie", reasons=["pacing"])


def test_category_and_language_boards_are_fitted_on_their_subset_of_the_votes(arena):
    fill(arena)
    names = arena.leaderboard(category="names")
    assert [r["system"] for r in names] == ["kokoro:x", "qwen:y"]
    assert names[0]["votes"] == 4 and names[0]["wins"] == 4 and all(r["board"] == "category names" for r in names)
    assert names == [
        {**row, "board": "category names", "flagged": 0, "left_out": 0}
        | {k: names[i][k] for k in ("reasons", "reasons_won", "reasons_lost")}
        for i, row in enumerate(rank([("kokoro:x", "qwen:y", "a")] * 4))
    ]  # the same numbers as a board of those votes alone
    spanish = arena.leaderboard(language="es")
    assert [r["system"] for r in spanish] == ["qwen:y", "kokoro:x"] and spanish[0]["board"] == "language es"
    assert (
        arena.leaderboard(category="non_english", language="Spanish")[0]["board"] == "category non_english, language es"
    )
    overall = arena.leaderboard()
    assert {r["system"] for r in overall} == {"kokoro:x", "qwen:y", "kokoro:z"} and overall[0]["board"] == "all votes"
    assert sum(r["votes"] for r in overall) == 2 * 9
    assert arena.leaderboard(category="dialogue") == [] and arena.leaderboard(language="ja") == []
    assert arena.leaderboard(category="any") == overall  # "any" and "all" are the whole board


def test_reason_tags_are_stored_exported_and_counted_per_system(arena):
    fill(arena)
    assert arena.votes()[1]["reasons"] == ["naturalness", "voice_quality"]
    board = {r["system"]: r for r in arena.leaderboard()}
    x, y, z = board["kokoro:x"], board["qwen:y"], board["kokoro:z"]
    assert x["reasons_won"]["pronunciation"] == 4 and y["reasons_lost"]["pronunciation"] == 4
    assert y["reasons_won"]["naturalness"] == y["reasons_won"]["voice_quality"] == 4
    assert x["reasons_lost"]["voice_quality"] == 4 and x["reasons_won"]["voice_quality"] == 0
    assert x["reasons"]["pacing"] == z["reasons"]["pacing"] == 1  # a tie: neither won nor lost for it
    assert x["reasons_won"]["pacing"] == x["reasons_lost"]["pacing"] == 0
    assert set(x["reasons"]) == set(arena_module.REASONS)
    rows = list(csv.DictReader(io.StringIO(arena.export_csv("votes"))))
    assert {"category", "language", "reasons"} <= set(rows[0]) and "text" not in rows[0]
    assert json.loads(rows[1]["reasons"]) == ["naturalness", "voice_quality"]
    assert (rows[0]["category"], rows[0]["language"]) == ("names", "en")
    assert json.loads(arena.export_json("votes"))[-1]["reasons"] == ["pacing"]


@pytest.mark.parametrize("reasons", [["loudness"], ["pacing", "vibes"], [""], [None], 7])
def test_a_bad_reason_gets_one_sentence_and_stores_nothing(arena, reasons):
    with pytest.raises(InputError) as caught:
        arena.record_vote(SHORT, clip("kokoro:x"), clip("qwen:y"), "a", reasons=reasons)
    assert str(caught.value).startswith(
        ("A reason is one or more of naturalness, pronunciation, pacing, voice quality, artefacts; got", "Reasons are")
    )
    assert arena.votes() == []


@pytest.mark.parametrize("category, language", [("poetry", None), (None, "klingon"), ("names", "xx")])
def test_a_bad_board_gets_one_sentence(arena, category, language):
    with pytest.raises(InputError) as caught:
        arena.leaderboard(category=category, language=language)
    message = str(caught.value)
    assert message.startswith(("A prompt category is one of", "A language is an ISO code")) and "\n" not in message


def vote(choice: str, category: str, a: dict, b: dict) -> dict:
    return {"a_metrics": a, "b_metrics": b, "choice": choice, "category": category}


def test_the_better_measured_clip_chosen_figures_on_crafted_votes():
    low, high = {"error_rate": 0.05, "mos": 3.0}, {"error_rate": 0.20, "mos": 3.5}
    votes = [
        vote("a", "names", low, high),  # lower error chosen; lower MOS chosen
        vote("a", "names", low, high),
        vote("b", "names", low, high),  # higher error chosen; higher MOS chosen
        vote("b", "short", high, low),  # lower error chosen (b)
        vote("tie", "short", low, high),  # undecided
        vote("a", "short", {"error_rate": 0.1}, {"error_rate": 0.1}),  # equal: not counted
        vote("a", "dialogue", {"ttfa_s": 1.0}, {"ttfa_s": 2.0}),  # not measured: not counted
    ]
    rows = {(r["figure"], r["scope"]): r for r in agreement(votes)}
    assert set(rows) == {
        ("error_rate", "all"), ("error_rate", "names"), ("error_rate", "short"),
        ("mos", "all"), ("mos", "names"), ("mos", "short"),
    }  # fmt: skip
    everything = rows[("error_rate", "all")]
    assert (everything["votes"], everything["chose_better"], everything["undecided"]) == (4, 3, 1)
    assert everything["share"] == 0.75 and 0.0 < everything["ci_low"] < 0.75 < everything["ci_high"] <= 1.0
    assert (rows[("error_rate", "names")]["votes"], rows[("error_rate", "names")]["chose_better"]) == (3, 2)
    assert (rows[("error_rate", "short")]["votes"], rows[("error_rate", "short")]["chose_better"]) == (1, 1)
    assert (rows[("mos", "all")]["votes"], rows[("mos", "all")]["chose_better"]) == (4, 1)  # higher MOS chosen once
    assert agreement([])[0] == {
        "figure": "error_rate", "scope": "all", "votes": 0, "chose_better": 0, "share": None,
        "ci_low": None, "ci_high": None, "undecided": 0,
    }  # fmt: skip
    assert better_measured({"error_rate": 0.1}, {"error_rate": None}, "error_rate") is None
    assert better_measured({"mos": 2.0}, {"mos": 4.0}, "mos") == "b"


def test_the_agreement_of_stored_votes(arena):
    a, b = clip("kokoro:x", error_rate=0.0, mos=3.9), clip("qwen:y", error_rate=0.4, mos=3.1)
    arena.record_vote(NAMES, a, b, "a")
    arena.record_vote(SPANISH, a, b, "b", left="b")
    rows = {(r["figure"], r["scope"]): r for r in arena.agreement()}
    assert (rows[("error_rate", "all")]["votes"], rows[("error_rate", "all")]["chose_better"]) == (2, 1)
    assert rows[("mos", "names")]["chose_better"] == 1 and rows[("mos", "non_english")]["chose_better"] == 0
    assert {r["scope"] for r in arena.agreement(language="es")} == {"all", "non_english"}
