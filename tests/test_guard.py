"""The door (`api.guard`: routes, API keys on /v1, cross-site writes, body sizes, CORS), who a client is,
and the per-client limits met at the work (`service.admission`) on every way in.

The served tests launch a small page through `app.serve` (the same launch, /v1 routes, MCP server
and guard as the real app) whose events are test faces: a few lines that resolve the caller
(`ui.caller`) and call a use case of the service, so that no model has to load.
"""

from __future__ import annotations

import itertools
import json
import re

import gradio as gr
import httpx
import numpy as np
import pytest
from conftest import _free_port
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection

from api import guard, openai_speech, router
from api.auth import api_key, client_address, owner_of_key
from api.guard import Guard
from api.speech_request import Plan
from engines.audio import OutputSettings
from engines.base import AudioChunk, EngineInfo, SynthesisRequest
from engines.runtime import registry
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


# ----- /v1: keys, and the limits in process ----------------------------------------------------------


_fakes = itertools.count()


class FakeEngine:
    """Says one 0.1 s chunk of silence per request: enough for /v1 to answer a whole file."""

    def stream(self, request: SynthesisRequest):
        yield AudioChunk(audio=np.zeros(2_400, np.float32), text=request.text, phonemes="", index=0)


@pytest.fixture()
def v1_app(monkeypatch):
    """The /v1 routes, with any speech request spoken by a fake engine (no model loads)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine_id, engine = f"guard-fake-{next(_fakes)}", FakeEngine()  # a new line: its speed not measured yet
    real_get, real_info, real_check = registry.get, registry.info, registry.check
    monkeypatch.setattr(registry, "get", lambda e: engine if e == engine_id else real_get(e))
    monkeypatch.setattr(registry, "check", lambda e, r: None if e == engine_id else real_check(e, r))
    monkeypatch.setattr(registry, "info", lambda e: EngineInfo(id=e, name="Fake") if e == engine_id else real_info(e))

    def prepare(body, owner=None):
        request = SynthesisRequest(text=body.input, voice="v")
        return Plan(engine_id, request, "wav", OutputSettings(), None)

    monkeypatch.setattr(openai_speech, "prepare", prepare)
    app = FastAPI()
    app.include_router(router)
    return app


def test_with_API_KEYS_set_v1_needs_a_key(v1_app, monkeypatch):
    monkeypatch.setenv("API_KEYS", "k-one,k-two")
    client = TestClient(Guard(v1_app))
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


SPEAK = {"model": "kokoro", "input": "Hello there.", "voice": "v"}


def test_v1_is_limited_by_key_else_by_address_and_a_forged_header_does_not_move_a_client(v1_app, monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    monkeypatch.setenv("API_RATE_PER_MIN", "2")
    client = TestClient(Guard(v1_app))

    def post(forwarded: str, **headers: str) -> httpx.Response:
        return client.post("/v1/audio/speech", json=SPEAK, headers={"x-forwarded-for": forwarded, **headers})

    assert post("6.6.6.6, 198.51.100.9").status_code == 200
    assert post("7.7.7.7, 198.51.100.9").status_code == 200  # another forged left part: the same client
    refused = post("8.8.8.8, 198.51.100.9")
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 30
    assert said(refused.json()["error"]["message"]) == SENTENCE
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert post("198.51.100.10").status_code == 200  # another client address has its own allowance
    assert client.get("/v1/models", headers={"x-forwarded-for": "198.51.100.9"}).status_code == 200  # GETs are free
    monkeypatch.setenv("API_KEYS", "k-one")
    keyed = post("198.51.100.9", authorization="Bearer k-one")
    assert keyed.status_code == 200  # a key is its own bucket, wherever it comes from


def test_v1_meters_compute_by_the_length_of_the_text(v1_app, monkeypatch):
    monkeypatch.setenv("API_RATE_PER_MIN", "100")
    monkeypatch.setenv("CALLER_COMPUTE_S_PER_MIN", "10")  # ~400 characters a minute at the unmeasured cost
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    client = TestClient(Guard(v1_app))
    headers = {"x-forwarded-for": "203.0.113.80"}
    long = client.post("/v1/audio/speech", json={**SPEAK, "input": "word " * 600}, headers=headers)
    assert long.status_code == 200  # a full allowance takes one long request
    refused = client.post("/v1/audio/speech", json=SPEAK, headers=headers)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 30
    assert "share of the server's compute" in refused.json()["error"]["message"]
    assert client.post("/v1/audio/speech", json=SPEAK, headers={"x-forwarded-for": "203.0.113.81"}).status_code == 200


def test_v1_writes_need_json_and_foreign_sites_cannot_write(v1_app):
    client = TestClient(Guard(v1_app))
    plain = client.post("/v1/audio/speech", content=b"{}", headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["error"]["message"] == guard.NOT_JSON
    form = client.post(
        "/v1/audio/lexicon", content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}, {"origin": "null"}):
        answer = client.post("/v1/audio/speech", json=SPEAK, headers=headers)
        assert answer.status_code == 403 and answer.json()["error"]["message"] == guard.CROSS_SITE, headers
    own = client.post("/v1/audio/speech", json=SPEAK, headers={"origin": "http://testserver"})
    assert own.status_code == 200  # the page's own origin may


def test_a_body_over_the_cap_is_refused_whether_declared_or_streamed(v1_app, monkeypatch):
    monkeypatch.setenv("MAX_BODY_KB", "4")
    client = TestClient(Guard(v1_app))
    big = json.dumps({**SPEAK, "input": "x" * 5000}).encode()
    declared = client.post("/v1/audio/speech", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"]["message"] == "The request body is over 4 KiB."

    def chunks():
        yield big[:3000]
        yield big[3000:]

    streamed = client.post("/v1/audio/speech", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


def test_the_part_counter_counts_files_across_chunk_edges():
    scope = {"type": "http", "headers": [(b"content-type", b"multipart/form-data; boundary=XyZ")]}
    body = b"".join(b'--XyZ\r\nContent-Disposition: form-data; name="files"\r\n\r\ndata\r\n' for _ in range(7))
    body += b"--XyZ--\r\n"
    for size in (1, 3, 5, 64):
        counter = guard._PartCounter(scope)
        counted = [counter.feed(body[i : i + size]) for i in range(0, len(body), size)]
        assert counted[-1] == 7, size


# ----- every way in, on a served page --------------------------------------------------------------


@pytest.fixture(scope="module")
def served():
    """A page of test faces (each resolves its caller and calls the service): `echo` issues an owner
    token (a request), `classify` runs the Arena's classifier (characters), `ui_only` calls nothing;
    launched by `app.serve` with a limit of 2 requests a minute and one trusted proxy hop."""
    import app
    from service import arena, owners
    from ui.caller import caller
    from ui.common import user_errors

    @user_errors
    def echo(text: str) -> str:
        """Say the text back.

        Args:
            text: what to say
        """
        owners.issue(caller())
        return text

    @user_errors
    def classify(text: str) -> str:
        return arena.classify(caller(), text).category

    def ui_only(text: str) -> str:
        return text.upper()

    def keep(text: str) -> str:
        return text

    def recall(kept: str | None) -> str:
        return kept or "forgotten"

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("API_RATE_PER_MIN", "2")
        mp.setenv("CALLER_CHARS_PER_MIN", "20000")
        mp.setenv("TRUSTED_PROXY_HOPS", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        with gr.Blocks() as demo:
            box, out = gr.Textbox(), gr.Textbox()
            box.submit(echo, box, out, api_name="echo")
            box.change(ui_only, box, out, api_name="ui_only")
            box.blur(classify, box, out, api_name="classify", api_visibility="private")
            kept = gr.State()  # what a page keeps per session (the Arena's pair, Compare's results)
            box.input(keep, box, kept, api_name="keep", api_visibility="private")
            box.focus(recall, kept, out, api_name="recall", api_visibility="private")
        port = _free_port()
        app.serve(demo, server_name="127.0.0.1", server_port=port, quiet=True)
        try:
            yield demo, f"http://127.0.0.1:{port}"
        finally:
            demo.close()


def index_of(demo: gr.Blocks, api_name: str) -> int:
    return next(i for i, fn in demo.fns.items() if fn.api_name == api_name)


def joined(client: httpx.Client, body: bytes | dict, forwarded: str, **headers: str) -> tuple[int, str]:
    """Join the queue with `body` and wait for the event: (join status, "ok:<output>" or the error sentence)."""
    session = body["session_hash"] if isinstance(body, dict) else json.loads(body)["session_hash"]
    content = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {"content-type": "application/json", "x-forwarded-for": forwarded, **headers}
    answer = client.post("/gradio_api/queue/join", content=content, headers=headers)
    if answer.status_code != 200:
        return answer.status_code, answer.text
    event = answer.json()["event_id"]
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}, headers=headers) as data:
        for line in data.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed" and message.get("event_id") == event:
                output = message.get("output") or {}
                if output.get("error"):
                    return 200, said(output["error"])
                return 200, "ok:" + str((output.get("data") or [None])[0])
    return 200, "no answer"


def body_for(fn_index, session: str = "s1", text: str = "hi", **extra) -> dict:
    return {
        "data": [text],
        "fn_index": fn_index,
        "session_hash": session,
        "event_data": None,
        "trigger_id": None,
        **extra,
    }


SENTENCE = "Too many requests: at most 2 a minute from one client; try again in 30 s."
# the wait is counted from the refusal: 30 s when it comes at once, a little less on a busy machine
LIMITED = re.compile(r"Too many requests: at most 2 a minute from one client; try again in ([12]?[0-9]|30) s\.")


def said(text: str) -> str:
    """`text` with the limit's sentence (whatever its wait, 1 to 30 s) written as `SENTENCE`."""
    return LIMITED.sub(SENTENCE, text)


def test_the_pages_events_are_limited_at_the_work_but_ui_updates_are_not(served):
    demo, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(4):
            assert joined(client, body_for(index_of(demo, "ui_only")), "203.0.113.1") == (200, "ok:HI")
        echo = index_of(demo, "echo")
        assert [joined(client, body_for(echo), "203.0.113.1") for _ in range(2)] == [(200, "ok:hi")] * 2
        assert joined(client, body_for(echo), "203.0.113.1") == (200, SENTENCE)  # the page's error toast
        assert joined(client, body_for(index_of(demo, "ui_only")), "203.0.113.1") == (200, "ok:HI")


@pytest.mark.parametrize("form", ["string", "float"])
def test_a_join_with_a_string_or_float_fn_index_is_counted(served, form):
    demo, url = served
    echo = index_of(demo, "echo")
    fn_index = str(echo) if form == "string" else float(echo)
    address = "203.0.113.20" if form == "string" else "203.0.113.21"
    with httpx.Client(base_url=url, timeout=60) as client:
        outcomes = [joined(client, body_for(fn_index, session=f"{form}{n}"), address)[1] for n in range(3)]
    assert outcomes == ["ok:hi", "ok:hi", SENTENCE]


def test_a_padded_join_over_a_mebibyte_is_counted(served):
    demo, url = served
    padded = body_for(index_of(demo, "echo"), session="padded", text="hi" + " " * (1 << 20) + ".")
    with httpx.Client(base_url=url, timeout=60) as client:
        outcomes = [joined(client, padded, "203.0.113.22")[1] for _ in range(3)]
    assert outcomes[:2] != [SENTENCE, SENTENCE] and outcomes[2] == SENTENCE


def test_a_direct_run_with_an_fn_index_in_the_body_is_counted(served):
    demo, url = served
    body = {"data": ["hi"], "fn_index": index_of(demo, "echo"), "session_hash": "direct"}
    headers = {"x-forwarded-for": "203.0.113.23"}
    with httpx.Client(base_url=url, timeout=60) as client:
        answers = [client.post("/gradio_api/run/ui_only", json=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert SENTENCE in said(answers[2].text) and "Traceback" not in answers[2].text


def test_a_join_marked_as_mcp_from_loopback_is_counted(served):
    demo, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        outcomes = [
            joined(
                client, body_for(index_of(demo, "echo"), session=f"mcp{n}"), "203.0.113.24", **{"x-gradio-user": "mcp"}
            )[1]
            for n in range(3)
        ]
    assert outcomes == ["ok:hi", "ok:hi", SENTENCE]


def test_the_gradio_api_is_limited(served):
    _, url = served
    headers = {"x-forwarded-for": "203.0.113.2"}
    with httpx.Client(base_url=url, timeout=60) as client:
        results = []
        for _ in range(3):
            event = client.post("/gradio_api/call/echo", json={"data": ["hi"]}, headers=headers).json()["event_id"]
            results.append(client.get(f"/gradio_api/call/echo/{event}", headers=headers).text)
    assert all("event: complete" in r for r in results[:2])
    assert "event: error" in results[2] and SENTENCE in said(results[2])


def test_mcp_tool_calls_are_limited(served):
    _, url = served
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}
    headers = {**MCP_HEADERS, "x-forwarded-for": "203.0.113.3"}
    with httpx.Client(base_url=url, timeout=120) as client:
        listed = client.post(
            "/gradio_api/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
        )
        assert listed.status_code == 200  # listing starts no work
        for _ in range(2):  # each runs through Gradio's queue from loopback, as the client that called
            answer = client.post("/gradio_api/mcp/", json=call, headers=headers)
            assert answer.status_code == 200 and '"text":"hi"' in answer.text.replace(" ", "")
        refused = client.post("/gradio_api/mcp/", json=call, headers=headers)
        assert SENTENCE in said(refused.text) and '"isError":true' in refused.text.replace(" ", "")


def test_a_four_megabyte_arena_text_is_refused_in_one_sentence(served):
    demo, url = served
    huge = body_for(index_of(demo, "classify"), session="huge", text="word " * 800_000)
    with httpx.Client(base_url=url, timeout=120) as client:
        status, outcome = joined(client, huge, "203.0.113.25")
        assert status == 200 and outcome == "This text is too long: at most 20,000 characters."
        assert joined(
            client, body_for(index_of(demo, "classify"), session="small", text="Hello there."), "203.0.113.25"
        )[1].startswith("ok:")


def test_routes_this_app_does_not_use_answer_404(served):
    _, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        recording = client.post(
            "/gradio_api/process_recording",
            files={"video": ("a.mp4", b"x")},
            data={"params": json.dumps({"zoom_effects": [{"boundingBox": {}}] * 50})},
        )
        assert recording.status_code == 404 and recording.json()["detail"] == "There is nothing here."
        for path in ("/monitoring", "/gradio_api/vibe-code", "/gradio_api/proxy=https://example.com/"):
            assert client.get(path).status_code == 404, path
        assert client.get("/").status_code == 200 and client.get("/config").status_code == 200
        assert client.get("/gradio_api/info").status_code == 200


def test_an_upload_of_a_thousand_files_is_refused(served):
    _, url = served
    files = [("files", (f"f{n}.txt", b"x", "text/plain")) for n in range(1000)]
    with httpx.Client(base_url=url, timeout=120) as client:
        refused = client.post("/gradio_api/upload", files=files)
        assert refused.status_code == 413 and "at most 4 files" in refused.json()["detail"]
        one = client.post("/gradio_api/upload", files=files[:1])
        assert one.status_code == 200 and len(one.json()) == 1


def test_cross_site_writes_to_gradio_are_refused(served):
    demo, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
            answer = client.post("/gradio_api/queue/join", json=body_for(index_of(demo, "echo")), headers=headers)
            assert answer.status_code == 403 and answer.json()["detail"] == guard.CROSS_SITE
        upload = client.post(
            "/gradio_api/upload", files=[("files", ("a.txt", b"x"))], headers={"origin": "https://evil.example"}
        )
        assert upload.status_code == 403
        assert joined(client, body_for(index_of(demo, "ui_only")), "203.0.113.30", origin=url) == (200, "ok:HI")


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


@pytest.mark.slow
def test_1100_new_sessions_from_one_address_leave_another_visitors_state(served):
    demo, url = served
    with httpx.Client(base_url=url, timeout=60) as client:
        visitor = body_for(index_of(demo, "keep"), session="visitor-b", text="pair-token-123")
        assert joined(client, visitor, "203.0.113.50") == (200, "ok:None")
        for n in range(1100):  # a stranger opens new sessions, cheaply (a UI update each)
            body = body_for(index_of(demo, "ui_only"), session=f"stranger-{n}")
            assert client.post(
                "/gradio_api/queue/join", json=body, headers={"x-forwarded-for": "203.0.113.51"}
            ).is_success
        assert demo.state_holder.sessions_of("203.0.113.51") == 20  # MAX_SESSIONS_PER_ADDRESS
        recalled = body_for(index_of(demo, "recall"), session="visitor-b")
        assert joined(client, recalled, "203.0.113.50") == (200, "ok:pair-token-123")
