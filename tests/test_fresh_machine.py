"""A fresh machine passes: every external program that the code or its dependencies call is installed
by `packages.txt` or `scripts/setup.sh`, and importing the models prints no installer noise."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# Every program run by this project or by a dependency, the Debian package that installs it, and who calls it.
PROGRAMS: dict[str, tuple[str, str]] = {
    "ffmpeg": ("ffmpeg", "engines/audio.py (mp3, ogg, opus), engines/reference.py, /v1 streams, Gradio audio"),
    "ffprobe": ("ffmpeg", "pydub, Gradio's audio processing"),
    "sox": ("sox", "the Python `sox` package, imported by qwen_tts: it runs `sox -h` at import"),
    "espeak-ng": ("espeak-ng", "misaki's espeak G2P (es, fr, hi, it, pt-br) and English fallback"),
    "chromium": ("chromium", "tests/e2e (Playwright with the Debian browser)"),
    "node": ("nodejs", "tests/test_kokoro_in_browser.py (the worker's trim against the server's)"),
    "npm": ("npm", "scripts/setup.sh: npm ci (ONNX Runtime Web, served for Kokoro in the browser)"),
}
# Programs that installed dependencies call, checked in their own source: (package, file, program).
DEPENDENCY_CALLS = [
    ("sox", "__init__.py", "sox"),
    ("pydub", "utils.py", "ffmpeg"),
    ("pydub", "utils.py", "ffprobe"),
    ("gradio", "processing_utils.py", "ffmpeg"),
    ("gradio", "processing_utils.py", "ffprobe"),
]
OWN_CODE = ["app.py", "api", "engines", "evaluation", "ui", "bench", "scripts", "tests"]


def _python_files() -> list[Path]:
    files = []
    for name in OWN_CODE:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _called_programs(source: str) -> set[str]:
    """Program names in `shutil.which("x")` calls and in command lists that start with a string literal
    or with `shutil.which("x") or "x"`, given to subprocess functions."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name.endswith("which") and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
        if name.startswith("subprocess.") and node.args and isinstance(node.args[0], ast.List | ast.Tuple):
            first = node.args[0].elts[0] if node.args[0].elts else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
            if isinstance(first, ast.BoolOp):
                found |= {v.value for v in first.values if isinstance(v, ast.Constant)}
    # commands built into a list first, then run: ["ffmpeg", ...] or [ffmpeg, "-v", ...] after which()
    found |= set(re.findall(r'command\s*=\s*\[\s*"([a-z][a-z0-9_-]*)"', source))
    return found


def _installed_debs() -> str:
    return (ROOT / "packages.txt").read_text() + (ROOT / "scripts" / "setup.sh").read_text()


def test_every_program_the_project_runs_is_in_the_table():
    called = set()
    for path in _python_files():
        called |= {(p, str(path.relative_to(ROOT))) for p in _called_programs(path.read_text(encoding="utf-8"))}
    called = {(p, where) for p, where in called if p not in {sys.executable, "python", "python3"}}
    assert {p for p, _ in called} >= {"ffmpeg"}  # the scan finds calls at all
    unknown = sorted((p, where) for p, where in called if p not in PROGRAMS)
    assert not unknown, f"add these programs to PROGRAMS (and their Debian package to packages.txt): {unknown}"


@pytest.mark.parametrize(("package", "module_file", "program"), DEPENDENCY_CALLS)
def test_programs_that_dependencies_run_are_in_the_table(package, module_file, program):
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin, f"{package} is not installed"
    source = (Path(spec.origin).parent / module_file).read_text(encoding="utf-8")
    assert program in source, f"{package} no longer mentions {program}: update DEPENDENCY_CALLS"
    assert program in PROGRAMS


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_each_program_is_installed_by_packages_txt_or_setup(program):
    deb = PROGRAMS[program][0]
    assert re.search(rf"(^|\s){re.escape(deb)}(\s|$)", _installed_debs(), re.M), f"{deb} is in neither file"


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_each_program_is_on_the_path_after_setup(program):
    assert shutil.which(program), f"{program} is missing: run bash scripts/setup.sh --dev"


def test_importing_qwen_tts_prints_nothing():
    """Without the sox binary, `import qwen_tts` prints a shell error and a 9-line warning on stderr."""
    code = "from engines.qwen.engine import import_qwen_tts; import_qwen_tts()"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr
