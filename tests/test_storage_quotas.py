"""Storage per owner is bounded: `VOICES_PER_OWNER`, `OWNER_STORAGE_MB` and `VOICE_LIBRARY_MAX_MB`
refuse in one sentence; owners idle for `OWNER_IDLE_DAYS` are swept (voices and lexicon together), the
shared library and the CLI's operator voices never; the app's janitor runs that sweep."""

from __future__ import annotations

import os
import time

import pytest
from test_voice_library import ALICE, BOB, prompt

from engines import lexicon
from engines import voice_library as lib
from engines.base import InputError

DAY = 86_400.0


@pytest.fixture()
def library(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path))
    names = "VOICE_LIBRARY_SHARED", "VOICES_PER_OWNER", "OWNER_STORAGE_MB", "VOICE_LIBRARY_MAX_MB", "OWNER_IDLE_DAYS"
    for name in names:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def one_sentence(message: str) -> bool:
    return message.count(". ") == 0 and "VOICE" not in message and "OWNER" not in message and "/" not in message


def age(path, days: float) -> None:
    """Make a folder (and what is in it) or a file look untouched for `days`."""
    when = time.time() - days * DAY
    for inner in [*path.rglob("*"), path] if path.is_dir() else [path]:
        os.utime(inner, (when, when))


def test_the_21st_voice_is_refused_and_overwriting_one_still_works(library):
    for number in range(20):
        lib.save_voice(f"voice {number}", prompt(), owner=ALICE)
    with pytest.raises(InputError) as refused:
        lib.save_voice("voice 20", prompt(), owner=ALICE)
    assert "20 saved voices" in str(refused.value) and one_sentence(str(refused.value))
    assert len(lib.list_voices(ALICE)) == 20
    lib.save_voice("voice 3", prompt(2.0), owner=ALICE, overwrite=True)  # a replacement is not one more
    lib.save_voice("voice 20", prompt(), owner=BOB)  # the count is per owner
    lib.delete_voice("voice 0", ALICE)
    lib.save_voice("voice 20", prompt(), owner=ALICE)


def test_the_count_follows_its_variable(library, monkeypatch):
    monkeypatch.setenv("VOICES_PER_OWNER", "2")
    lib.save_voice("one", prompt(), owner=ALICE)
    lib.save_voice("two", prompt(), owner=ALICE)
    with pytest.raises(InputError, match="2 saved voices"):
        lib.save_voice("three", prompt(), owner=ALICE)


def test_the_byte_over_an_owners_storage_is_refused(library, monkeypatch):
    lib.save_voice("first", prompt(), owner=ALICE)
    used = sum(p.stat().st_size for p in library.rglob("*") if p.is_file())
    monkeypatch.setenv("OWNER_STORAGE_MB", repr((used + 1000) / lib.MB))
    lib.check_room(ALICE, 1000)  # exactly at the quota: room
    with pytest.raises(InputError) as refused:
        lib.check_room(ALICE, 1001)  # one byte over
    assert "over" in str(refused.value) and one_sentence(str(refused.value))
    lib.check_room(BOB, 1001)  # another owner's room is their own
    monkeypatch.setenv("OWNER_STORAGE_MB", repr((used + 10) / lib.MB))
    with pytest.raises(InputError, match="saved voices and lexicon over"):
        lib.save_voice("second", prompt(), owner=ALICE)  # a voice is more than 10 bytes
    assert lib.list_voices(ALICE) == ["first"]


def test_the_lexicon_counts_in_the_owners_storage(library, monkeypatch):
    lib.save_voice("first", prompt(), owner=ALICE)
    used = sum(p.stat().st_size for p in library.rglob("*") if p.is_file())
    monkeypatch.setenv("OWNER_STORAGE_MB", repr((used + 100) / lib.MB))
    with pytest.raises(InputError, match="over"):
        lexicon.put(ALICE, lexicon.Entry("tomato", respelling="tomahto " * 9))
    assert lexicon.load(ALICE) == ()
    lexicon.put(BOB, lexicon.Entry("tomato", respelling="tomahto " * 9))


def test_a_full_library_refuses_everyone_without_naming_the_variable(library, monkeypatch):
    lib.save_voice("first", prompt(), owner=ALICE)
    used = sum(p.stat().st_size for p in library.rglob("*") if p.is_file())
    monkeypatch.setenv("VOICE_LIBRARY_MAX_MB", repr((used + 10) / lib.MB))
    with pytest.raises(InputError) as refused:
        lib.save_voice("mine", prompt(), owner=BOB)
    assert "full" in str(refused.value) and one_sentence(str(refused.value))
    with pytest.raises(InputError, match="full"):
        lexicon.put(BOB, lexicon.Entry("tomato", respelling="tomahto"))


def test_an_idle_owner_is_swept_with_their_lexicon_and_the_others_stay(library):
    lib.save_voice("old", prompt(), owner=ALICE)
    lexicon.put(ALICE, lexicon.Entry("tomato", respelling="tomahto"))
    lib.save_voice("fresh", prompt(), owner=BOB)
    lexicon.put("visitor:" + "c" * 32, lexicon.Entry("tomato", respelling="tomahto"))  # a lexicon alone, in use
    alice_folder = library / lib.OWNERS_FOLDER / lib.owner_folder(ALICE)
    age(alice_folder, 91)
    age(lexicon.lexicon_path(ALICE), 91)
    swept = lib.sweep_idle_owners()
    assert swept["owners"] == 1 and swept["freed_bytes"] > 0
    assert lib.list_voices(ALICE) == [] and lexicon.load(ALICE) == () and not alice_folder.exists()
    assert lib.list_voices(BOB) == ["fresh"] and len(lexicon.load("visitor:" + "c" * 32)) == 1


def test_use_keeps_an_owner_and_either_part_in_use_keeps_both(library):
    lib.save_voice("kept", prompt(), owner=ALICE)
    lexicon.put(ALICE, lexicon.Entry("tomato", respelling="tomahto"))
    folder = library / lib.OWNERS_FOLDER / lib.owner_folder(ALICE)
    age(folder, 91)
    age(lexicon.lexicon_path(ALICE), 91)
    lib.stored_voice("kept", ALICE)  # spoken today
    assert lib.sweep_idle_owners()["owners"] == 0
    assert lib.list_voices(ALICE) == ["kept"] and len(lexicon.load(ALICE)) == 1
    age(folder, 91)
    age(lexicon.lexicon_path(ALICE), 91)
    lexicon.owner_mapping(ALICE, lexicon.RESPELLING)  # the lexicon was used by a request
    assert lib.sweep_idle_owners()["owners"] == 0 and lib.list_voices(ALICE) == ["kept"]


def test_the_idle_bound_follows_its_variable(library, monkeypatch):
    lib.save_voice("week old", prompt(), owner=ALICE)
    age(library / lib.OWNERS_FOLDER / lib.owner_folder(ALICE), 8)
    assert lib.sweep_idle_owners()["owners"] == 0
    monkeypatch.setenv("OWNER_IDLE_DAYS", "7")
    assert lib.sweep_idle_owners()["owners"] == 1


def test_the_operators_and_the_shared_library_are_never_swept(library, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_SHARED", "1")
    lib.save_voice("house voice", prompt(), owner=None)  # the shared library: the CLI's operator sees it
    lexicon.put(None, lexicon.Entry("tomato", respelling="tomahto"))
    monkeypatch.delenv("VOICE_LIBRARY_SHARED")
    for path in library.rglob("*"):
        age(path, 1000)
    assert lib.sweep_idle_owners()["owners"] == 0
    assert lib.list_voices(lib.OPERATOR) == ["house-voice"]
    assert (library / lib.LEXICONS_FOLDER / "shared.json").is_file()


def test_the_apps_janitor_sweeps_idle_owners(library, tmp_path_factory):
    from service.janitor import Janitor

    lib.save_voice("old", prompt(), owner=ALICE)
    age(library / lib.OWNERS_FOLDER / lib.owner_folder(ALICE), 91)
    janitor = Janitor([tmp_path_factory.mktemp("out")], ttl_s=3600, max_bytes=2**30, chores=[lib.sweep_idle_owners])
    janitor.sweep()
    assert lib.list_voices(ALICE) == []
