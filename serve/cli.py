"""`python -m engines serve`: a local Ray Serve running `serve/config.yaml` until Ctrl-C.

    python -m engines serve [--replicas N] [--port P] [--host H] [--engines kokoro qwen-custom ...]

Starts a local Ray instance (no dashboard, a short temporary directory), the Serve HTTP proxy on
`--host:--port`, and the application of `serve/config.yaml` with its deployment options; `--replicas N`
fixes every engine at N replicas instead of the autoscaling bounds; without a GPU the config's
fractional GPU asks are dropped and every replica runs on CPU. Then point the web app at it:
`ENGINE_SERVER=http://127.0.0.1:P python app.py`. On a cluster use `serve deploy serve/config.yaml`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(
    port: int = 8000,
    host: str = "127.0.0.1",
    replicas: int | None = None,
    engines: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
    num_cpus: float | None = None,
    temp_dir: str | None = None,
) -> None:
    """Start Ray (when not started) and Serve, and run the application; returns once it is running."""
    import ray
    from ray import serve

    from .app import APP_NAME, load_config
    from .app import application as build

    config = load_config()
    application = config["applications"][0]
    env = {**application.get("runtime_env", {}).get("env_vars", {}), **(env_vars or {})}
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
    if not ray.cluster_resources().get("GPU"):
        args["gpus"] = False  # no GPU here: the config's fractional GPU asks could never be met
    serve.run(build(args, config), name=APP_NAME, route_prefix=application.get("route_prefix", "/"))


def main(argv: list[str] | None = None) -> int:
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

    try:
        start(args.port, args.host, args.replicas, args.engines, num_cpus=args.num_cpus)
        print(f"Engine tier on http://{args.host}:{args.port} (ENGINE_SERVER); Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
        return 130
    except ValueError as exc:  # an unknown engine id
        print(f"error: {exc}", file=sys.stderr)
        return 2
