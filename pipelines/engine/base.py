"""The engine interface: every SQL statement fraudwatch runs goes through an :class:`Engine`.

Modelled on Splink's ``DatabaseAPI`` + ``dialects.py``: the *engine* executes (connections,
registration, Parquet IO, errors) and its *dialect* (:mod:`pipelines.engine.dialects`) holds every
difference in the SQL text itself. Stage code never imports a database driver; it asks an engine.

How to add a backend (e.g. Spark)
---------------------------------
1. Write a dialect in ``dialects.py``: subclass :class:`~pipelines.engine.dialects.Dialect`, set
   ``name`` (the engine name users pass, ``--engine spark``) and ``sqlglot_dialect``, and override
   every helper whose SQL differs (money/month/date/list/JSON text, how a list of Parquet files is
   read, the parameter marker). Rules stay in DuckDB dialect; ``dialect.from_rule_sql`` transpiles
   them with sqlglot.
2. Write ``<name>_engine.py`` with a subclass of :class:`Engine` implementing the abstract methods
   below. Keep it a thin adapter: translate the backend's exceptions into :class:`QueryError`,
   return results as ``pyarrow.Table``, make :meth:`write_parquet` atomic (write to a temporary
   name, then rename), and make :meth:`register` replace an existing relation of that name.
3. Add it to ``ENGINES`` in ``pipelines/engine/__init__.py`` (imported lazily, so a missing
   optional dependency only fails when that engine is chosen).
4. Run ``tests/engine/test_engine_contract.py`` against it: the contract tests are parametrised
   over ``ENGINES`` and say exactly what an engine must do.

Parameters are always bound, never pasted into SQL: statements use ``$name`` markers (the rule
dialect); an engine whose backend wants another marker converts them via its dialect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pyarrow as pa

from pipelines.engine.dialects import Dialect
from pipelines.errors import FraudwatchError

Params = Mapping[str, Any] | None
Source = pa.Table | Sequence[Path | str]
BatchFn = Callable[[pa.RecordBatch], pa.RecordBatch]


class QueryError(FraudwatchError):
    """The engine refused or failed a statement (bad SQL, missing relation, out of memory...)."""


class QueryLimitExceeded(QueryError):
    """A query ran past its time limit or memory cap (``which`` is 'time', 'memory' or 'spill') and was stopped."""

    def __init__(self, which: str, message: str) -> None:
        super().__init__(message)
        self.which = which


class Engine(ABC):
    """One session of one backend. Use as a context manager; :meth:`close` releases everything."""

    dialect: Dialect

    # ------------------------------------------------------------------ running SQL
    @abstractmethod
    def query(self, sql: str, params: Params = None) -> pa.Table:
        """Run one SELECT (``$name`` parameters bound from ``params``); return its rows as Arrow."""

    def query_limited(self, sql: str, params: Params = None, *, seconds: float, memory_bytes: int,
                      spill_bytes: int) -> pa.Table:
        """:meth:`query` stopped after ``seconds``, or when it needs more than ``memory_bytes`` of memory
        (the result included) or ``spill_bytes`` of disk: raises :class:`QueryLimitExceeded`.
        Engines that cannot bound a query run it unbounded."""
        return self.query(sql, params)

    @abstractmethod
    def execute(self, sql: str, params: Params = None) -> None:
        """Run one statement for its effect (DDL, INSERT, SET...)."""

    @abstractmethod
    def batches(self, sql: str, params: Params = None, batch_rows: int = 1_000_000) -> pa.RecordBatchReader:
        """Stream a query's rows in Arrow batches of at most ``batch_rows`` (bounded memory)."""

    @abstractmethod
    def column_types(self, sql: str, params: Params = None) -> dict[str, str]:
        """Output column -> SQL type name of a query, by binding it (without running it)."""

    def scalar(self, sql: str, params: Params = None) -> Any:
        """The first column of the first row of a query (None when it returns no rows)."""
        table = self.query(sql, params)
        return table.column(0)[0].as_py() if table.num_rows else None

    # ------------------------------------------------------------------ relations
    @abstractmethod
    def register(self, name: str, source: Source, *, union_by_name: bool = True) -> None:
        """Make ``source`` queryable as ``name`` (replacing a relation of that name): an Arrow
        table, or a list of Parquet files read as one relation (columns matched by name; a file
        lacking a column gives NULLs). Nothing is copied for Parquet: the files are read at query time."""

    @abstractmethod
    def register_query(self, name: str, sql: str) -> None:
        """A named view over ``sql`` (no parameters), replacing a relation of that name."""

    @abstractmethod
    def materialize(self, name: str, sql: str, params: Params = None) -> int:
        """Compute ``sql`` once into a session-scoped relation ``name`` (replacing it); return its rows.
        For intermediate results read more than once."""

    @abstractmethod
    def map_batches(self, name: str, sql: str, fn: "BatchFn", schema: pa.Schema, params: Params = None,
                    batch_rows: int = 1_000_000) -> int:
        """Apply the Python function ``fn`` to a query's rows, Arrow batch by Arrow batch (each
        output batch has ``schema``), and materialise what it returns as ``name``; return its rows.
        Where the work runs is the engine's business: DuckDB streams the batches through this
        process, Spark runs ``fn`` in its Python workers next to the data (``mapInArrow``), so
        ``fn`` must be a picklable module-level function (or a ``functools.partial`` of one).
        ``batch_rows`` bounds a batch where the engine lets the caller choose (DuckDB)."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Forget the relation ``name`` (view, table or registered source); no error if absent."""

    @abstractmethod
    def relations(self) -> set[str]:
        """Names of every relation a query can read in this session."""

    # ------------------------------------------------------------------ output
    @abstractmethod
    def write_parquet(self, sql: str, path: Path, params: Params = None, *, compression: str = "zstd") -> int:
        """Write a query's result to one Parquet file atomically (temporary name, then rename);
        return the rows written. A failure leaves no file at ``path``."""

    # ------------------------------------------------------------------ lifetime
    @abstractmethod
    def close(self) -> None:
        """Release the session (idempotent)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
