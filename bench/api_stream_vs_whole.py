"""`POST /v1/audio/speech` streamed (`stream_format: "audio"`) against the same endpoint answering
with the whole file (OpenAI's default, our peer here) on the same input; prints JSON.

The API's router runs on uvicorn on a local socket, offline with the packaged Kokoro; a raw-socket
client times the first body byte and the last one. Same text, voice and format for both; runs
alternate; medians reported, with the ratio of the two times to first audio.

    python bench/api_stream_vs_whole.py [--text-file F] [--voice jm_kumo] [--format wav] [--runs 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def serve() -> int:
    """The /v1 router on uvicorn in a daemon thread; its port."""
    import uvicorn
    from fastapi import FastAPI

    from api import router

    app = FastAPI()
    app.include_router(router)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return port


def timed_request(port: int, body: dict) -> dict:
    """Seconds to the first body byte and to the last, and the bytes received."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", "/v1/audio/speech", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"HTTP {response.status}: {response.read()[:200]!r}")
    first = response.read1(1)  # one byte or less: returns as soon as the body starts
    first_s = time.perf_counter() - start
    size = len(first) + len(response.read())
    total_s = time.perf_counter() - start
    connection.close()
    return {"first_byte_s": round(first_s, 3), "total_s": round(total_s, 3), "bytes": size}


def median_of(runs: list[dict]) -> dict:
    return {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-file", type=Path, default=HERE / "paragraph.txt")
    parser.add_argument("--voice", default="jm_kumo")
    parser.add_argument("--format", default="wav", choices=["wav", "pcm", "mp3", "opus", "ogg"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    text = args.text_file.read_text(encoding="utf-8").strip()
    port = serve()
    body = {"model": "kokoro", "input": text, "voice": args.voice, "response_format": args.format}
    timed_request(port, body)  # warm-up: loads the model, calibrates the chunk plan
    streamed, whole = [], []
    for _ in range(args.runs):
        streamed.append(timed_request(port, {**body, "stream_format": "audio"}))
        whole.append(timed_request(port, body))
    ours, peer = median_of(streamed), median_of(whole)
    print(
        json.dumps(
            {
                "bench": "api_stream_vs_whole",
                "input": {"chars": len(text), "voice": args.voice, "format": args.format, "runs": args.runs},
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "ours_streamed": ours,
                "peer_whole_file": peer,
                "first_byte_ratio_peer_over_ours": round(peer["first_byte_s"] / ours["first_byte_s"], 2),
                "total_ratio_peer_over_ours": round(peer["total_s"] / ours["total_s"], 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
