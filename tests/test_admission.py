"""Admission and fair turns on every way in: `/v1` (whole files and streams) and the page's handlers.

The packaged Kokoro engine, offline. A test holds the engine's turn with its own ticket to make a line
form; no timing is asserted, only orders, counts, codes, headers and sentences.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.client import HTTPConnection

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import router
from engines.base import BusyError
from engines.runtime import registry, timing, work_queue

VOICE = "jm_kumo"
PARAGRAPH = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
)


def until(condition, timeout: float = 120.0) -> None:
    """Wait for something another thread does (a deadline against hanging, not a timing assert)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VOICE_LIBRARY_DIR", str(tmp_path_factory.mktemp("admission-library")))
        for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
            mp.delenv(name, raising=False)
        app = FastAPI()
        app.include_router(router)
        timing.load("kokoro")
        yield app
        registry.unload("kokoro")


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(app):
    """The router on uvicorn, on a real socket (a real client can drop the connection)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started)
    yield server.servers[0].sockets[0].getsockname()[:2]
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture()
def line(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "8")
    monkeypatch.setenv("MAX_WAITING_PER_CALLER", "8")  # these lines are one client's (the share: test_fair_share)
    kokoro = work_queue.line("kokoro")
    assert kokoro.running() == 0 and kokoro.waiting() == 0
    yield kokoro
    until(lambda: kokoro.running() == 0 and kokoro.waiting() == 0)


def body(**fields) -> dict:
    return {"model": "kokoro", "input": "Hello there.", "voice": VOICE, "response_format": "wav", **fields}


def test_past_max_waiting_v1_answers_503_server_busy_with_retry_after(client, line, monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "0")
    with work_queue.enter("kokoro", 5.0):  # someone else's request is being served
        for fields in ({}, {"stream_format": "audio", "response_format": "pcm"}, {"stream_format": "sse"}):
            response = client.post("/v1/audio/speech", json=body(**fields))
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "server_busy" and error["type"] == "server_error"
            assert error["message"].endswith(".") and error["message"].count(".") == 1
            assert "busy" in error["message"] and "try again in about" in error["message"]
            assert int(response.headers["retry-after"]) >= 1
    assert line.refused >= 3
    served = client.post("/v1/audio/speech", json=body())  # the engine is free again: served at once
    assert served.status_code == 200 and "retry-after" not in served.headers


def test_an_unavailable_engine_is_a_different_503(client, tmp_path, monkeypatch):
    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(tmp_path / "missing"))
    response = client.post("/v1/audio/speech", json=body(model="qwen-custom", voice="Ryan"))
    assert response.status_code == 503 and response.json()["error"]["code"] == "engine_unavailable"
    assert "retry-after" not in response.headers


def test_answers_say_how_long_they_waited_in_line(client, line):
    whole = client.post("/v1/audio/speech", json=body())
    assert whole.status_code == 200 and float(whole.headers["x-queue-wait"]) >= 0
    with client.stream("POST", "/v1/audio/speech", json=body(stream_format="audio", response_format="pcm")) as r:
        assert r.status_code == 200 and float(r.headers["x-queue-wait"]) >= 0
        r.read()
    sse = client.post("/v1/audio/speech", json=body(stream_format="sse"))
    done = json.loads(sse.text.strip().split("\n\n")[-1].removeprefix("data: "))
    assert done["type"] == "speech.audio.done" and done["figures"]["queue_wait_s"] >= 0


def test_v1_requests_are_served_in_the_order_they_arrived(client, line, monkeypatch):
    order, real = [], timing.measured

    def recorded(engine, request, stats, cancelled=None, **turn):
        order.append(request.text)
        yield from real(engine, request, stats, cancelled, **turn)

    monkeypatch.setattr(timing, "measured", recorded)
    texts = ["One.", "Two.", "Three.", "Four."]
    results = {}
    holder = work_queue.enter("kokoro", 1.0)
    threads = []
    for n, text in enumerate(texts):
        fields = {"stream_format": "audio", "response_format": "pcm"} if n % 2 else {}  # whole files and streams
        post = lambda t=text, f=fields: results.update({t: client.post("/v1/audio/speech", json=body(input=t, **f))})  # noqa: E731
        thread = threading.Thread(target=post)
        thread.start()
        threads.append(thread)
        until(lambda n=n: line.waiting() == n + 1)  # in line before the next one arrives
    holder.leave()
    for thread in threads:
        thread.join(300)
    assert order == texts
    assert all(results[t].status_code == 200 for t in texts)
    waits = [float(results[t].headers["x-queue-wait"]) for t in texts]
    assert waits == sorted(waits)  # each waited for the ones before it


def _post(server, payload: dict) -> tuple[HTTPConnection, object]:
    connection = HTTPConnection(*server, timeout=300)
    connection.request("POST", "/v1/audio/speech", json.dumps(payload), {"Content-Type": "application/json"})
    return connection, connection


def test_a_whole_file_client_that_leaves_stops_the_synthesis_and_the_next_is_served(server, client, line, monkeypatch):
    produced, started, real = [], threading.Event(), timing.measured

    def held(engine, request, stats, cancelled=None, **turn):
        """The engine's chunks; after the first, wait until the server has seen the client go."""
        for chunk in real(engine, request, stats, cancelled, **turn):
            produced.append(chunk)
            started.set()
            until(lambda: cancelled is not None and cancelled())
            yield chunk

    monkeypatch.setattr(timing, "measured", held)
    connection, _ = _post(server, body(input=PARAGRAPH))
    until(started.is_set)
    connection.close()  # the client goes away with three sentences still to come
    until(lambda: line.running() == 0)
    assert len(produced) == 1  # stopped after the chunk in progress
    monkeypatch.undo()
    monkeypatch.setenv("MAX_WAITING", "8")
    assert client.post("/v1/audio/speech", json=body()).status_code == 200


@pytest.mark.parametrize("fields", [{}, {"stream_format": "audio", "response_format": "pcm"}])
def test_a_client_that_leaves_while_waiting_gives_up_its_place(server, line, fields):
    with work_queue.enter("kokoro", 1.0):
        connection, _ = _post(server, body(**fields))
        until(lambda: line.waiting() == 1)
        connection.close()
        until(lambda: line.waiting() == 0)  # out of the line before its turn came
        assert line.running() == 1  # only the holder


def test_the_page_handler_shows_its_place_and_says_busy_in_one_sentence(app, line, monkeypatch):
    import gradio as gr

    from ui.kokoro_tab import kokoro_stream

    monkeypatch.setenv("MAX_WAITING", "1")
    with work_queue.enter("kokoro", 5.0):
        waiting = kokoro_stream("Hello there.", VOICE, "", 1.0, "Auto")
        first = next(waiting)  # in line: the status line says where, and that the wait is an estimate
        status = first[3]
        assert "place 1 in line" in status and "you are next" in status and "estimate" in status
        with pytest.raises(gr.Error) as refused:  # a second visitor finds the line full
            next(kokoro_stream("Hello there.", VOICE, "", 1.0, "Auto"))
        message = refused.value.message
        assert "busy" in message and "try again in about" in message and message.count(".") == 1
        waiting.close()  # the visitor leaves: out of the line
        assert line.waiting() == 0
    outputs = list(kokoro_stream("Hello there.", VOICE, "", 1.0, "Auto"))
    done = outputs[-1][3]
    assert "waited" in done and re.search(r"×\*\* (faster|slower) than real time", done)  # the wait; the speed


def test_busy_error_carries_a_retry_time():
    error = BusyError("The engine is busy; please try again in about 3 seconds.", 3)
    assert error.retry_after_s == 3 and str(error).endswith(".")
