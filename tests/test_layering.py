"""The core's layering: leaf modules, then model, corpus, views, app. A lower package never imports a
higher one, the URL state loads no torch/faiss/spaCy, and the corpus reader loads no spaCy.

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
LEAVES = {"errors", "limits", "paths", "runtime", "memory", "progress", "atomic", "packages"}
RANK = {"model": 1, "corpus": 2, "views": 3, "app": 4}
HEAVY = ("torch", "faiss", "spacy", "transformers", "pyarrow", "plotly")


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


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(CORE.rglob("*.py")):
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
    bad.write_text("from exbert_core.views.figures import histogram\nfrom exbert_core import errors\n")
    imported = _core_imports(bad)
    assert imported == ["exbert_core.views.figures", "exbert_core.errors"]
    assert _rank(imported[0]) > _rank("exbert_core.model.analysis")


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
