"""Bounded resources over a week: the output janitor, the upload limit, figures that are freed, bounded
caches, arena runs pruned and the leaderboard cached."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from engines.base import InputError
from engines.runtime.lru import BoundedLRU, sizeof
from evaluation.arena import Arena
from service.janitor import Janitor

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600.0


def put(path: Path, size: int) -> Path:
    """A file written now (ages come from when a file was written, which a test cannot backdate: each
    test sweeps at a chosen `now` instead, and sleeps a little between files it wants ordered)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    time.sleep(0.02)
    return path


def test_the_janitor_removes_what_is_older_than_the_ttl(tmp_path):
    old = put(tmp_path / "out" / "kokoro-old.wav", 100)
    batch = put(tmp_path / "out" / "batch-1" / "clips" / "001.wav", 100)
    middle = time.time()
    fresh = put(tmp_path / "out" / "kokoro-new.wav", 100)
    result = Janitor([tmp_path / "out"], ttl_s=HOUR, max_bytes=10**9).sweep(now=middle + HOUR)
    assert not old.exists() and not batch.parent.parent.exists() and fresh.exists()
    assert result["removed"] == 2 and result["kept"] == 1


def test_a_folder_is_as_young_as_its_newest_file_and_a_copy_as_young_as_the_copying(tmp_path):
    put(tmp_path / "out" / "batch-1" / "clips" / "001.wav", 100)
    source = put(tmp_path / "elsewhere" / "old.wav", 100)
    os.utime(source, (time.time() - 10 * HOUR,) * 2)  # an old file...
    middle = time.time() - 1.0  # a file's time is from the kernel's coarser clock: it can read before time.time()
    newest = put(tmp_path / "out" / "batch-1" / "batch.zip", 100)
    copied = Path(shutil.copy2(source, tmp_path / "out" / "copied.wav"))  # ...copied with its old mtime, as Gradio does
    (tmp_path / "out" / "empty").mkdir()
    Janitor([tmp_path / "out"], ttl_s=HOUR, max_bytes=10**9).sweep(now=middle + HOUR)
    assert newest.exists() and (tmp_path / "out" / "batch-1" / "clips" / "001.wav").exists() and copied.exists()
    assert (tmp_path / "out" / "empty").is_dir()  # an empty folder holds nothing: it stays


def test_the_size_bound_removes_oldest_first_and_spares_files_still_being_written(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "out" / "gradio-cache"
    files = [put(out / "clip-0.wav", 1000)]
    cached = put(cache / "abc123" / "clip.wav", 1000)  # Gradio's cache, nested: one bound for both
    files += [put(out / f"clip-{i}.wav", 1000) for i in range(1, 5)]
    time.sleep(0.2)
    writing = put(out / "clip-now.wav", 5000)  # under the grace age: never removed for size
    result = Janitor([out, cache], ttl_s=HOUR, max_bytes=8000, grace_s=0.1).sweep(now=time.time())
    assert not files[0].exists() and not cached.exists() and not files[1].exists()
    assert all(f.exists() for f in files[2:]) and writing.exists() and cache.exists()
    assert result["kept_bytes"] == 8000 and result["removed"] == 3


def test_the_janitor_thread_sweeps_after_a_write(tmp_path):
    out = tmp_path / "out"
    janitor = Janitor([out], ttl_s=HOUR, max_bytes=1000, grace_s=0, every_s=3600).start()
    old = put(out / "a.wav", 800)
    put(out / "b.wav", 800)
    janitor.written()
    for _ in range(200):  # up to 10 s; no timing is asserted
        if not old.exists():
            break
        time.sleep(0.05)
    assert not old.exists() and (out / "b.wav").exists()


def test_the_app_points_gradio_cache_into_the_output_folder_and_sets_its_bounds(tmp_path):
    code = (
        "import app, gradio.utils as u, json, service.janitor as j;"
        "d = app.build();"
        "print(json.dumps([u.get_upload_folder(), str(j.output_dir()), d.delete_cache, app.public_limits()]))"
    )
    env = {
        **os.environ, "TTS_OUTPUT_DIR": str(tmp_path / "out"), "OUTPUT_TTL_S": "900", "HF_HUB_OFFLINE": "1",
        "MAX_UPLOAD_MB": "5", "MAX_SESSIONS": "300",
    }  # fmt: skip
    env.pop("GRADIO_TEMP_DIR", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    import json

    upload, output, delete_cache, limits = json.loads(done.stdout.strip().splitlines()[-1])
    assert upload == str(tmp_path / "out" / "gradio-cache") and output == str(tmp_path / "out")
    assert delete_cache == [60, 900]
    assert limits == {"max_file_size": 5 * 2**20, "allowed_paths": [output], "state_session_capacity": 300}


def test_an_upload_over_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from engines import reference

    monkeypatch.setenv("MAX_UPLOAD_MB", "1")
    big = tmp_path / "big.wav"
    with open(big, "wb") as handle:
        handle.truncate(2 * 2**20)  # sparse: 2 MB on paper
    reads = []
    real_open = open

    class Watched:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def fileno(self):
            return self.handle.fileno()

        def read(self, n=-1):
            reads.append(n)
            return self.handle.read(n)

    monkeypatch.setattr(reference, "open", lambda path, mode: Watched(real_open(path, mode)), raising=False)
    with pytest.raises(InputError) as caught:
        reference.read_upload(big, "reference clip")
    assert str(caught.value) == "The reference clip is over the 1 MB limit; please upload a smaller file."
    assert reads == []  # refused by its size, not read
    small = tmp_path / "small.txt"
    small.write_text("Hello there.\n")
    assert reference.read_upload(small) == b"Hello there.\n"
    assert reference.upload_limit_bytes() == 2**20


def test_the_batch_tab_refuses_an_oversized_file_in_one_sentence(tmp_path, monkeypatch):
    import gradio as gr

    from ui.batch_tab import batch_render

    monkeypatch.setenv("MAX_UPLOAD_MB", "0.01")
    lines = tmp_path / "lines.txt"
    lines.write_text("Hello there.\n" * 2000)
    with pytest.raises(gr.Error) as caught:
        batch_render(str(lines), "kokoro", "jm_kumo", progress=lambda *a, **k: None)
    assert caught.value.message == "The batch file is over the 0.01 MB limit; please upload a smaller file."


def test_compare_figures_are_not_kept_by_pyplot():
    import matplotlib.pyplot as plt

    from ui import charts

    before = set(plt.get_fignums())
    figures = {"A": {"ttfa_s": 1.0, "wer": 0.1}, "B": {"ttfa_s": 2.0, "wer": 0.2}}
    clip = np.sin(np.linspace(0, 300, 24_000)).astype(np.float32)
    refs = []
    for _ in range(3):
        bars, waves = charts.bars(figures), charts.waveforms({"A": clip, "B": None})
        assert bars.savefig.__self__ is bars  # drawable on its own (Gradio calls savefig)
        refs += [weakref.ref(bars), weakref.ref(waves)]
        del bars, waves
    gc.collect()
    assert set(plt.get_fignums()) == before and all(r() is None for r in refs)


def test_the_lru_is_bounded_by_count_and_by_bytes():
    cache = BoundedLRU(max_items=3, max_bytes=10_000)
    for key in "abc":
        cache.put(key, np.zeros(100, np.float32))  # 400 bytes each
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", np.zeros(100, np.float32))
    assert "b" not in cache and all(k in cache for k in "acd") and len(cache) == 3
    cache.put("big", np.zeros(2000, np.float32))  # 8,000 bytes: the others make room
    assert "big" in cache and cache.bytes <= 10_000 and len(cache) <= 3
    cache.put("huge", np.zeros(5000, np.float32))  # larger than the whole bound: not kept
    assert "huge" not in cache and cache.bytes <= 10_000
    assert sizeof({"codes": np.zeros((10, 16), np.int64), "text": "abc", "items": [np.zeros(4, np.float32)]}) == (
        5 + 1280 + 4 + 3 + 5 + 16  # keys and values
    )


def test_the_clone_prompt_cache_is_bounded(monkeypatch):
    from engines.qwen import engine as qwen
    from engines.reference import Reference

    engine = qwen.QwenCloneEngine()
    made = []

    class Model:
        def create_voice_clone_prompt(self, ref_audio, ref_text, x_vector_only_mode):
            made.append(ref_text)
            return [np.zeros(1000, np.float32)]

    monkeypatch.setattr(engine, "_loaded", lambda: Model())
    audio = np.zeros(24_000, np.float32)
    for i in range(qwen.PROMPT_CACHE_ITEMS + 10):
        engine.clone_prompt(Reference(audio, 24_000, 24_000, 1, f"clip{i}"), "Hello there.", False)
    assert len(engine._prompts) == qwen.PROMPT_CACHE_ITEMS
    engine.clone_prompt(
        Reference(audio, 24_000, 24_000, 1, f"clip{qwen.PROMPT_CACHE_ITEMS + 9}"), "Hello there.", False
    )
    assert len(made) == qwen.PROMPT_CACHE_ITEMS + 10  # the newest was still cached


def clip(engine: str, voice: str, run_id: int | None = None, wer: float = 0.1) -> dict:
    return {"engine": engine, "voice": voice, "metrics": {"wer": wer}, "run_id": run_id}


def test_runs_past_the_bound_are_pruned_oldest_first_but_never_one_a_vote_points_at(tmp_path):
    arena = Arena(tmp_path / "arena.sqlite3", keep_runs=5)
    ids = [arena.record_run(f"text {i}", "kokoro", "af_heart", {"wer": i / 10}) for i in range(4)]
    voted = arena.record_vote("text 0", clip("kokoro", "af_heart", ids[0]), clip("kokoro", "jm_kumo", ids[1]), "a")
    ids += [arena.record_run(f"text {i}", "kokoro", "af_heart", {"wer": i / 10}) for i in range(4, 12)]
    kept = [run["id"] for run in arena.runs()]
    assert kept == [ids[0], ids[1], *ids[-3:]]  # the two the vote points at, and the newest
    vote = arena.votes()[0]
    assert vote["id"] == voted and vote["a_metrics"] == {"wer": 0.1} and vote["a_run_id"] == ids[0]
    arena.close()


def test_the_run_bound_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENA_MAX_RUNS", "3")
    arena = Arena(tmp_path / "arena.sqlite3")
    for i in range(6):
        arena.record_run(f"text {i}", "kokoro", "af_heart", {"wer": 0.0})
    assert [r["text"] for r in arena.runs()] == ["text 3", "text 4", "text 5"]
    monkeypatch.delenv("ARENA_MAX_RUNS")
    assert Arena(tmp_path / "other.sqlite3").keep_runs == 10_000


def test_the_leaderboard_is_computed_once_per_state_of_the_votes(tmp_path, monkeypatch):
    import evaluation.arena.store

    arena = Arena(tmp_path / "arena.sqlite3")  # the votes are on a typed text "t": the typed texts' board
    arena.record_vote("t", clip("kokoro", "a"), clip("kokoro", "b"), "a")
    calls = []
    real = evaluation.arena.rank
    monkeypatch.setattr(evaluation.arena.store, "rank", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = arena.leaderboard(board="typed")
    first[0]["rating"] = -1  # a caller's change does not reach the cache
    expected = real([("kokoro:a", "kokoro:b", "a")])  # the board's rows also count reason tags and name the board
    board = lambda: arena.leaderboard(board="typed")  # noqa: E731
    assert [{k: row[k] for k in expected[0]} for row in board()] == expected and len(calls) == 1
    arena.record_vote("t", clip("kokoro", "a"), clip("kokoro", "b"), "b")
    assert board()[0]["votes"] == 2 and len(calls) == 2
    other = Arena(arena.path)  # a vote written by another process counts too
    other.record_vote("t", clip("kokoro", "a"), clip("kokoro", "c"), "a")
    assert {r["system"] for r in board()} == {"kokoro:a", "kokoro:b", "kokoro:c"} and len(calls) == 3
    other.close()
    arena.close()
