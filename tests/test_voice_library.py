"""The saved-voice library: owners, case-insensitive names, the overwrite rule, atomic writes, the
shared mode, the operator (CLI) and arena sharing; prompts are stand-ins (no model needed)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engines import voice_library as lib
from engines.base import InputError

ALICE, BOB = "visitor:" + "a" * 32, "visitor:" + "b" * 32


def prompt(seed: float = 1.0) -> list:
    """A one-item clone prompt as `create_voice_clone_prompt` returns it (x-vector only)."""
    item = SimpleNamespace(
        ref_spk_embedding=torch.full((4,), seed), ref_code=None, x_vector_only_mode=True, icl_mode=False, ref_text=None
    )
    return [item]


@pytest.fixture()
def library(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path))
    monkeypatch.delenv("VOICE_LIBRARY_SHARED", raising=False)
    return tmp_path


def embedding(name: str, owner: str | None) -> float:
    """The stored speaker embedding's first value (which save a voice came from)."""
    from safetensors.torch import load_file

    folder, _, record = lib._locate(name, owner)
    return float(load_file(str(folder / record["tensors"]))["ref_spk_embedding"][0])


def test_an_owners_voices_are_invisible_to_everyone_else(library):
    lib.save_voice("Narrator", prompt(), reference_audio=np.ones(24_000, np.float32), owner=ALICE)
    assert lib.list_voices(ALICE) == ["narrator"]
    assert lib.list_voices(BOB) == [] and lib.list_voices(None) == []
    assert lib.reference_audio("narrator", BOB) is None and lib.reference_audio("narrator", None) is None
    assert lib.reference_audio("narrator", ALICE).shape == (24_000,)
    for other in (BOB, None):
        with pytest.raises(InputError, match="no saved voice called 'narrator' that you can use"):
            lib.delete_voice("narrator", other)
    # Bob may use the same name: his own voice, beside Alice's
    lib.save_voice("narrator", prompt(2.0), owner=BOB)
    assert embedding("narrator", ALICE) == 1.0 and embedding("narrator", BOB) == 2.0
    lib.delete_voice("Narrator", BOB)
    assert lib.list_voices(ALICE) == ["narrator"] and lib.list_voices(BOB) == []


def test_someone_elses_name_and_a_free_name_get_the_same_sentence(library):
    lib.save_voice("secret", prompt(), owner=ALICE)
    with pytest.raises(InputError) as taken:
        lib.delete_voice("secret", BOB)
    with pytest.raises(InputError) as free:
        lib.delete_voice("nothing", BOB)
    assert str(taken.value).replace("secret", "X") == str(free.value).replace("nothing", "X")


def test_no_owner_can_save_nothing(library):
    with pytest.raises(InputError, match="needs an owner"):
        lib.save_voice("mine", prompt(), owner=None)
    assert not list(library.rglob("*.json"))


def test_names_are_case_insensitive_and_overwriting_needs_consent(library):
    lib.save_voice("Bob", prompt(1.0), owner=ALICE)
    assert lib.voice_exists("bob", ALICE) and lib.voice_exists("BOB", ALICE) and not lib.voice_exists("bob", BOB)
    with pytest.raises(InputError, match="already have a voice called 'bob'"):
        lib.save_voice("bob", prompt(2.0), owner=ALICE)
    assert embedding("Bob", ALICE) == 1.0  # untouched
    lib.save_voice("bob", prompt(2.0), owner=ALICE, overwrite=True)
    assert embedding("BOB", ALICE) == 2.0 and lib.list_voices(ALICE) == ["bob"]
    folder = lib._locate("bob", ALICE)[0]
    assert len(list(folder.glob("*.safetensors"))) == 1  # the replaced tensors are gone


def test_a_failed_write_leaves_the_old_voice_whole(library, monkeypatch):
    lib.save_voice("steady", prompt(1.0), owner=ALICE)
    real_replace = os.replace

    def crash_on_record(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(lib.os, "replace", crash_on_record)
    with pytest.raises(OSError):
        lib.save_voice("steady", prompt(2.0), owner=ALICE, overwrite=True)
    monkeypatch.setattr(lib.os, "replace", real_replace)
    assert embedding("steady", ALICE) == 1.0  # the record still names the old tensors
    assert not list(library.rglob("*.part"))  # no temporary file left behind


def test_writes_go_through_a_temporary_file_and_os_replace(library, monkeypatch):
    moves = []
    real_replace = os.replace
    monkeypatch.setattr(lib.os, "replace", lambda src, dst: (moves.append((src, dst)), real_replace(src, dst)))
    lib.save_voice("atomic", prompt(), owner=ALICE)
    assert [os.path.basename(dst).rsplit(".", 1)[1] for _, dst in moves] == ["safetensors", "json"]  # tensors first
    assert all(os.path.dirname(src) == os.path.dirname(dst) and src.endswith(".part") for src, dst in moves)


def test_the_shared_mode_is_one_library_without_owners(library, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_SHARED", "1")
    lib.save_voice("Family", prompt(), owner=ALICE)
    assert lib.list_voices(BOB) == lib.list_voices(None) == ["family"]
    assert (library / "family.json").is_file()  # in the library folder itself
    assert json.loads((library / "family.json").read_text())["owner"] is None
    lib.delete_voice("family", None)
    assert lib.list_voices(ALICE) == []


def test_voices_of_the_older_layout_stay_private_until_shared_mode(library, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_SHARED", "1")
    lib.save_voice("old", prompt())
    (library / "old.json").write_text(json.dumps({"name": "old", "x_vector_only_mode": True, "icl_mode": False}))
    (library / next(library.glob("old-*.safetensors")).name).rename(library / "old.safetensors")  # the old names
    assert lib.list_voices(None) == ["old"]
    monkeypatch.delenv("VOICE_LIBRARY_SHARED")
    assert lib.list_voices(None) == lib.list_voices(ALICE) == []
    assert lib.list_voices(lib.OPERATOR) == ["old"]
    assert lib.arena_voices() == []


def test_the_operator_sees_and_uses_every_voice(library):
    lib.save_voice("alpha", prompt(1.0), owner=ALICE)
    lib.save_voice("alpha", prompt(2.0), owner=BOB)
    lib.save_voice("solo", prompt(3.0), owner=BOB)
    seen = lib.list_voices(lib.OPERATOR)
    assert sorted(v.split("/")[1] for v in seen) == ["alpha", "alpha", "solo"]
    assert embedding("solo", lib.OPERATOR) == 3.0  # one owner has it: found by its name
    with pytest.raises(InputError, match="Several owners have a voice called 'alpha'"):
        lib.voice_exists("alpha", lib.OPERATOR)
    alice_alpha = f"{lib.owner_folder(ALICE)}/alpha"
    assert alice_alpha in seen and embedding(alice_alpha, lib.OPERATOR) == 1.0
    with pytest.raises(InputError, match="needs an owner"):
        lib.save_voice("mine", prompt(), owner=lib.OPERATOR)


def test_only_voices_their_owner_shares_join_the_arena(library, monkeypatch):
    lib.save_voice("private", prompt(), owner=ALICE)
    lib.save_voice("Public", prompt(), owner=ALICE, share_in_arena=True)
    lib.save_voice("bobs", prompt(), owner=BOB, share_in_arena=True)
    assert sorted(lib.arena_voices()) == sorted([(ALICE, "public"), (BOB, "bobs")])
    lib.save_voice("public", prompt(), owner=ALICE, overwrite=True)  # saved again, not shared
    assert lib.arena_voices() == [(BOB, "bobs")]
    monkeypatch.setenv("VOICE_LIBRARY_SHARED", "1")
    lib.save_voice("home", prompt(), share_in_arena=True)
    lib.save_voice("quiet", prompt())
    assert lib.arena_voices() == [(None, "home")]


def test_a_record_cannot_point_outside_its_folder(library):
    lib.save_voice("target", prompt(), owner=ALICE)
    folder, _, record = lib._locate("target", ALICE)
    for bad in ("../../x.safetensors", "/etc/passwd", "a/b.safetensors"):
        (folder / "target.json").write_text(json.dumps({**record, "tensors": bad}))
        assert lib.list_voices(ALICE) == []
