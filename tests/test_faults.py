"""Faults survived, nothing lost: each fault is injected where it happens, and each test checks that the
user gets one sentence, no vote is lost, the engine is free again and the next request is served.

Most run against the real page and /v1 routes launched in this process on a free loopback port, with
a tiny fake engine in the registry's Kokoro slot (it can fail mid-stream or hold a run open), so they
take seconds, not minutes.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from engines.base import SAMPLE_RATE, AudioChunk, EngineInfo, UnavailableError, VoiceInfo
from engines.runtime import registry
from engines.runtime.timing import RunStats
from evaluation.arena import Arena

ROOT = Path(__file__).resolve().parent.parent
TEXT = "Rice is often served in round bowls."


def one_sentence(message: str) -> bool:
    """What a user may see: one line, a sentence, no traceback, no path."""
    return (
        bool(message)
        and "\n" not in message
        and message.rstrip().endswith((".", "!", "?"))
        and "Traceback" not in message
        and "/tmp" not in message
        and str(ROOT) not in message
    )


def wait_for(condition, seconds: float = 60.0) -> bool:
    """Poll a condition (no timing is asserted: the bound only keeps a broken run from hanging)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class FakeEngine:
    """A tiny engine: `chunks` pieces of a quiet tone; it can raise at chunk `fail_at`, or wait before its
    second chunk until `hold` is set. `active` counts runs whose generator is still open."""

    def __init__(self) -> None:
        self.chunks, self.fail_at = 3, None
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.calls = self.active = 0
        self._lock = threading.Lock()

    def info(self) -> EngineInfo:
        voice = VoiceInfo("jm_kumo", "Kumo", "English", "male", None, True)
        return EngineInfo(id="kokoro", name="Kokoro-82M", loaded=True, backend="fake", device="cpu", voices=[voice])

    def load(self, device: str) -> None:
        pass

    def unload(self) -> None:
        pass

    def stream(self, request):
        with self._lock:
            self.calls += 1
            self.active += 1
        try:
            t = np.arange(SAMPLE_RATE // 5) / SAMPLE_RATE
            for i in range(self.chunks):
                if i == self.fail_at:
                    raise RuntimeError("device-side assert triggered")
                if i == 1:
                    self.started.set()
                    self.hold.wait(120)
                yield AudioChunk((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), request.text, "", i)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture()
def fake(monkeypatch):
    engine = FakeEngine()
    monkeypatch.setitem(registry._instances, "kokoro", engine)
    monkeypatch.setattr(registry, "_loaded", registry._loaded | {"kokoro"})
    yield engine
    engine.hold.set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The real page (app.build) and /v1 routes, launched in this process on a free loopback port."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        mp.setenv("ARENA_DB", str(tmp_path_factory.mktemp("arena") / "votes.sqlite3"))
        mp.setenv("VOICE_LIBRARY_DIR", str(tmp_path_factory.mktemp("library")))
        for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
            mp.delenv(name, raising=False)
        import app
        from api import router

        port = _free_port()
        demo = app.build()
        demo.queue(default_concurrency_limit=2).launch(
            server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
            app_kwargs={"routes": list(router.routes)},
        )  # fmt: skip
        yield ("127.0.0.1", port)
        demo.close()


# ----- HTTP helpers ---------------------------------------------------------------------------------------


def speech(live, **fields) -> tuple[int, dict, bytes]:
    """POST /v1/audio/speech and read the whole answer."""
    body = {"model": "kokoro", "input": TEXT, "voice": "jm_kumo", "response_format": "wav", **fields}
    connection = http.client.HTTPConnection(*live, timeout=120)
    connection.request("POST", "/v1/audio/speech", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), data


def raw_request(live, path: str, body: dict) -> socket.socket:
    """Send a JSON POST on a bare socket (the caller decides when to hang up)."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(live, timeout=120)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {live[0]}:{live[1]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode() + payload)
    return sock


def hang_up(sock: socket.socket) -> None:
    """Close abruptly (RST), as a client that crashed or lost its network."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def gradio_call(live, api_name: str, data: list) -> tuple[str, str]:
    """The Gradio REST API: POST /gradio_api/call/<name>, then read its SSE answer: (last event, its data)."""
    base = f"http://{live[0]}:{live[1]}/gradio_api/call/{api_name}"
    request = urllib.request.Request(base, json.dumps({"data": data}).encode(), {"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
    event = payload = ""
    with urllib.request.urlopen(f"{base}/{event_id}", timeout=120) as answer:
        for line in answer:
            line = line.decode().rstrip("\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                payload = line.split(":", 1)[1].strip()
                if event in ("complete", "error"):
                    break
    if event == "error":  # Gradio sends {"error": <the gr.Error message>, "title", ...}
        payload = (json.loads(payload) or {}).get("error") or ""
    return event, payload


def gradio_open(live, api_name: str, data: list) -> socket.socket:
    """Start a Gradio API call and open its SSE answer on a bare socket; returns the socket."""
    base = f"http://{live[0]}:{live[1]}/gradio_api/call/{api_name}"
    request = urllib.request.Request(base, json.dumps({"data": data}).encode(), {"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
    sock = socket.create_connection(live, timeout=120)
    sock.sendall(f"GET /gradio_api/call/{api_name}/{event_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


OUTPUT = ["wav", "Off", False, False, False, False]  # the Output section: format, loudness, peak, trim, denoise, fade
STREAM_ARGS = [TEXT, "jm_kumo", "", 1.0, "Auto", *OUTPUT]
SYNTH_ARGS = [TEXT, "jm_kumo", 1.0, "Auto", *OUTPUT]


def served_everywhere(live, fake: FakeEngine) -> None:
    """The next request on each way in is served, and no run is left open."""
    fake.fail_at = None
    fake.hold.set()
    status, headers, data = speech(live)
    assert status == 200 and data[:4] == b"RIFF"
    event, payload = gradio_call(live, "synthesize", SYNTH_ARGS)
    assert event == "complete", payload
    assert wait_for(lambda: fake.active == 0)


# ----- an engine failing mid-stream --------------------------------------------------------------------------


def test_an_engine_failing_mid_stream_gives_one_sentence_on_every_way_in(live, fake):
    fake.fail_at = 1
    body = {"model": "kokoro", "input": TEXT, "voice": "jm_kumo", "stream_format": "sse"}
    connection = http.client.HTTPConnection(*live, timeout=120)
    connection.request("POST", "/v1/audio/speech", json.dumps(body), {"Content-Type": "application/json"})
    events = [json.loads(line[5:]) for line in connection.getresponse().read().decode().splitlines() if line]
    assert [e["type"] for e in events] == ["speech.audio.delta", "error"]
    assert one_sentence(events[-1]["error"]["message"])
    status, _, data = speech(live)  # a whole file: the JSON error
    assert status == 500 and one_sentence(json.loads(data)["error"]["message"])
    for api_name, args in (("stream", STREAM_ARGS), ("synthesize", SYNTH_ARGS)):
        event, payload = gradio_call(live, api_name, args)
        assert event == "error" and one_sentence(payload), payload
    assert wait_for(lambda: fake.active == 0)
    served_everywhere(live, fake)


# ----- a model file unreadable at load ------------------------------------------------------------------------


@pytest.mark.slow  # builds and loads a tiny Kokoro checkpoint
def test_a_damaged_model_file_gives_one_sentence_and_a_repaired_one_loads(tiny_kokoro_dir, tmp_path, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import router

    folder = shutil.copytree(tiny_kokoro_dir, tmp_path / "kokoro")
    checkpoint = folder / "kokoro-v1_0.pth"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[: len(good) // 3])  # a truncated download
    monkeypatch.setenv("KOKORO_MODEL", str(folder))
    monkeypatch.setenv("KOKORO_BACKEND", "torch")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delitem(registry._instances, "kokoro", raising=False)  # a fresh engine reads the new setting
    monkeypatch.setattr(registry, "_loaded", registry._loaded - {"kokoro"})
    app = FastAPI()
    app.include_router(router)
    client = TestClient(app, raise_server_exceptions=False)
    body = {"model": "kokoro", "input": TEXT, "voice": "af_heart", "response_format": "wav"}
    answer = client.post("/v1/audio/speech", json=body)
    message = answer.json()["error"]["message"]
    assert answer.status_code == 503 and one_sentence(message) and "damaged" in message
    assert "UnpicklingError" not in message and "RuntimeError" not in message
    with pytest.raises(UnavailableError):
        registry.get("kokoro")  # still refused, in the same words, and nothing half-loaded
    checkpoint.write_bytes(good)
    answer = client.post("/v1/audio/speech", json=body)
    assert answer.status_code == 200 and answer.content[:4] == b"RIFF"
    registry.unload("kokoro")


def test_a_qwen_model_that_fails_to_load_is_one_sentence_without_paths(monkeypatch, tmp_path):
    from engines.qwen import engine as qwen

    class Broken:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            raise OSError(f"Unable to load weights from {tmp_path}/model.safetensors: header too large")

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(tmp_path))
    monkeypatch.setattr(qwen, "import_qwen_tts", lambda: SimpleNamespace(Qwen3TTSModel=Broken))
    with pytest.raises(UnavailableError) as caught:
        qwen.QwenCustomEngine().load("cpu")
    message = str(caught.value)
    assert one_sentence(message) and "QWEN_CUSTOM_VOICE_MODEL" in message and str(tmp_path) not in message


# ----- ffmpeg missing ------------------------------------------------------------------------------------------


@pytest.fixture()
def no_ffmpeg(monkeypatch, tmp_path):
    """PATH without ffmpeg (the other programs stay reachable)."""
    keep = tmp_path / "bin"
    keep.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        for program in Path(folder).glob("*") if Path(folder).is_dir() else ():
            target = keep / program.name
            if program.name not in ("ffmpeg", "ffprobe") and not target.exists():
                target.symlink_to(program)
    monkeypatch.setenv("PATH", str(keep))
    assert shutil.which("ffmpeg") is None


def test_without_ffmpeg_what_needs_it_says_so_and_the_rest_is_served(live, fake, no_ffmpeg):
    status, _, data = speech(live, stream_format="audio", response_format="mp3")
    assert status == 503 and one_sentence(json.loads(data)["error"]["message"])
    status, _, data = speech(live, response_format="opus")
    message = json.loads(data)["error"]["message"]
    assert status == 503 and one_sentence(message) and "ffmpeg" in message
    from engines.base import InputError
    from engines.reference import load_reference

    with pytest.raises(InputError) as caught:  # a format only ffmpeg reads (here: bytes that are no audio)
        load_reference(b"\x00\x00\x00\x18ftypM4A " + bytes(4000))
    assert one_sentence(str(caught.value))
    status, _, data = speech(live, stream_format="audio", response_format="wav")
    assert status == 200 and data[:4] == b"RIFF"
    calls = fake.calls
    event, payload = gradio_call(live, "stream", STREAM_ARGS)  # the page's stream: Gradio encodes it with ffmpeg
    assert event == "error" and one_sentence(payload) and "ffmpeg" in payload and fake.calls == calls
    event, payload = gradio_call(live, "synthesize", SYNTH_ARGS)  # a whole WAV file needs no ffmpeg
    assert event == "complete", payload
    served_everywhere(live, fake)


# ----- the output folder full or read-only -------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_output_folder_gives_one_sentence_and_leaves_nothing(live, fake, code):
    import service.batch
    import ui.common
    from service.janitor import output_dir

    def refuse(path, audio, fmt=None, sample_rate=SAMPLE_RATE):
        Path(path).write_bytes(b"RIFF")  # part of the file got out before the disk said no
        raise OSError(code, os.strerror(code))

    out = output_dir()
    before = set(out.glob("*")) if out.exists() else set()
    lines = out.parent / f"faults-{os.getpid()}.txt"
    lines.write_text("Hello there.\nSecond line.\n")
    with pytest.MonkeyPatch.context() as disk:
        disk.setattr(ui.common, "write", refuse)
        disk.setattr(service.batch, "write", refuse)
        for api_name, args in (("synthesize", SYNTH_ARGS), ("stream", STREAM_ARGS)):
            event, payload = gradio_call(live, api_name, args)
            assert event == "error" and one_sentence(payload), payload
            assert ("full" if code == errno.ENOSPC else "not writable") in payload
        from ui.batch_tab import batch_render

        with pytest.raises(Exception) as caught:
            batch_render(str(lines), "kokoro", "jm_kumo", progress=lambda *a, **k: None)
    lines.unlink()
    assert one_sentence(caught.value.message)
    left = {p for p in out.glob("*") if p not in before and p.name.startswith(("kokoro-", "batch-"))}
    assert left == set()  # no half-written clip or batch folder stays behind
    served_everywhere(live, fake)


# ----- the arena database locked, deleted or corrupted while the app runs ----------------------------------


def finished_pair(a: str = "kokoro:jm_kumo", b: str = "kokoro:jf_alpha") -> dict:
    def result(system: str, wer: float):
        engine, voice = system.split(":")
        return SimpleNamespace(
            finished=True, metrics={"wer": wer}, run_id=None, stats=RunStats(engine=engine),
            slot=SimpleNamespace(system=system, engine=engine, voice=voice),
        )  # fmt: skip

    return {"text": TEXT, "results": {"A": result(a, 0.1), "B": result(b, 0.2)}, "voted": False}


@pytest.fixture()
def board(tmp_path, monkeypatch):
    import ui.arena_tab

    arena = Arena(tmp_path / "votes.sqlite3", timeout=0.3)
    monkeypatch.setattr(ui.arena_tab, "ARENA", arena)
    monkeypatch.setenv("ARENA_POW_BITS", "0")  # these votes are about the database; the proof has tests of its own
    yield arena
    arena.close()


def vote(choice: str = "a") -> str:
    """A vote on a fresh pair, cast as a visitor would: served, both clips sent and heard to their end."""
    from ui import arena_tab

    who, ballots = "visitor", arena_tab.BALLOTS
    token = ballots.serve(who)
    for slot in "AB":
        ballots.sent(token, slot)
        ballots.finished(token, slot, 0.0)  # a clip with nothing left to hear: its end is reached at once
        ballots.heard(who, token, slot, 0.0, ended=True)
    return arena_tab.vote_on({**finished_pair(), "token": token}, choice, who)[0]


def stored(path: Path) -> list[dict]:
    fresh = Arena(path)
    try:
        return fresh.votes()
    finally:
        fresh.close()


def test_a_locked_vote_database_says_so_and_the_next_vote_is_stored(board):
    assert vote("a").startswith("Vote stored")
    other = sqlite3.connect(board.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    reveal = vote("b")
    assert reveal.startswith("Not stored (The vote database votes.sqlite3 is locked")  # told, not lost silently
    other.execute("ROLLBACK")
    other.close()
    assert vote("tie").startswith("Vote stored")
    assert [v["choice"] for v in stored(board.path)] == ["a", "tie"]


def test_a_vote_database_deleted_while_the_app_runs_is_made_again_and_keeps_the_next_vote(board):
    assert vote("a").startswith("Vote stored")
    for path in board.path.parent.glob("votes.sqlite3*"):
        path.unlink()
    assert vote("b").startswith("Vote stored")
    assert [v["choice"] for v in stored(board.path)] == ["b"]  # in the file on disk, not in a deleted one


def test_a_vote_database_corrupted_while_the_app_runs_is_never_trusted_blindly(board):
    assert vote("a").startswith("Vote stored")
    board.path.write_bytes(b"this is not a database" * 200)  # overwritten in place
    for path in board.path.parent.glob("votes.sqlite3-*"):
        path.unlink()
    reveal = vote("b")
    if reveal.startswith("Vote stored"):  # then it must be readable again
        assert "b" in [v["choice"] for v in stored(board.path)]
    else:
        assert reveal.startswith("Not stored (The vote database votes.sqlite3 is damaged")
    board.path.unlink()  # the operator replaces the file: a fresh database
    Arena(board.path).close()
    assert vote("tie").startswith("Vote stored")
    assert [v["choice"] for v in stored(board.path)] == ["tie"]


KILLED_WRITER = """
import sys
from evaluation.arena import Arena
arena = Arena(sys.argv[1])
a = {"engine": "kokoro", "voice": "jm_kumo", "metrics": {"wer": 0.1, "transcript": "x" * 2000}}
b = {"engine": "kokoro", "voice": "jf_alpha", "metrics": {"wer": 0.2, "transcript": "y" * 2000}}
while True:
    run = arena.record_run("text", "kokoro", "jm_kumo", {"wer": 0.1})
    print(arena.record_vote("text", {**a, "run_id": run}, b, "a"), flush=True)
"""


def test_a_process_killed_during_vote_writes_leaves_every_acknowledged_vote_and_a_file_that_opens(tmp_path):
    db = tmp_path / "votes.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    acknowledged = [int(writer.stdout.readline()) for _ in range(40)]
    writer.send_signal(signal.SIGKILL)  # in the middle of its next writes
    acknowledged += [int(line) for line in writer.stdout.read().split()]
    writer.wait()
    arena = Arena(db)
    votes = arena.votes()
    ids = [v["id"] for v in votes]
    assert set(acknowledged) <= set(ids) and len(ids) <= len(acknowledged) + 1  # there, or cleanly absent
    assert all(v["a_metrics"]["transcript"] == "x" * 2000 for v in votes)  # no vote half-written
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    a = {"engine": "kokoro", "voice": "jm_kumo", "metrics": {"wer": 0.1}}
    arena.record_vote("text", a, {**a, "voice": "jf_alpha"}, "tie")  # and the next vote is stored
    assert len(arena.votes()) == len(votes) + 1
    arena.close()


# ----- a client that leaves before, during or after synthesis, on each way in -----------------------------


def leave_v1(live, fake: FakeEngine, when: str, stream_format: str | None) -> None:
    body = {"model": "kokoro", "input": TEXT, "voice": "jm_kumo", "response_format": "pcm"}
    if stream_format:
        body["stream_format"] = stream_format
    if when == "before":  # the engine is busy with another request: this one leaves while it waits
        fake.hold.clear()
        holder = threading.Thread(target=speech, args=(live,), kwargs={"stream_format": "audio"})
        holder.start()
        assert fake.started.wait(30)
        sock = raw_request(live, "/v1/audio/speech", body)
        time.sleep(0.5)  # it is waiting for its turn (not a timing assert: only when it leaves)
        hang_up(sock)
        time.sleep(0.5)
        fake.hold.set()
        holder.join(60)
    elif when == "during":
        fake.hold.clear()
        fake.started.clear()
        sock = raw_request(live, "/v1/audio/speech", body)
        assert fake.started.wait(30)
        hang_up(sock)
        fake.hold.set()
    else:  # after: the answer is ready (or sent) and the client never reads it
        sock = raw_request(live, "/v1/audio/speech", body)
        assert wait_for(lambda: fake.calls > 0 and fake.active == 0)
        hang_up(sock)


@pytest.mark.parametrize("when", ["before", "during", "after"])
@pytest.mark.parametrize("stream_format", [None, "audio", "sse"])
def test_a_v1_client_that_leaves_frees_the_engine_for_the_next_request(live, fake, when, stream_format):
    leave_v1(live, fake, when, stream_format)
    assert wait_for(lambda: fake.active == 0)
    served_everywhere(live, fake)


@pytest.mark.parametrize("when", ["before", "during", "after"])
def test_a_gradio_api_client_that_leaves_frees_the_engine_for_the_next_request(live, fake, when):
    if when == "before":  # the engine is busy: this call waits in its line, then its client leaves
        fake.hold.clear()
        holders = [threading.Thread(target=gradio_call, args=(live, "stream", STREAM_ARGS))]
        for holder in holders:
            holder.start()
        assert wait_for(lambda: fake.active == 1, 30)
        sock = gradio_open(live, "stream", STREAM_ARGS)
        time.sleep(0.5)
        hang_up(sock)
        time.sleep(0.5)
        fake.hold.set()
        for holder in holders:
            holder.join(60)
    elif when == "during":
        fake.hold.clear()
        fake.started.clear()
        sock = gradio_open(live, "stream", STREAM_ARGS)
        assert fake.started.wait(30)
        hang_up(sock)
        fake.hold.set()
    else:
        sock = gradio_open(live, "stream", STREAM_ARGS)
        assert wait_for(lambda: fake.calls > 0 and fake.active == 0)
        hang_up(sock)
    assert wait_for(lambda: fake.active == 0)
    served_everywhere(live, fake)
