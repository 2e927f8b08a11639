"""The engine tier's door and start: `ENGINE_SERVER_TOKEN` is required when set, request bodies are capped,
replicas' CPU asks fit one machine, and the README's `python -m engines serve --replicas 2 --port P` starts
with `/info` answering within seconds and every deployment reported as started or not started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
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


INFO_LIVENESS_S = 60.0  # /info's own waits add up to 7 s; a hang (the bug closed) is minutes


@pytest.mark.slow
def test_the_readmes_serve_command_answers_info_within_seconds_and_reports_every_deployment(tmp_path, one_ray_cluster):
    """`python -m engines serve --replicas 2 --port P` on this machine, as the README runs it (Qwen has no
    weights offline: its replicas start and say so). Bounded: the test gives up after 12 minutes (it took 270 s
    here on a slow day, and CI runs about 1.7x slower). "/info answers within seconds whatever is pending" is
    checked against the bug it closes (/info never answered in 10 minutes) with a liveness bound of a minute:
    /info's own waits add up to 7 s, and on CI's two cores, shared with the other test worker and Ray starting
    five replicas, one answer once took 16 s. It is a bound on hanging, not a speed figure."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ENGINE_SERVER_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    models = ("QWEN_CUSTOM_VOICE_MODEL", "QWEN_BASE_MODEL", "QWEN_VOICE_DESIGN_MODEL", "KOKORO_MODEL")
    for name in (*models, "ENGINE_SERVER"):
        env.pop(name, None)
    command = [sys.executable, "-m", "engines", "serve", "--replicas", "2", "--port", str(port)]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.decode(errors="replace") for line in proc.stdout))
    reader.start()
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 720
        first_info = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                started = time.monotonic()
                answer = httpx.get(f"{base}/info", headers=auth, timeout=INFO_LIVENESS_S)
                if answer.status_code == 200:
                    first_info, took = answer.json(), time.monotonic() - started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        assert first_info is not None, "".join(lines[-30:])
        assert set(first_info["engines"]) == {"kokoro", "qwen-custom", "qwen-clone", "qwen-design"}
        assert took < INFO_LIVENESS_S
        assert httpx.get(f"{base}/info", timeout=15).status_code == 401  # no token: refused
        # the command reports every deployment: started, or not started with Serve's reason
        while time.monotonic() < deadline and not any("Engine tier on" in line for line in lines):
            time.sleep(2)
        output = "".join(lines)
        assert "Engine tier on" in output, output[-3000:]
        report = output[output.rindex("Deployments (") :]
        for name in ("kokoro", "qwen-custom", "qwen-clone", "qwen-design", "ingress"):
            assert f"  {name}: started" in report or f"  {name}: not started" in report, report
        # /info still answers within seconds, with every engine running or said to be unavailable
        started = time.monotonic()
        engines = httpx.get(f"{base}/info", headers=auth, timeout=INFO_LIVENESS_S).json()["engines"]
        assert time.monotonic() - started < INFO_LIVENESS_S
        for engine_id, info in engines.items():
            assert info["replicas"] or info["available"] is False, (engine_id, json.dumps(info)[:300])
        # Kokoro serves on both replicas: on a loaded machine a replica may still be starting, or busy past
        # /info's 4 s wait for its first answer ("busy" is /info's designed answer then), so ask again
        while not (engines["kokoro"]["available"] and engines["kokoro"]["replicas"] == 2):
            assert time.monotonic() < deadline, (json.dumps(engines["kokoro"])[:500], report)
            time.sleep(5)
            engines = httpx.get(f"{base}/info", headers=auth, timeout=INFO_LIVENESS_S).json()["engines"]
        print(f"/info first answered in {took:.2f} s; the command's last report:\n{report}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
