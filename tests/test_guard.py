"""API keys on /v1, the per-client rate limit on every way in, who a client is, and CORS (`api.guard`).

The served tests launch a small page through `app.serve` (the same launch, /v1 routes, MCP server
and guard as the real app) with one event that starts work, so that no model has to load.
"""

from __future__ import annotations

import json

import gradio as gr
import httpx
import pytest
from conftest import _free_port
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection

from api import router
from api.auth import api_key, client_address, owner_of_key
from api.guard import Guard
from service.limits import RateLimiter

MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def connection(peer: str = "10.9.9.9", **headers: str) -> HTTPConnection:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return HTTPConnection({"type": "http", "headers": raw, "client": (peer, 1234)})


# ----- who is calling ------------------------------------------------------------------------------


def test_a_key_counts_only_when_it_is_one_of_API_KEYS(monkeypatch):
    monkeypatch.delenv("API_KEYS", raising=False)
    assert api_key(connection(authorization="Bearer abc")) is None  # keys unset: nobody has one
    monkeypatch.setenv("API_KEYS", "abc, def")
    assert api_key(connection(authorization="Bearer def")) == "def"
    assert api_key(connection(authorization="bearer abc")) == "abc"
    assert api_key(connection(authorization="Bearer abd")) is None
    assert api_key(connection(authorization="Basic abc")) is None
    assert api_key(connection()) is None


def test_the_owner_of_a_key_is_stable_and_never_shows_the_key():
    owner = owner_of_key("s3cret-key")
    assert owner == owner_of_key("s3cret-key") != owner_of_key("s3cret-kez")
    assert owner.startswith("key:") and len(owner) == 36 and "s3cret" not in owner


def test_the_client_is_the_socket_peer_unless_proxies_are_trusted(monkeypatch):
    monkeypatch.delenv("TRUSTED_PROXY_HOPS", raising=False)
    forged = connection("10.0.0.7", x_forwarded_for="1.2.3.4")
    assert client_address(forged) == "10.0.0.7"
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")  # a Space: its proxy appends the address it saw
    assert client_address(connection("10.0.0.7", x_forwarded_for="1.2.3.4, 203.0.113.5")) == "203.0.113.5"
    assert client_address(connection("10.0.0.7", x_forwarded_for="203.0.113.5")) == "203.0.113.5"
    assert client_address(connection("10.0.0.7")) == "10.0.0.7"  # no header: the peer
    assert client_address(connection("10.0.0.7", x_forwarded_for="1.2.3.4, not-an-ip")) == "10.0.0.7"
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "2")
    assert client_address(connection("10.0.0.7", x_forwarded_for="9.9.9.9, 198.51.100.2, 10.0.0.3")) == "198.51.100.2"


# ----- the rate limiter ----------------------------------------------------------------------------


def test_a_bucket_refills_at_the_rate_and_says_how_long_to_wait():
    now = [0.0]
    limiter = RateLimiter(30, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(30)] == [0.0] * 30
    wait = limiter.take("a")
    assert wait == pytest.approx(2.0) and RateLimiter.retry_after(wait) == "2"  # 30 a minute: one per 2 s
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] += 2.0
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0


def test_the_limiter_keeps_a_bounded_number_of_clients():
    limiter = RateLimiter(1, max_clients=100)
    for i in range(1000):
        limiter.take(f"client-{i}")
    assert len(limiter._buckets) == 100


# ----- /v1: keys and the limit in process ----------------------------------------------------------


@pytest.fixture()
def v1_app(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = FastAPI()
    app.include_router(router)
    return app


def test_with_API_KEYS_set_v1_needs_a_key(v1_app, monkeypatch):
    monkeypatch.setenv("API_KEYS", "k-one,k-two")
    client = TestClient(Guard(v1_app, rate_per_min=0))
    missing = client.get("/v1/models")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"] == {
        "message": "This API needs a key: send it as Authorization: Bearer <key>.",
        "type": "invalid_request_error", "param": None, "code": "missing_api_key",
    }  # fmt: skip
    wrong = client.post("/v1/audio/speech", json={}, headers={"Authorization": "Bearer k-three"})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "The API key is not valid."
    assert client.get("/v1/models", headers={"Authorization": "Bearer k-two"}).status_code == 200
    monkeypatch.delenv("API_KEYS")
    assert client.get("/v1/models").status_code == 200  # unset: open, as before


def test_v1_is_limited_by_key_else_by_address_and_a_forged_header_does_not_move_a_client(v1_app, monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    client = TestClient(Guard(v1_app, rate_per_min=2))
    body = b"not json"  # refused after the guard counted it: the limit counts every POST
    proxy = {"content-type": "application/json"}

    def post(forwarded: str, **headers: str) -> httpx.Response:
        return client.post("/v1/audio/speech", content=body, headers={**proxy, "x-forwarded-for": forwarded, **headers})

    assert post("6.6.6.6, 198.51.100.9").status_code == 400
    assert post("7.7.7.7, 198.51.100.9").status_code == 400  # another forged left part: the same client
    refused = post("8.8.8.8, 198.51.100.9")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert (
        refused.json()["error"]["message"]
        == "Too many requests: at most 2 a minute from one client; try again in 30 s."
    )
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert post("198.51.100.10").status_code == 400  # another client address has its own bucket
    assert client.get("/v1/models", headers={"x-forwarded-for": "198.51.100.9"}).status_code == 200  # GETs are free
    monkeypatch.setenv("API_KEYS", "k-one")
    keyed = post("198.51.100.9", authorization="Bearer k-one")
    assert keyed.status_code == 400  # a key is its own bucket, wherever it comes from


# ----- every way in, on a served page --------------------------------------------------------------


@pytest.fixture(scope="module")
def served():
    """A page with one work event (`echo`, marked by `user_errors`) and one that is not (`ui_only`),
    launched by `app.serve` with a limit of 2 a minute and one trusted proxy hop."""
    import app
    from ui.common import user_errors

    @user_errors
    def echo(text: str) -> str:
        """Say the text back.

        Args:
            text: what to say
        """
        return text

    def ui_only(text: str) -> str:
        return text.upper()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("API_RATE_PER_MIN", "2")
        mp.setenv("TRUSTED_PROXY_HOPS", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        with gr.Blocks() as demo:
            box, out = gr.Textbox(), gr.Textbox()
            box.submit(echo, box, out, api_name="echo")
            box.change(ui_only, box, out, api_name="ui_only")
        port = _free_port()
        app.serve(demo, server_name="127.0.0.1", server_port=port, quiet=True)
        try:
            yield demo, f"http://127.0.0.1:{port}"
        finally:
            demo.close()


def join(client: httpx.Client, demo: gr.Blocks, api_name: str, forwarded: str) -> httpx.Response:
    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == api_name)
    body = {"data": ["hi"], "fn_index": fn_index, "session_hash": "s1", "event_data": None, "trigger_id": None}
    return client.post("/gradio_api/queue/join", json=body, headers={"x-forwarded-for": forwarded})


SENTENCE = "Too many requests: at most 2 a minute from one client; try again in 30 s."


def test_the_pages_events_are_limited_but_ui_updates_are_not(served):
    demo, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(4):
            assert join(client, demo, "ui_only", "203.0.113.1").status_code == 200
        assert [join(client, demo, "echo", "203.0.113.1").status_code for _ in range(2)] == [200, 200]
        refused = join(client, demo, "echo", "203.0.113.1")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
        assert refused.json()["detail"] == SENTENCE  # what the page's error toast shows
        assert join(client, demo, "ui_only", "203.0.113.1").status_code == 200


def test_the_gradio_api_is_limited(served):
    _, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        codes = [client.post("/gradio_api/call/echo", json={"data": ["hi"]}, headers={"x-forwarded-for": "203.0.113.2"})
                 for _ in range(3)]  # fmt: skip
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert codes[-1].json()["detail"] == SENTENCE


def test_mcp_tool_calls_are_limited_and_counted_once(served):
    _, url = served
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}
    headers = {**MCP_HEADERS, "x-forwarded-for": "203.0.113.3"}
    with httpx.Client(base_url=url, timeout=120) as client:
        listed = client.post(
            "/gradio_api/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
        )
        assert listed.status_code == 200  # listing starts no work
        for _ in range(2):  # each runs through Gradio's queue from loopback: still one count each
            answer = client.post("/gradio_api/mcp/", json=call, headers=headers)
            assert answer.status_code == 200 and '"text":"hi"' in answer.text.replace(" ", "")
        refused = client.post("/gradio_api/mcp/", json=call, headers=headers)
        assert refused.status_code == 429
        assert refused.json() == {"jsonrpc": "2.0", "id": 5, "error": {"code": -32000, "message": SENTENCE}}


def test_v1_on_the_served_app_is_limited(served):
    _, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        codes = [client.post("/v1/audio/speech", content=b"{}", headers={"content-type": "text/plain",
                 "x-forwarded-for": "203.0.113.4"}).status_code for _ in range(3)]  # fmt: skip
        assert codes == [415, 415, 429]


def test_no_other_origin_gets_a_cors_header(served):
    _, url = served
    own = url
    with httpx.Client(base_url=url, timeout=60) as client:
        for path in ("/gradio_api/info", "/v1/models", "/config"):
            for origin in ("https://evil.example", "null", "http://127.0.0.1:1", "http://localhost"):
                answer = client.get(path, headers={"origin": origin})
                assert "access-control-allow-origin" not in answer.headers, (path, origin)
            assert client.get(path, headers={"origin": own}).headers["access-control-allow-origin"] == own
        preflight = client.options(
            "/v1/audio/speech",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST",
                     "access-control-request-headers": "content-type"},
        )  # fmt: skip
        assert "access-control-allow-origin" not in preflight.headers
        join_preflight = client.options(
            "/gradio_api/queue/join",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in join_preflight.headers


def test_the_page_itself_is_not_limited(served):
    _, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(5):
            assert client.get("/", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 200
            assert client.get("/config", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 200


def test_an_unparseable_join_is_still_gradios_to_refuse(served):
    _, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post(
            "/gradio_api/queue/join", content=b"[" * 3000, headers={"content-type": "application/json",
            "x-forwarded-for": "203.0.113.11"},
        )  # fmt: skip
        assert answer.status_code in (400, 422) and "Traceback" not in answer.text
        json.loads(answer.text)
