"""The engine boundary: all SQL goes through an :class:`Engine`; engine differences live in its
:class:`~pipelines.engine.dialects.Dialect`. See :mod:`pipelines.engine.base` for how to add one.

``connect("duckdb", ...)`` opens a session of the named engine (default: DuckDB, in memory).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pipelines.engine.base import Engine, QueryError
from pipelines.engine.dialects import DUCKDB, RULE_DIALECT, SPARK, Dialect, dialect_for

# engine name -> "module:class", imported on first use (an optional backend's dependencies are
# needed only when it is chosen)
ENGINES: dict[str, str] = {
    "duckdb": "pipelines.engine.duckdb_engine:DuckDBEngine",
    "spark": "pipelines.engine.spark_engine:SparkEngine",
}


def as_engine(session: Any) -> Engine:
    """``session`` as an engine: an :class:`Engine` as is, a raw DuckDB connection (tests,
    notebooks, tools) wrapped without taking ownership (closing the wrapper leaves it open)."""
    if isinstance(session, Engine):
        return session
    from pipelines.engine.duckdb_engine import DuckDBEngine

    return DuckDBEngine.wrap(session)


def connect(engine: str = "duckdb", **options: Any) -> Engine:
    """A new session of ``engine`` with backend ``options`` (e.g. ``memory_limit='8GB'``)."""
    try:
        module, cls = ENGINES[engine].split(":")
    except KeyError:
        raise QueryError(f"unknown engine {engine!r}", hint=f"known engines: {', '.join(sorted(ENGINES))}") from None
    return getattr(import_module(module), cls)(**options)


__all__ = ["Engine", "QueryError", "Dialect", "DUCKDB", "SPARK", "RULE_DIALECT", "ENGINES", "as_engine", "connect", "dialect_for"]
