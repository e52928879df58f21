"""The core's layering: leaf modules, then model, corpus, views, app. A lower package never imports a
higher one, the URL state loads no torch/faiss/spaCy, and the corpus reader loads no spaCy. Inside
the corpus, the search never imports the build and the on-disk format imports neither. The app's
pages and their shared parts import each other one way (no cycle), the shared parts in :data:`COMMON_ORDER`.

Checked two ways: statically (every ``exbert_core`` import in every core module, read with ``ast``)
and for real (importing a module in a fresh interpreter and listing what it loaded).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "exbert_core"
# Rank of each package: a module may import modules of its own rank or lower.
LEAVES = {"errors", "limits", "paths", "runtime", "memory", "progress", "atomic", "packages", "cluster"}
RANK = {"model": 1, "corpus": 2, "views": 3, "app": 4}
HEAVY = ("torch", "faiss", "spacy", "transformers", "pyarrow", "plotly")
# The corpus's rooms: each may import only the rooms listed for it (and itself).
CORPUS_ROOMS = {"format": set(), "search": {"format"}, "build": {"format", "search"}}
APP = ROOT / "app_pages"
# app_pages/common, bottom to top: a module imports only modules before it.
COMMON_ORDER = ("components", "state", "background", "style", "widgets", "cache", "sidebar", "page", "banner", "build")


def _rank(module: str) -> int:
    """``exbert_core.corpus.search.store`` -> 2; leaf modules -> 0."""
    parts = module.split(".")
    if len(parts) < 2:
        return 0
    if parts[1] in LEAVES:
        return 0
    if parts[1] not in RANK:
        raise AssertionError(f"{module}: every core module lives in a leaf module or in {sorted(RANK)}")
    return RANK[parts[1]]


def _core_imports(path: Path) -> list[str]:
    """Every ``exbert_core...`` module that ``path`` imports, also inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("exbert_core"):
            if node.module == "exbert_core" or node.module.count(".") == 1 and node.module.split(".")[1] in RANK:
                found += [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("exbert_core")]
    return found


def _modules(folder: Path = CORE) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def test_no_lower_package_imports_a_higher_one():
    wrong = []
    for name, path in _modules():
        for imported in _core_imports(path):
            if _rank(imported) > _rank(name):
                wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_catches_a_wrong_way_import(tmp_path):
    """The checker itself: a views module imported by a model module is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from exbert_core.views.charts.corpus_charts import histogram\nfrom exbert_core import errors\n")
    imported = _core_imports(bad)
    assert imported == ["exbert_core.views.charts.corpus_charts", "exbert_core.errors"]
    assert _rank(imported[0]) > _rank("exbert_core.model.analysis")


def _room(module: str) -> str | None:
    """``exbert_core.corpus.search.store`` -> ``search``; None outside the corpus's rooms."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "corpus" and parts[2] in CORPUS_ROOMS else None


def test_search_never_imports_the_build_and_the_format_neither():
    wrong = []
    for name, path in _modules():
        room = _room(name)
        if room is None:
            continue
        for imported in _core_imports(path):
            other = _room(imported)
            if other is not None and other != room and other not in CORPUS_ROOMS[room]:
                wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_every_corpus_module_lives_in_a_room():
    """Only the measurement of one room against the other sits beside them."""
    loose = [name for name, _ in _modules(CORE / "corpus")
             if _room(name) is None and name not in ("exbert_core.corpus", "exbert_core.corpus.evaluation")]
    assert not loose, (f"move {loose} into corpus/format/, build/ or search/ (git mv, and a line in "
                       "docs/module-moves.txt for code that still imports the old name)")


def test_the_room_check_catches_search_importing_the_build(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from exbert_core.corpus.build.embed import run\n")
    imported = _core_imports(bad)
    assert imported == ["exbert_core.corpus.build.embed"]
    assert _room(imported[0]) not in CORPUS_ROOMS[_room("exbert_core.corpus.search.query")]


def _app_imports(path: Path, modules: set[str]) -> set[str]:
    """The ``app_pages`` modules ``path`` imports (also inside functions and ``if TYPE_CHECKING``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app_pages"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found & modules


def _app_graph() -> dict[str, set[str]]:
    named = _modules(APP)
    modules = {name for name, _ in named}
    return {name: _app_imports(path, modules) - {name} for name, path in named}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, a]``), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_app_pages_import_each_other_without_a_cycle():
    cycle = _cycle(_app_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_check_finds_a_circle():
    graph = {"banner": {"page"}, "page": {"sidebar"}, "sidebar": {"cache"}, "cache": {"banner"}, "state": set()}
    assert _cycle(graph) == ["banner", "page", "sidebar", "cache", "banner"]
    assert _cycle({"page": {"sidebar"}, "sidebar": {"state"}, "state": set()}) is None


def test_the_shared_page_parts_import_only_those_before_them():
    graph = _app_graph()
    common = {name.rsplit(".", 1)[1] for name in graph if name.startswith("app_pages.common.")}
    assert common == set(COMMON_ORDER), f"add new modules of app_pages/common to COMMON_ORDER: {sorted(common)}"
    wrong = []
    for i, name in enumerate(COMMON_ORDER):
        for imported in graph[f"app_pages.common.{name}"]:
            if imported.startswith("app_pages.common.") and imported.rsplit(".", 1)[1] not in COMMON_ORDER[:i]:
                wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def _loaded_by(module: str) -> set[str]:
    code = (
        "import importlib, json, sys; importlib.import_module(%r); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))" % module
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module, forbidden", [
    ("exbert_core.app.state", HEAVY),
    ("exbert_core.errors", HEAVY),
    ("exbert_core.corpus.format.names", HEAVY),
    ("exbert_core.model.names", HEAVY),
    ("exbert_core.corpus.format.manifest", HEAVY),
    ("exbert_core.corpus.search.store", ("spacy",)),
    ("exbert_core.corpus.search.query", ("spacy",)),
])
def test_light_modules_stay_light(module, forbidden):
    loaded = _loaded_by(module)
    assert not loaded & set(forbidden), f"{module} loads {sorted(loaded & set(forbidden))}"
