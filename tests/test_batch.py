"""Batch files: parsing (.txt, CSV, bad rows), rendering with the real offline Kokoro, Qwen3-TTS
texts batched in one `generate` (tiny checkpoint), the zip, and `python -m engines batch`."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf
from test_cli import run_cli

from engines import audio
from engines import batch_files as batch
from engines.base import InputError
from service.batch import length_groups, render_items

FIVE = "One fine day.\n\nTwo birds sang.\nThree cats slept.\n  \nFour dogs ran.\nFive fish swam.\n"


# ----- parsing -------------------------------------------------------------------------------


def test_a_text_file_gives_one_item_per_non_empty_line_with_the_defaults():
    items = batch.parse(FIVE.encode(), "lines.txt", "kokoro", "jm_kumo")
    assert [i.text for i in items] == ["One fine day.", "Two birds sang.", "Three cats slept.", "Four dogs ran.",
                                       "Five fish swam."]  # fmt: skip
    assert [i.index for i in items] == [1, 2, 3, 4, 5]
    assert all(i.engine == "kokoro" and i.voice == "jm_kumo" and i.error is None for i in items)


def test_csv_rows_fall_back_to_the_defaults_and_bad_rows_carry_their_error():
    data = (
        "Text,Engine,Voice\n"
        "Hello there.,,\n"
        "Hi.,qwen-custom,Ryan\n"
        "Nope.,espeak,x\n"
        ",kokoro,jm_kumo\n"
        f"{'a' * 5001},kokoro,jm_kumo\n"
        "Too,many,fields,here\n"
    )
    items = batch.parse(data.encode(), "rows.CSV", "kokoro", "jf_alpha")
    assert [(i.engine, i.voice) for i in items[:2]] == [("kokoro", "jf_alpha"), ("qwen-custom", "Ryan")]
    assert items[0].error is None and items[1].error is None
    assert "Unknown engine 'espeak'" in items[2].error
    assert items[3].error == "Please enter some text to speak."
    assert "5,001 characters" in items[4].error
    assert "4 fields" in items[5].error
    assert [i.index for i in items] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"words,voice\nHello.,jm_kumo\n", "x.csv", "no 'text' column"),
        (b"", "x.txt", "nothing to speak"),
        (b"\n  \n\n", "x.txt", "nothing to speak"),
        (b"text,engine,voice\n", "x.csv", "nothing to speak"),
        (b"\xff\xfe\x00bad", "x.txt", "not UTF-8"),
        (b"line\n" * 201, "x.txt", "201 items; the limit is 200"),
    ],
)
def test_bad_batch_files_get_one_sentence(data, name, message):
    with pytest.raises(InputError, match=message) as caught:
        batch.parse(data, name, "kokoro", "jm_kumo")
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")


def test_slugs_are_short_ascii_file_name_parts():
    assert batch.slug("Hello, World! It's me.") == "hello-world-it-s-me"
    assert batch.slug("Crème brûlée") == "creme-brulee"
    assert batch.slug("こんにちは") == "item"
    assert len(batch.slug("word " * 40)) <= 40


def test_length_groups_sort_by_length_and_keep_lengths_within_a_factor_of_two():
    texts = ["a" * n for n in (40, 10, 12, 90, 11, 13, 15, 30)]
    items = [batch.BatchItem(k, t, "qwen-custom", "Ryan") for k, t in enumerate(texts)]
    groups = length_groups(items, size=4)
    assert sorted(len(i.text) for g in groups for i in g) == sorted(map(len, texts))
    assert all(len(g) <= 4 and max(len(i.text) for i in g) <= 2 * min(len(i.text) for i in g) for g in groups)
    assert [len(i.text) for i in groups[0]] == [10, 11, 12, 13]


# ----- rendering with the real packaged Kokoro ------------------------------------------------


@pytest.fixture(scope="module")
def kokoro(packaged_kokoro):
    return packaged_kokoro


def test_a_csv_with_a_bad_row_reports_it_and_renders_the_others(kokoro, tmp_path):
    # a bad voice, an empty text, a blank row (skipped) and a row with its own voice
    data = (
        "text,engine,voice\nThe sun is out.,,\nA bad voice here.,kokoro,zz_nobody\n ,kokoro,\n,,\n"
        "Glue the sheet.,,jf_alpha\n"
    )
    items = batch.parse(data.encode(), "rows.csv", "kokoro", "jm_kumo")
    seen = []
    manifest = render_items(
        items,
        tmp_path,
        "flac",
        audio.OutputSettings(lufs=-23, trim=True, fade=True),
        progress=lambda done, total: seen.append((done, total)),
        get_engine=lambda engine_id: kokoro,
    )
    rows = manifest["items"]
    assert (manifest["rendered"], manifest["failed"]) == (2, 2)
    assert "zz_nobody" in rows[1]["error"] and rows[2]["error"] == "Please enter some text to speak."
    assert rows[1]["file"] is None and rows[1]["lufs"] is None
    for row in (rows[0], rows[3]):
        assert row["error"] is None
        data, rate = sf.read(tmp_path / row["file"])
        assert rate == 24_000 and len(data) / rate == pytest.approx(row["duration_s"], abs=0.01)
        assert abs(audio.integrated_loudness(data, rate) - -23) <= 0.5
        assert row["lufs"] == pytest.approx(audio.integrated_loudness(data, rate), abs=0.1)
    assert [r["file"] for r in (rows[0], rows[3])] == ["001-the-sun-is-out.flac", "004-glue-the-sheet.flac"]
    assert seen[-1] == (4, 4) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert manifest["settings"] == {"lufs": -23.0, "peak_normalize": False, "trim": True, "denoise": False,
                                    "fade": True}  # fmt: skip
    names = zipfile.ZipFile(batch.zip_folder(tmp_path, tmp_path.parent / "batch.zip")).namelist()
    assert sorted(names) == ["001-the-sun-is-out.flac", "004-glue-the-sheet.flac", "manifest.json"]


def test_an_unknown_format_is_refused_before_rendering(tmp_path):
    items = batch.parse(b"Hello.", "x.txt", "kokoro", "jm_kumo")
    with pytest.raises(InputError, match="Unknown audio format 'aiff'"):
        render_items(items, tmp_path, "aiff")
    assert not any(tmp_path.iterdir())


# ----- Qwen3-TTS: texts of one voice in one generate (tiny random checkpoint) ----------------


@pytest.fixture(scope="module")
def tiny_qwen_custom(qwen_dirs):
    """A tiny CustomVoice engine, loaded once for the module."""
    from engines.qwen.engine import QwenCustomEngine

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom"]))
        mp.setenv("TORCH_THREADS", "1")
        engine = QwenCustomEngine()
        engine.load("cpu")
    return engine


@pytest.fixture()
def qwen_calls(tiny_qwen_custom, qwen_dirs, monkeypatch):
    """The tiny CustomVoice engine (with the environment it was loaded in), its every `generate` call in
    this test recorded as (texts, languages)."""
    engine = tiny_qwen_custom
    monkeypatch.setenv("QWEN_CUSTOM_VOICE_MODEL", str(qwen_dirs["custom"]))
    monkeypatch.setenv("TORCH_THREADS", "1")
    calls = []
    original = engine._model.generate_custom_voice

    def recording(**kwargs):
        calls.append((list(kwargs["text"]), set(kwargs["language"])))
        return original(**kwargs)

    monkeypatch.setattr(engine._model, "generate_custom_voice", recording)
    return engine, calls


def test_qwen_items_of_one_voice_are_batched_by_length_in_one_generate(qwen_calls, tmp_path):
    engine, calls = qwen_calls
    lines = ["Hello there.", "A much longer line that will not fit with the short ones.", "Good day.", "Hi you."]
    items = batch.parse("\n".join(lines).encode(), "q.txt", "qwen-custom", "Ryan")
    manifest = render_items(items, tmp_path, "wav", max_new_tokens=4, get_engine=lambda engine_id: engine)
    assert [texts for texts, _ in calls] == [["Hi you.", "Good day.", "Hello there."], [lines[1]]]
    assert manifest["rendered"] == 4
    for row in manifest["items"]:
        data, rate = sf.read(tmp_path / row["file"])
        assert rate == 24_000 and len(data) == 3 * 1920  # 4 frames, the last one the end marker


# ----- the command line ----------------------------------------------------------------------


def test_cli_batch_of_five_lines_gives_five_files_at_the_loudness_target_and_a_manifest(tmp_path):
    source = tmp_path / "lines.txt"
    source.write_text(FIVE, encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli("batch", "--in", str(source), "--engine", "kokoro", "--voice", "jm_kumo", "--out-dir", str(out),
                     "--format", "mp3", "--lufs", "-16", "--zip", str(tmp_path / "all.zip"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["rendered"], summary["failed"], summary["format"]) == (5, 0, "mp3")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [row["text"] for row in manifest["items"]] == [line.strip() for line in FIVE.splitlines() if line.strip()]
    assert sorted(p.name for p in out.glob("*.mp3")) == sorted(row["file"] for row in manifest["items"])
    for row in manifest["items"]:
        data, rate = sf.read(out / row["file"])
        assert rate == 24_000 and abs(len(data) / rate - row["duration_s"]) < 0.06
        assert abs(audio.integrated_loudness(data, rate) - -16) <= 0.5
        assert abs(row["lufs"] - -16) <= 0.5 and row["error"] is None
        assert audio.true_peak_dbfs(data, rate) <= -1.0  # the limiter leaves room for the mp3 overshoot
    assert len(zipfile.ZipFile(tmp_path / "all.zip").namelist()) == 6


@pytest.mark.parametrize(
    ("content", "name", "extra", "message"),
    [
        ("words,voice\nHello.,jm_kumo\n", "rows.csv", [], "no 'text' column"),
        ("", "empty.txt", [], "nothing to speak"),
        ("Hello.\n", "ok.txt", ["--lufs", "3"], "loudness target must be between -40 and -5 LUFS"),
        ("Hello.\n", "ok.txt", ["--lufs", "loud"], "loudness target must be a number"),
    ],
)
def test_cli_batch_bad_input_exits_2_with_one_line(tmp_path, content, name, extra, message):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    result = run_cli("batch", "--in", str(source), "--voice", "jm_kumo", "--out-dir", str(tmp_path / "o"), *extra)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "o").exists()


def test_cli_synth_applies_the_output_flags(tmp_path):
    out = tmp_path / "clip.opus"
    result = run_cli("synth", "--voice", "jm_kumo", "--text", "The birch canoe slid on the smooth planks.",
                     "--out", str(out), "--lufs", "-23", "--trim", "--fade")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["format"] == "opus"
    data, rate = sf.read(out)
    assert rate == 24_000 and abs(audio.integrated_loudness(data, rate) - -23) <= 0.5
    start, stop = audio.silent_edges(np.asarray(data, np.float32), rate)
    assert start <= 0.05 * rate and len(data) - stop <= 0.05 * rate  # trimmed to the 40 ms margin


def test_a_csv_language_column_sets_each_rows_language_and_one_call_never_mixes_two(qwen_calls, tmp_path):
    engine, calls = qwen_calls
    rows = "text,voice,language\nHello there.,Ryan,English\nGuten Tag.,Ryan,German\n"
    rows += "Good day.,Ryan,\nHola.,Ryan,Klingon\n"
    items = batch.parse(rows.encode(), "q.csv", "qwen-custom", "Ryan")
    assert [i.language for i in items] == ["English", "German", None, "Klingon"]
    manifest = render_items(items, tmp_path, "wav", language="English", max_new_tokens=4, get_engine=lambda e: engine)
    assert (["Hello there."], {"English"}) in calls and (["Guten Tag."], {"German"}) in calls
    assert (["Good day."], {"English"}) in calls  # a blank cell takes the batch's language
    assert all(len(languages) == 1 for _, languages in calls)
    bad = manifest["items"][3]
    assert "Unknown language 'Klingon'" in bad["error"] and bad["file"] is None
    assert manifest["rendered"] == 3 and manifest["items"][1]["language"] == "German"
