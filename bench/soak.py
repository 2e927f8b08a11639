"""Soak: hundreds of mixed requests against the running app, watching memory, descriptors and disk.

Starts `python app.py` on a free loopback port (offline, packaged Kokoro; like tests/conftest.py
`app_url`) with small bounds so that they are reached during the run (`OUTPUT_TTL_S`, `OUTPUT_MAX_MB`,
`ARENA_MAX_RUNS`, `MAX_UPLOAD_MB`), then sends `--requests` requests from `--clients` clients at once:
/v1 streams (pcm, mp3, SSE) and whole files (wav, mp3, opus), the page's Gradio API (`/stream`,
`/synthesize`, `/compare`, `/batch` with an uploaded .txt or .csv) and uploads over the limit (which must
be refused). Each Gradio call comes from a new session, as from a new visitor. The baseline is the app
itself after a warm-up (every kind of request twice, so every model is loaded), in the same run:
the JSON reports its resident memory then and at the end (growth in %), open file descriptors, and the
size of every folder the app writes, at the start and the end, with its bound.

    python bench/soak.py [--requests 500] [--clients 2] [--out bench/results-soak.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from local_app import LocalApp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MB = 2**20
BOUNDS = {
    "OUTPUT_TTL_S": "120",
    "OUTPUT_MAX_MB": "16",
    "ARENA_MAX_RUNS": "40",
    "MAX_UPLOAD_MB": "1",
    "MAX_SESSIONS": "100",
}
KINDS = {  # kind -> weight in the mix (compares cost most: two syntheses, an ASR round trip, DNSMOS)
    "v1_stream_pcm": 12, "v1_stream_mp3": 8, "v1_sse": 8, "v1_wav": 12, "v1_mp3": 6, "v1_opus": 4,
    "page_stream": 12, "page_synthesize": 14, "compare": 2, "batch_upload": 8, "upload_too_big": 14,
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int) -> Counter:
    """Open descriptors by kind: socket, pipe, anon_inode:..., or a file's folder."""
    kinds = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds[target.split(":[")[0] if ":[" in target else str(Path(target).parent)] += 1
    return kinds


def short_texts() -> list[str]:
    lines = (ROOT / "tests" / "data" / "dev_sentences.txt").read_text(encoding="utf-8").splitlines()
    return [" ".join(line.split()[:3]).rstrip(",.;") + "." for line in lines if line.strip()]


class App:
    """`python app.py` in a subprocess, with its folders in one temporary place."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.folders = {
            "TTS_OUTPUT_DIR (clips, batches, metrics, exports; Gradio's cache inside)": work / "output",
            "Gradio cache (GRADIO_TEMP_DIR, inside TTS_OUTPUT_DIR)": work / "output" / "gradio-cache",
            "ARENA_DB (with its WAL)": work / "arena",
            "VOICE_LIBRARY_DIR": work / "voices",
            "the app's TMPDIR (anything else written to temp; Gradio's default cache would be here)": work / "tmp",
        }
        env = {
            "TTS_OUTPUT_DIR": str(work / "output"), "ARENA_DB": str(work / "arena" / "votes.sqlite3"),
            "VOICE_LIBRARY_DIR": str(work / "voices"), "ARENA_SYSTEMS": "kokoro:jm_kumo kokoro:jf_alpha",
            "QWEN_CUSTOM_VOICE_MODEL": str(work / "no-qwen"), "QWEN_BASE_MODEL": str(work / "no-qwen"),
            "GRADIO_ANALYTICS_ENABLED": "False", **BOUNDS, "KOKORO_BACKEND": None, "GRADIO_TEMP_DIR": None,
            "TMPDIR": str(work / "tmp"),  # anything else it writes to temp lands here, apart from other programs
        }  # fmt: skip
        for folder in ("output", "arena", "voices", "tmp"):
            (work / folder).mkdir(parents=True, exist_ok=True)
        self.app = LocalApp(work / "app.log", env)
        self.proc, self.url = self.app.proc, self.app.url.rstrip("/")

    def sizes(self) -> dict[str, float]:
        return {
            name: round(folder_bytes(path) / MB, 3) if path.exists() else 0.0 for name, path in self.folders.items()
        }

    def stop(self) -> None:
        self.app.stop()


class Driver:
    """Sends one request of a kind and says how it went: ok, refused (as it must be) or failed."""

    def __init__(self, app: App, work: Path) -> None:
        from gradio_client import Client

        self.app = app
        self.client_class = Client
        self.texts = short_texts()
        self.lines = work / "lines.txt"
        self.lines.write_text("\n".join(self.texts[:2]) + "\n", encoding="utf-8")
        self.rows = work / "rows.csv"
        self.rows.write_text(f"text,engine,voice\n{self.texts[2]},kokoro,jm_kumo\n{self.texts[3]},,\n", "utf-8")
        self.too_big = work / "too-big.txt"
        with open(self.too_big, "wb") as handle:
            handle.write(b"Hello there.\n" * (2 * MB // 13))  # 2 MB against MAX_UPLOAD_MB=1
        self._local = threading.local()
        self.refusal = ""  # what the last upload over the limit was answered

    def gradio(self):
        """A Gradio client per thread, with a new session per call (a new visitor each time)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.client_class(
                self.app.url, verbose=False, download_files=False, httpx_kwargs={"timeout": 900}
            )
        client.session_hash = str(uuid.uuid4())
        return client

    def v1(self, rng: random.Random, **fields) -> str:
        body = {"model": "kokoro", "input": rng.choice(self.texts), "voice": "jm_kumo", **fields}
        connection = http.client.HTTPConnection("127.0.0.1", self.app.port, timeout=600)
        connection.request("POST", "/v1/audio/speech", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        if response.status == 200 and len(data) > 100:
            return "ok"
        if response.status in (429, 503) and response.getheader("Retry-After"):
            return "refused"
        return f"failed: HTTP {response.status} {data[:120]!r}"

    def run(self, kind: str, rng: random.Random) -> str:
        from gradio_client import handle_file

        text = rng.choice(self.texts)
        if kind.startswith("v1_"):
            fields = {
                "v1_stream_pcm": {"stream_format": "audio", "response_format": "pcm"},
                "v1_stream_mp3": {"stream_format": "audio", "response_format": "mp3"},
                "v1_sse": {"stream_format": "sse"},
                "v1_wav": {"response_format": "wav"},
                "v1_mp3": {"response_format": "mp3"},
                "v1_opus": {"response_format": "opus", "lufs": -16},
            }[kind]
            return self.v1(rng, **fields)
        client = self.gradio()
        if kind == "page_stream":
            client.predict(text, "jm_kumo", "", 1.0, "Auto", api_name="/stream")
        elif kind == "page_synthesize":
            client.predict(text, "jm_kumo", 1.0, "Auto", rng.choice(["wav", "mp3", "flac"]), api_name="/synthesize")
        elif kind == "compare":
            client.predict(text, "kokoro:jm_kumo", "kokoro:jf_alpha", api_name="/compare")
        elif kind == "batch_upload":
            upload = self.lines if rng.random() < 0.5 else self.rows
            client.predict(handle_file(str(upload)), "kokoro", "jm_kumo", api_name="/batch")
        elif kind == "upload_too_big":
            try:
                client.predict(handle_file(str(self.too_big)), "kokoro", "jm_kumo", api_name="/batch")
            except Exception as exc:  # refused by the upload limit, as it must be
                self.refusal = str(exc)[:200]
                return "refused" if "413" in str(exc) or "size" in str(exc).lower() else f"failed: {exc}"
            return "failed: an upload over the limit was accepted"
        return "ok"


def plan(n: int, seed: int) -> list[str]:
    """Every kind twice first (the warm-up), then a seeded weighted mix."""
    rng = random.Random(seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    warm = [k for k in kinds for _ in range(2)]
    return warm + rng.choices(kinds, weights, k=max(0, n - len(warm)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=0, help="stop sending new requests after this (0: never)")
    parser.add_argument("--out", type=Path, default=HERE / "results-soak.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tts-soak-"))
    started = time.time()
    app = App(work)
    sizes_start = app.sizes()
    try:
        driver = Driver(app, work)
        todo = plan(args.requests, args.seed)
        warm_count = 2 * len(KINDS)
        outcomes: dict[str, Counter] = defaultdict(Counter)
        failures: list[str] = []
        latencies: dict[str, list[float]] = defaultdict(list)
        samples: list[tuple[float, int, int]] = []
        lock = threading.Lock()
        state = {"next": 0, "done": 0}
        baseline: dict = {}

        def sample() -> None:
            samples.append((round(time.time() - started, 1), rss_bytes(app.proc.pid), open_fds(app.proc.pid)))

        def worker(index: int) -> None:
            rng = random.Random(args.seed * 1000 + index)
            while True:
                with lock:
                    if state["next"] >= len(todo) or (deadline and time.time() > deadline):
                        return
                    i, state["next"] = state["next"], state["next"] + 1
                kind = todo[i]
                start = time.perf_counter()
                try:
                    outcome = driver.run(kind, rng)
                except Exception as exc:
                    outcome = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
                with lock:
                    latencies[kind].append(time.perf_counter() - start)
                    outcomes[kind]["failed" if outcome.startswith("failed") else outcome] += 1
                    if outcome.startswith("failed"):
                        failures.append(f"{kind}: {outcome}")
                    state["done"] += 1
                    if state["done"] % 25 == 0:
                        print(f"{state['done']}/{len(todo)} requests, {time.time() - started:.0f} s", flush=True)

        stop = threading.Event()
        deadline = 0.0

        def sampler() -> None:
            while not stop.wait(2.0):
                sample()

        # warm-up: every kind twice, one client, so that every model and cache is loaded
        warm_todo, todo = todo[:warm_count], todo[warm_count:]
        saved, todo = todo, warm_todo
        worker(0)
        todo, state["next"] = saved, 0
        time.sleep(3)
        baseline = {"rss_mb": round(rss_bytes(app.proc.pid) / MB, 1), "open_fds": open_fds(app.proc.pid)}
        kinds_warm = fd_kinds(app.proc.pid)
        sizes_warm = app.sizes()
        print(f"warm-up done: {baseline}", flush=True)
        threading.Thread(target=sampler, daemon=True).start()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
        soak_start = time.time()
        deadline = soak_start + 60 * args.minutes if args.minutes else 0.0
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        soak_s = time.time() - soak_start
        stop.set()
        time.sleep(5)  # idle: streams finished, janitor's sweep after the last writes
        end = {"rss_mb": round(rss_bytes(app.proc.pid) / MB, 1), "open_fds": open_fds(app.proc.pid)}
        kinds_end = fd_kinds(app.proc.pid)
        sizes_end = app.sizes()
        rss_series = [s[1] for s in samples]
    finally:
        app.stop()
    total = {key: sum(c[key] for c in outcomes.values()) for key in ("ok", "refused", "failed")}
    result = {
        "bench": "soak: mixed requests against the running app (python app.py), offline packaged Kokoro",
        "baseline": "the same app after its warm-up (every kind of request twice), same run",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "requests": state["done"],
        "planned_requests": len(todo) + warm_count,
        "stopped_by_time_budget": state["done"] < len(todo) + warm_count,
        "warm_up_requests": warm_count,
        "clients": args.clients,
        "soak_s": round(soak_s, 1),
        "bounds": BOUNDS,
        "outcomes": {"total": total, **{k: dict(v) for k, v in sorted(outcomes.items())}},
        "failures": failures[:20],
        "latency_s_median": {k: round(statistics.median(v), 2) for k, v in sorted(latencies.items())},
        "rss_mb": {
            "after_warm_up": baseline["rss_mb"],
            "end": end["rss_mb"],
            "growth_pct": round(100 * (end["rss_mb"] - baseline["rss_mb"]) / baseline["rss_mb"], 2),
            "max_during_soak": round(max(rss_series) / MB, 1) if rss_series else None,
            "series_every_2s": [round(r / MB, 1) for r in rss_series[:: max(1, len(rss_series) // 60)]],
        },
        "open_fds": {
            "after_warm_up": baseline["open_fds"],
            "end": end["open_fds"],
            "max_during_soak": max((s[2] for s in samples), default=None),
            "by_kind_after_warm_up": dict(kinds_warm),
            "by_kind_end": dict(kinds_end),
        },
        "upload_over_limit_answer": driver.refusal,
        "folders_mb": {
            name: {"start": sizes_start[name], "after_warm_up": sizes_warm[name], "end": sizes_end[name]}
            for name in sizes_start
        },
        "output_bound_mb": float(BOUNDS["OUTPUT_MAX_MB"]),
        "within_bounds": {
            "output_and_gradio_cache": sizes_end[next(iter(sizes_end))] <= float(BOUNDS["OUTPUT_MAX_MB"]),
            "app_tmpdir_within_output_bound": sizes_end[next(reversed(sizes_end))] <= float(BOUNDS["OUTPUT_MAX_MB"]),
            "rss_growth_at_most_5_pct": end["rss_mb"] <= 1.05 * baseline["rss_mb"],
            "no_leaked_descriptors": end["open_fds"] <= baseline["open_fds"],
            "no_failures": total["failed"] == 0,
        },
    }
    text = json.dumps(result, indent=1)
    print(text)
    args.out.write_text(text + "\n", encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
