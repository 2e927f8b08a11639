"""`python -m engines serve`: a local Ray Serve running `serve/config.yaml` until Ctrl-C.

    python -m engines serve [--replicas N] [--port P] [--host H] [--engines kokoro qwen-custom ...]

Starts a local Ray instance (no dashboard, a short temporary directory), the Serve HTTP proxy on
`--host:--port`, and the application of `serve/config.yaml` with its deployment options; `--replicas N`
fixes every engine at N replicas instead of the autoscaling bounds; without a GPU the config's
fractional GPU asks are dropped and every replica runs on CPU; the replicas' CPU asks are scaled to fit
this machine (they are for scheduling: each replica runs one thread), and the ingress asks for none, so
`/info` answers as soon as Serve is up. The deployments start in the background; each is reported as
started or not started (with Serve's reason) within `START_WAIT_S`, and the tier keeps serving either way.
Set `ENGINE_SERVER_TOKEN` (here and in the app) so that only the app may use it. Then point the web app at it:
`ENGINE_SERVER=http://127.0.0.1:P python app.py`. On a cluster use `serve deploy serve/config.yaml`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from engines.settings import settings_or_exit

ROOT = Path(__file__).resolve().parent.parent
START_WAIT_S = 300.0  # how long `start` waits for every deployment before reporting what did not start


def start(
    port: int = 8000,
    host: str = "127.0.0.1",
    replicas: int | dict | None = None,
    engines: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
    num_cpus: float | None = None,
    temp_dir: str | None = None,
    wait_s: float = START_WAIT_S,
    on_status=None,
) -> dict[str, dict]:
    """Start Ray (when not started) and Serve, deploy the application without waiting for it, then wait up
    to `wait_s` for every deployment to run; returns `deployment_states()` (what started and what did not:
    the caller reports it). The ingress, and so `/info`, answers as soon as it runs, whatever is pending."""
    import ray
    from ray import serve
    from ray.serve.api import RunTarget

    from .app import APP_NAME, load_config
    from .app import application as build

    config = load_config()
    application = config["applications"][0]
    env = {**application.get("runtime_env", {}).get("env_vars", {}), **(env_vars or {})}
    # the Ray workers' environment (a subprocess's): they import this project, and whatever PYTHONPATH had
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    if not ray.is_initialized():
        # the unix socket path must stay under ~107 bytes: a short temporary directory
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _temp_dir=temp_dir or tempfile.mkdtemp(prefix="ray", dir="/tmp"),
            runtime_env={"env_vars": {"PYTHONPATH": env["PYTHONPATH"]}},
            log_to_driver=False,
        )
    serve.start(http_options={"host": host, "port": port})
    args = {"engines": engines or application.get("args", {}).get("engines"), "replicas": replicas, "env_vars": env}
    resources = ray.cluster_resources()
    if not resources.get("GPU"):
        args["gpus"] = False  # no GPU here: the config's fractional GPU asks could never be met
    args["cpus"] = resources.get("CPU", 1.0)  # every replica asked for fits this machine
    route = application.get("route_prefix", "/")
    serve.run_many(
        [RunTarget(build(args, config), name=APP_NAME, route_prefix=route)], wait_for_applications_running=False
    )
    deadline = time.monotonic() + wait_s
    while True:
        states = deployment_states()
        if on_status is not None:
            on_status(states)
        if (states and all(s["running"] for s in states.values())) or time.monotonic() > deadline:
            return states
        time.sleep(2.0)


def deployment_states() -> dict[str, dict]:
    """Per deployment of the application: {"running": bool, "status", "replicas" (running), "message"}."""
    from ray import serve

    from .app import APP_NAME

    app = serve.status().applications.get(APP_NAME)
    out = {}
    for name, deployment in (app.deployments if app else {}).items():
        running = int((deployment.replica_states or {}).get("RUNNING", 0))
        status = str(getattr(deployment.status, "value", deployment.status))
        out[name] = {
            "running": status == "HEALTHY" and running > 0,
            "status": status,
            "replicas": running,
            "message": (deployment.message or "").strip().splitlines()[0] if deployment.message else "",
        }
    return out


def report(states: dict[str, dict]) -> str:
    """One line per deployment: started, or not started and why (Serve's own words)."""
    lines = []
    for name, state in sorted(states.items()):
        if state["running"]:
            lines.append(f"  {name}: started, {state['replicas']} replica(s) running")
        else:
            why = state["message"] or state["status"].lower()
            lines.append(f"  {name}: not started ({state['replicas']} replica(s) running): {why}")
    return "\n".join(lines) or "  no deployments"


def main(argv: list[str] | None = None) -> int:
    settings_or_exit()  # a bad variable: one sentence and exit status 2, before Ray starts
    parser = argparse.ArgumentParser(prog="python -m engines serve", description="Run the engine tier on Ray Serve.")
    parser.add_argument("--replicas", type=int, help="replicas per engine (default: the config's autoscaling)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--engines", nargs="+", help="engine ids to serve (default: the config's)")
    parser.add_argument("--num-cpus", type=float, help="logical CPUs Ray may hand out (default: this machine's)")
    args = parser.parse_args(argv)
    if args.replicas is not None and args.replicas < 1:
        print("--replicas must be 1 or more.", file=sys.stderr)
        return 2
    from ray import serve

    last = [None]

    def progress(states: dict) -> None:
        summary = {n: (s["running"], s["replicas"]) for n, s in states.items()}
        if summary != last[0]:
            last[0] = summary
            print(f"Deployments ({time.strftime('%H:%M:%S')}):\n{report(states)}", flush=True)

    try:
        states = start(args.port, args.host, args.replicas, args.engines, num_cpus=args.num_cpus, on_status=progress)
        where = f"http://{args.host}:{args.port}"
        if states and all(s["running"] for s in states.values()):
            print(f"Engine tier on {where} (ENGINE_SERVER); every deployment started. Ctrl-C stops it.", flush=True)
        else:
            print(f"Engine tier on {where} (ENGINE_SERVER); not every deployment started:", flush=True)
            print(report(states), flush=True)
            print("/info reports the engines without a running replica as unavailable. Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
        return 130
    except ValueError as exc:  # an unknown engine id
        print(f"error: {exc}", file=sys.stderr)
        return 2
