"""The layers of the code, read from the import statements of every module (``ast``, no import).

Services and storage know nothing of HTTP, the terminal or the composition root;
storage knows nothing of the services; OpenID Connect does not reach into the API,
the CLI or the WSGI application; the web and the API do not reach into the CLI.
An import counts wherever it is written: at the top, inside a function, or under
``TYPE_CHECKING`` (a type-only import still ties the layers together).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

WEB_AND_TERMINAL_LIBRARIES = ("werkzeug", "click", "rich", "jinja2", "granian")
ADAPTERS_AND_ROOT = (
    "passport.web",
    "passport.api",
    "passport.pages",
    "passport.cli",
    "passport.app",
    "passport.wsgi",
    "passport.oidc",
    "passport.composition",
    "passport.metrics",
)


@dataclass(frozen=True)
class Rule:
    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]


RULES = [
    Rule(
        "services and storage use no web, terminal or server library",
        ("passport.services", "passport.storage"),
        WEB_AND_TERMINAL_LIBRARIES,
    ),
    Rule(
        "services and storage import no adapter, the composition root or metrics",
        ("passport.services", "passport.storage"),
        ADAPTERS_AND_ROOT,
    ),
    Rule("storage imports no service", ("passport.storage",), ("passport.services",)),
    Rule(
        "OpenID Connect imports neither the API, the CLI nor the WSGI application",
        ("passport.oidc",),
        ("passport.api", "passport.cli", "passport.app"),
    ),
    Rule(
        "the HTTP plumbing (scope, routing, binding, errors) imports no protocol, page, API "
        "or CLI module: they all build on it",
        ("passport.web",),
        ("passport.oidc", "passport.pages", "passport.api", "passport.cli", "passport.app"),
    ),
    Rule(
        "the web and the API import nothing of the CLI",
        ("passport.web", "passport.api"),
        ("passport.cli",),
    ),
]

# Imports that break a rule today, each being removed by the engineer who moves the code
# (delete an entry in the same commit as its import: test_no_stale_allowances fails on an
# entry that no longer occurs).  Never add to this list: fix the import instead.
KNOWN_VIOLATIONS_BEING_FIXED: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    file: str  # as src/passport/...
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}"


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, src: Path, modules: frozenset[str]) -> Iterable[Import]:
    """Every module ``path`` imports, by full dotted name (relative imports resolved;
    ``from passport import metrics`` is an import of ``passport.metrics``)."""
    name = module_name(path, src)
    file = f"src/{path.relative_to(src).as_posix()}"
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, file, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                imported = submodule if submodule in modules else target
                yield Import(name, imported, file, node.lineno)


def import_graph(src: Path) -> list[Import]:
    files = sorted((src / "passport").rglob("*.py"))
    modules = frozenset(module_name(f, src) for f in files)
    return [edge for f in files for edge in imports_of(f, src, modules)]


@cache
def product_graph() -> tuple[Import, ...]:
    return tuple(import_graph(SRC))


def within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(rule: Rule, graph: Iterable[Import]) -> list[Import]:
    return [
        edge
        for edge in graph
        if within(edge.importer, rule.importers) and within(edge.imported, rule.forbidden)
    ]


def test_the_graph_is_read() -> None:
    graph = product_graph()
    importers = {edge.importer for edge in graph}
    assert {"passport.services.accounts", "passport.storage.models", "passport.app"} <= importers
    assert any(e.imported == "passport.storage.models" for e in graph)


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_layer_rule(rule: Rule) -> None:
    found = [
        edge
        for edge in violations(rule, product_graph())
        if (edge.importer, edge.imported) not in KNOWN_VIOLATIONS_BEING_FIXED
    ]
    assert not found, f"{rule.name}; offending imports:\n" + "\n".join(map(str, found))


def test_no_stale_allowances() -> None:
    """Each allowance names an import that still breaks a rule: the list only shrinks."""
    broken = {(e.importer, e.imported) for rule in RULES for e in violations(rule, product_graph())}
    stale = sorted(KNOWN_VIOLATIONS_BEING_FIXED - broken)
    assert not stale, f"remove from KNOWN_VIOLATIONS_BEING_FIXED (no longer imported): {stale}"


def test_a_planted_violation_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    """The checker itself: each way of writing an import is seen."""
    services = tmp_path / "passport" / "services"
    storage = tmp_path / "passport" / "storage"
    for package in (tmp_path / "passport", services, storage, tmp_path / "passport" / "web"):
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
    (tmp_path / "passport" / "metrics.py").write_text("")
    (services / "bad.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from passport import metrics\n"
        "if TYPE_CHECKING:\n"
        "    from ..web import context\n"
        "def later() -> None:\n"
        "    import werkzeug.exceptions\n"
    )
    (storage / "worse.py").write_text("from passport.services.bad import later\n")
    graph = import_graph(tmp_path)
    reported = [str(e) for rule in RULES for e in violations(rule, graph)]
    assert reported == [
        "src/passport/services/bad.py:7: passport.services.bad imports werkzeug.exceptions",
        "src/passport/services/bad.py:3: passport.services.bad imports passport.metrics",
        "src/passport/services/bad.py:5: passport.services.bad imports passport.web",
        "src/passport/storage/worse.py:1: passport.storage.worse imports passport.services.bad",
    ]
