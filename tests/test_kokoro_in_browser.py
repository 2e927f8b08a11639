"""Kokoro in the browser, the server's half (`api.kokoro_in_browser`): `/kokoro/plan` gives exactly the
token ids and style rows the server's own Kokoro path synthesizes, within the bounds of /v1; the
assets (packaged model, ONNX Runtime Web, the page's scripts) carry caching headers and answer 304 to
a matching If-None-Match; the worker trims its audio as the server does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from api import kokoro_in_browser
from engines import audio
from engines.base import MAX_TEXT_CHARS, SAMPLE_RATE, SynthesisRequest
from engines.runtime import registry

ROOT = Path(__file__).resolve().parent.parent
TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background; it is easy."


@pytest.fixture(scope="module")
def client():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import ui.kokoro_in_browser  # noqa: F401  (registers the page's scripts as assets)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
            mp.delenv(name, raising=False)
        app = FastAPI()
        app.include_router(kokoro_in_browser.router)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
        registry.unload("kokoro")


def one_sentence(answer) -> str:
    message = answer.json()["error"]["message"]
    assert message.endswith(".") and "Traceback" not in message and "/" not in message.replace("/v1", "")
    return message


def test_the_plan_holds_the_tokens_and_style_rows_the_server_path_synthesizes(client):
    plan = client.get("/kokoro/plan", params={"text": TEXT, "voice": "jm_kumo", "speed": "1.1"})
    assert plan.status_code == 200, plan.text
    body = plan.json()
    engine = registry.get("kokoro")
    calls = []
    backend = engine._backend
    real_run = backend.run

    def recording(ids, style, speed):
        calls.append((list(ids), np.array(style, dtype=np.float32), speed))
        return real_run(ids, style, speed)

    backend.run = recording
    try:
        chunks = list(engine.stream(SynthesisRequest(text=TEXT, voice="jm_kumo", speed=1.1)))
    finally:
        backend.run = real_run
    assert len(body["chunks"]) == len(calls) == len(chunks) >= 2
    for planned, (ids, style, speed), chunk in zip(body["chunks"], calls, chunks, strict=True):
        assert planned["tokens"] == ids and speed == pytest.approx(1.1)
        assert np.array_equal(np.array(planned["style"], dtype=np.float32), style)
        assert planned["phonemes"] == chunk.phonemes and planned["text"] == chunk.text
    assert body["chunks"][-1]["pause_s"] == 0.0 and body["chunks"][0]["pause_s"] > 0
    assert body["sample_rate"] == SAMPLE_RATE
    assert body["trim"] == {"threshold_db": audio.SILENCE_DB, "frame": SAMPLE_RATE // 100, "keep_s": 0.04,
                            "fade_s": audio.FADE_S}  # fmt: skip


def test_the_plan_answers_post_json_like_get(client):
    got = client.get("/kokoro/plan", params={"text": "Hello there.", "voice": "jm_kumo"}).json()
    posted = client.post("/kokoro/plan", json={"text": "Hello there.", "voice": "jm_kumo", "speed": 1}).json()
    assert got == posted


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"text": "x" * (MAX_TEXT_CHARS + 1), "voice": "jm_kumo"}, 413, "limit"),
        ({"text": "Hello.", "voice": "nobody"}, 404, "no voice"),
        ({"text": "", "voice": "jm_kumo"}, 400, "text"),
        ({"text": "Hello.", "voice": "jm_kumo", "speed": "9"}, 400, "Speed"),
        ({"text": "Hello.", "voice": "jm_kumo", "speed": "fast"}, 400, "Speed"),
        ({"text": "Hello.", "voice": "jm_kumo", "pitch": "2"}, 400, "Unknown parameter"),
        ({"text": "🙂 …", "voice": "jm_kumo"}, 400, "nothing to pronounce"),
        ({"text": "Hello.", "voice": "jm_kumo:1,jf_alpha:x"}, 400, ""),
    ],
)
def test_bad_plan_requests_get_one_sentence_and_the_right_code(client, params, status, says):
    answer = client.get("/kokoro/plan", params=params)
    assert answer.status_code == status, answer.text
    assert says in one_sentence(answer)


def test_bad_plan_bodies_get_one_sentence(client):
    assert client.post("/kokoro/plan", content=b"text=hi", headers={"Content-Type": "text/plain"}).status_code == 415
    answer = client.post("/kokoro/plan", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and one_sentence(answer)
    answer = client.post("/kokoro/plan", json={"text": ["a"], "voice": "jm_kumo"})
    assert answer.status_code == 400 and one_sentence(answer)


TRAIN, HOUSE = "tɹˈAn", "hˈWs"  # misaki's phonemes for "train" and "house"


def test_the_plan_speaks_the_lexicon_the_page_sends(client):
    body = {"text": "I saw a house today.", "voice": "jm_kumo"}
    plain = client.post("/kokoro/plan", json=body).json()
    spoken = client.post("/kokoro/plan", json={**body, "lexicon": {"House": TRAIN}}).json()
    said = " ".join(chunk["phonemes"] for chunk in spoken["chunks"])
    assert TRAIN in said and HOUSE not in said
    assert HOUSE in " ".join(chunk["phonemes"] for chunk in plain["chunks"])
    assert [c["tokens"] for c in spoken["chunks"]] != [c["tokens"] for c in plain["chunks"]]
    by_query = client.get("/kokoro/plan", params={**body, "lexicon": json.dumps({"house": TRAIN})}).json()
    assert by_query["chunks"] == spoken["chunks"]


@pytest.mark.parametrize(
    ("lexicon", "says"),
    [(["house"], "map words"), ({"house": "§§"}, "cannot say"), ({"two words": TRAIN}, ""), ("{no", "JSON")],
)
def test_a_bad_lexicon_in_the_plan_gets_one_sentence_and_the_next_plan_works(client, lexicon, says):
    body = {"text": "I saw a house today.", "voice": "jm_kumo", "lexicon": lexicon}
    answer = client.post("/kokoro/plan", json=body)
    assert answer.status_code == 400, answer.text
    assert says in one_sentence(answer)
    assert client.post("/kokoro/plan", json={**body, "lexicon": {}}).status_code == 200


def asset_urls(client) -> dict[str, str]:
    plan = client.get("/kokoro/plan", params={"text": "Hi.", "voice": "jm_kumo"}).json()
    return {
        "model": plan["model"],
        "ort": plan["ort"] + "ort.wasm.min.mjs",
        "wasm": plan["ort"] + "ort-wasm-simd-threaded.wasm",
        "page": "/kokoro/assets/kokoro_in_browser.js",
        "worker": "/kokoro/assets/kokoro_in_browser_worker.js",
    }


@pytest.mark.parametrize("kind", ["model", "ort", "wasm", "page", "worker"])
def test_assets_carry_caching_headers_and_answer_304_to_their_etag(client, kind):
    url = asset_urls(client)[kind]
    with client.stream("GET", url) as first:
        assert first.status_code == 200
        etag, cache = first.headers["etag"], first.headers["cache-control"]
        size = int(first.headers["content-length"])
    assert etag.startswith('"') and size > 1000
    if kind in ("model", "ort", "wasm"):  # versioned names: kept a year without asking again
        assert cache == "public, max-age=31536000, immutable"
    else:  # the page's own scripts change with the app: asked again, 304 while unchanged
        assert cache == "no-cache"
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": f'W/"other", {etag}'}).status_code == 304
    with client.stream("GET", url, headers={"If-None-Match": '"something-else"'}) as changed:
        assert changed.status_code == 200
    if kind == "wasm":
        assert first.headers["content-type"] == "application/wasm"


@pytest.mark.parametrize(
    "name",
    ["../app.py", "ort-1.30.0/../../app.py", "ort-1.30.0/package.json", "ort-0.0.1/ort.wasm.min.mjs", "x.onnx",
     "kokoro_tab.py", "%2e%2e/app.py"],
)  # fmt: skip
def test_only_known_assets_are_served(client, name):
    answer = client.get("/kokoro/assets/" + name)
    assert answer.status_code == 404 and "import" not in answer.text


def test_the_worker_trims_chunks_as_the_server_does(tmp_path):
    """The worker's trim (JavaScript) against engines.audio.trim_silence + fade_edges on the same audio."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    source = (ROOT / "ui" / "kokoro_in_browser_worker.js").read_text()
    start = source.index("function trim(")
    end = source.index("\n}\n", start) + 3
    rng = np.random.default_rng(3)
    clip = np.concatenate([np.zeros(9000), 0.3 * rng.standard_normal(20000), 1e-4 * np.ones(7777)]).astype(np.float32)
    trim = {"threshold_db": audio.SILENCE_DB, "frame": 240, "keep_s": 0.04, "fade_s": audio.FADE_S}
    for pause in (0.0, 0.28):
        script = (
            source[start:end]
            + f"const a = Float32Array.from({json.dumps(clip.tolist())});"
            + f"process.stdout.write(JSON.stringify(Array.from(trim(a, 24000, {json.dumps(trim)}, {pause}))));"
        )
        (tmp_path / "trim.js").write_text(script)
        out = subprocess.run(
            [node, tmp_path / "trim.js"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        browser = np.array(json.loads(out), dtype=np.float32)
        server = audio.fade_edges(audio.trim_silence(clip, SAMPLE_RATE, pause_s=pause)[0])
        assert browser.shape == server.shape
        assert np.allclose(browser, server, atol=1e-6)


def test_a_plan_flood_from_one_client_is_refused_at_its_allowance_and_others_still_plan(client, monkeypatch):
    monkeypatch.setenv("API_RATE_PER_MIN", "3")
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    flood = {"x-forwarded-for": "203.0.113.60"}
    params = {"text": "Hello there. " * 30, "voice": "jm_kumo"}
    codes = [client.get("/kokoro/plan", params=params, headers=flood).status_code for _ in range(6)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429, 429]
    refused = client.get("/kokoro/plan", params=params, headers=flood)
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # 3 a minute: the next in at most 20 s
    assert one_sentence(refused).startswith("Too many requests: at most 3 a minute from one client")
    polite = client.get(
        "/kokoro/plan", params={"text": "Hi.", "voice": "jm_kumo"}, headers={"x-forwarded-for": "203.0.113.61"}
    )
    assert polite.status_code == 200


def test_a_voice_found_for_the_visitors_clip_plans_with_its_own_style_rows_for_that_visitor_only(
    client, monkeypatch, tmp_path
):
    """The page sends its owner token: a Kokoro voice found for this visitor's clip (`engines.kokoro.voices`)
    plans in the browser with its own table's rows; another visitor, or none, gets 404 for that name."""
    from engines.kokoro.voices import save_found_voice
    from service.owners import new_token, owner_of_token

    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path / "library"))
    mine, theirs = new_token(), new_token()
    stock = registry.get("kokoro").style_table("jm_kumo")
    table = (stock + 0.05 * np.random.default_rng(3).standard_normal(stock.shape)).astype(np.float32)
    name = save_found_voice("my narrator", table.reshape(-1, 1, 256), owner_of_token(mine))
    body = {"text": TEXT, "voice": name}
    plan = client.post("/kokoro/plan", json={**body, "owner_token": mine})
    assert plan.status_code == 200, plan.text
    for chunk in plan.json()["chunks"]:
        expected = table[len(chunk["tokens"]) - 1]  # the row the chunk's token count picks, from the found table
        assert np.allclose(np.array(chunk["style"], dtype=np.float32), expected, atol=1e-6)
    for other in ({**body, "owner_token": theirs}, body, {**body, "owner_token": "forged.token"}):
        refused = client.post("/kokoro/plan", json=other)
        assert refused.status_code == 404 and name in one_sentence(refused)
