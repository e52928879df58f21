"""scripts/dev/rewrite_imports.py: old-layout code is rewritten to the moved modules, new-layout code is
left alone, and this repository holds no old name (so a merged branch's old imports are caught)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "dev" / "rewrite_imports.py"
spec = importlib.util.spec_from_file_location("rewrite_imports", SCRIPT)
rewrite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rewrite)

OLD = '''"""Uses :mod:`exbert_core.corpus.store`, see exbert_core/corpus/search.py."""
from exbert_core.corpus import build, search, store as corpus  # noqa: F401
from exbert_core.corpus.build import CHARS_PER_TOKEN
from exbert_core.corpus.search import SearchResult
from app_pages.common import banner, controls


def f(monkeypatch):
    monkeypatch.setattr("exbert_core.corpus.search.search", None)
    controls.set_state(corpus="x")
    return search.search, corpus.load, build.build, CHARS_PER_TOKEN, SearchResult, banner.show
'''


def test_old_code_is_rewritten_and_a_second_run_changes_nothing():
    rewriter = rewrite.Rewriter(rewrite.read_moves())
    new = rewriter.text(OLD, python=True)
    # One statement per new package, local names kept; a trailing comment stays on the first line.
    assert "from exbert_core.corpus.build import pipeline as build  # noqa: F401\n" in new
    assert "from exbert_core.corpus.search import query as search, store as corpus\n" in new
    assert "from exbert_core.corpus.build.pipeline import CHARS_PER_TOKEN\n" in new
    assert "from exbert_core.corpus.search.query import SearchResult\n" in new
    assert '"exbert_core.corpus.search.query.search"' in new  # the function, not the module
    assert ":mod:`exbert_core.corpus.search.store`, see exbert_core/corpus/search/query.py" in new
    # A name that moved out of a module used through its alias; the removed module's import goes.
    assert "state.set_state(corpus=\"x\")" in new and "controls" not in new
    assert "from app_pages.common import banner\n" in new and "from app_pages.common import state\n" in new
    assert rewriter.text(new, python=True) == new
    compile(new, "rewritten.py", "exec")


def test_a_module_added_to_a_new_package_later_is_new():
    """child_build came into corpus/build/ after the move: not an attribute of the old build module."""
    rewriter = rewrite.Rewriter(rewrite.read_moves())
    source = ("from exbert_core.corpus.build import child_build, jobs\n"
              '"""See :mod:`exbert_core.corpus.build.child_build`."""\n')
    assert rewriter.text(source, python=True) == source


def test_an_existing_alias_of_the_target_module_is_reused():
    rewriter = rewrite.Rewriter(rewrite.read_moves())
    source = "from app_pages.common import controls\nfrom app_pages.common import state as session\n\ncontrols.note('x')\n"
    assert rewriter.text(source, python=True) == "from app_pages.common import state as session\n\nsession.note('x')\n"


def test_the_repository_uses_only_new_names():
    """Fails after a merge brings old imports: run the script on the files it lists."""
    examples = {"scripts/dev/rewrite_imports.py", "tests/test_rewrite_imports.py"}  # old names on purpose
    files = [f for f in subprocess.run(["git", "ls-files", "*.py", "*.md"], cwd=ROOT, capture_output=True,
                                       text=True, check=True).stdout.split() if f not in examples]
    out = subprocess.run([sys.executable, str(SCRIPT), "--check", *files], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
