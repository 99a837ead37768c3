"""The first five minutes: what `make run` installs is all the code needs.

`make run` installs the project without its test extras; a module that imports a
package only the test extras bring (as ``requests`` once was) works in every test
and breaks on a new machine.  These tests read the code, not the environment.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "passport"


def _normalise(name: str) -> str:
    """A distribution name in PEP 503's normal form (``Jinja2`` -> ``jinja2``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_distributions() -> set[str]:
    """The distributions `pip install .` brings: ``[project.dependencies]`` of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        assert match, requirement
        names.add(_normalise(match.group(0)))
    return names


def _is_type_checking_guard(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): its imports never run."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_top_level_names(path: Path) -> set[str]:
    """Every absolute import's first component, wherever it stands in the module (a
    function-level import runs at run time too), except under ``if TYPE_CHECKING:``."""
    names: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text(), filename=str(path))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        if _is_type_checking_guard(node):
            assert isinstance(node, ast.If)
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))
    return names


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    declared = _runtime_distributions()
    providers = packages_distributions()
    missing: list[str] = []
    modules = sorted(SOURCE.rglob("*.py"))
    assert len(modules) > 20, "the walk found Passport's modules"
    for module in modules:
        for name in sorted(_imported_top_level_names(module)):
            if name == "passport" or name in sys.stdlib_module_names:
                continue
            distributions = {_normalise(d) for d in providers.get(name, [])}
            if not distributions & declared:
                where = module.relative_to(ROOT)
                missing.append(f"{where}: {name} (from {sorted(distributions) or 'nothing'})")
    assert missing == [], "imported but not in [project.dependencies]: " + "; ".join(missing)
