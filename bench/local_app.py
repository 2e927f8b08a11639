"""`python app.py` on a free loopback port for a benchmark run, as tests/conftest.py starts it for the
tests: offline, the caller's extra environment on top, its output in a log file, stopped at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalApp:
    """The app in a subprocess: `url`, `proc`; `stop()` ends it. `env` adds to (or, with None values,
    removes from) this process's environment; the app waits for `timeout_s` to answer."""

    def __init__(self, log_path: Path, env: dict[str, str | None] | None = None, timeout_s: float = 300) -> None:
        self.port = free_port()
        full = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_NAME": "127.0.0.1"}
        full["GRADIO_SERVER_PORT"] = str(self.port)
        full.pop("KOKORO_MODEL", None)
        for name, value in (env or {}).items():
            if value is None:
                full.pop(name, None)
            else:
                full[name] = value
        self.log = open(log_path, "w")  # noqa: SIM115 (closed by stop())
        self.proc = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=full, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise SystemExit(f"app.py exited early; see {log_path}")
            try:
                urllib.request.urlopen(self.url, timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise SystemExit(f"app.py did not start within {timeout_s:.0f} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
