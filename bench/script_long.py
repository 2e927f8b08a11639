"""A long text rendered as a script job (`python -m engines script`: chapters, a file per line, levelled,
resumable) against the same text spoken as one plain request (`python -m engines synth`, our baseline);
prints JSON: wall time, audio seconds, real-time factor, peak RSS of each process, files on disk.

The text is the held-out paragraph and the dev sentences cut into chapters of `--lines-per-chapter`
paragraphs, repeated to `--chars` characters; offline, the packaged Kokoro (int8 ONNX), one voice. The
baseline cannot take more than one request's 5,000 characters, so with `--chars` above that it speaks the
first 5,000 and its figures are scaled per character (said in the output).

    python bench/script_long.py [--chars 5000] [--voice jm_kumo] [--out bench/results-script-long.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_REQUEST_CHARS = 5_000


def long_text(chars: int, per_chapter: int) -> str:
    sentences = (ROOT / "tests" / "data" / "dev_sentences.txt").read_text(encoding="utf-8").split("\n")
    sentences = [s.strip() for s in sentences if s.strip()]
    paragraph = (HERE / "paragraph.txt").read_text(encoding="utf-8").strip()
    out, n = [], 0
    while sum(len(x) + 1 for x in out) < chars:
        if n % per_chapter == 0:
            out.append(f"# Chapter {n // per_chapter + 1}")
        out.append(paragraph if n % 3 == 0 else " ".join(sentences[(n * 4 + k) % len(sentences)] for k in range(4)))
        n += 1
    return "\n".join(out)


def run(command: list[str]) -> dict:
    """Wall seconds and the peak RSS (MB) of one child process (its own rusage, from wait4)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            raise SystemExit(err.read()[-1000:].decode(errors="replace"))
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars", type=int, default=5_000)
    parser.add_argument("--lines-per-chapter", type=int, default=4)
    parser.add_argument("--voice", default="jm_kumo")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    text = long_text(args.chars, args.lines_per_chapter)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "book.md").write_text(text, encoding="utf-8")
        (tmp / "cast.json").write_text(json.dumps({"Narrator": {"engine": "kokoro", "voice": args.voice}}))
        job = run([sys.executable, "-m", "engines", "script", str(tmp / "book.md"), "--cast", str(tmp / "cast.json"),
                   "--out", str(tmp / "job")])  # fmt: skip
        manifest = json.loads((tmp / "job" / "manifest.json").read_text(encoding="utf-8"))
        job_audio = manifest["duration_s"]
        sizes = {}
        for path in (tmp / "job").rglob("*"):
            try:
                sizes[path] = path.stat().st_size
            except OSError:  # a file the job was replacing as the folder was read
                continue
        plain = " ".join(line.lstrip("# ") for line in text.splitlines())[:MAX_REQUEST_CHARS]
        (tmp / "plain.txt").write_text(plain, encoding="utf-8")
        base = run([sys.executable, "-m", "engines", "synth", "--engine", "kokoro", "--voice", args.voice,
                    "--text-file", str(tmp / "plain.txt"), "--out", str(tmp / "plain.wav")])  # fmt: skip
        base_audio = sf.info(str(tmp / "plain.wav")).duration
    result = {
        "bench": "script_long",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "text_chars": len(text),
        "chapters": len(manifest["chapters"]),
        "lines": manifest["rendered"],
        "job": {
            **job,
            "audio_s": job_audio,
            "rtf": round(job["wall_s"] / job_audio, 3),
            "files": len(sizes),
            "disk_mb": round(sum(sizes.values()) / 1e6, 1),
        },  # fmt: skip
        "baseline_one_request": {
            **base,
            "chars": len(plain),
            "audio_s": round(base_audio, 2),
            "rtf": round(base["wall_s"] / base_audio, 3),
        },  # fmt: skip
        "note": "rtf = wall seconds per second of audio, process start and model load included (lower is faster);"
        " the baseline speaks at most one request's 5,000 characters.",
    }
    result["job_rtf_over_baseline"] = round(result["job"]["rtf"] / result["baseline_one_request"]["rtf"], 3)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
