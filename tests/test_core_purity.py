"""``durakit.core`` is pure: stdlib + attrs only, and never a database driver.

Each check runs in a fresh interpreter, because in this one the test suite has long
since imported the stores (and their drivers).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import durakit.core

CORE_DIR = Path(durakit.core.__file__).parent
DB_DRIVERS = {"psycopg", "psycopg_pool", "psycopg2", "sqlite3", "_sqlite3", "sqlite_utils"}
ALLOWED_THIRD_PARTY = {"attrs", "attr", "durakit"}

# Prints the modules that importing the given code added to sys.modules, as JSON. The
# baseline is taken inside the child so that whatever `site` loads at start-up (.pth
# hooks of the virtualenv, for instance) is not blamed on durakit.
_PROBE = """
import json, sys
before = set(sys.modules)
{code}
print(json.dumps(sorted(set(sys.modules) - before)))
"""

# Imports the core *without* running durakit/__init__.py, which pulls in the API layer
# (and so cattrs): this is what the core itself needs. Every core module is imported,
# including ones that durakit.core's __init__ does not re-export (e.g. diagram).
_CORE_ONLY = """
import importlib, importlib.util, pkgutil, types
spec = importlib.util.find_spec("durakit")
parent = types.ModuleType("durakit")
parent.__path__ = list(spec.submodule_search_locations)
sys.modules["durakit"] = parent
import durakit.core
for info in pkgutil.iter_modules(durakit.core.__path__):
    importlib.import_module("durakit.core." + info.name)
"""


def imported_by(code: str, cwd: Path) -> set[str]:
    # Same interpreter and environment (PYTHONPATH included) as this test run; the cwd,
    # which `-c` puts on sys.path, is an empty directory.
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(code=code)],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        timeout=60,
    )
    modules: list[str] = json.loads(result.stdout)
    return set(modules)


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.fixture(scope="module")
def core_only(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return imported_by(_CORE_ONLY, tmp_path_factory.mktemp("probe"))


def test_the_probe_sees_drivers(tmp_path: Path) -> None:
    # Guard on the method: importing a driver in the child is visible to the probe.
    assert "sqlite3" in imported_by("import sqlite3", tmp_path)


def test_importing_durakit_core_loads_no_database_driver(tmp_path: Path) -> None:
    # The user-facing promise, through the real package (durakit/__init__.py included).
    loaded = imported_by("import durakit.core", tmp_path)
    assert "durakit.core" in loaded
    assert not top_level(loaded) & DB_DRIVERS


def test_the_core_alone_loads_no_database_driver(core_only: set[str]) -> None:
    assert "durakit.core.status" in core_only
    assert not top_level(core_only) & DB_DRIVERS


def test_the_core_imports_only_stdlib_and_attrs(core_only: set[str]) -> None:
    outside = top_level(core_only) - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY
    assert not outside, f"durakit.core imports non-stdlib packages: {sorted(outside)}"
    durakit_modules = {m for m in core_only if m.partition(".")[0] == "durakit"}
    assert all(m == "durakit" or m.startswith("durakit.core") for m in durakit_modules), (
        f"durakit.core imports the rest of durakit: {sorted(durakit_modules)}"
    )


def _imports_in(source: str) -> set[str]:
    """Top-level names of every import statement, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            names.add("durakit.core")  # relative: stays inside the package
    return names


@pytest.mark.parametrize("path", sorted(CORE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_core_module_imports_anything_else_even_lazily(path: Path) -> None:
    # The subprocess check sees only what runs at import time; an import inside a
    # function would slip past it until that function is called.
    allowed = (set(sys.stdlib_module_names) - DB_DRIVERS) | {"attrs", "attr"}
    for name in _imports_in(path.read_text(encoding="utf-8")):
        top = name.partition(".")[0]
        assert top in allowed or name.startswith("durakit.core"), f"{path.name} imports {name}"
