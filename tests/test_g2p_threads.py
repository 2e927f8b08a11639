"""G2P is thread-safe: `/kokoro/plan` (Starlette's thread pool) and the engine's own G2P, called from
8 threads at once, give every phoneme string its serial result, in English (spaCy and espeak-ng for
unknown words) and in Spanish (espeak-ng)."""

from __future__ import annotations

import random
import threading

import pytest

from api import kokoro_in_browser
from engines.runtime import registry

THREADS = 8
NOUNS = ["perro", "gato", "casa", "árbol", "libro", "ciudad", "montaña", "río", "ventana", "camino"]


def english(i: int) -> str:  # made-up words go to espeak-ng (misaki's fallback)
    return f"Zorblax number {i} quibbled with flumpatrix {i * 7} near the glimmerqueen's vestibule."


def spanish(i: int) -> str:
    return f"El {NOUNS[i % 10]} número {i} mira la {NOUNS[(i * 3) % 10]} desde el {NOUNS[(i * 7) % 10]}."


@pytest.fixture(scope="module")
def kokoro(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VOICE_LIBRARY_DIR", str(tmp_path_factory.mktemp("g2p-library")))
        for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
            mp.delenv(name, raising=False)
        yield registry.get("kokoro")
        registry.unload("kokoro")


def planned(text: str, voice: str, language: str) -> str:
    plan = kokoro_in_browser.plan({"text": text, "voice": voice, "language": language})
    return " | ".join(chunk["phonemes"] for chunk in plan["chunks"])


@pytest.mark.slow
def test_eight_threads_through_the_plan_and_the_engine_get_their_serial_phonemes(kokoro):
    jobs = []  # (kind, language, text)
    for i in range(50):
        jobs += [
            ("plan", "a", english(i)),
            ("g2p", "a", english(i)),
            ("plan", "e", spanish(i)),
            ("g2p", "e", spanish(i)),
        ]

    def run(kind: str, lang: str, text: str) -> str:
        if kind == "plan":
            return planned(text, "jm_kumo", "American English" if lang == "a" else "Spanish")
        return kokoro._g2p_for(lang)(text)[0]

    serial = {job: run(*job) for job in jobs}
    assert len(set(serial.values())) >= 100  # 50 different texts per language: different phonemes
    got: dict[tuple, list[str]] = {job: [] for job in jobs}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        order = jobs[:]
        random.Random(seed).shuffle(order)
        start.wait()
        for job in order:
            try:
                got[job].append(run(*job))
            except BaseException as exc:  # noqa: BLE001  (a UnicodeDecodeError from espeak is a failure here)
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    wrong = [(job, answer) for job, answers in got.items() for answer in answers if answer != serial[job]]
    assert not wrong, (
        f"{len(wrong)} of {THREADS * len(jobs)} phoneme strings differ from their serial result: {wrong[:2]}"
    )
