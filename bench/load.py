"""Load on a running app, on loopback: 1, 2, 5, 10 and 20 concurrent clients; prints JSON per level.

Half the clients stream `POST /v1/audio/speech` (`stream_format: "audio"`, pcm), the other half call
the page's stream event (`/stream`) through `gradio_client`; each client makes `--requests` requests
one after another, and after a refusal waits what `Retry-After` (or the page's sentence) says before
its next one; every request starts after a seeded random 0-6 s, so that the two ways in arrive
interleaved. The app is started as the tests start it (`python app.py`, offline, packaged Kokoro, a
free port; the per-client rate limit `API_RATE_PER_MIN` raised for the run, any 429 counted as a
refusal), or `--url` drives one already running. Per level:

- `served`, `refused` (each with a Retry-After), `failed` (anything else: must be 0);
- `ttfa_s`: time to first audio of admitted requests, p50/p95 (first body byte for /v1; first audio
  update for the page), and `queue_wait_s` p50/p95 (`X-Queue-Wait`; the page's status line);
- `audio_per_wall_s`: seconds of audio served per second of the level's wall time;
- `rss_mb`: the app's resident memory at the end of the level (and its peak while it ran).

The baseline, in the same run, is one client alone (level 1): what waiting costs is the difference.

    python bench/load.py [--levels 1 2 5 10 20] [--requests 2] [--out bench/results-load.json] [--plot F.png]

`--hostile ROUNDS`: instead, the hostile-neighbour run (#20): five polite clients (one sentence each,
each its own API key) alone, then beside one neighbour at its limits with 5,000-character texts (its own
key, three requests going, each again as soon as it may); JSON: the polite clients' first audio p50/p95
without and with the neighbour, their ratio (goal: p95 within 1.5x) and what the neighbour got.

    python bench/load.py --hostile 4 --out bench/results-hostile.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from local_app import LocalApp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
VOICE = "jm_kumo"
SAMPLE_RATE = 24_000
RETRY_CAP_S = 15.0  # a refused client waits what it was told, but at most this long (bounds the run)
JITTER_S = 6.0  # each request starts after a random 0-6 s (seeded): arrivals interleave as real ones do


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Result(dict):
    """One request: kind (served, refused, failed), via, ttfa_s, queue_wait_s, audio_s, retry_after_s, error."""


def v1_request(host: str, port: int, text: str = TEXT, key: str | None = None) -> Result:
    body = {
        "model": "kokoro", "input": text, "voice": VOICE, "response_format": "pcm", "stream_format": "audio",
    }  # fmt: skip
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    connection = http.client.HTTPConnection(host, port, timeout=600)
    start = time.perf_counter()
    try:
        connection.request("POST", "/v1/audio/speech", json.dumps(body), headers)
        response = connection.getresponse()
        if response.status in (429, 503) and response.getheader("Retry-After"):
            response.read()
            return Result(
                kind="refused", via="v1", status=response.status, retry_after_s=float(response.getheader("Retry-After"))
            )
        if response.status != 200:
            return Result(kind="failed", via="v1", error=f"HTTP {response.status}: {response.read()[:200]!r}")
        first = response.read1(1 << 16)
        ttfa = time.perf_counter() - start
        size = len(first) + len(response.read())
        wait = response.getheader("X-Queue-Wait")
        return Result(
            kind="served", via="v1", ttfa_s=ttfa, queue_wait_s=float(wait) if wait else None,
            audio_s=size / 2 / SAMPLE_RATE, total_s=time.perf_counter() - start,
        )  # fmt: skip
    except Exception as exc:  # counted, never fatal
        return Result(kind="failed", via="v1", error=f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


WAITED = re.compile(r"waited \*\*([\d.]+) s\*\* in line")
AUDIO = re.compile(r"([\d.]+) s of audio in")
RETRY = re.compile(r"try again in about (\d+) seconds")


def page_request(client) -> Result:
    start = time.perf_counter()
    ttfa = None
    try:
        job = client.submit(TEXT, VOICE, "", 1.0, "Auto", api_name="/stream")
        final = None
        for output in job:
            audio = output[0]  # a path or file dict once audio streams; {"__type__": "update"} while waiting
            if ttfa is None and (isinstance(audio, str) or (isinstance(audio, dict) and audio.get("path"))):
                ttfa = time.perf_counter() - start
            final = output
        job.result()  # raises what the handler raised (a refusal is a gr.Error with its sentence)
        outputs = job.outputs()
        final = outputs[-1] if outputs else final
        status = final[3] if final else ""
        waited, audio = WAITED.search(status or ""), AUDIO.search(status or "")
        if ttfa is None or not audio:
            return Result(kind="failed", via="page", error=f"no audio; last status: {str(status)[:200]}")
        return Result(
            kind="served", via="page", ttfa_s=ttfa, queue_wait_s=float(waited.group(1)) if waited else None,
            audio_s=float(audio.group(1)) if audio else 0.0, total_s=time.perf_counter() - start,
        )  # fmt: skip
    except Exception as exc:
        message = str(exc)
        retry = RETRY.search(message)
        if retry:
            return Result(kind="refused", via="page", status="busy", retry_after_s=float(retry.group(1)), error=message)
        if "rate" in message.lower() and "limit" in message.lower():
            return Result(kind="refused", via="page", status=429, retry_after_s=1.0)
        return Result(kind="failed", via="page", error=f"{type(exc).__name__}: {message[:200]}")


def percentile(values: list[float], q: float) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def run_level(url: str, clients: int, requests: int, pid: int | None) -> dict:
    from gradio_client import Client

    host, port = url.split("//")[1].rstrip("/").split(":")
    port = int(port)
    page_clients = {n: Client(url, verbose=False) for n in range(clients) if n % 2 == 1}
    results: list[Result] = []
    lock = threading.Lock()
    peak = [rss_mb(pid) or 0.0]
    done = threading.Event()

    def sample_rss() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], rss_mb(pid) or 0.0)

    def client(n: int) -> None:
        jitter = random.Random(1_000 * clients + n)
        for _ in range(requests):
            time.sleep(jitter.uniform(0, JITTER_S))
            result = page_request(page_clients[n]) if n in page_clients else v1_request(host, port)
            with lock:
                results.append(result)
            if result["kind"] == "refused":
                time.sleep(min(RETRY_CAP_S, result["retry_after_s"]))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    done.set()
    served = [r for r in results if r["kind"] == "served"]
    refused = [r for r in results if r["kind"] == "refused"]
    failed = [r for r in results if r["kind"] == "failed"]
    audio = sum(r.get("audio_s") or 0.0 for r in served)
    return {
        "clients": clients,
        "requests": len(results),
        "served": len(served),
        "served_by_way": {way: sum(r["via"] == way for r in served) for way in ("v1", "page")},
        "refused": len(refused),
        "refused_with_retry_after": sum(r.get("retry_after_s") is not None for r in refused),
        "refused_429": sum(r.get("status") == 429 for r in refused),
        "retry_after_s_p50": percentile([r["retry_after_s"] for r in refused], 50),
        "failed": len(failed),
        "failures": [r["error"] for r in failed][:5],
        "ttfa_s": {
            "p50": percentile([r["ttfa_s"] for r in served], 50),
            "p95": percentile([r["ttfa_s"] for r in served], 95),
        },
        "queue_wait_s": {
            "p50": percentile([r["queue_wait_s"] for r in served], 50),
            "p95": percentile([r["queue_wait_s"] for r in served], 95),
        },
        "wall_s": round(wall, 2),
        "audio_s": round(audio, 2),
        "audio_per_wall_s": round(audio / wall, 3) if wall else None,
        "rss_mb": rss_mb(pid),
        "machine_load_avg_1min": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
        "rss_peak_mb": round(max(peak[0], rss_mb(pid) or 0.0), 1) if pid else None,
    }


HOSTILE_TEXT = ((TEXT + " ") * 60)[:5_000].rstrip()  # the page's limit exactly: a longer text is a 413, no work
POLITE = 5
HOSTILE_STREAMS = 3  # the neighbour keeps this many requests going, each again as soon as it may
KEYS = [f"bench-polite-{n}" for n in range(POLITE)] + ["bench-hostile", "bench-warm-up"]
WARM_UP_KEY = KEYS[-1]  # the warm-up's own key: its engine time is no polite client's recent use


def polite_round(host: str, port: int, seed: int) -> list[Result]:
    """Five polite clients (each its own key), one sentence each, arriving within a few seconds."""
    results: list[Result] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        time.sleep(random.Random(seed * 100 + n).uniform(0, 3.0))
        result = v1_request(host, port, TEXT, KEYS[n])
        with lock:
            results.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(POLITE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def hostile_neighbour(host: str, port: int, rounds: int) -> dict:
    """The polite clients' first audio alone, then beside a neighbour at its limits with 5,000-character
    texts (its own key): p50/p95 of each, and what the neighbour got."""
    alone = [r for n in range(rounds) for r in polite_round(host, port, n)]
    stop, hostile = threading.Event(), []

    def neighbour() -> None:
        while not stop.is_set():
            result = v1_request(host, port, HOSTILE_TEXT, "bench-hostile")
            hostile.append(result)
            if result["kind"] == "refused":
                stop.wait(min(RETRY_CAP_S, result["retry_after_s"]))

    streams = [threading.Thread(target=neighbour, daemon=True) for _ in range(HOSTILE_STREAMS)]
    for thread in streams:
        thread.start()
    time.sleep(5.0)  # the neighbour is speaking before the polite clients arrive
    beside = [r for n in range(rounds) for r in polite_round(host, port, 100 + n)]
    stop.set()

    def figures(results: list[Result]) -> dict:
        ttfa = [r["ttfa_s"] for r in results if r["kind"] == "served"]
        waits = [r["queue_wait_s"] for r in results if r["kind"] == "served" and r["queue_wait_s"] is not None]
        return {
            "served": len(ttfa), "refused": sum(r["kind"] == "refused" for r in results),
            "failed": sum(r["kind"] == "failed" for r in results),
            "ttfa_s": {"p50": percentile(ttfa, 50), "p95": percentile(ttfa, 95)},
            "queue_wait_s": {"p50": percentile(waits, 50), "p95": percentile(waits, 95)},
            "ttfa_each_s": sorted(round(t, 2) for t in ttfa),
        }  # fmt: skip

    without, with_neighbour = figures(alone), figures(beside)
    p95_alone, p95_beside = without["ttfa_s"]["p95"], with_neighbour["ttfa_s"]["p95"]
    return {
        "bench": "hostile-neighbour",
        "polite": f"{POLITE} clients, one sentence each ({len(TEXT)} characters), {rounds} rounds, each its own key",
        "neighbour": f"{HOSTILE_STREAMS} streams of {len(HOSTILE_TEXT)}-character texts, one key, again when allowed",
        "polite_without_neighbour": without,
        "polite_with_neighbour": with_neighbour,
        "p95_ratio": round(p95_beside / p95_alone, 2) if p95_alone and p95_beside else None,
        "goal": "polite p95 with the neighbour <= 1.5 x without",
        "neighbour_got": {
            "served": sum(r["kind"] == "served" for r in hostile),
            "refused_429": sum(r.get("status") == 429 for r in hostile),
            "refused_503": sum(r.get("status") == 503 for r in hostile),
            "failed": sum(r["kind"] == "failed" for r in hostile),
        },
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = report["levels"]
    x = [lv["clients"] for lv in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(x, [lv["ttfa_s"]["p50"] for lv in levels], "o-", label="time to first audio p50")
    left.plot(x, [lv["ttfa_s"]["p95"] for lv in levels], "o--", label="time to first audio p95")
    left.plot(x, [lv["queue_wait_s"]["p95"] for lv in levels], "s:", label="queue wait p95")
    left.set_xlabel("concurrent clients")
    left.set_ylabel("seconds (admitted requests)")
    left.set_xscale("log")
    left.set_xticks(x, [str(v) for v in x])
    left.legend()
    left.grid(alpha=0.3)
    width = 0.35
    idx = range(len(x))
    right.bar([i - width / 2 for i in idx], [lv["served"] for lv in levels], width, label="served")
    right.bar([i + width / 2 for i in idx], [lv["refused"] for lv in levels], width, label="refused (Retry-After)")
    right.set_xticks(list(idx), [str(v) for v in x])
    right.set_xlabel("concurrent clients")
    right.set_ylabel("requests")
    twin = right.twinx()
    twin.plot(list(idx), [lv["audio_per_wall_s"] for lv in levels], "k^-", label="audio s per wall s")
    twin.set_ylabel("audio seconds per second")
    handles = right.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    right.legend(handles, [h.get_label() for h in handles], loc="upper left")
    failed = sum(lv["failed"] for lv in levels)
    fig.suptitle(f"Load on one app process ({report['machine']}); failed: {failed}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="drive this running app instead of starting one")
    parser.add_argument("--pid", type=int, help="with --url: the app's process id, for its RSS")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--requests", type=int, default=2, help="requests per client, one after another")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--plot", type=Path, help="write the load curve (PNG) here")
    parser.add_argument("--hostile", type=int, metavar="ROUNDS", help="instead: the hostile-neighbour run")
    args = parser.parse_args()
    app, log_path = None, Path(tempfile.gettempdir()) / "bench-load-app.log"
    if args.url:
        url, pid = args.url.rstrip("/") + "/", args.pid
    else:
        app = LocalApp(
            log_path,
            {
                "API_RATE_PER_MIN": os.environ.get("API_RATE_PER_MIN", "100000" if not args.hostile else "30"),
                **({"API_KEYS": ",".join(KEYS)} if args.hostile else {}),  # each client its own key
                "ARENA_DB": str(Path(tempfile.mkdtemp()) / "arena.sqlite3"),
            },
        )
        url, pid = app.url, app.proc.pid
    try:
        # warm-up: the engine loaded and measured, one request on each way in (not counted)
        host, port = url.split("//")[1].rstrip("/").split(":")
        from gradio_client import Client

        if args.hostile:
            warm = v1_request(host, int(port), TEXT, WARM_UP_KEY)
            if warm["kind"] != "served":
                raise SystemExit(f"warm-up failed: {warm}")
            report = hostile_neighbour(host, int(port), args.hostile)
            report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
            if args.out:
                args.out.write_text(json.dumps(report, indent=1) + "\n")
            print(json.dumps(report))
            return
        warm = [v1_request(host, int(port)), page_request(Client(url, verbose=False))]
        if any(r["kind"] != "served" for r in warm):
            raise SystemExit(f"warm-up failed: {warm}")
        levels = []
        for clients in args.levels:
            level = run_level(url, clients, args.requests, pid)
            print(json.dumps(level), flush=True)
            levels.append(level)
    finally:
        if app is not None:
            app.stop()
    report = {
        "bench": "load",
        "text": TEXT,
        "voice": VOICE,
        "requests_per_client": args.requests,
        "ways_in": "odd clients: the page's /stream event (gradio_client); even: /v1 streamed pcm",
        "baseline": "level 1: one client alone, same run",
        "max_waiting": os.environ.get("MAX_WAITING") or "default (from the engine's measured speed)",
        # what the app computed (engines.runtime.work_queue logs it), e.g. "kokoro: 0.0123 s ... default MAX_WAITING 12"
        "app_measured": re.findall(
            r"(\S+: [\d.]+ s of compute per character measured; default MAX_WAITING \d+)",
            log_path.read_text() if app is not None else "",
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "levels": levels,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)
    print(json.dumps({k: v for k, v in report.items() if k != "levels"}))


if __name__ == "__main__":
    main()
