"""A hostile-input campaign against the real app on loopback: how many bodies it sent, how many got a 5xx
(must be 0), the server's RSS before and after, and the slowest answer, printed as JSON.

Every way in gets the same generator of hostile values: deep nesting, huge and non-finite numbers, wrong
types, control characters, 100 KB strings, odd encodings (UTF-16, Latin-1, invalid UTF-8, lone
surrogates), duplicate keys, wrong content types, and truncated, oversized and mislabelled audio in
several containers (WAV, FLAC at 655,350 Hz × 8 channels, OGG, MP3, Matroska, WebM, random bytes):

- `/v1`: `POST /v1/audio/speech`, `POST /v1/audio/voices` (multipart uploads), `PUT` and `GET
  /v1/audio/lexicon`, `GET /v1/models/<id>`, `GET /v1/audio/voices`;
- `/kokoro/plan`: query strings (a nested `lexicon`, 20,000 "(" in `language`, invalid percent-escapes)
  and bodies;
- the Gradio API (`/gradio_api/call/<name>`) of every named endpoint, one hostile value per parameter,
  its events read to the end: an "error" event without a sentence is an unhandled exception (counted
  as `unexpected_errors`, like a 5xx); uploads (`/gradio_api/upload`) handed on to the reference-clip
  parameters;
- MCP (`/gradio_api/mcp/`): JSON-RPC with hostile bodies and hostile tool arguments.

Each way gets a seeded sample of the generated cases; `--quick` about half as many (the tests' version);
`--url` runs against a server already up (RSS then comes from `--pid`, if given). `Traceback` lines in
the app's log are counted too.

    python bench/hostile_inputs.py [--quick] [--out bench/results-hostile-inputs.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
import urllib.parse
import uuid
from http.client import HTTPConnection, HTTPException
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_app import LocalApp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
TIMEOUT_S = 300  # a busy 2-core machine: requests that synthesize wait their turn in the engine's line


# ----- the hostile values ---------------------------------------------------------------------------
def hostile_values() -> list[tuple[str, object]]:
    """(label, value) for any field of a JSON document or a Gradio parameter."""
    return [
        ("null", None),
        ("true", True),
        ("zero", 0),
        ("negative", -1),
        ("huge int", 10**30),
        ("huge float", 1.7e308),
        ("tiny float", 5e-324),
        ("empty string", ""),
        ("blank", "   \t "),
        ("nul and controls", "a\u0000b\u0007c\u001bd"),
        ("bidi and zero width", "\u202eevil\u200b\u2066x"),
        ("lone surrogate escape", "\\ud800"),
        ("100 KB string", "a" * 100_000),
        ("20,000 (", "(" * 20_000),
        ("markup flood", "[a](/" * 1_000),
        ("quotes flood", "“" * 4_999),
        ("newline flood", "\n" * 4_999),
        ("path", "/etc/passwd"),
        ("url", "http://169.254.169.254/latest/meta-data/"),
        ("list", [1, [2, [3]]]),
        ("object", {"a": {"b": {"c": 1}}}),
        ("deep list", json.loads("[" * 30 + "]" * 30)),
        ("emoji", "🔊" * 2_000),
        ("numberish", "1e999"),
    ]


def hostile_bodies() -> list[tuple[str, bytes, str | None]]:
    """(label, raw body, Content-Type) for a JSON route."""
    j = "application/json"
    speech = {"model": "kokoro", "input": "Hello there.", "voice": "jm_kumo"}
    bodies = [
        ("empty", b"", j),
        ("open brace", b"{", j),
        ("deep arrays", b"[" * 100_000 + b"]" * 100_000, j),
        ("deep objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, j),
        ("deep unclosed", b"[" * 200_000, j),
        ("huge exponent", b'{"input": 1e999999}', j),
        ("long number", b'{"speed": 1' + b"0" * 5_000 + b"}", j),
        ("NaN", b'{"speed": NaN}', j),
        ("Infinity", b'{"speed": Infinity}', j),
        ("duplicate keys", b'{"input": "a", "input": "b"}', j),
        ("array body", b"[1, 2, 3]", j),
        ("string body", b'"hello"', j),
        ("invalid utf-8", b'{"input": "\xff\xfe\xfa"}', j),
        ("latin-1", '{"input": "café"}'.encode("latin-1"), j),
        ("utf-16", json.dumps(speech).encode("utf-16"), j),
        ("utf-16 declared", json.dumps(speech).encode("utf-16"), j + "; charset=utf-16"),
        ("unknown charset", json.dumps(speech).encode(), j + "; charset=x-klingon"),
        ("lone surrogate", b'{"input": "\\ud800\\udfff\\ud800", "voice": "jm_kumo"}', j),
        ("nul in text", json.dumps({**speech, "input": "Hi\u0000there"}).encode(), j),
        ("100 KB input", json.dumps({**speech, "input": "word " * 20_000}).encode(), j),
        ("300 KB body", json.dumps({**speech, "input": "x" * 300_000}).encode(), j),
        ("20,000 ( language", json.dumps({**speech, "language": "(" * 20_000}).encode(), j),
        ("256 KiB language", json.dumps({**speech, "language": "(" * 250_000}).encode(), j),
        ("voice flood", json.dumps({**speech, "voice": "af_heart:1," * 5_000}).encode(), j),
        ("no content type", json.dumps(speech).encode(), None),
        ("text/plain", json.dumps(speech).encode(), "text/plain"),
        ("form", b"input=hello&voice=jm_kumo", "application/x-www-form-urlencoded"),
        ("multipart garbage", b"--x\r\nContent-Disposition: form-data\r\n\r\n", "multipart/form-data; boundary=x"),
        ("binary", bytes(range(256)) * 40, "application/octet-stream"),
    ]
    for label, value in hostile_values():
        for field in ("input", "voice", "speed", "language", "response_format", "model", "lufs", "timestamps"):
            bodies.append((f"{field}={label}", json.dumps({**speech, field: value}).encode(), j))
    return bodies


def hostile_queries() -> list[tuple[str, str]]:
    """(label, query string) for GET routes."""
    q = urllib.parse.quote
    nested = "[" * 5_000 + "]" * 5_000
    return [
        ("nested lexicon", f"text=hi&voice=jm_kumo&lexicon={q(nested)}"),
        ("deep object lexicon", "text=hi&voice=jm_kumo&lexicon=" + q('{"a":' * 3_000 + "1" + "}" * 3_000)),
        ("lexicon not json", "text=hi&voice=jm_kumo&lexicon=%7Bnope"),
        ("lexicon huge number", "text=hi&voice=jm_kumo&lexicon=" + q('{"cat": 1' + "0" * 5_000 + "}")),
        ("20,000 ( language", f"text=hi&voice=jm_kumo&language={q('(' * 20_000)}"),
        ("invalid percent", "text=%ff%fe%fa&voice=%c3%28"),
        ("nul", "text=a%00b&voice=jm_kumo"),
        ("repeated", "text=a&text=b&voice=jm_kumo&voice=x"),
        ("unknown parameter", "text=hi&voice=jm_kumo&evil=1"),
        ("speed text", "text=hi&voice=jm_kumo&speed=fast"),
        ("speed nan", "text=hi&voice=jm_kumo&speed=nan"),
        ("speed inf", "text=hi&voice=jm_kumo&speed=1e999"),
        ("long text", "text=" + "a" * 6_000 + "&voice=jm_kumo"),
        ("markup flood", f"text={q('[a](/' * 1_000)}&voice=jm_kumo"),
        ("blend flood", f"text=hi&voice={q('jm_kumo:1,' * 500)}"),
        ("empty", ""),
    ]


def hostile_audio() -> list[tuple[str, bytes]]:
    """(file name, bytes): truncated, oversized and mislabelled audio in several containers."""
    import soundfile as sf

    rng = np.random.default_rng(0)

    def encoded(fmt: str, rate: int, channels: int, seconds: float, subtype: str | None = None) -> bytes:
        out = io.BytesIO()
        data = (rng.standard_normal((int(rate * seconds), channels)) * 0.1).astype(np.float32)
        sf.write(out, data, rate, format=fmt, subtype=subtype)
        return out.getvalue()

    files = []
    wav = encoded("WAV", 24_000, 1, 3.0, "PCM_16")
    files += [("ok.wav", wav), ("truncated.wav", wav[: len(wav) // 3]), ("header-only.wav", wav[:44])]
    lying = bytearray(wav)
    lying[4:8] = (0xFFFFFFF0).to_bytes(4, "little")
    lying[40:44] = (0xFFFFFFF0).to_bytes(4, "little")
    files.append(("lying-sizes.wav", bytes(lying)))
    files.append(("8ch-192k.wav", encoded("WAV", 192_000, 8, 1.0, "PCM_16")))
    try:
        flac = encoded("FLAC", 655_350, 8, 5.0, "PCM_16")  # the 27 KB that decodes to 125 MB
    except Exception:  # noqa: BLE001  (libsndfile without that rate: a smaller one)
        flac = encoded("FLAC", 192_000, 8, 5.0, "PCM_16")
    files += [("655k-8ch.flac", flac), ("truncated.flac", flac[: len(flac) // 2])]
    for fmt, name in (("OGG", "clip.ogg"), ("MP3", "clip.mp3")):
        try:
            data = encoded(fmt, 24_000, 1, 2.0, "VORBIS" if fmt == "OGG" else "MPEG_LAYER_III")
        except Exception:  # noqa: BLE001  (a libsndfile without that codec)
            continue
        files += [(name, data), ("truncated-" + name, data[: len(data) // 4])]
    files += [
        ("flac-inside.mka", _ffmpeg_wrap(flac, "matroska", "flac")),
        ("clip.webm", _ffmpeg_wrap(wav, "webm", "libopus")),
        ("random.wav", rng.bytes(50_000)),
        ("random.mp3", rng.bytes(50_000)),
        ("random.mka", b"\x1a\x45\xdf\xa3" + rng.bytes(20_000)),
        ("empty.wav", b""),
        ("text.wav", b"this is not audio at all\n" * 100),
        ("wav-named.flac", wav),
    ]
    return [(name, data) for name, data in files if data]


def _ffmpeg_wrap(data: bytes, container: str, codec: str) -> bytes:
    """`data` re-encoded by ffmpeg into `container` (empty when ffmpeg is missing or refuses)."""
    import subprocess

    try:
        done = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", "pipe:0", "-c:a", codec, "-f", container, "pipe:1"],
            input=data, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return b""
    return done.stdout if done.returncode == 0 else b""


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


# ----- sending ---------------------------------------------------------------------------------------
class Campaign:
    """Sends requests to one server and counts what came back."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.sent = 0
        self.by_way: dict[str, dict[str, int]] = {}
        self.server_errors: list[dict] = []
        self.unexpected: list[dict] = []
        self.dropped: list[dict] = []
        self.slowest = {"seconds": 0.0}

    def request(self, way: str, label: str, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:  # fmt: skip
        """One request; its status (0: the connection failed) and body."""
        self.sent += 1
        counts = self.by_way.setdefault(way, {"sent": 0})
        counts["sent"] += 1
        started = time.perf_counter()
        conn = HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            status, data = response.status, response.read()
        except (OSError, HTTPException) as exc:
            status, data = 0, str(exc).encode()
        finally:
            conn.close()
        seconds = time.perf_counter() - started
        key = f"{status // 100}xx" if status else "no answer"
        counts[key] = counts.get(key, 0) + 1
        what = {"way": way, "case": label, "path": path[:80], "status": status}
        if status >= 500:
            self.server_errors.append({**what, "body": data[:200].decode("utf-8", "replace")})
        if status == 0:
            self.dropped.append({**what, "error": data[:200].decode("utf-8", "replace")})
        if seconds > self.slowest["seconds"]:
            self.slowest = {"seconds": round(seconds, 3), **what}
        return status, data

    def json_route(self, way: str, method: str, path: str, bodies) -> None:
        for label, body, content_type in bodies:
            headers = {"Content-Type": content_type} if content_type else {}
            self.request(way, label, method, path, body, headers)

    def gradio_call(self, name: str, label: str, data: list) -> None:
        """One Gradio API call and its events to the end; an "error" event with no sentence is an
        unhandled exception."""
        try:
            body = json.dumps({"data": data}).encode()
        except (TypeError, ValueError):
            return
        status, answer = self.request(
            "gradio api", f"{name}: {label}", "POST", f"/gradio_api/call/{name}", body,
            {"Content-Type": "application/json"},
        )  # fmt: skip
        if status != 200:
            return
        try:
            event_id = json.loads(answer)["event_id"]
        except (ValueError, KeyError, TypeError):
            return
        status, events = self.request("gradio api", f"{name}: {label} (events)", "GET",
                                      f"/gradio_api/call/{name}/{event_id}")  # fmt: skip
        text = events.decode("utf-8", "replace")
        for block in text.split("\n\n"):
            if block.startswith("event: error"):
                payload = block.partition("data:")[2].strip()
                if payload in ("", "null", "None"):
                    self.unexpected.append({"way": "gradio api", "endpoint": name, "case": label})


def gradio_endpoints(campaign: Campaign) -> dict[str, list[dict]]:
    status, info = campaign.request("gradio api", "info", "GET", "/gradio_api/info")
    if status != 200:
        return {}
    named = json.loads(info).get("named_endpoints", {})
    return {name.lstrip("/"): spec.get("parameters", []) for name, spec in named.items()}


def default_of(parameter: dict) -> object:
    if parameter.get("parameter_has_default"):
        return parameter.get("parameter_default")
    return parameter.get("example_input")


def run(campaign: Campaign, quick: bool) -> None:
    def pick(items: list, n: int) -> list:  # a seeded sample of `n` (the quick run: about half of that)
        return random.Random(0).sample(items, min(max(1, n // 2 if quick else n), len(items)))

    bodies = hostile_bodies()
    # /v1
    campaign.json_route("/v1", "POST", "/v1/audio/speech", pick(bodies, 60))
    campaign.json_route("/v1", "PUT", "/v1/audio/lexicon", pick(bodies, 20))
    for label, query in pick(hostile_queries(), 8):
        campaign.request("/v1", label, "GET", "/v1/audio/lexicon?" + query)
        campaign.request("/v1", label, "GET", "/v1/audio/voices?" + query)
    for model in pick(["kokoro", "%00", "..%2F..%2Fetc%2Fpasswd", "a" * 5_000, "%ff"], 3):
        campaign.request("/v1", f"model {model[:12]}", "GET", f"/v1/models/{model}")
    audio = hostile_audio()
    for filename, data in pick(audio, 10):
        body, content_type = multipart({"name": "hostile", "transcript": "Hello."}, {"audio": (filename, data)})
        campaign.request("uploads", f"/v1 voice {filename}", "POST", "/v1/audio/voices", body,
                         {"Content-Type": content_type})  # fmt: skip
    # /kokoro/plan
    for label, query in pick(hostile_queries(), 16):
        campaign.request("/kokoro/plan", label, "GET", "/kokoro/plan?" + query)
    campaign.json_route("/kokoro/plan", "POST", "/kokoro/plan", pick(bodies, 30))
    # Gradio uploads, then every named endpoint with one hostile value per parameter
    uploaded: list[tuple[str, dict]] = []
    for filename, data in pick(audio, 10):
        body, content_type = multipart({}, {"files": (filename, data)})
        status, answer = campaign.request("uploads", f"gradio {filename}", "POST", "/gradio_api/upload", body,
                                          {"Content-Type": content_type})  # fmt: skip
        if status == 200:
            try:
                path = json.loads(answer)[0]
                uploaded.append((filename, {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": filename}))
            except (ValueError, IndexError, KeyError):
                pass
    big, content_type = multipart({}, {"files": ("huge.wav", b"\0" * (60 * MB))})
    campaign.request(
        "uploads", "gradio 60 MB upload", "POST", "/gradio_api/upload", big, {"Content-Type": content_type}
    )
    endpoints = gradio_endpoints(campaign)
    for name, parameters in endpoints.items():
        gradio_endpoint(campaign, name, parameters, pick, uploaded)
    # MCP (streamable HTTP)
    mcp_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    campaign.json_route("mcp", "POST", "/gradio_api/mcp/", pick(bodies, 20))
    for name in pick(list(endpoints), 4):
        for label, value in pick(hostile_values(), 4):
            call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": name, "arguments": {"text": value, "voice": value}}}  # fmt: skip
            try:
                body = json.dumps(call).encode()
            except (TypeError, ValueError):
                continue
            campaign.request("mcp", f"{name}: {label}", "POST", "/gradio_api/mcp/", body, mcp_headers)


def gradio_endpoint(campaign: Campaign, name: str, parameters: list[dict], pick, uploaded: list) -> None:
    """One named endpoint: a hostile value in each parameter in turn (uploaded clips in file parameters),
    then the wrong number of values."""
    base = [default_of(p) for p in parameters]
    for i, p in enumerate(parameters):  # text empty: a hostile value elsewhere is refused, not synthesized
        if p.get("parameter_name") in ("text", "input", "prompt"):
            base[i] = ""
    for i, parameter in enumerate(parameters):
        pname = parameter.get("parameter_name")
        for label, value in pick(hostile_values(), 3):
            campaign.gradio_call(name, f"{pname}={label}", [*base[:i], value, *base[i + 1 :]])
        kind = f"{parameter.get('component', '')} {parameter.get('type', '')}".lower()
        if "audio" in kind or "file" in kind:
            for filename, file_data in pick(uploaded, 3):
                campaign.gradio_call(name, f"{pname}={filename}", [*base[:i], file_data, *base[i + 1 :]])
    wrong = [("no data", []), ("too many", [*base, 1, 2, 3]), ("all null", [None] * len(base))]
    for label, data in pick(wrong, 2):
        campaign.gradio_call(name, label, data)


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small sample (the tests' version)")
    parser.add_argument("--url", help="a server already running (default: start app.py here)")
    parser.add_argument("--pid", type=int, help="its process id, for RSS")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    app = None
    log_path = Path(os.environ.get("HOSTILE_LOG", "/tmp/hostile-inputs-app.log"))
    if args.url:
        url, pid = args.url, args.pid
    else:
        app = LocalApp(log_path, {"API_RATE_PER_MIN": "1000000", "MAX_WAITING": "64"})
        url, pid = app.url, app.proc.pid
    try:
        campaign = Campaign(url)
        campaign.request("warm-up", "page", "GET", "/")
        rss_before = rss_mb(pid)
        started = time.perf_counter()
        run(campaign, args.quick)
        status, _ = campaign.request("after", "page still served", "GET", "/")
        rss_after = rss_mb(pid)
    finally:
        if app is not None:
            app.stop()
    tracebacks = log_path.read_text(errors="replace").count("Traceback") if app is not None else None
    result = {
        "bench": "hostile inputs against the app on loopback" + (" (quick sample)" if args.quick else ""),
        "sent": campaign.sent,
        "server_errors_5xx": len(campaign.server_errors),
        "unexpected_errors": len(campaign.unexpected),
        "no_answer": len(campaign.dropped),
        "page_served_after": status == 200,
        "rss_mb": {"before": rss_before, "after": rss_after},
        "slowest_answer": campaign.slowest,
        "seconds": round(time.perf_counter() - started, 1),
        "by_way": campaign.by_way,
        "app_log_tracebacks": tracebacks,
        "failures": {
            "5xx": campaign.server_errors[:50],
            "unexpected": campaign.unexpected[:50],
            "no_answer": campaign.dropped[:50],
        },  # fmt: skip
    }
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
