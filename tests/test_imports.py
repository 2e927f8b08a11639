"""The import rule, stated once (`RULE`, which the README quotes word for word) and checked here.

Every module's imports are read from its syntax tree: at the top and inside functions, relative ones
resolved, `importlib.import_module("...")` with a literal name, and `"package.module:Class"` strings
(the registry's table of engines).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

RULE = """Imports run one way: `app -> ui/, api/, cli/, serve/ -> service/ -> evaluation/ -> engines/`. A layer
may import any layer below it (`api -> evaluation` and `ui -> engines` are such arrows). The faces ui/, api/,
cli/ and serve/ do not import each other, nor the work queue (`engines.runtime.work_queue`): their requests
take their turns through `service/`. Inside `engines/`, the engine families `engines/kokoro/` and
`engines/qwen/` do not import each other; both may import `engines/runtime/` and the shared modules. Named
exceptions: `engines/__main__.py -> cli` (the entry-point shim), `cli.commands -> serve` (the CLI's serve
command starts the engine tier) and `ui.kokoro_in_browser -> api` (the page registers its scripts with the
route that serves them). No modules import each other in a circle."""

PACKAGES = ("app", "ui", "api", "cli", "serve", "service", "evaluation", "engines")
LAYERS = (("app",), ("ui", "api", "cli", "serve"), ("service",), ("evaluation",), ("engines",))  # top first
FACES = LAYERS[1]
# package -> the packages its modules must not import: its own layer's other packages and every layer above
FORBIDDEN: dict[str, frozenset[str]] = {
    package: frozenset(p for above in LAYERS[:depth] for p in above) | frozenset(set(layer) - {package})
    for depth, layer in enumerate(LAYERS)
    for package in layer
}
# named exceptions: the entry-point shim runs the CLI; the CLI's `serve` command starts the engine tier; the
# page registers its scripts with the route that serves them
SHIMS = {
    "engines.__main__": frozenset({"cli"}),
    "cli.commands": frozenset({"serve"}),
    "ui.kokoro_in_browser": frozenset({"api"}),
}
NOT_FOR_FACES = ("engines.runtime.work_queue",)  # a face's request takes its turn through the service
FAMILIES = ("engines.kokoro", "engines.qwen")  # engine families: none imports another
TABLE_ENTRY = re.compile(r"([A-Za-z_][\w.]*):[A-Za-z_]\w*")  # "engines.kokoro.engine:KokoroEngine"


def project_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for app.py and every .py file under the project's packages."""
    modules = {}
    for package in PACKAGES:
        single = root / f"{package}.py"
        if single.is_file():
            modules[package] = single
        folder = root / package
        if folder.is_dir():
            for path in sorted(folder.rglob("*.py")):
                parts = list(path.relative_to(root).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that importing `name` runs last: itself, or its nearest package; None outside."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `module` imports anywhere in its file, by statement or by string."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_resolve(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                full = f"{origin}.{alias.name}" if origin else alias.name
                found.add(_resolve(full, modules) or _resolve(origin, modules))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(_resolve(node.args[0].value, modules))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            entry = TABLE_ENTRY.fullmatch(node.value)
            if entry and entry.group(1) in modules:
                found.add(entry.group(1))
    found.discard(None)
    found.discard(module)
    return found  # type: ignore[return-value]


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that runs against the layers."""
    problems = []
    for module, targets in sorted(graph.items()):
        top = module.split(".")[0]
        forbidden = FORBIDDEN[top] - SHIMS.get(module, frozenset())
        for target in sorted(targets):
            mine, theirs = _family(module), _family(target)
            if (
                target.split(".")[0] in forbidden
                or (top in FACES and target in NOT_FOR_FACES)
                or (mine and theirs and mine != theirs)
            ):
                problems.append(f"{module} imports {target}")
    return problems


def _family(module: str) -> str | None:
    """The engine family `module` belongs to, or None."""
    return next((f for f in FAMILIES if module == f or module.startswith(f + ".")), None)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected group of two or more modules (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


# ----- the project ---------------------------------------------------------------------------------------------


def test_no_module_imports_against_the_layers():
    graph = import_graph(ROOT)
    assert {
        "engines.runtime.registry",
        "engines.kokoro.engine",
        "api.openai_speech",
        "cli.commands",
        "service.admission",
    } <= graph.keys()
    assert wrong_way(graph) == []


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(import_graph(ROOT)) == []


def test_the_graph_sees_the_registry_table_and_the_shim():
    graph = import_graph(ROOT)
    assert {"engines.kokoro.engine", "engines.qwen.engine"} <= graph[
        "engines.runtime.registry"
    ]  # "module:Class" strings
    assert "cli" in graph["engines.__main__"]  # the one upward import, allowed by name
    assert "engines.asr" in graph["engines.reference"] and "engines.asr" in graph["evaluation.metrics"]


# ----- the checker on a planted tree ---------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "app.py": "import ui\n",
    "ui/__init__.py": "from service import speak\nfrom evaluation import metrics\n",
    "service/__init__.py": "from .speak import speak\n",
    "service/speak.py": "from evaluation import metrics\nfrom engines.runtime import work_queue\ndef speak(): ...\n",
    "api/__init__.py": "from .speech import router\n",
    "api/speech.py": "from engines.runtime import registry\nrouter = None\n",
    "evaluation/__init__.py": "",
    "evaluation/metrics.py": "from engines.asr import transcribe\n",
    "cli/__init__.py": "from evaluation import metrics\n",
    "engines/__init__.py": "",
    "engines/__main__.py": "from cli import main\n",
    "engines/asr.py": "def transcribe(): ...\n",
    "engines/runtime/registry.py": 'ENGINES = {"one": "engines.one:One"}\n',
    "engines/one.py": "from .asr import transcribe\nclass One: ...\n",
    "engines/runtime/work_queue.py": "",
}


def test_a_clean_tree_passes_and_the_shim_may_import_the_cli(tmp_path):
    graph = import_graph(_tree(tmp_path, CLEAN))
    assert graph["engines.__main__"] == {"cli"} and graph["engines.runtime.registry"] == {"engines.one"}
    assert graph["api"] == {"api.speech"} and graph["evaluation.metrics"] == {"engines.asr"}
    assert wrong_way(graph) == [] and cycles(graph) == []


def test_a_planted_wrong_way_import_inside_a_function_is_caught(tmp_path):
    files = {**CLEAN, "engines/asr.py": "def transcribe():\n    from evaluation.metrics import score\n"}
    assert wrong_way(import_graph(_tree(tmp_path, files))) == ["engines.asr imports evaluation.metrics"]


def test_a_face_importing_another_face_or_the_work_queue_is_caught(tmp_path):
    files = {
        **CLEAN,
        "ui/__init__.py": "from api import router\n",
        "cli/__init__.py": "def main():\n    from engines.runtime import work_queue\n",
    }
    assert wrong_way(import_graph(_tree(tmp_path, files))) == [
        "cli imports engines.runtime.work_queue",
        "ui imports api",
    ]


def test_the_service_may_not_import_a_face(tmp_path):
    files = {**CLEAN, "service/speak.py": "from api import router\ndef speak(): ...\n"}
    assert wrong_way(import_graph(_tree(tmp_path, files))) == ["service.speak imports api"]


def test_wrong_way_imports_by_string_and_relative_import_are_caught(tmp_path):
    files = {
        **CLEAN,
        "engines/one.py": 'import importlib\nimportlib.import_module("ui")\nclass One: ...\n',
        "api/speech.py": "from .. import ui\nrouter = None\n",
    }
    assert wrong_way(import_graph(_tree(tmp_path, files))) == ["api.speech imports ui", "engines.one imports ui"]


def test_a_planted_cycle_through_the_registry_table_is_caught(tmp_path):
    files = {**CLEAN, "engines/one.py": "class One:\n    def load(self):\n        from .runtime import registry\n"}
    graph = import_graph(_tree(tmp_path, files))
    assert wrong_way(graph) == []
    assert cycles(graph) == [["engines.one", "engines.runtime.registry"]]


def test_a_planted_three_module_cycle_is_caught(tmp_path):
    files = {
        **CLEAN,
        "engines/a.py": "from .b import x\n",
        "engines/b.py": "import engines.c\nx = 1\n",
        "engines/c.py": "def f():\n    from engines import a\n",
    }
    assert cycles(import_graph(_tree(tmp_path, files))) == [["engines.a", "engines.b", "engines.c"]]


def test_one_engine_family_importing_another_is_caught(tmp_path):
    files = {**CLEAN, "engines/qwen/engine.py": "from engines.kokoro import voices\n", "engines/kokoro/voices.py": ""}
    assert wrong_way(import_graph(_tree(tmp_path, files))) == ["engines.qwen.engine imports engines.kokoro.voices"]


def test_the_readme_and_the_layout_page_quote_the_rule_word_for_word():
    def words(text: str) -> str:
        return " ".join(text.split())

    for page in ("README.md", "docs/layout.md"):
        assert words(RULE) in words((ROOT / page).read_text(encoding="utf-8")), f"{page}: quote RULE again"
