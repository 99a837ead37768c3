"""The first five minutes: what `make run` installs is all the code needs, and the
README's next steps work on the database it makes.

`make run` installs the project without its test extras; a module that imports a
package only the test extras bring (as ``requests`` once was) works in every test
and breaks on a new machine.  These tests read the code, not the environment.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from passport.config import load_settings
from passport.services import directory
from passport.services import permissions
from passport.storage.db import Database

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


def _passport(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The installed ``passport`` command, as a user types it: a new process, no terminal
    (``start_new_session``), so a password prompt reads standard input."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PASSPORT_")}
    return subprocess.run(
        [sys.executable, "-m", "passport", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        start_new_session=True,
        timeout=120,
    )


def test_readme_next_steps_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    """`passport db upgrade`, then `passport admin create root`: root holds Passport:admin."""
    url = f"sqlite:///{tmp_path / 'passport.sqlite3'}"
    upgraded = _passport("db", "upgrade", "--database-url", url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    password = "correct horse battery staple"
    created = _passport(
        "admin", "create", "root", "--database-url", url, cwd=tmp_path, stdin=f"{password}\n" * 2
    )
    assert created.returncode == 0, created.stdout + created.stderr
    assert "root is an administrator" in created.stdout
    assert "Traceback" not in created.stderr

    database = Database(load_settings(environ={}, overrides={"database_url": url}))
    try:
        with database.session() as db:
            root = directory.find_user(db, "root")
            assert root is not None
            assert permissions.granted(db, root.id, 1, "admin")
            assert "admin" in permissions.effective(db, root.id, 1)
    finally:
        database.dispose()
