"""Scripts and SSML: the parsers refuse hostile documents in one sentence and in linear time; a take's
manifest says where each line is; a <break> is the silence it names; real voices speak the lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines import script, ssml
from engines.audio import SILENCE_DB
from engines.base import SAMPLE_RATE, InputError
from service.script import render_line, render_take

ROOT = Path(__file__).resolve().parent.parent


# ----- the SSML subset ---------------------------------------------------------------------------
def test_ssml_subset_gives_pieces_and_pauses_in_order():
    parts = ssml.parse(
        'Hello <break time="700ms"/> <prosody rate="slow">slowly <voice name="jm_kumo">now</voice></prosody> '
        '<say-as interpret-as="characters">ABC</say-as> <sub alias="World Health Organization">WHO</sub> '
        '<say-as interpret-as="ordinal">3</say-as> <phoneme alphabet="ipa" ph="təmˈɑːtoʊ">tomato</phoneme>'
    )
    assert parts[0] == ssml.Piece("Hello")
    assert parts[1] == ssml.Pause(0.7)
    assert parts[2] == ssml.Piece("slowly", None, 0.85)
    assert parts[3] == ssml.Piece("now", "jm_kumo", 0.85)
    assert parts[4].text == "A, B, C. World Health Organization third tomato"
    assert parts[4].phonemes == {"tomato": "təmˈɑːtoʊ"}


def test_paragraphs_pause_and_a_whole_speak_document_with_namespace_parses():
    doc = '<?xml version="1.0"?><speak xmlns="http://www.w3.org/2001/10/synthesis"><p>One.</p><p>Two.</p></speak>'
    parts = ssml.parse(doc)
    assert [type(p).__name__ for p in parts] == ["Piece", "Pause", "Piece", "Pause"]
    assert ssml.plain_text(parts) == "One. Two."


@pytest.mark.parametrize(
    "document, words",
    [
        ('<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><speak>&lol2;</speak>', "DTD"),
        ('<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>', "DTD"),
        ("<speak><audio src='x.wav'/></speak>", "<audio> is not supported"),
        (f'<speak><sub alias="{"a" * 100_000}">x</sub></speak>', "limit"),
        (f'<speak><sub alias="{"a" * 5_000}">x</sub></speak>', "over 1,000 characters"),
        ("<speak><break time='forever'/></speak>", "<break time>"),
        ("<speak>open <s>never closed</speak>", "not well-formed"),
        ("<speak>" + "<s>" * 40 + "deep" + "</s>" * 40 + "</speak>", "nests"),
        ("<speak><say-as interpret-as='cardinal'>many</say-as></speak>", "whole number"),
    ],
)
def test_hostile_or_unknown_ssml_is_refused_in_one_sentence(document, words):
    with pytest.raises(InputError) as refused:
        ssml.parse(document)
    message = str(refused.value)
    assert words in message and "\n" not in message and "Traceback" not in message


_TAGS = ["speak", "p", "s", "break", "prosody", "say-as", "phoneme", "voice", "sub", "audio", "x"]
_soup = st.lists(
    st.one_of(
        st.sampled_from([f"<{t}>" for t in _TAGS] + [f"</{t}>" for t in _TAGS] + [f"<{t}/>" for t in _TAGS]),
        st.sampled_from(
            [
                '<break time="1s"/>',
                '<prosody rate="200%">',
                '<say-as interpret-as="date">',
                "&amp;",
                "&x;",
                "<!--",
                "-->",
                "<![CDATA[",
                "]]>",
                "<!DOCTYPE a>",
                '"',
                "'",
                "=",
                "<?",
                "?>",
            ]
        ),
        st.text(max_size=12),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_soup)
def test_random_tag_soup_parses_or_is_refused_in_one_sentence(document):
    try:
        parts = ssml.parse(document)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert all(isinstance(p, ssml.Piece | ssml.Pause) for p in parts)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_script_text_parses_or_is_refused_in_one_sentence(text):
    try:
        lines = script.parse(text)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert lines and all(ln.speaker for ln in lines)


def _growth(parse, unit: str) -> float:
    """How much longer 10x the input takes than 1x (best of 5 each, in this thread's CPU time, so that other
    processes on the machine do not count): linear work stays near 10."""

    def best(text: str) -> float:
        times = []
        for _ in range(5):
            start = time.thread_time()
            try:
                parse(text)
            except InputError:
                pass
            times.append(time.thread_time() - start)
        return min(times)

    return best(unit * 4_000) / max(best(unit * 400), 1e-6)


@pytest.mark.parametrize(
    "parse, unit",
    [
        (ssml.parse, "<s>a</s>"),
        (ssml.parse, "<"),
        (ssml.parse, "word <break time='1ms'/> "),
        (script.parse, "Ann: hi <s>x</s>\n"),
        (script.parse, ":::<<<"),
        (ssml.looks_like_ssml, "< "),
    ],
)
def test_parsers_take_time_linear_in_their_input(parse, unit):
    assert _growth(parse, unit) < 20


# ----- the script format -------------------------------------------------------------------------
def test_a_script_gives_lines_to_speakers_and_the_rest_to_the_narrator():
    lines = script.parse("Ann: Hello there.\n\nThey met at noon.\nBob: Hi <break time='300ms'/> Ann.\nhttps://x.y: z")
    assert [(ln.speaker, ln.spoken) for ln in lines] == [
        ("Ann", "Hello there."),
        (script.NARRATOR, "They met at noon."),
        ("Bob", "Hi Ann."),
        (script.NARRATOR, "https://x.y: z"),
    ]
    assert ssml.Pause(0.3) in lines[2].parts


def test_a_speaker_missing_from_the_cast_is_named_and_the_narrator_has_a_default():
    lines = script.parse("Ann: Hello.\nCarl: Hi.\nThe end.")
    with pytest.raises(InputError, match="no voice for Carl"):
        script.roles(lines, script.parse_cast({"Ann": {"engine": "kokoro", "voice": "jf_alpha"}}))
    cast = script.roles(lines[:1] + lines[2:], script.parse_cast('{"Ann": {"engine": "kokoro", "voice": "jf_alpha"}}'))
    assert cast[script.NARRATOR].engine in ("kokoro", "qwen-custom", "qwen-clone")


@pytest.mark.parametrize(
    "cast, words",
    [("{not json", "not valid JSON"), ('{"Ann": {"engine": "nope"}}', "Unknown engine"), ("[1]", "must map"),
     ('{"Ann": "jf_alpha"}', "must be"), ("[" * 100_000, "over 64 KB")],
)  # fmt: skip
def test_a_bad_cast_is_refused_in_one_sentence(cast, words):
    with pytest.raises(InputError, match=words):
        script.parse_cast(cast)


# ----- rendering, with a stand-in engine ---------------------------------------------------------
def _tone(seconds: float, pad_s: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pad = np.zeros(int(pad_s * SAMPLE_RATE), np.float32)
    return np.concatenate([pad, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), pad])


def _fake(engine_id, request, s_per_char: float = 0.05):
    """A stand-in engine: 0.05 s of tone per character, with the silence a real model leaves at its edges."""
    return _tone(s_per_char * len(request.text))


def _silent_runs(audio: np.ndarray) -> list[float]:
    """Lengths in seconds of the runs of 10 ms frames under the silence threshold, inside the clip."""
    frame = SAMPLE_RATE // 100
    n = len(audio) // frame
    rms = np.sqrt(np.mean(np.square(audio[: n * frame].reshape(n, frame), dtype=np.float64), axis=1))
    quiet = rms <= 10 ** (SILENCE_DB / 20)
    runs, count, seen_loud = [], 0, False
    for q in quiet:
        if q:
            count += 1
        else:
            if seen_loud and count:
                runs.append(count / 100)
            count, seen_loud = 0, True
    return runs


def test_a_break_is_the_silence_it_names():
    line = script.parse('Ann: one <break time="700ms"/> two')[0]
    audio, _ = render_line(line, script.Role("kokoro", "jf_alpha"), synthesize=_fake)
    runs = _silent_runs(audio)
    assert len(runs) == 1 and 0.65 <= runs[0] <= 0.75


def test_the_manifest_says_where_each_line_is_in_the_take(tmp_path):
    lines = script.parse("Ann: Hello there.\nBob: Hi.\nA long line said by the narrator.")
    roles = script.roles(lines, script.parse_cast({"Ann": {"engine": "kokoro", "voice": "a"},
                                                   "Bob": {"engine": "kokoro", "voice": "b"}}))  # fmt: skip
    manifest = render_take(lines, roles, tmp_path, gap_s=0.5, synthesize=_fake)
    assert [e["speaker"] for e in manifest["lines"]] == ["Ann", "Bob", script.NARRATOR]
    take, rate = sf.read(tmp_path / "take.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    for entry, line in zip(manifest["lines"], lines, strict=True):
        said = 0.05 * len(line.spoken)  # the stand-in's tone for the line
        assert entry["end"] - entry["start"] == pytest.approx(said, abs=0.05)
        _assert_span_in_take(take, entry)
    assert json.loads((tmp_path / "manifest.json").read_text())["lines"] == manifest["lines"]
    assert sorted(__import__("zipfile").ZipFile(tmp_path / "lines.zip").namelist()) == sorted(
        Path(e["file"]).name for e in manifest["lines"]
    )


def _assert_span_in_take(take: np.ndarray, entry: dict, tolerance_s: float = 0.05) -> None:
    """The line's span, measured again in the take: speech starts and ends where the manifest says."""
    from engines.audio import silent_edges

    lo = max(0, int((entry["start"] - 0.2) * SAMPLE_RATE))
    hi = min(len(take), int((entry["end"] + 0.2) * SAMPLE_RATE))
    first, last = silent_edges(take[lo:hi])
    assert abs((lo + first) / SAMPLE_RATE - entry["start"]) <= tolerance_s
    assert abs((lo + last) / SAMPLE_RATE - entry["end"]) <= tolerance_s


def test_a_phoneme_element_reaches_the_engine_as_a_lexicon_entry_would():
    from service.script import request_for

    piece = ssml.parse('Say <phoneme ph="təmˈɑːtoʊ">tomato</phoneme> now')[0]
    request, notes = request_for(piece, script.Role("kokoro", "jf_alpha"), None)
    assert dict(request.lexicon) == {"tomato": "təmˈɑːtoʊ"} and not notes
    request, notes = request_for(piece, script.Role("qwen-custom", "Ryan"), None)
    assert not request.lexicon and "tomato" in notes[0]


# ----- real voices -------------------------------------------------------------------------------
@pytest.mark.slow
def test_three_speakers_kokoro_and_qwen_one_take_whose_manifest_matches_the_audio(qwen_dirs, tmp_path):
    (tmp_path / "script.txt").write_text(
        "Ann: Good morning, and welcome to the show.\n"
        "Ryan: Thanks, it is good to be here.\n"
        'Bob: Let us begin. <break time="700ms"/> First, the news.\n',
        encoding="utf-8",
    )
    cast = {"Ann": {"engine": "kokoro", "voice": "jf_alpha"}, "Ryan": {"engine": "qwen-custom", "voice": "Ryan"},
            "Bob": {"engine": "kokoro", "voice": "jm_kumo"}}  # fmt: skip
    (tmp_path / "cast.json").write_text(json.dumps(cast), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QWEN_CUSTOM_VOICE_MODEL": str(qwen_dirs["custom"]),
           "QWEN_BASE_MODEL": str(qwen_dirs["clone"]), "VOICE_LIBRARY_DIR": str(tmp_path / "lib")}  # fmt: skip
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "engines", "script", str(tmp_path / "script.txt"), "--cast", str(tmp_path / "cast.json"),
         "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    lines = manifest["lines"]
    assert [(e["speaker"], e["engine"], e["voice"]) for e in lines] == [
        ("Ann", "kokoro", "jf_alpha"), ("Ryan", "qwen-custom", "Ryan"), ("Bob", "kokoro", "jm_kumo")]  # fmt: skip
    take, _ = sf.read(out / manifest["take"], dtype="float32")
    starts = [e["start"] for e in lines]
    assert starts == sorted(starts) and all(e["end"] > e["start"] for e in lines)
    for entry in lines:
        _assert_span_in_take(take, entry)
        assert (out / entry["file"]).is_file()
    bob, _ = sf.read(out / lines[2]["file"], dtype="float32")
    assert any(0.65 <= run <= 0.75 for run in _silent_runs(bob))  # the break, in real speech


@pytest.mark.slow
def test_say_as_characters_is_heard_as_letters(packaged_kokoro):
    import re

    from engines.asr import transcribe
    from engines.audio import join

    line = script.parse('Ann: The code is <say-as interpret-as="characters">XYZ</say-as>.')[0]

    def speak(engine_id, request):
        return join(packaged_kokoro.stream(request))

    audio, _ = render_line(line, script.Role("kokoro", "jm_kumo"), synthesize=speak)
    heard = transcribe(audio, SAMPLE_RATE)
    after = heard.lower().split(" is ", 1)[-1]
    # three letters, each heard on its own ("x, y, z"), not one word
    assert re.findall(r"[a-z]+", after) == ["x", "y", "z"], heard


@pytest.mark.slow
def test_the_script_api_renders_a_take_and_refuses_a_bad_cast_in_one_sentence(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    voices = {"Ann": {"engine": "kokoro", "voice": "jf_alpha"}, "Bob": {"engine": "kokoro", "voice": "jm_kumo"}}
    take, archive, table, said = client.predict(
        "Ann: Hello Bob.\nBob: Hello Ann. <break time='300ms'/> Shall we go?", json.dumps(voices), 0.3, "",
        api_name="/script",
    )  # fmt: skip
    audio, rate = sf.read(take, dtype="float32")
    assert rate == SAMPLE_RATE and len(audio) / rate > 1.5
    rows = table["data"] if isinstance(table, dict) else table
    assert [r[1] for r in rows] == ["Ann", "Bob"] and all(r[7] == "" for r in rows)
    assert said.startswith("2 lines")
    names = __import__("zipfile").ZipFile(archive).namelist()
    assert "manifest.json" in names and len([n for n in names if n.startswith("lines/")]) == 2
    with pytest.raises(Exception) as refused:
        client.predict("Ann: Hi.\nCarl: Hello.", json.dumps(voices), 0.3, "", api_name="/script")
    assert "no voice for Carl" in str(refused.value)


def _long_text(dev_sentences: list[str], chars: int = 20_000) -> str:
    """Chapters of paragraphs (Markdown headings), about `chars` characters in all."""
    out, chapter, n = [], 0, 0
    while sum(len(x) + 1 for x in out) < chars:
        if n % 8 == 0:
            chapter += 1
            out.append(f"# Chapter {chapter}")
        out.append(" ".join(dev_sentences[(n + k) % len(dev_sentences)] for k in range(6)))
        n += 1
    return "\n".join(out)


class _Killed(BaseException):
    """The machine going away: not an error the job may catch."""


def test_a_long_text_is_a_job_that_resumes_after_a_kill_and_has_chapters(dev_sentences, tmp_path):
    text = _long_text(dev_sentences)
    assert len(text) >= 20_000
    lines = script.parse(text)
    roles = script.roles(lines, {})
    calls: list[str] = []

    def dies_after_12(engine_id, request):
        if len(calls) == 12:
            raise _Killed
        calls.append(request.text)
        return _fake(engine_id, request, 0.002)

    with pytest.raises(_Killed):
        render_take(lines, roles, tmp_path, synthesize=dies_after_12)
    kept = json.loads((tmp_path / "progress.json").read_text(encoding="utf-8"))["lines"]
    assert len(kept) == 12
    calls.clear()
    manifest = render_take(lines, roles, tmp_path, synthesize=_fake_counted(calls))
    assert manifest["resumed"] == 12 and manifest["rendered"] == len(lines) and manifest["failed"] == 0
    assert calls == [ln.spoken for ln in lines[12:]]  # only what was left was rendered again
    headings = [ln.chapter for ln in lines if ln.speaker == script.NARRATOR and ln.spoken == ln.chapter]
    assert len(headings) >= 3
    _assert_chapters(tmp_path, manifest, headings)


def _fake_counted(calls: list[str]):
    def synthesize(engine_id, request):
        calls.append(request.text)
        return _fake(engine_id, request, 0.002)

    return synthesize


def _assert_chapters(out: Path, manifest: dict, titles: list[str]) -> None:
    """The manifest's chapters are the headings in order, and the M4B and the cue list carry them."""
    assert [c["title"] for c in manifest["chapters"]] == titles
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(out / manifest["m4b"])],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    marks = json.loads(probe.stdout)["chapters"]
    assert [m["tags"]["title"] for m in marks] == titles
    for mark, chapter in zip(marks, manifest["chapters"], strict=True):
        assert float(mark["start_time"]) == pytest.approx(chapter["start"], abs=0.05)
    assert (out / "take.cue").read_text(encoding="utf-8").count("TRACK") == len(titles)


def test_a_line_that_fails_is_tried_once_more_then_reported(tmp_path):
    lines = script.parse("Ann: first\nAnn: second\nAnn: third")
    tries: dict[str, int] = {}

    def flaky(engine_id, request):
        tries[request.text] = tries.get(request.text, 0) + 1
        if request.text == "second" and tries[request.text] == 1 or request.text == "third":
            raise RuntimeError("model hiccup")
        return _fake(engine_id, request)

    manifest = render_take(lines, script.roles(lines, {"Ann": script.Role("kokoro", "a")}), tmp_path, synthesize=flaky)
    second, third = manifest["lines"][1], manifest["lines"][2]
    assert second["file"] and "second try" in second["notes"][-1]
    assert third["error"] and tries["third"] == 2 and manifest["failed"] == 1


@pytest.mark.slow
def test_the_cli_job_killed_halfway_resumes_from_the_last_finished_line(tmp_path):
    text = "# Part one\n" + "\n".join(f"Line number {n}." for n in range(1, 4))
    text += "\n# Part two\n" + "\n".join(f"Line number {n}." for n in range(4, 7))
    (tmp_path / "story.md").write_text(text, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("KOKORO_MODEL", None)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "engines", "script", str(tmp_path / "story.md"), "--out", str(out)]
    job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress, deadline = out / "progress.json", time.monotonic() + 600
    while time.monotonic() < deadline and job.poll() is None:
        try:
            if len(json.loads(progress.read_text(encoding="utf-8"))["lines"]) >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    assert job.poll() is None, "the job ended before it could be killed"
    job.kill()  # the machine goes away halfway through
    job.wait(timeout=30)
    kept = len(json.loads(progress.read_text(encoding="utf-8"))["lines"])
    assert 2 <= kept < 8
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["resumed"] == kept and manifest["rendered"] == 8 and manifest["failed"] == 0
    _assert_chapters(out, manifest, ["Part one", "Part two"])


@pytest.mark.slow
def test_v1_speaks_a_script_with_a_cast_and_keeps_plain_requests_plain(v1_client):
    import base64
    import io

    body = {"model": "kokoro", "input": "Ann: Hello there.\nBob: Hi <break time='700ms'/> Ann.", "voice": "jm_kumo",
            "voices": {"Ann": "jf_alpha", "Bob": {"engine": "kokoro", "voice": "jm_kumo"}},
            "response_format": "wav", "timestamps": True}  # fmt: skip
    answer = v1_client.post("/v1/audio/speech", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert [(ln["speaker"], ln["voice"]) for ln in data["lines"]] == [("Ann", "jf_alpha"), ("Bob", "jm_kumo")]
    take, rate = sf.read(io.BytesIO(base64.b64decode(data["audio"])), dtype="float32")
    assert rate == SAMPLE_RATE
    for entry in data["lines"]:
        _assert_span_in_take(take, entry)
    refused = v1_client.post("/v1/audio/speech", json={**body, "input": "Ann: <audio src='x'/>"})
    assert refused.status_code == 400 and "<audio> is not supported" in refused.json()["error"]["message"]
    streamed = v1_client.post("/v1/audio/speech", json={**body, "stream_format": "audio", "timestamps": False})
    assert streamed.status_code == 400 and "whole file" in streamed.json()["error"]["message"]
    plain = v1_client.post("/v1/audio/speech", json={"model": "kokoro", "input": "Ann: 3 < 4.", "voice": "jm_kumo",
                                                      "response_format": "wav"})  # fmt: skip
    assert plain.status_code == 200 and "X-Script-Lines" not in plain.headers  # no cast: a plain request
