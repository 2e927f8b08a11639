"""`python -m engines`: list, synth and bench, and one-line errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
from conftest import ROOT


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("KOKORO_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", "engines", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_list_prints_engines_voices_and_weights_source():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    kokoro = next(e for e in json.loads(result.stdout)["engines"] if e["id"] == "kokoro")
    assert kokoro["available"] and kokoro["backend"] == "onnx"
    assert kokoro["weights_source"].startswith("packaged")
    assert len(kokoro["voices"]) == 54
    assert {v["id"] for v in kokoro["voices"] if v["available"]} == {
        "jf_alpha",
        "jf_gongitsune",
        "jf_nezumi",
        "jf_tebukuro",
        "jm_kumo",
    }


def test_synth_takes_the_format_from_the_suffix(tmp_path):
    fmt = "mp3"
    out = tmp_path / f"clip.{fmt}"
    result = run_cli(
        "synth",
        "--engine",
        "kokoro",
        "--voice",
        "jm_kumo",
        "--text",
        "Four hours of steady work faced us.",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    data, rate = sf.read(out)
    summary = json.loads(result.stdout)
    assert rate == 24_000 and summary["format"] == fmt
    assert abs(len(data) / rate - summary["audio_s"]) < 0.1
    assert len(data) / rate > 1.0


def test_synth_reads_stdin_and_text_file(tmp_path):
    text_file = tmp_path / "in.txt"
    text_file.write_text("Glue the sheet to the dark blue background.", encoding="utf-8")
    from_file = run_cli(
        "synth",
        "--voice",
        "jm_kumo",
        "--text-file",
        str(text_file),
        "--out",
        str(tmp_path / "a.wav"),
        "--format",
        "flac",
    )
    from_stdin = run_cli(
        "synth",
        "--voice",
        "jm_kumo",
        "--out",
        str(tmp_path / "b.wav"),
        stdin="Glue the sheet to the dark blue background.",
    )
    assert from_file.returncode == 0 and from_stdin.returncode == 0
    assert sf.info(tmp_path / "a.wav").format == "FLAC"


def test_bench_prints_one_json_line():
    result = run_cli(
        "bench", "--engine", "kokoro", "--voice", "jm_kumo", "--text-file", str(ROOT / "bench" / "paragraph.txt")
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert set(figures) == {"audio_s", "total_s", "ttfa_s", "rtf", "chunks"}
    assert figures["audio_s"] > 15 and figures["chunks"] >= 3
    assert 0 < figures["ttfa_s"] < figures["total_s"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--voice", "jm_kumo", "--text", "   "], "enter some text"),
        (["--voice", "zz_nobody", "--text", "Hi."], "Unknown Kokoro voice"),
        (["--voice", "af_heart", "--text", "Hi."], "needs the model hub"),
        (["--voice", "jm_kumo:0", "--text", "Hi."], "add up to zero"),
        (["--voice", "jm_kumo", "--text", "Hi.", "--speed", "3"], "between 0.5 and 2.0"),
        (["--voice", "jm_kumo", "--text", "?!… 😀"], "nothing to pronounce"),
        (["--voice", "jm_kumo", "--text-file", "/nonexistent/file.txt"], "Cannot read the text file"),
        (["--voice", "jm_kumo", "--text", "x" * 5001], "limit is 5,000"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path, args, message):
    result = run_cli("synth", *args, "--out", str(tmp_path / "x.wav"))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
