"""Arena storage and ratings: votes survive a restart, ratings recover a known order, bad input and bad files."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engines.base import EngineError, InputError
from evaluation.arena import NOT_FINISHED, Arena, ArenaUnavailable, default_db_path, from_screen, rank

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The kettle clicked off just as the rain began."  # a built-in prompt: its votes are on the main board


def clip(engine: str, voice: str, **metrics) -> dict:
    return {"engine": engine, "voice": voice, "metrics": metrics or {"ttfa_s": 0.2, "rtf": 0.1}}


@pytest.fixture()
def arena(tmp_path) -> Arena:
    board = Arena(tmp_path / "arena.sqlite3")
    yield board
    board.close()


def run_python(code: str, db: Path) -> str:
    env = {**os.environ, "ARENA_DB": str(db)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_default_path_and_lazy_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("ARENA_DB", raising=False)
    assert default_db_path() == ROOT / "data" / "arena.sqlite3"
    db = tmp_path / "not" / "yet" / "votes.sqlite3"
    monkeypatch.setenv("ARENA_DB", str(db))
    board = Arena()
    assert board.path == db and not db.parent.exists()  # nothing touched at construction
    assert board.available() and board.problem is None and db.is_file()
    board.close()


def test_votes_persist_across_a_process_restart(tmp_path):
    db = tmp_path / "arena.sqlite3"
    writer = """
from evaluation.arena import Arena
arena = Arena()
run = arena.record_run("Hello there.", "kokoro", "af_heart", {"ttfa_s": 0.31, "wer": 0.0}, {"device": "cpu"})
a = {"engine": "kokoro", "voice": "af_heart", "metrics": {"ttfa_s": 0.31, "wer": 0.0}, "run_id": run}
b = {"engine": "qwen", "voice": "Vivian", "metrics": {"ttfa_s": 0.9, "wer": 0.1}}
arena.record_vote("Hello there.", a, b, "a", left="b")
arena.record_vote("Hello there.", a, b, "tie")
arena.record_vote("Second text.", b, a, "both_bad")
print(run)
"""
    run_id = int(run_python(writer, db))
    reader = """
import json
from evaluation.arena import Arena
arena = Arena()
print(json.dumps({"votes": arena.votes(), "runs": arena.runs(), "board": arena.leaderboard()}))
"""
    seen = json.loads(run_python(reader, db))
    here = Arena(db)
    assert seen["votes"] == here.votes() and seen["runs"] == here.runs()
    assert seen["board"] == here.leaderboard()  # same seed, same numbers in another process
    votes = here.votes()
    assert [v["choice"] for v in votes] == ["a", "tie", "both_bad"]
    assert [v["text"] for v in votes] == ["Hello there.", "Hello there.", "Second text."]
    first = votes[0]
    assert (first["a_system"], first["b_system"]) == ("kokoro:af_heart", "qwen:Vivian")
    assert (first["left_system"], first["right_system"]) == ("qwen:Vivian", "kokoro:af_heart")
    assert (votes[1]["left_system"], votes[1]["right_system"]) == ("kokoro:af_heart", "qwen:Vivian")
    assert first["a_metrics"] == {"ttfa_s": 0.31, "wer": 0.0} and first["b_metrics"]["ttfa_s"] == 0.9
    assert first["a_run_id"] == run_id and first["b_run_id"] is None
    assert here.runs()[0]["manifest"] == {"device": "cpu"} and here.runs()[0]["system"] == "kokoro:af_heart"
    assert votes[0]["created_at"].endswith("+00:00")
    here.close()


def simulate(arena: Arena, true: dict[str, float], n_votes: int, seed: int) -> None:
    """Votes drawn from the Bradley–Terry model with the given ratings (no ties), sides shuffled."""
    rng = np.random.default_rng(seed)
    names = list(true)
    for _ in range(n_votes):
        i, j = rng.choice(len(names), size=2, replace=False)
        a, b = names[i], names[j]
        p_a = 1.0 / (1.0 + 10 ** ((true[b] - true[a]) / 400.0))
        engine_a, voice_a = a.split(":")
        engine_b, voice_b = b.split(":")
        choice = "a" if rng.random() < p_a else "b"
        left = "a" if rng.random() < 0.5 else "b"
        arena.record_vote(TEXT, clip(engine_a, voice_a), clip(engine_b, voice_b), choice, left=left)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ratings_recover_a_known_order(arena, seed):
    true = {"kokoro:af_heart": 1225.0, "qwen:Vivian": 1075.0, "kokoro:am_adam": 925.0, "qwen:Ryan": 775.0}  # mean 1000
    simulate(arena, true, 600, seed)
    board = arena.leaderboard()
    assert [row["system"] for row in board] == list(true)
    assert sum(row["votes"] for row in board) == 2 * 600
    assert all(row["ties"] == row["both_bad"] == 0 and row["wins"] + row["losses"] == row["votes"] for row in board)
    assert abs(np.mean([row["rating"] for row in board]) - 1000.0) < 1e-6
    for row in board:
        assert row["ci_low"] < row["rating"] < row["ci_high"]
    assert board[0]["ci_low"] > board[-1]["ci_high"]
    inside = sum(row["ci_low"] <= true[row["system"]] <= row["ci_high"] for row in board)
    assert inside >= 3, board


def test_ties_and_both_bad_are_counted_and_rated_as_ties(arena):
    x, y, z = clip("kokoro", "af_heart"), clip("qwen", "Vivian"), clip("kokoro", "am_adam")
    for choice in ["tie"] * 3 + ["both_bad"] * 2:
        arena.record_vote(TEXT, x, y, choice)
    arena.record_run("text", "qwen", "Ryan", {"rtf": 0.5})  # a run without votes is not rated
    board = arena.leaderboard()
    assert [row["system"] for row in board] == ["kokoro:af_heart", "qwen:Vivian"]  # equal: sorted by name
    for row in board:
        assert (row["votes"], row["wins"], row["losses"], row["ties"], row["both_bad"]) == (5, 0, 0, 3, 2)
        assert row["rating"] == pytest.approx(1000.0)
    arena.record_vote(TEXT, x, z, "a")
    arena.record_vote(TEXT, z, y, "b")
    board = {row["system"]: row for row in arena.leaderboard()}
    assert board["kokoro:am_adam"]["losses"] == 2 and board["kokoro:af_heart"]["wins"] == 1
    assert board["kokoro:am_adam"]["rating"] < min(board["kokoro:af_heart"]["rating"], board["qwen:Vivian"]["rating"])
    # both_bad weighs exactly as a tie in the rating
    with_ties = rank([("x:1", "y:1", "a")] * 4 + [("x:1", "y:1", "tie")] * 4, bootstrap=50)
    with_bad = rank([("x:1", "y:1", "a")] * 4 + [("x:1", "y:1", "both_bad")] * 4, bootstrap=50)
    assert [r["rating"] for r in with_ties] == pytest.approx([r["rating"] for r in with_bad])
    assert [r["ci_low"] for r in with_ties] == pytest.approx([r["ci_low"] for r in with_bad])


def test_unbeaten_system_gets_a_finite_rating_and_results_are_seeded():
    board = rank([("x:1", "y:1", "a")] * 20)
    assert board[0]["system"] == "x:1" and board[0]["rating"] > 1000.0 > board[1]["rating"]
    assert all(np.isfinite([r["rating"], r["ci_low"], r["ci_high"]]).all() for r in board)
    votes = [("a:1", "b:1", "a"), ("b:1", "c:1", "b"), ("a:1", "c:1", "tie"), ("c:1", "a:1", "b")] * 10
    assert rank(votes, seed=3) == rank(votes, seed=3)
    assert rank(votes, bootstrap=0)[0]["ci_low"] is None
    assert rank([]) == []


def test_leaderboard_is_fast_on_1000_votes():
    rng = np.random.default_rng(0)
    names = [f"kokoro:v{i}" for i in range(8)]
    choices = ["a", "b", "tie", "both_bad"]
    votes = [(*rng.choice(names, size=2, replace=False), rng.choice(choices)) for _ in range(1000)]
    start = time.perf_counter()
    board = rank(votes)
    assert time.perf_counter() - start < 1.0
    assert len(board) == 8 and sum(r["votes"] for r in board) == 2000


@pytest.mark.parametrize(
    "a, b",
    [
        (None, clip("qwen", "Vivian")),
        (clip("kokoro", "af_heart"), {"engine": "qwen", "voice": "Vivian", "metrics": {}}),
        (clip("kokoro", "af_heart"), {"engine": "qwen", "voice": "Vivian", "metrics": None}),
        ({"engine": "kokoro", "voice": "af_heart"}, clip("qwen", "Vivian")),
    ],
)
def test_a_vote_without_a_finished_pair_is_refused(arena, a, b):
    with pytest.raises(InputError) as caught:
        arena.record_vote(TEXT, a, b, "a")
    assert str(caught.value) == NOT_FINISHED == "Both clips must finish before you vote."
    assert arena.votes() == []


def test_choice_and_sides_are_validated(arena):
    x, y = clip("kokoro", "af_heart"), clip("qwen", "Vivian")
    for bad in ("c", "", None, "left"):
        with pytest.raises(InputError, match="A vote is"):
            arena.record_vote(TEXT, x, y, bad)
    with pytest.raises(InputError, match="two different systems"):
        arena.record_vote(TEXT, x, clip("kokoro", "af_heart"), "a")
    with pytest.raises(InputError, match="left clip"):
        arena.record_vote(TEXT, x, y, "a", left="middle")
    with pytest.raises(InputError, match="engine and a voice"):
        arena.record_vote(TEXT, x, {"engine": "", "voice": "Vivian", "metrics": {"rtf": 1.0}}, "a")
    assert arena.votes() == []
    arena.record_vote(TEXT, x, y, "Both Bad")
    assert arena.votes()[0]["choice"] == "both_bad"
    # screen sides -> systems: with b shown on the left, "left is better" means b won
    assert [from_screen(c, "a") for c in ("a", "b", "tie")] == ["a", "b", "tie"]
    assert [from_screen(c, "b") for c in ("a", "b", "both_bad")] == ["b", "a", "both_bad"]


def test_metrics_are_stored_as_plain_json(arena):
    metrics = {"ttfa_s": np.float32(0.25), "lufs": float("nan"), "mos": np.float64(3.5), "shape": np.array([1, 2])}
    arena.record_vote(TEXT, clip("kokoro", "af_heart", **metrics), clip("qwen", "Vivian"), "a")
    assert arena.votes()[0]["a_metrics"] == {"ttfa_s": 0.25, "lufs": None, "mos": 3.5, "shape": [1, 2]}


def test_a_damaged_file_gives_one_sentence_and_is_left_alone(tmp_path):
    db = tmp_path / "arena.sqlite3"
    garbage = bytes(range(256)) * 16
    db.write_bytes(garbage)
    board = Arena(db)  # must not raise: the compare tab keeps working
    assert not board.available()
    sentence = "The vote database arena.sqlite3 is damaged (not a SQLite database); votes are off until it is replaced."
    assert board.problem == sentence
    for use in (
        lambda: board.record_vote(TEXT, clip("kokoro", "af_heart"), clip("qwen", "Vivian"), "a"),
        board.votes,
        board.leaderboard,
        lambda: board.export_csv("votes"),
    ):
        with pytest.raises(ArenaUnavailable) as caught:
            use()
        assert str(caught.value) == sentence and isinstance(caught.value, EngineError)
    assert db.read_bytes() == garbage
    db.unlink()  # replaced: votes come back without a restart
    assert board.available() and board.problem is None
    board.close()


def test_a_locked_database_says_so_quickly_and_recovers(arena):
    x, y = clip("kokoro", "af_heart"), clip("qwen", "Vivian")
    arena.record_vote(TEXT, x, y, "a")
    other = sqlite3.connect(arena.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    start = time.perf_counter()
    with pytest.raises(ArenaUnavailable) as caught:
        arena.record_vote(TEXT, x, y, "b")
    elapsed = time.perf_counter() - start
    assert str(caught.value) == "The vote database arena.sqlite3 is locked by another process; try again in a moment."
    assert 1.5 < elapsed < 3.5  # the busy timeout (2 s), then one sentence
    assert arena.problem == str(caught.value)
    assert len(arena.votes()) == 1  # WAL: reading goes on while another process writes
    other.execute("ROLLBACK")
    other.close()
    arena.record_vote(TEXT, x, y, "b")
    assert [v["choice"] for v in arena.votes()] == ["a", "b"] and arena.problem is None


def test_a_database_locked_before_first_use(tmp_path):
    db = tmp_path / "arena.sqlite3"
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("CREATE TABLE other (x)")
    other.execute("BEGIN EXCLUSIVE")
    board = Arena(db, timeout=0.5)
    try:
        assert not board.available()
        assert "is locked by another process" in board.problem
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert board.available()
    board.close()


def test_an_unwritable_location_gives_one_sentence(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    board = Arena(blocker / "arena.sqlite3")
    assert not board.available()
    assert board.problem == (
        "The vote database arena.sqlite3 cannot be created or written where it is; set ARENA_DB to a writable path."
    )


def test_exports_parse_back(arena, tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_EXPORT_TEXTS", "1")  # texts kept: the full export
    text = 'Hello, "world"\nsecond line – ünïcode'
    r1 = arena.record_run(text, "kokoro", "af_heart", {"ttfa_s": 0.3, "wer": 0.05}, {"backend": "onnx", "speed": 1.0})
    r2 = arena.record_run(text, "qwen", "Vivian", {"ttfa_s": 0.8, "mos": 3.9})
    a = {**clip("kokoro", "af_heart", ttfa_s=0.3, wer=0.05), "run_id": r1}
    b = {**clip("qwen", "Vivian", ttfa_s=0.8, mos=3.9), "run_id": r2}
    arena.record_vote(text, a, b, "a", left="b")
    arena.record_vote(text, b, a, "tie")
    arena.record_vote("plain", clip("kokoro", "am_adam", similarity=0.7), b, "both_bad")

    votes = list(csv.DictReader(io.StringIO(arena.export_csv("votes"))))
    assert len(votes) == 3
    assert list(votes[0])[:12] == [
        "id", "created_at", "text", "a_system", "a_engine", "a_voice", "b_system", "b_engine", "b_voice",
        "left_system", "right_system", "choice",
    ]  # fmt: skip
    assert {"a.ttfa_s", "a.wer", "a.mos", "a.similarity", "b.ttfa_s", "b.mos", "a_run_id"} <= set(votes[0])
    assert "a_metrics" not in votes[0]
    assert votes[0]["text"] == text and votes[0]["left_system"] == "qwen:Vivian"
    assert [v["choice"] for v in votes] == ["a", "tie", "both_bad"]
    assert float(votes[0]["a.wer"]) == 0.05 and votes[0]["a.mos"] == "" and float(votes[1]["a.mos"]) == 3.9
    assert votes[0]["a_run_id"] == str(r1) and votes[2]["a_run_id"] == ""

    runs = list(csv.DictReader(io.StringIO(arena.export_csv("runs"))))
    assert [r["system"] for r in runs] == ["kokoro:af_heart", "qwen:Vivian"]
    assert json.loads(runs[0]["manifest"]) == {"backend": "onnx", "speed": 1.0} and runs[1]["manifest"] == ""
    assert float(runs[1]["metrics.mos"]) == 3.9 and runs[0]["metrics.mos"] == ""

    assert json.loads(arena.export_json("votes")) == arena.votes()
    assert json.loads(arena.export_json("runs"))[0]["manifest"]["backend"] == "onnx"
    with pytest.raises(ValueError):
        arena.export_csv("people")

    paths = arena.export_files(tmp_path / "exports")
    names = sorted(p.name for p in paths)
    assert names == ["arena-audit.csv", "arena-runs.csv", "arena-runs.json", "arena-votes.csv", "arena-votes.json"]
    for path in paths[:-1]:
        rows = json.loads(path.read_text()) if path.suffix == ".json" else list(csv.DictReader(path.open()))
        assert len(rows) == (3 if "votes" in path.name else 2)


def test_empty_exports_have_headers(arena):
    header = arena.export_csv("votes").splitlines()
    assert len(header) == 1 and header[0].startswith("id,created_at,a_system")  # no texts by default
    assert json.loads(arena.export_json("runs")) == [] and arena.leaderboard() == []


def test_a_few_unanimous_votes_give_a_wide_interval_that_narrows_with_more_votes():
    widths = []
    for count in (1, 5, 40):
        board = rank([("kokoro:x", "kokoro:y", "a")] * count)
        best = board[0]
        assert best["system"] == "kokoro:x" and best["ci_low"] < best["rating"] < best["ci_high"]
        widths.append(best["ci_high"] - best["ci_low"])
    assert widths[0] > 300  # one vote proves little
    assert widths[0] > widths[1] > widths[2] > 0
