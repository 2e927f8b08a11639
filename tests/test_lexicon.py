"""The pronunciation lexicon: entries checked (one sentence for a bad one), kept per owner, and applied
every way in: Kokoro's G2P takes an entry's phonemes, Qwen3-TTS speaks the respelled text, `/v1`
speaks with the key's lexicon, the page with the visitor's, the CLI with `--lexicon FILE.json`.

The slow tests run the real packaged Kokoro (int8 ONNX, jm_kumo) and, for the heard-as-written
check, the real offline ASR (Whisper tiny.en).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT
from gradio.context import LocalContext

from engines import lexicon, voice_library
from engines.base import InputError, SynthesisRequest
from engines.lexicon import Entry
from engines.runtime.weights import kokoro_vocabulary

DOG = "dˈɔɡ"  # misaki's phonemes for "dog"
TRAIN = "tɹˈAn"  # and for "train"
LONG = "kˈætəlˌɔɡjuwˌɛnsəklˈOpədi"  # many more phonemes than "kˈæt"


@pytest.fixture()
def library(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path))
    monkeypatch.delenv("VOICE_LIBRARY_SHARED", raising=False)
    return tmp_path


def one_sentence(message: str) -> None:
    assert message.endswith((".", ")")) and message.count(". ") == 0, message
    assert "Traceback" not in message and not re.search(r"(^|\s)/(tmp|home|work|usr)\b", message)


# ----- applying ------------------------------------------------------------------------------------
def test_a_respelling_replaces_whole_words_in_any_case_and_keeps_the_punctuation():
    text = "Nguyen, meet nguyen! NGUYEN's cousin, Nguyenx and [Nguyen](/nwˈɪn/) stay."
    assert lexicon.respell(text, {"Nguyen": "win"}) == (
        "Win, meet win! NGUYEN's cousin, Nguyenx and [Nguyen](/nwˈɪn/) stay."
    )
    assert lexicon.respell("GIF or gif?", {"gif": "jiff"}) == "Jiff or jiff?"
    assert lexicon.respell("No entries.", {}) == "No entries."


def test_kokoros_g2p_says_an_entrys_phonemes_for_its_word_and_keeps_it_in_the_tokens():
    from engines.kokoro.engine import _make_g2p

    g2p = _make_g2p("a")
    plain, _ = g2p("I saw a cat today.")
    assert "kˈæt" in plain
    with_entry = lexicon.with_phonemes(g2p, {"CAT": DOG}, kokoro_vocabulary())
    phonemes, tokens = with_entry("I saw a Cat today.")
    assert phonemes == plain.replace("kˈæt", DOG)
    assert ("Cat", DOG) in [(t.text, t.phonemes) for t in tokens]  # the word keeps its place (word timings)
    assert with_entry("I saw a category today.")[0] == g2p("I saw a category today.")[0]  # whole words only


def test_the_mapping_an_engine_gets_is_its_column():
    entries = (Entry("cat", phonemes=DOG), Entry("Nguyen", respelling="win"), Entry("gif", "ɡˈɪf", "ghiff"))
    assert lexicon.mapping(entries, lexicon.PHONEMES) == {"cat": DOG, "gif": "ɡˈɪf"}
    assert lexicon.mapping(entries, lexicon.RESPELLING) == {"Nguyen": "win", "gif": "ghiff"}
    assert lexicon.mapping(entries, "") == {}
    from engines.runtime import registry

    assert registry.capabilities("kokoro").lexicon == lexicon.PHONEMES
    assert registry.capabilities("qwen-custom").lexicon == registry.capabilities("qwen-clone").lexicon == "respelling"


class FakeQwen:
    """Just what `QwenCustomEngine.stream`/`synthesize_batch` ask of a loaded model."""

    generate_defaults: dict = {}

    def get_supported_speakers(self):
        return ["ryan"]


def test_qwen_speaks_the_respelled_text_streamed_and_in_batches(monkeypatch):
    from engines.qwen.engine import QwenCustomEngine

    engine = QwenCustomEngine()
    engine._model = FakeQwen()
    spoken = []
    monkeypatch.setattr(
        engine._batcher, "stream", lambda groups, *a: spoken.extend(t for g in groups for t, _ in g) or []
    )
    request = SynthesisRequest(text="Mr. Nguyen said GIF. Bye, nguyen!", voice="Ryan", lexicon={"nguyen": "win"})
    list(engine.stream(request))
    assert " ".join(spoken) == "Mr. Win said GIF. Bye, win!"

    generated = []

    def generate(model, texts, languages, conditionings, cap):
        generated.extend(texts)
        return [np.zeros(240, dtype=np.float32) for _ in texts], 24_000

    monkeypatch.setattr(engine, "_generate", generate)
    others = SynthesisRequest(text="Nguyen and gif.", voice="Ryan", lexicon={"gif": "jiff"})
    engine.synthesize_batch([request, others])
    assert generated == ["Mr. Win said GIF. Bye, win!", "Nguyen and jiff."]


# ----- checks ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("word", "phonemes", "respelling", "says"),
    [
        ("cat", "k@t", "", "symbols Kokoro cannot say ('@')"),
        ("cat", "[kæt]", "", "cannot say"),
        ("cat", "ˈˌ", "", "no sound"),
        ("cat", "", "", "needs Kokoro phonemes, a Qwen3-TTS respelling, or both"),
        ("two words", "kˈæt", "", "must be one word"),
        ("", "kˈæt", "", "needs a word"),
        ("x" * 41, "kˈæt", "", "at most 40 characters"),
        ("cat", "k" * 81, "", "at most 80 characters"),
        ("cat", "", "line\u0000two", "one line"),
        ("cat", 7, "", "must be text"),
    ],
)
def test_a_bad_entry_is_refused_in_one_sentence(word, phonemes, respelling, says):
    with pytest.raises(InputError) as caught:
        lexicon.check_entry(word, phonemes, respelling, kokoro_vocabulary())
    assert says in str(caught.value)
    one_sentence(str(caught.value))


def test_a_lexicon_over_its_bounds_or_with_a_word_twice_is_refused():
    many = {"entries": [{"word": f"w{i}", "respelling": "x"} for i in range(201)]}
    twice = {"entries": [{"word": "Cat", "respelling": "x"}, {"word": "cAT", "respelling": "y"}]}
    for data, says in ((many, "the limit is 200"), (twice, "twice"), ([], "is a JSON object"), ({"entries": [1]}, "")):
        with pytest.raises(InputError) as caught:
            lexicon.entries_from_json(data)
        assert says in str(caught.value)
        one_sentence(str(caught.value))


def test_a_request_checks_its_lexicon_at_the_boundary():
    assert dict(SynthesisRequest(text="Hi.", voice="v", lexicon={" cat ": DOG}).lexicon) == {"cat": DOG}
    for bad, says in (
        ("cat", "must map words"),
        ({"cat": ""}, "needs a pronunciation"),
        ({"a b": "x"}, "one word"),
        ({"Cat": "x", "cat": "y"}, "twice"),
        ({f"w{i}": "x" for i in range(201)}, "the limit is 200"),
    ):
        with pytest.raises(InputError) as caught:
            SynthesisRequest(text="Hi.", voice="v", lexicon=bad)
        assert says in str(caught.value)
        one_sentence(str(caught.value))


def test_kokoro_refuses_phonemes_its_vocabulary_lacks_when_it_speaks():
    with pytest.raises(InputError, match="cannot say"):
        lexicon.with_phonemes(lambda text: (text, None), {"cat": "k@t"}, kokoro_vocabulary())


# ----- the store: per owner ----------------------------------------------------------------------
def test_each_owner_keeps_their_own_lexicon_and_no_one_else_reads_or_changes_it(library):
    alice, bob = "visitor:" + "a" * 32, "key:" + "b" * 32
    lexicon.put(alice, Entry("cat", phonemes=DOG))
    lexicon.put(alice, Entry("Nguyen", respelling="win"))
    lexicon.put(alice, Entry("CAT", phonemes="kˈæt"))  # the same word in any case: replaced
    assert lexicon.load(alice) == (Entry("Nguyen", respelling="win"), Entry("CAT", phonemes="kˈæt"))
    assert lexicon.load(bob) == () and lexicon.owner_mapping(bob, lexicon.PHONEMES) == {}
    with pytest.raises(InputError, match="no entry"):
        lexicon.remove(bob, "cat")  # bob cannot delete alice's entry
    assert len(lexicon.load(alice)) == 2
    for nobody in (None, "", voice_library.OPERATOR):
        assert lexicon.load(nobody) == ()
        with pytest.raises(InputError, match="needs an owner"):
            lexicon.put(nobody, Entry("cat", phonemes=DOG))
    files = sorted(p.name for p in (library / lexicon.FOLDER).iterdir())
    assert files == [f"{voice_library.owner_folder(alice)}.json"]  # no character of the owner id on disk
    assert lexicon.remove(alice, "nguyen") == (Entry("CAT", phonemes="kˈæt"),)


def test_a_damaged_lexicon_file_reads_as_empty(library):
    owner = "visitor:" + "c" * 32
    lexicon.put(owner, Entry("cat", phonemes=DOG))
    path = lexicon.lexicon_path(owner)
    path.write_text("{not json", encoding="utf-8")
    assert lexicon.load(owner) == ()


def test_the_shared_library_keeps_one_lexicon(library, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_SHARED", "1")
    lexicon.put(None, Entry("cat", phonemes=DOG))
    assert lexicon.load("anyone") == lexicon.load(None) == (Entry("cat", phonemes=DOG),)


# ----- the page: the visitor's own ---------------------------------------------------------------
@pytest.fixture()
def visitors(library, monkeypatch):
    from ui import owner as owners

    monkeypatch.setenv("OWNER_TOKEN_SECRET", "a test secret for signing owner tokens")
    return owners.new_token(), owners.new_token()


def page(session: str):
    return SimpleNamespace(session_hash=session)  # what the panel reads of gr.Request (no sign-in here)


def test_a_page_visitor_edits_their_lexicon_and_a_second_visitor_cannot_read_or_change_it(visitors):
    from ui import lexicon_panel as panel

    alice, bob = visitors
    table = panel.save_entry("cat", DOG, "", alice, page("s-alice"))
    assert table == [["cat", DOG, ""]]
    assert panel.remember(bob, page("s-bob")) == [["", "", ""]]  # bob sees none of it
    with pytest.raises(Exception, match="no entry for 'cat'"):
        panel.delete_entry("cat", bob, page("s-bob"))
    with pytest.raises(Exception, match="cannot say"):
        panel.save_entry("dog", "d@g", "", alice, page("s-alice"))
    with pytest.raises(Exception, match="needs an owner"):
        panel.save_entry("dog", DOG, "", "forged-token", page("s-eve"))
    assert panel.remember(alice, page("s-alice")) == [["cat", DOG, ""]]
    assert panel.delete_entry("cat", alice, page("s-alice")) == [["", "", ""]]


def test_a_row_clicked_in_the_table_fills_the_boxes():
    import pandas as pd

    from ui.lexicon_panel import HEADERS, pick

    rows = [["cat", DOG, ""], ["Nguyen", "", "win"]]
    assert pick(pd.DataFrame(rows, columns=HEADERS), SimpleNamespace(index=[1, 0])) == ("Nguyen", "", "win")
    assert pick(rows, SimpleNamespace(index=[0, 2])) == ("cat", DOG, "")


def test_a_page_run_speaks_with_its_visitors_lexicon_only(visitors):
    from ui import lexicon_panel as panel

    alice, bob = visitors
    panel.save_entry("cat", DOG, "kat", alice, page("s-alice"))
    panel.remember(alice, page("s-alice"))  # the page learnt who this session is (on load)
    panel.remember(bob, page("s-bob"))
    plain = SynthesisRequest(text="A cat.", voice="jm_kumo")
    outside = panel.with_visitor_lexicon("kokoro", plain)
    assert dict(outside.lexicon) == {}  # not a page event: nobody's lexicon
    for session, engine, expected in (
        ("s-alice", "kokoro", {"cat": DOG}),
        ("s-alice", "qwen-custom", {"cat": "kat"}),
        ("s-bob", "kokoro", {}),
        ("s-unknown", "kokoro", {}),
    ):
        token = LocalContext.request.set(page(session))
        try:
            assert dict(panel.with_visitor_lexicon(engine, plain).lexicon) == expected, session
        finally:
            LocalContext.request.reset(token)


def test_compare_and_batch_slots_speak_with_their_owners_lexicon(library):
    from engines.runtime import registry
    from evaluation.compare import parse_slot

    owner = "visitor:" + "d" * 32
    lexicon.put(owner, Entry("cat", DOG, "kat"))
    assert dict(parse_slot("kokoro:jm_kumo", owner).request("A cat.").lexicon) == {"cat": DOG}
    assert dict(parse_slot("qwen-custom:Ryan", owner).request("A cat.").lexicon) == {"cat": "kat"}
    assert dict(parse_slot("kokoro:jm_kumo", "visitor:" + "e" * 32).request("A cat.").lexicon) == {}
    assert registry.capabilities("kokoro").lexicon  # the column comes from the engine's capabilities


# ----- /v1 ---------------------------------------------------------------------------------------
ALICE, BOB = "alice-key-lexicon-0123", "bob-key-lexicon-0123"


@pytest.fixture()
def v1(library, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import router

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("API_KEYS", f"{ALICE},{BOB}")
    app = FastAPI()
    app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_reads_and_replaces_its_own_lexicon_and_no_other_key_sees_it(v1):
    body = {"entries": [{"word": "cat", "phonemes": DOG}, {"word": "Nguyen", "respelling": "win"}]}
    put = v1.put("/v1/audio/lexicon", json=body, headers=auth(ALICE))
    assert put.status_code == 200, put.text
    assert put.json()["object"] == "lexicon" and [e["word"] for e in put.json()["entries"]] == ["cat", "Nguyen"]
    assert v1.get("/v1/audio/lexicon", headers=auth(ALICE)).json()["entries"][0] == {
        "word": "cat", "phonemes": DOG, "respelling": ""
    }  # fmt: skip
    assert v1.get("/v1/audio/lexicon", headers=auth(BOB)).json()["entries"] == []
    assert v1.put("/v1/audio/lexicon", json={"entries": []}, headers=auth(BOB)).status_code == 200
    assert len(v1.get("/v1/audio/lexicon", headers=auth(ALICE)).json()["entries"]) == 2  # bob changed only his


def test_the_speech_endpoint_speaks_with_the_calling_keys_lexicon(v1):
    from api.auth import owner_of_key
    from api.speech_request import SpeechBody, prepare

    v1.put("/v1/audio/lexicon", json={"entries": [{"word": "cat", "phonemes": DOG}]}, headers=auth(ALICE))
    body = SpeechBody(model="kokoro", input="A cat.", voice="jm_kumo")
    assert dict(prepare(body, owner_of_key(ALICE)).request.lexicon) == {"cat": DOG}
    assert dict(prepare(body, owner_of_key(BOB)).request.lexicon) == {}
    assert dict(prepare(body, None).request.lexicon) == {}


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [
        ({}, {"entries": []}, 401, "API key"),
        (auth(ALICE), {"entries": [{"word": "cat", "phonemes": "k@t"}]}, 400, "cannot say"),
        (auth(ALICE), {"words": {}}, 400, "is a JSON object"),
        (auth(ALICE), "not an object", 400, "is a JSON object"),
    ],
)
def test_bad_lexicon_requests_get_one_sentence(v1, headers, body, status, says):
    answer = v1.put("/v1/audio/lexicon", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]["message"]
    assert says in message
    one_sentence(message)


def test_without_api_keys_v1_keeps_no_lexicon(v1, monkeypatch):
    monkeypatch.delenv("API_KEYS")
    answer = v1.get("/v1/audio/lexicon")
    assert answer.status_code == 403 and "API_KEYS" in answer.json()["error"]["message"]


# ----- real Kokoro -------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_entry_changes_the_phonemes_kokoro_renders_and_the_length_of_the_clip(packaged_kokoro):
    def render(words: dict) -> tuple[str, float]:
        request = SynthesisRequest(text="I saw a cat today.", voice="jm_kumo", lexicon=words)
        chunks = list(packaged_kokoro.stream(request))
        return "".join(c.phonemes for c in chunks), sum(c.duration_s for c in chunks)

    plain, plain_s = render({})
    short, _ = render({"cat": DOG})
    long, long_s = render({"Cat": LONG})
    assert "kˈæt" in plain and short == plain.replace("kˈæt", DOG) and long == plain.replace("kˈæt", LONG)
    assert long_s > plain_s + 0.3  # 20 more phonemes are heard
    with pytest.raises(InputError, match="cannot say"):
        list(packaged_kokoro.stream(SynthesisRequest(text="A cat.", voice="jm_kumo", lexicon={"cat": "k@t"})))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("KOKORO_MODEL", None)
    return subprocess.run(
        [sys.executable, "-m", "engines", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_cli_speaks_with_a_lexicon_file_and_refuses_a_bad_one_in_one_line(tmp_path, packaged_kokoro):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"entries": [{"word": "cat", "phonemes": LONG}]}), encoding="utf-8")
    bad.write_text(json.dumps({"entries": [{"word": "cat", "phonemes": "k@t"}]}), encoding="utf-8")
    text = "I saw a cat today."
    refused = run_cli("synth", "--engine", "kokoro", "--voice", "jm_kumo", "--text", text,
                      "--out", str(tmp_path / "x.wav"), "--lexicon", str(bad))  # fmt: skip
    assert refused.returncode == 2 and "cannot say" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and str(tmp_path) not in refused.stderr
    out = tmp_path / "cat.wav"
    spoken = run_cli("synth", "--engine", "kokoro", "--voice", "jm_kumo", "--text", text,
                     "--out", str(out), "--lexicon", str(good))  # fmt: skip
    assert spoken.returncode == 0, spoken.stderr
    cli_s = sf.info(str(out)).duration

    def seconds(words: dict) -> float:
        request = SynthesisRequest(text=text, voice="jm_kumo", lexicon=words)
        return sum(c.duration_s for c in packaged_kokoro.stream(request))

    assert abs(cli_s - seconds({"cat": LONG})) < abs(cli_s - seconds({}))


@pytest.mark.slow
def test_with_the_entry_the_recogniser_hears_the_other_word(packaged_kokoro):
    """Heard as written, by the real ASR: `house` given the phonemes of `train` is heard as `train`."""
    from evaluation.lexicon_check import carrier, heard_as

    def clip(words: dict) -> np.ndarray:
        request = SynthesisRequest(text=carrier("house"), voice="jm_kumo", lexicon=words)
        return np.concatenate([c.audio for c in packaged_kokoro.stream(request)])

    without = heard_as(clip({}), 24_000, "house", ["house"])
    assert without.as_written and without.heard.lower() == "house", without
    changed = clip({"house": TRAIN})
    with_entry = heard_as(changed, 24_000, "house", ["house"])
    assert not with_entry.as_written and with_entry.heard.lower() == "train", with_entry
    assert heard_as(changed, 24_000, "house", ["train"]).as_written  # the intended word: heard


@pytest.mark.slow
def test_try_it_speaks_the_word_without_and_with_the_entry_and_says_what_was_heard(visitors, monkeypatch):
    from engines.runtime import registry
    from ui import lexicon_panel as panel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("KOKORO_MODEL", raising=False)
    monkeypatch.delenv("KOKORO_BACKEND", raising=False)
    alice, _ = visitors
    try:
        without, with_it, verdict = panel.try_entry("kokoro", "house", TRAIN, "", alice, page("s-alice"))
    finally:
        registry.unload("kokoro")
    assert without[0] == with_it[0] == 24_000 and without[1].size and with_it[1].size
    first, second = verdict.split("\n\n")
    assert first.startswith("**Without the entry:**") and "as written ✓" in first
    assert second.startswith("**With the entry:**") and "heard “train" in second.lower() and "not as written" in second
