"""Shared fixtures: a tiny random Kokoro checkpoint, the running app, offline environment."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

# Two test workers share two cores, each with its model and its subprocesses (apps, Ray replicas, the CLI):
# one compute thread each, and OpenMP threads that sleep rather than spin while they wait. With a pool of two
# threads per library per process, the same tests took 22% more CPU (`ORT_THREADS` unset against these, on
# test_compare, test_kokoro_offline, test_asr_languages and test_alignment: user time 418 s against 326 s).
# Set before any library starts its pools (OpenMP reads its variables once); a test that wants more sets its own.
ONE_THREAD_EACH = {
    "ORT_THREADS": "1", "TORCH_THREADS": "1", "ASR_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
}  # fmt: skip
for _name, _value in ONE_THREAD_EACH.items():
    os.environ.setdefault(_name, _value)

ROOT = Path(__file__).resolve().parent.parent
DEV_SENTENCES = ROOT.parent / "shared" / "eval" / "dev_sentences.txt"
ARTIFACTS = Path(os.environ.get("TEST_OUTPUT_DIR") or ROOT / "test-output")


# In process every test is one client ("testclient", 127.0.0.1): the per-caller limits of `service.admission`
# and the line's per-caller share are off unless a test sets them (test_guard.py, test_service_admission.py,
# test_fair_share.py, test_kokoro_in_browser.py test them), as they were before the limits moved to the work.
CALLER_LIMITS_OFF = {
    "API_RATE_PER_MIN": "0", "CALLER_COMPUTE_S_PER_MIN": "0", "CALLER_CHARS_PER_MIN": "0",
    "CALLER_UPLOAD_MB_PER_MIN": "0", "MAX_WAITING_PER_CALLER": "64",
}  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _caller_limits_off():
    patch = pytest.MonkeyPatch()
    for name, value in CALLER_LIMITS_OFF.items():
        if name not in os.environ:
            patch.setenv(name, value)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def dev_sentences() -> list[str]:
    if DEV_SENTENCES.is_file():
        lines = DEV_SENTENCES.read_text(encoding="utf-8").splitlines()
    else:  # the same Harvard sentences, for a checkout without ../shared
        lines = (ROOT / "tests" / "data" / "dev_sentences.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def build_tiny_kokoro(folder: Path, voices: tuple[str, ...] = ("af_heart", "af_bella")) -> Path:
    """A random-weight Kokoro checkpoint in the official layout, built through `kokoro.KModel`."""
    import torch
    from kokoro import KModel

    from engines.runtime.weights import packaged_kokoro

    vocab = json.loads(Path(packaged_kokoro().vocab_path).read_text(encoding="utf-8"))["vocab"]
    config = {
        "istftnet": {
            "upsample_kernel_sizes": [20, 12], "upsample_rates": [10, 6], "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20, "resblock_dilation_sizes": [[1, 3, 5]], "resblock_kernel_sizes": [3],
            "upsample_initial_channel": 512,
        },
        "dim_in": 64, "dropout": 0.2, "hidden_dim": 512, "max_conv_dim": 512, "max_dur": 4,
        "multispeaker": True, "n_layer": 1, "n_mels": 80, "n_token": 178, "style_dim": 128,
        "text_encoder_kernel_size": 5,
        "plbert": {
            "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
            "max_position_embeddings": 512, "num_hidden_layers": 1, "dropout": 0.1,
        },
        "vocab": vocab,
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    empty = folder / "empty.pth.tmp"
    torch.save({}, empty)  # nothing to load: KModel keeps its random initialisation
    torch.manual_seed(0)
    model = KModel(repo_id="hexgrad/Kokoro-82M", config=str(folder / "config.json"), model=str(empty))
    empty.unlink()
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    torch.save({k: getattr(model, k).state_dict() for k in parts}, folder / "kokoro-v1_0.pth")
    (folder / "voices").mkdir(exist_ok=True)
    for i, name in enumerate(voices):
        torch.manual_seed(100 + i)
        torch.save(torch.randn(510, 1, 256) * 0.1, folder / "voices" / f"{name}.pt")
    return folder


@pytest.fixture(scope="session")
def tiny_kokoro_dir(tmp_path_factory) -> Path:
    return build_tiny_kokoro(tmp_path_factory.mktemp("tiny-kokoro"))


class _TinyQwen(Mapping):
    """Tiny random Qwen3-TTS checkpoints by name, each built the first time a test asks for it (a build
    takes seconds; most runs need one or two of the three)."""

    KINDS = {"custom": ("customvoice", "custom_voice", {}), "clone": ("base", "base", {}),
             "custom-1.7b": ("customvoice-1.7b", "custom_voice", {"model_size": "1b7"}),
             "design": ("voicedesign", "voice_design", {"model_size": "1b7"})}  # fmt: skip

    def __init__(self, root: Path) -> None:
        self._root = root
        self._built: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._built:
            from qwen_tiny import build_one

            folder, kind, options = self.KINDS[name]
            self._built[name] = Path(build_one(str(self._root / folder), kind, **options))
        return self._built[name]

    def __iter__(self):
        return iter(self.KINDS)

    def __len__(self) -> int:
        return len(self.KINDS)


@pytest.fixture(scope="session")
def qwen_dirs(tmp_path_factory) -> Mapping[str, Path]:
    """Tiny random Qwen3-TTS CustomVoice and Base checkpoints (and 1.7B-shaped CustomVoice and VoiceDesign
    ones), loadable by `from_pretrained(dir)`: "custom", "clone", "custom-1.7b", "design"."""
    return _TinyQwen(tmp_path_factory.mktemp("tiny-qwen"))


@pytest.fixture(scope="session")
def qwen_design_dir(qwen_dirs) -> Path:
    """A tiny random Qwen3-TTS VoiceDesign checkpoint (1.7B in name, as the only real one is)."""
    return qwen_dirs["design"]


def _offline(mp: pytest.MonkeyPatch) -> None:
    """No hub, no Kokoro model or back-end named: the packaged int8 ONNX model is the only Kokoro."""
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("KOKORO_MODEL", raising=False)
    mp.delenv("KOKORO_BACKEND", raising=False)


@pytest.fixture(scope="session")
def _packaged_kokoro_loaded():
    """The packaged Kokoro, loaded once for the session: a load builds the G2P and times three warm-up
    renders (measured here: 26-32 s on this 2-core machine under load), which eight modules paid each."""
    from engines.kokoro.engine import KokoroEngine

    with pytest.MonkeyPatch.context() as mp:
        _offline(mp)
        engine = KokoroEngine()
        engine.load("cpu")
    return engine


@pytest.fixture(scope="module")
def packaged_kokoro(_packaged_kokoro_loaded):
    """The real packaged Kokoro (int8 ONNX), loaded offline once per session, offline while a module uses it.
    Shared: a test that changes it (its plan, say) does so with `monkeypatch`, which puts it back."""
    with pytest.MonkeyPatch.context() as mp:
        _offline(mp)
        yield _packaged_kokoro_loaded


@pytest.fixture()
def offline_env(monkeypatch):
    """No hub: the packaged ONNX model is the only Kokoro."""
    _offline(monkeypatch)


@pytest.fixture(scope="module")
def v1_client(tmp_path_factory):
    """The `/v1` routes alone on a FastAPI test client, offline with the packaged Kokoro."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api import router
    from engines.runtime import registry

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VOICE_LIBRARY_DIR", str(tmp_path_factory.mktemp("v1-library")))
        for name in ("KOKORO_MODEL", "KOKORO_BACKEND"):
            mp.delenv(name, raising=False)
        app = FastAPI()
        app.include_router(router)
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
        registry.unload("kokoro")


# Debian's Chromium, driven by Playwright, for the tests under tests/e2e/: one Chromium for the session,
# a fresh context (own cookies and storage) per page
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip


class _Chromium:
    """The session's one Chromium: started by the first test module that asks for it and kept while the
    modules that follow use it too; stopped before a module that does not (`pytest_runtest_teardown`).
    While Playwright's sync API lives it keeps an event loop marked running in this thread, so a test
    that calls `asyncio.run`, or starts a Playwright of its own, must not run beside it."""

    def __init__(self) -> None:
        self._playwright = None
        self._browser = None

    def get(self):
        if self._browser is None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        return self._browser

    def stop(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._playwright.stop()
        self._playwright = self._browser = None


_CHROMIUM = _Chromium()


def _uses_chromium(item) -> bool:
    return item is not None and "chromium" in getattr(item, "fixturenames", ())


# The test files that take minutes, slowest first: worker seconds in a full run on this 2-core machine
# (2026-12-08, one thread each). `scripts/test.sh` hands out whole files in collection order
# (`--dist loadfile --no-loadscope-reorder`), each to the first worker with at most two tests left, so the
# longest start first and the short files fill in at the end; xdist's own order (files with the most tests
# first) left a one-test file of two minutes to run alone at the end. A new slow file belongs in this list.
SLOWEST_FIRST = (
    "test_serve.py", "e2e/test_player_browser.py", "test_script.py", "test_compare.py", "test_voice_search.py",
    "test_hostile_inputs.py", "e2e/test_first_five_minutes.py", "e2e/test_arena_browser.py",
    "e2e/test_kokoro_in_browser_browser.py", "e2e/test_parity_browser.py", "test_openai_api.py", "test_cli.py",
    "test_qwen_batching.py", "test_kokoro_offline.py", "test_alignment.py", "e2e/test_readalong_browser.py",
    "test_arena_stuffing.py", "test_kokoro_windows.py", "test_runaway.py", "test_lexicon.py",
)  # fmt: skip


def pytest_collection_modifyitems(config, items) -> None:
    """The files of `SLOWEST_FIRST` first, in its order; the others after them as collected."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    tests = Path(__file__).resolve().parent

    def place(item) -> int:
        return rank.get(Path(item.fspath).resolve().relative_to(tests).as_posix(), len(rank))

    items.sort(key=place)


@pytest.hookimpl(trylast=True)  # after the test's fixtures (its module's `browser`) were torn down
def pytest_runtest_teardown(item, nextitem) -> None:
    """Stop the session's Chromium at the end of a module when the next module does not use it."""
    next_module = getattr(nextitem, "module", None)
    if next_module is not getattr(item, "module", None) and not _uses_chromium(nextitem):
        _CHROMIUM.stop()


def pytest_sessionfinish(session) -> None:
    _CHROMIUM.stop()


# every status line, notice and error toast of a page: what a visitor would read when a browser test failed
PAGE_STATE = """() => [...document.querySelectorAll('[id$="-status"], [id$="-notice"], .toast-body')]
  .filter(e => e.offsetParent !== null && e.innerText.trim())
  .map(e => `${e.id || e.className}: ${e.innerText.trim().slice(0, 300)}`)"""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a browser test fails, its report says what each of its open pages showed (status lines,
    notices, toasts) and a screenshot lands in test-output/failed-<test>-<n>.png: a CI log then tells a
    timeout waiting for "Finished" from a run that said something else."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or not _uses_chromium(item) or _CHROMIUM._browser is None:
        return
    shown = []
    try:
        pages = [page for context in _CHROMIUM._browser.contexts for page in context.pages]
        for number, page in enumerate(pages):
            shot = ARTIFACTS / f"failed-{item.name[:80]}-{number}.png"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True, timeout=10_000)
            shown.append(f"page {number} ({page.url}), {shot.name}:")
            shown.extend(f"  {line}" for line in page.evaluate(PAGE_STATE))
    except Exception as exc:  # the page may be gone: say so, keep the test's own failure
        shown.append(f"(could not read the pages: {exc.__class__.__name__}: {str(exc)[:200]})")
    report.sections.append(("what the pages showed", "\n".join(shown)))


# Parallel runs (`scripts/test.sh`: pytest-xdist, `--dist loadfile`): each test file runs whole on one
# worker (its module fixtures once, its tests in order). The tests that start a local Ray cluster hold
# `one_ray_cluster`, so that two clusters never start at once on one machine.
RAY_LOCK = Path(tempfile.gettempdir()) / "tts-tests-ray.lock"


@pytest.fixture(scope="module")
def one_ray_cluster():
    """Held while a module's Ray cluster runs: another worker's waits (an OS file lock, freed on exit)."""
    with open(RAY_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def chromium() -> _Chromium:
    """The session's Chromium (see `_Chromium`); tests use `browser`."""
    return _CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    """The session's Chromium for one test module: whatever contexts and pages the module opened are closed
    after it, as if it had had a browser of its own."""
    running = chromium.get()
    yield running
    for context in list(running.contexts) if running.is_connected() else ():
        context.close()


def app_page(browser, url: str, *, height: int = 1100, ready: str | None = "#kokoro-text textarea", **options):
    """A page in a fresh context (a new visitor: own cookies and storage) of `browser`, 1280 px wide, on
    `url` once loaded and, with `ready`, once that selector is on the page. `options` go to `new_context`."""
    page = browser.new_context(viewport={"width": 1280, "height": height}, **options).new_page()
    page.goto(url, wait_until="load", timeout=120_000)
    if ready:
        page.locator(ready).wait_for(timeout=120_000)
    return page


def choose_file(page, elem_id: str, path, shown, *, timeout_ms: int = 30_000) -> None:
    """Upload `path` into the page's `#elem_id` component as a visitor does: click its drop area and pick
    the file in the browser's chooser, then wait for the locator `shown` (the component showing the file).
    Setting files on the component's hidden input directly lost one upload on a loaded CI machine (Gradio
    replaces that input when the component updates); the chooser goes through the input the click opened.
    If the file does not show, it is chosen once more, as a visitor would; past that the error names what
    the page's uploads answered and the toasts it showed."""
    answers: list[int] = []

    def seen(response) -> None:
        if "/gradio_api/upload" in response.url and "upload_progress" not in response.url:
            answers.append(response.status)

    page.on("response", seen)
    try:
        for attempt in range(2):
            with page.expect_file_chooser(timeout=timeout_ms) as chooser:
                page.locator(f"#{elem_id}").get_by_text("Click to Upload").first.click()
            chooser.value.set_files(str(path))
            try:
                # the second try waits longer: on a loaded machine one upload answered 200 and the
                # component had not shown it 30 s later, twice in a row (the app still busy with a render)
                shown.wait_for(timeout=timeout_ms * (1 + attempt))
                return
            except Exception:  # playwright's TimeoutError: choose it again
                clear = page.locator(f"#{elem_id} button[aria-label=Clear]")
                if clear.count():
                    clear.first.click()
    finally:
        page.remove_listener("response", seen)
    toasts = page.get_by_test_id("toast-text").all_inner_texts()
    raise AssertionError(f"#{elem_id} never showed {path.name}: upload answers {answers}, toasts {toasts}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(artifacts, qwen_dirs, tmp_path_factory) -> str:
    """`python app.py` running offline on a free local port (Qwen3-TTS on the tiny checkpoints)."""
    port = _free_port()
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
        "QWEN_CUSTOM_VOICE_MODEL": str(qwen_dirs["custom"]), "QWEN_BASE_MODEL": str(qwen_dirs["clone"]),
        "TORCH_THREADS": "1", "VOICE_LIBRARY_DIR": str(tmp_path_factory.mktemp("app-library")),
        "GRADIO_SSR_MODE": "true",  # as on Hugging Face Spaces: the app must serve /v1 regardless
        "ARENA_DB": str(tmp_path_factory.mktemp("arena") / "votes.sqlite3"),
        "ARENA_SYSTEMS": "kokoro:jm_kumo qwen-custom:Ryan",  # every blind pair: a Kokoro and a tiny Qwen voice
        "MAX_WAITING": "16",  # the default follows this machine's measured speed; test_admission.py tests refusals
        "API_RATE_PER_MIN": "100000",  # every test shares this one client address; test_guard.py tests the limit
        # ... and its allowances and its share of each line (test_service_admission.py, test_fair_share.py)
        "CALLER_COMPUTE_S_PER_MIN": "0", "CALLER_CHARS_PER_MIN": "0", "CALLER_UPLOAD_MB_PER_MIN": "0",
        "MAX_WAITING_PER_CALLER": "16", "MAX_SESSIONS_PER_ADDRESS": "1000",
    }  # fmt: skip
    env.pop("KOKORO_MODEL", None)
    log_path = artifacts / f"app-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.log"  # one per worker
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited early; see {log_path}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("app.py did not start within 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
