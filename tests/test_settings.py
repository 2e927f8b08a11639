"""Every environment variable is declared once (`engines.settings.Settings`) and read one way: unset or
blank is its default, a bad value is one sentence naming the variable (`SettingsError`, a secret's value
never shown), and the app, the engine tier and the command line stop on it at start with exit status 2.
The table in docs/configuration.md is generated from the declarations."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from engines import settings as config
from engines.settings import NAMES, Settings, SettingsError, accepts, settings

NUMBERS = {name.upper(): field for name, field in Settings.model_fields.items() if field.annotation in (int, float)}
NUMBERS |= {"MAX_WAITING": Settings.model_fields["max_waiting"]}  # optional: a number when set
BAD = {"MAX_WAITING": "x", "BATCH_WAIT_MS": "1e9", "KOKORO_STREAM": "sideways", "VOICE_LIBRARY_SHARED": "maybe"}
# What the app may still do with os.environ outside engines/settings.py: writes that configure a third party
# (or, in a replica, our own settings), and a subprocess's environment; each line says why where it is.
ENVIRON_USES = {
    ("app.py", 'os.environ.setdefault("FORWARDED_ALLOW_IPS"'),  # uvicorn's
    ("cli/commands.py", 'os.environ.setdefault("TRANSFORMERS_VERBOSITY"'),  # transformers'
    ("service/janitor.py", 'os.environ.setdefault("GRADIO_TEMP_DIR"'),  # Gradio's, before it is imported
    ("serve/app.py", 'os.environ.pop("ENGINE_SERVER"'),  # a replica runs its engine itself
    ("serve/cli.py", 'os.environ.get("PYTHONPATH"'),  # the Ray workers' environment
}
ENVIRON = re.compile(r'os\.environ(?:\.\w+\("\w+")?|getenv\(')


def one_sentence_naming(message: str, name: str) -> bool:
    said = message.split(" (it is ")[0]  # the value shown may hold anything
    return said.startswith(f"{name} must be ") and ". " not in said and message.endswith(".") and "\n" not in message


def bounds(name: str) -> tuple[float | None, float | None, float]:
    """(at least, more than, at most) of a numeric variable."""
    field = NUMBERS[name]
    get = lambda kind: next((getattr(m, kind) for m in field.metadata if getattr(m, kind, None) is not None), None)  # noqa: E731
    return get("ge"), get("gt"), get("le")


def test_the_docs_table_is_the_one_generated_from_the_declarations():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert config.BEGIN in text and config.END in text
    assert text == config.documented(text), "run: python -m engines.settings --write-docs"
    assert all(f"| `{name}` |" in text for name in NAMES)


def test_every_variable_has_a_meaning_and_every_number_both_bounds():
    assert len(NAMES) == len(set(NAMES)) >= 65
    assert [n for n, f in Settings.model_fields.items() if not (f.description or "").strip()] == []
    unbounded = [name for name in NUMBERS if bounds(name)[2] is None or bounds(name)[:2] == (None, None)]
    assert unbounded == []


def test_unset_or_blank_is_the_default(monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    unset = settings()
    for name, field in Settings.model_fields.items():
        assert getattr(unset, name) == field.default, name
    for name in NAMES:
        monkeypatch.setenv(name, "  ")
    assert settings().model_dump() == unset.model_dump()


def test_values_are_read_stripped_and_choices_in_any_case(monkeypatch):
    for name, raw in (
        ("MAX_WAITING", " 7 "), ("KOKORO_STREAM", "Windows"), ("TTS_DEVICE", " CUDA:1 "), ("COMPARE_PARALLEL", "on"),
        ("VOICE_LIBRARY_SHARED", "Yes"), ("HF_HUB_OFFLINE", "TRUE"),
    ):  # fmt: skip
        monkeypatch.setenv(name, raw)
    s = settings()
    assert (s.max_waiting, s.kokoro_stream, s.tts_device, s.compare_parallel) == (7, "windows", "cuda:1", "1")
    assert s.voice_library_shared and s.hf_hub_offline


def test_third_party_flags_are_read_as_the_third_party_reads_them(monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "yes")  # `spaces` takes only 1, t, true
    monkeypatch.setenv("HF_HUB_OFFLINE", "t")  # huggingface_hub takes only 1, on, yes, true
    assert not settings().spaces_zero_gpu and not settings().hf_hub_offline
    monkeypatch.setenv("SPACES_ZERO_GPU", "T")
    assert settings().spaces_zero_gpu


def test_settings_are_built_once_and_again_when_a_variable_changes(monkeypatch):
    monkeypatch.setenv("MAX_WAITING", "3")
    first = settings()
    assert settings() is first  # the environment is read once while nothing changes
    monkeypatch.setenv("MAX_WAITING", "4")
    assert settings().max_waiting == 4
    monkeypatch.delenv("MAX_WAITING")
    assert settings().max_waiting is None


@pytest.mark.parametrize(("name", "raw"), sorted(BAD.items()))
def test_a_bad_value_is_one_sentence_naming_the_variable_and_what_it_accepts(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingsError) as caught:
        settings()
    message = str(caught.value)
    assert one_sentence_naming(message, name), message
    assert accepts(Settings.model_fields[name.lower()]) in message and repr(raw) in message


def test_a_secret_is_never_shown(monkeypatch):
    monkeypatch.setenv("API_KEYS", "k-very-secret")
    monkeypatch.setenv("ARENA_SECRET", "arena-very-secret")
    assert settings().api_keys.get_secret_value() == "k-very-secret"
    shown = repr(settings()) + str(settings()) + config.table()
    assert "very-secret" not in shown


@examples(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(NUMBERS)),
    raw=st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
        st.floats().map(str), st.integers(-(10**12), 10**12).map(str), st.decimals().map(str),
    ),
)  # fmt: skip
def test_any_string_is_a_value_within_bounds_or_one_sentence_naming_the_variable(name, raw):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(name, raw)
        try:
            value = getattr(settings(), name.lower())
        except SettingsError as exc:
            assert one_sentence_naming(str(exc), name), str(exc)
            return
    at_least, more_than, at_most = bounds(name)
    if value is None:  # blank: MAX_WAITING's default
        assert not raw.strip()
        return
    assert value <= at_most and (at_least is None or value >= at_least) and (more_than is None or value > more_than)


def test_the_code_reads_the_environment_only_through_the_settings():
    found = set()
    for package in ("app.py", "api", "cli", "engines", "evaluation", "serve", "service", "ui"):
        paths = [ROOT / package] if package.endswith(".py") else sorted((ROOT / package).rglob("*.py"))
        for path in paths:
            where = path.relative_to(ROOT).as_posix()
            if where == "engines/settings.py":
                continue
            found |= {(where, use) for use in ENVIRON.findall(path.read_text(encoding="utf-8"))}
    assert found == ENVIRON_USES


def test_the_app_reads_its_settings_at_use_time(monkeypatch):
    from engines.qwen.batcher import batch_wait_s
    from engines.reference import upload_limit_bytes
    from engines.runtime.work_queue import max_waiting_per_caller
    from service.limits import rate_from_env

    for name, value in (("API_RATE_PER_MIN", "4"), ("BATCH_WAIT_MS", "250"), ("MAX_UPLOAD_MB", "2"),
                        ("MAX_WAITING_PER_CALLER", "5")):  # fmt: skip
        monkeypatch.setenv(name, value)
    assert (rate_from_env(), batch_wait_s(), upload_limit_bytes(), max_waiting_per_caller()) == (4, 0.25, 2 * 2**20, 5)
    monkeypatch.setenv("API_RATE_PER_MIN", "-4")  # once clamped to 0 (no limit): now refused
    with pytest.raises(SettingsError, match="API_RATE_PER_MIN must be a whole number from 0"):
        rate_from_env()


@pytest.mark.parametrize(
    "command",
    [["app.py"], ["-m", "engines", "serve"], ["-m", "engines", "list"], ["-m", "cli", "synth", "Hello."]],
    ids=["app", "engine tier", "cli", "python -m cli"],
)
@pytest.mark.parametrize(("name", "raw"), [("MAX_WAITING", "x"), ("KOKORO_STREAM", "sideways")])
def test_a_bad_value_stops_the_start_with_one_sentence_and_status_2(command, name, raw):
    result = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, name: raw},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.count("\n") == 1 and one_sentence_naming(result.stderr.strip().removeprefix("error: "), name)
