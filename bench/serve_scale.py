"""One app process vs the engine tier on Ray Serve with 1 and 2 Kokoro replicas: the same load curve.

For each setup the app is started as the tests start it (`bench/local_app.py`) and driven by
`bench/load.py`'s levels (half the clients stream `/v1/audio/speech`, half the page's `/stream` event,
seeded jitter, refusals honoured); the setups:

- `one-process`: the app runs Kokoro itself (the baseline, same run);
- `serve-1` / `serve-2`: a local Ray Serve (`serve.cli.start`: `serve/config.yaml`, Kokoro only, fixed
  replicas, one ORT thread per replica as configured) and the app with `ENGINE_SERVER` pointing at it.

Prints one JSON line per level and setup, then the summary; `--out` writes the report, `--plot` the
curves (audio seconds per wall second, first-audio p50/p95 against concurrent clients).

    python bench/serve_scale.py [--levels 1 2 4] [--requests 2] [--out bench/results-serve-scale.json]
                                [--plot docs/img/serve-scale.png]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from load import TEXT, VOICE, page_request, run_level, v1_request
from local_app import LocalApp, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def drive(url: str, pid: int, levels: list[int], requests: int, setup: str) -> list[dict]:
    from gradio_client import Client

    host, port = url.split("//")[1].rstrip("/").split(":")
    warm = [v1_request(host, int(port)), page_request(Client(url, verbose=False))]  # not counted
    if any(r["kind"] != "served" for r in warm):
        raise SystemExit(f"{setup}: warm-up failed: {warm}")
    out = []
    for clients in levels:
        level = {"setup": setup, **run_level(url, clients, requests, pid)}
        print(json.dumps(level), flush=True)
        out.append(level)
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for n, (setup, levels) in enumerate(report["setups"].items()):
        x, color = [lv["clients"] for lv in levels], f"C{n}"
        left.plot(x, [lv["audio_per_wall_s"] for lv in levels], "o-", color=color, label=setup)
        right.plot(x, [lv["ttfa_s"]["p50"] for lv in levels], "o-", color=color, label=f"{setup} p50")
        right.plot(x, [lv["ttfa_s"]["p95"] for lv in levels], "x--", color=color, label=f"{setup} p95")
    left.set_xticks(x, [str(v) for v in x])
    right.set_xticks(x, [str(v) for v in x])
    left.set_xlabel("concurrent clients")
    left.set_ylabel("seconds of audio per wall second")
    right.set_xlabel("concurrent clients")
    right.set_ylabel("time to first audio (s)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(f"Kokoro: one process vs Ray Serve replicas ({report['machine']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=2, help="requests per client, one after another")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="serve-scale-"))
    base_env = {"API_RATE_PER_MIN": "100000", "ARENA_DB": str(logs / "arena.sqlite3")}
    setups: dict[str, list[dict]] = {}

    app = LocalApp(logs / "one-process.log", base_env)
    try:
        setups["one-process"] = drive(app.url, app.proc.pid, args.levels, args.requests, "one-process")
    finally:
        app.stop()

    import ray
    from ray import serve

    from serve.cli import start

    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix socket paths are limited
    port = free_port()
    try:
        for replicas in (1, 2):
            setup = f"serve-{replicas}"
            start(
                port=port,
                replicas=replicas,
                engines=["kokoro"],
                env_vars={"HF_HUB_OFFLINE": "1"},
                num_cpus=4,  # logical CPUs: each replica asks for 0.5
                temp_dir=temp,
            )
            app = LocalApp(logs / f"{setup}.log", {**base_env, "ENGINE_SERVER": f"http://127.0.0.1:{port}"})
            try:
                setups[setup] = drive(app.url, app.proc.pid, args.levels, args.requests, setup)
            finally:
                app.stop()
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)

    report = {
        "bench": "serve_scale",
        "text": TEXT,
        "voice": VOICE,
        "requests_per_client": args.requests,
        "baseline": "one-process: the app running Kokoro itself (ORT threads = all cores), same run",
        "serve": "serve/config.yaml, Kokoro only, fixed replicas, ORT_THREADS=1 per replica, 0.5 logical CPU each",
        "rss_mb_note": "rss_mb is the app process only; replicas run in Ray worker processes",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "setups": setups,
        "summary": {
            setup: {
                str(lv["clients"]): {
                    "audio_per_wall_s": lv["audio_per_wall_s"],
                    "ttfa_p50_s": lv["ttfa_s"]["p50"],
                    "failed": lv["failed"],
                }
                for lv in levels
            }
            for setup, levels in setups.items()
        },
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)
    print(json.dumps(report["summary"]))


if __name__ == "__main__":
    main()
