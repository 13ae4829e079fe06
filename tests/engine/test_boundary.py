"""One engine boundary: outside pipelines/engine/, no product module imports duckdb (a new import
of duckdb anywhere else in the package fails this test)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipelines"


def _imports_duckdb(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "duckdb" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "duckdb":
            return True
    return False


def test_only_the_engine_imports_duckdb():
    offenders = sorted(
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
        if "engine" not in p.relative_to(PACKAGE).parts and _imports_duckdb(p)
    )
    assert offenders == []


def test_the_engine_does_import_it():
    assert _imports_duckdb(PACKAGE / "engine" / "duckdb_engine.py")
