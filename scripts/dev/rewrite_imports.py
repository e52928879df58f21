"""Rewrite imports and dotted names after modules moved: ``python scripts/dev/rewrite_imports.py FILE...``.

For code written against the old layout (another branch merged after the move). The moves are
listed in ``docs/module-moves.txt``, one ``old.dotted.name -> new.dotted.name`` a line: a module
(everything under it follows) or one name inside a module (a function that moved to another
module). The script rewrites, in every file given:

- ``from old.module import x`` and ``from old.package import module`` statements (the local
  names stay bound as before: ``from exbert_core.corpus import search`` becomes
  ``from exbert_core.corpus.search import query as search``);
- dotted names anywhere else (``import ...``, strings such as monkeypatch targets, docstrings)
  and paths such as ``exbert_core/corpus/store.py``;
- for a moved name, its uses through a module alias (``page.seed(...)`` -> ``widgets.seed(...)``),
  adding the new module's import and dropping the old one when nothing uses it any more.

Code already in the new layout is left as it is (running it twice changes nothing), with one
exception: a bare dotted name that is both an old module and a new package
(``exbert_core.corpus.search``) is read as the old module. ``--check`` lists the files it would
change and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MOVES = ROOT / "docs" / "module-moves.txt"
WIDTH = 110  # longer import statements are wrapped, one name a line


def read_moves(path: Path = MOVES) -> dict[str, str]:
    """``old -> new`` from the mapping file (``#`` starts a comment)."""
    moves = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            old, new = (part.strip() for part in line.split("->"))
            moves[old] = new
    return moves


class Rewriter:
    """The moves, and how one dotted name is rewritten."""

    def __init__(self, moves: dict[str, str]) -> None:
        self.moves = moves
        # New names, with the modules that names moved into (a longer new name wins, see resolve).
        self.new = set(moves.values()) | {name.rsplit(".", 1)[0] for name in moves.values()}
        self.roots = sorted({name.split(".")[0] for name in moves})
        # Modules some names moved out of (a removed module among them): their aliases are followed.
        self.old_modules = {name.rsplit(".", 1)[0] for name in moves}

    def resolve(self, dotted: str) -> str | None:
        """The new spelling of ``dotted``, or None when it is not old (already new, or unmoved).
        Moves chain: a name inside a moved module may have moved on from the module's new place."""
        found = None
        for _ in range(8):
            step = self._resolve_once(found or dotted)
            if step is None:
                return found
            found = step
        raise ValueError(f"the moves of {dotted} run in a circle")

    def _resolve_once(self, dotted: str) -> str | None:
        parts = dotted.split(".")
        for n in range(len(parts), 0, -1):
            old = ".".join(parts[:n])
            if old in self.moves:
                # Already new: a longer prefix of the name is a new module (build.embed under the
                # old module build's name), moved here or added since (a module on disk).
                longer = [".".join(parts[:m]) for m in range(n + 1, len(parts) + 1)]
                if any(name in self.new or _is_module(name) for name in longer):
                    return None
                return ".".join([self.moves[old], *parts[n:]])
        return None

    def text(self, source: str, *, python: bool) -> str:
        """``source`` rewritten (imports first for Python files, then every other dotted name)."""
        if python:
            source = self._imports(source)
            source = self._attribute_uses(source)
        return self._names(source, skip=_from_import_spans(source) if python else [])

    def _names(self, source: str, skip: list[tuple[int, int]]) -> str:
        roots = "|".join(map(re.escape, self.roots))
        dotted = re.compile(rf"(?<![\w.])(?:{roots})(?:\.\w+)+")
        path = re.compile(rf"(?<![\w/])(?:{roots})(?:/\w+)+\.py\b")

        def dotted_sub(m: re.Match) -> str:
            after_from = source[max(0, m.start() - 5):m.start()] == "from " and source.startswith(" import ", m.end())
            if after_from or any(a <= m.start() < b for a, b in skip):  # import statements: done by _imports
                return m.group(0)
            return self.resolve(m.group(0)) or m.group(0)

        def path_sub(m: re.Match) -> str:
            new = self.resolve(m.group(0)[:-3].replace("/", "."))
            return new.replace(".", "/") + ".py" if new else m.group(0)

        return path.sub(path_sub, dotted.sub(dotted_sub, source))

    def _imports(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        for node in sorted(_from_imports(source), key=lambda n: -n.lineno):
            first, last = node.lineno - 1, node.end_lineno
            indent = re.match(r"\s*", lines[first]).group(0)
            new = self._from_statement(indent, node.module, [(a.name, a.asname) for a in node.names])
            if new is None:
                continue
            comment = re.search(r"#.*$", lines[last - 1].rstrip("\n"))
            if comment:
                new[0] = new[0].rstrip("\n") + "  " + comment.group(0) + "\n"
            lines[first:last] = new
        source = "".join(lines)
        # Import lines inside strings (code a test runs in a child process): one line each.
        roots = "|".join(map(re.escape, self.roots))
        line = re.compile(rf"^([ \t]*)from ((?:{roots})(?:\.\w+)*) import ([\w ,]+?)[ \t]*$", re.M)
        spans = _from_import_spans(source)

        def sub(m: re.Match) -> str:
            if any(a <= m.start() < b for a, b in spans):
                return m.group(0)
            names = [tuple(p.split(" as ")) if " as " in p else (p, None) for p in map(str.strip, m.group(3).split(","))]
            new = self._from_statement(m.group(1), m.group(2), [(n.strip(), a and a.strip()) for n, a in names])
            return "".join(new).rstrip("\n") if new else m.group(0)

        return line.sub(sub, source)

    def _from_statement(self, indent: str, module: str, names: list[tuple[str, str | None]]) -> list[str] | None:
        """``from module import names`` as the statements of the new layout, or None if unchanged."""
        groups: dict[str, list[str]] = {}
        changed = False
        for name, asname in names:
            full = self.resolve(f"{module}.{name}")
            target, new_name = (module, name) if full is None else full.rsplit(".", 1)
            changed = changed or full is not None
            bound = asname or name
            groups.setdefault(target, []).append(new_name if new_name == bound else f"{new_name} as {bound}")
        if not changed:
            return None
        return [_statement(indent, target, group) for target, group in groups.items()]

    def _attribute_uses(self, source: str) -> str:
        """``alias.name`` where ``name`` moved out of the module bound to ``alias``."""
        done: set[str] = set()
        while True:  # one alias a pass (each pass moves the lines below the import it adds)
            changed = self._one_alias(source, done)
            if changed is None:
                return source
            source = changed

    def _one_alias(self, source: str, done: set[str]) -> str | None:
        bound = _module_aliases(source, self.old_modules)
        for alias, (module, node) in bound.items():
            if alias in done:
                continue
            done.add(alias)
            uses = {m.group(1) for m in re.finditer(rf"(?<![\w.]){re.escape(alias)}\.(\w+)", source)}
            targets = {name: t for name in uses if (t := self.resolve(f"{module}.{name}"))}
            if not targets:
                continue
            lines = source.splitlines(keepends=True)
            header = "".join(lines[: node.end_lineno])
            body = "".join(lines[node.end_lineno:])
            added = []
            for name, target in sorted(targets.items()):
                new_module, new_name = target.rsplit(".", 1)
                new_alias = next((a for a, (m, _) in bound.items() if m == new_module), None)
                if new_alias is None:
                    package, last = new_module.rsplit(".", 1)
                    new_alias = last
                    if _taken(source, last, bound):  # a local ``state = ...``: import it under a longer name
                        new_alias = f"{package.rsplit('.', 1)[-1]}_{last}"
                    added.append(f"from {package} import {last}\n" if new_alias == last
                                 else f"from {package} import {last} as {new_alias}\n")
                    bound[new_alias] = (new_module, node)
                body = re.sub(rf"(?<![\w.]){re.escape(alias)}\.{name}\b", f"{new_alias}.{new_name}", body)
                header = _replace_outside(header, node, alias, name, new_alias, new_name)
            indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
            source = header + "".join(indent + a for a in dict.fromkeys(added)) + body
            if not _uses(source, alias):
                source = _drop_binding(source, alias)
            return source
        return None


def _taken(source: str, name: str, bound: dict) -> bool:
    """Whether ``name`` is bound in ``source`` already (an import, an assignment, a def, a parameter)."""
    return name in bound or re.search(rf"(?<![\w.]){name}\s*(=[^=]|:|,|\))|\b(def|class|import|as)\s+{name}\b",
                                      source) is not None


def _replace_outside(header: str, node: ast.ImportFrom, alias: str, name: str, new_alias: str, new_name: str) -> str:
    """Uses of ``alias.name`` before the import that binds it (rare: a use in a docstring)."""
    lines = header.splitlines(keepends=True)
    before = "".join(lines[: node.lineno - 1])
    rest = "".join(lines[node.lineno - 1:])
    return re.sub(rf"(?<![\w.]){re.escape(alias)}\.{name}\b", f"{new_alias}.{new_name}", before) + rest


def _statement(indent: str, module: str, names: list[str]) -> str:
    line = f"{indent}from {module} import {', '.join(names)}\n"
    if len(line) <= WIDTH:
        return line
    inner = "".join(f"{indent}    {n},\n" for n in names)
    return f"{indent}from {module} import (\n{inner}{indent})\n"


def _from_imports(source: str) -> list[ast.ImportFrom]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0]


def _from_import_spans(source: str) -> list[tuple[int, int]]:
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return [(starts[n.lineno - 1], starts[n.end_lineno]) for n in _from_imports(source)]


def _module_aliases(source: str, old_modules: set[str]) -> dict[str, tuple[str, ast.ImportFrom]]:
    """Local name -> (dotted module, its import) for ``from package import module [as alias]``."""
    out = {}
    for node in _from_imports(source):
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            if full in old_modules or _is_module(full):
                out[alias.asname or alias.name] = (full, node)
    return out


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _uses(source: str, name: str) -> bool:
    """Whether the code of ``source`` reads ``name`` (not counting imports, strings or comments)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return True
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(tree))


def _drop_binding(source: str, alias: str) -> str:
    """Remove ``alias`` from the ``from ... import`` that binds it (the whole statement if alone)."""
    lines = source.splitlines(keepends=True)
    for node in sorted(_from_imports(source), key=lambda n: -n.lineno):
        names = [a for a in node.names if (a.asname or a.name) != alias]
        if len(names) == len(node.names):
            continue
        indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
        kept = [a.name if not a.asname else f"{a.name} as {a.asname}" for a in names]
        lines[node.lineno - 1 : node.end_lineno] = [_statement(indent, node.module, kept)] if kept else []
        break
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only list the files that would change")
    args = parser.parse_args(argv)
    rewriter = Rewriter(read_moves())
    changed = []
    for path in args.files:
        old = path.read_text(encoding="utf-8")
        new = rewriter.text(old, python=path.suffix == ".py")
        if new != old:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for path in changed:
        print(f"{'would rewrite' if args.check else 'rewrote'} {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
