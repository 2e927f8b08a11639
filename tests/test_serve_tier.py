"""The engine tier's door and start: `ENGINE_SERVER_TOKEN` is required when set, request bodies are capped,
and replicas' CPU asks fit one machine (no Ray here; the README's `python -m engines serve` command is started
in tests/test_serve.py, with the module's own Ray cluster, one after the other on one test worker)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray")
from starlette.requests import Request  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from serve.app import Ingress, deployment_options, fit_to_cpus, load_config, starting_replicas  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token-for-tests"


def door(monkeypatch, token: str | None, max_mb: str | None = None) -> TestClient:
    """The ingress class (no Ray) behind Starlette's test client, with one fake engine handle."""
    for name, value in (("ENGINE_SERVER_TOKEN", token), ("ENGINE_SERVER_MAX_BODY_MB", max_mb)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    ingress = Ingress({"kokoro": object()})
    monkeypatch.setattr(ingress, "_serve_details", lambda: {})

    async def engine_info(engine_id, handle):
        return {"id": engine_id, "available": True}

    monkeypatch.setattr(ingress, "_engine_info", engine_info)

    async def app(scope, receive, send):
        response = await ingress(Request(scope, receive))
        await response(scope, receive, send)

    return TestClient(app)


def test_the_tier_refuses_a_request_without_its_token(monkeypatch):
    client = door(monkeypatch, TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in (("GET", "/info"), ("POST", "/synthesize/kokoro"), ("POST", "/clone_prompt/kokoro")):
            answer = client.request(method, path, headers=headers, content=b"{}")
            assert answer.status_code == 401, (method, path, headers)
            assert "token" in answer.json()["error"]["message"]
    answer = client.get("/info", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["engines"]["kokoro"]["available"] is True


def test_without_a_token_set_the_tier_stays_open(monkeypatch):
    assert door(monkeypatch, None).get("/info").status_code == 200


def test_a_body_over_the_cap_is_refused_whether_or_not_it_says_its_length(monkeypatch):
    client = door(monkeypatch, TOKEN, max_mb="0.01")  # 10,485 bytes
    auth = {"Authorization": f"Bearer {TOKEN}"}
    big = b'{"text": "' + b"a" * 20_000 + b'"}'
    answer = client.post("/synthesize/kokoro", headers=auth, content=big)
    assert answer.status_code == 413 and "over 0.01 MB" in answer.json()["error"]["message"]

    def chunks():  # no Content-Length: read in pieces, stopped at the cap
        for _ in range(40):
            yield b"a" * 1000

    assert client.post("/clone_prompt/kokoro", headers=auth, content=chunks()).status_code == 413


def test_replicas_asked_for_fit_the_machines_cpus():
    options = deployment_options(load_config())
    engines = {e: {**options[e], "num_replicas": 2} for e in ("kokoro", "qwen-custom", "qwen-clone")}
    for opts in engines.values():
        opts.pop("autoscaling_config", None)
    fit_to_cpus(engines, 2.0)  # the README's --replicas 2 on a 2-core machine asked for 3 CPUs
    asked = sum(o["ray_actor_options"]["num_cpus"] * starting_replicas(o) for o in engines.values())
    assert 1.5 < asked <= 2.0
    roomy = {e: {**options[e]} for e in ("kokoro", "qwen-custom")}
    fit_to_cpus(roomy, 64.0)  # asks that fit are kept
    assert roomy["kokoro"]["ray_actor_options"]["num_cpus"] == options["kokoro"]["ray_actor_options"]["num_cpus"]


def test_the_apps_remote_client_sends_the_token(monkeypatch):
    from engines.runtime.remote import RemoteEngine

    monkeypatch.setenv("ENGINE_SERVER_TOKEN", TOKEN)
    seen = []
    engine = RemoteEngine("kokoro", "http://tier.invalid")
    engine._client._transport = httpx.MockTransport(
        lambda request: seen.append(request.headers.get("authorization")) or httpx.Response(401, json={})
    )
    assert engine.info().available is False  # refused: reported as unavailable, not raised
    assert seen == [f"Bearer {TOKEN}"]
    monkeypatch.delenv("ENGINE_SERVER_TOKEN")
    assert "authorization" not in RemoteEngine("kokoro", "http://tier.invalid")._client.headers


def test_the_kuberay_manifest_gives_every_ray_container_the_token_from_a_secret():
    import yaml

    manifest = yaml.safe_load((ROOT / "deploy" / "kuberay-rayservice.yaml").read_text())
    cluster = manifest["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert "secretKeyRef" in env["ENGINE_SERVER_TOKEN"]["valueFrom"], container["name"]
