"""The DuckDB engine: the only module of the product that imports ``duckdb``.

A session is an in-memory database by default (relations over Parquet are views: nothing is
copied), or a database file when ``database`` is given. ``memory_limit``/``temp_directory``/
``threads`` are DuckDB settings (spilling to ``temp_directory`` when over the limit).
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from pathlib import Path
from typing import Sequence

import duckdb
import pyarrow as pa

from pipelines.engine.base import Engine, Params, QueryError, QueryLimitExceeded, Source
from pipelines.engine.dialects import DUCKDB

DUCKDB_VERSION = duckdb.__version__


def session_config(memory_limit: str | None = None, temp_directory: Path | None = None,
                   threads: int | None = None) -> dict[str, str | int]:
    """DuckDB connection settings, built in this one place (the engine's sessions and the legacy
    warehouse file use it): ``memory_limit`` like '8GB', ``temp_directory`` where DuckDB spills
    when over it (created), ``threads``."""
    config: dict[str, str | int] = {}
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if temp_directory is not None:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    if threads is not None:
        config["threads"] = threads
    return config


class DuckDBEngine(Engine):
    """:class:`Engine` over one DuckDB connection."""

    dialect = DUCKDB

    def __init__(self, database: Path | str | None = None, *, memory_limit: str | None = None,
                 temp_directory: Path | None = None, threads: int | None = None, read_only: bool = False) -> None:
        config = session_config(memory_limit, temp_directory, threads)
        target = ":memory:" if database is None else str(database)
        if database is not None and not read_only:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(target, read_only=read_only, config=config)
        except duckdb.Error as exc:
            raise QueryError(f"cannot open the database: {exc}", file=database,
                             hint="check the settings (memory_limit like '8GB') and that no other process writes the file") from None
        self._arrow: dict[str, pa.Table] = {}
        self._owned = True

    @classmethod
    def wrap(cls, connection: duckdb.DuckDBPyConnection) -> "DuckDBEngine":
        """An engine over an existing connection, which it does not close."""
        if not isinstance(connection, duckdb.DuckDBPyConnection):
            raise TypeError(f"expected an Engine or a DuckDB connection, got {type(connection).__name__}")
        engine = cls.__new__(cls)
        engine._con, engine._arrow, engine._owned = connection, {}, False
        return engine

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The raw connection, for tests and tools outside the product (never for stage code)."""
        return self._con

    def _run(self, sql: str, params: Params):
        try:
            return self._con.execute(sql, dict(params) if params else None)
        except duckdb.Error as exc:
            raise QueryError(_message(exc)) from None

    def query(self, sql: str, params: Params = None) -> pa.Table:
        try:
            relation = self._con.sql(sql, params=dict(params) if params else None)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error as exc:
            raise QueryError(_message(exc)) from None

    def query_limited(self, sql: str, params: Params = None, *, seconds: float, memory_bytes: int,
                      spill_bytes: int) -> pa.Table:
        """DuckDB's memory_limit and max_temp_directory_size for this query (never above the session's
        memory_limit), a timer that interrupts it, and its Arrow result held to the same memory cap."""
        current = self._con.execute("SELECT current_setting('memory_limit'), current_setting('max_temp_directory_size')").fetchone()
        memory = min(memory_bytes, _bytes(current[0]))
        timer = threading.Timer(seconds, self._con.interrupt)
        timer.daemon = True
        try:
            self._con.execute(f"SET memory_limit = '{memory}b'")
            self._con.execute(f"SET max_temp_directory_size = '{spill_bytes}b'")
            timer.start()
            reader = self._con.sql(sql, params=dict(params) if params else None).to_arrow_reader(64 * 1024)
            batches, held = [], 0
            for batch in reader:
                held += batch.nbytes
                if held > memory:
                    raise QueryLimitExceeded("memory", f"its result alone exceeds {memory} bytes")
                batches.append(batch)
            return pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException:
            raise QueryLimitExceeded("time", f"stopped after {seconds:g} s") from None
        except duckdb.OutOfMemoryException as exc:
            raise QueryLimitExceeded("memory", _message(exc)) from None
        except duckdb.Error as exc:
            if "max_temp_directory_size" in str(exc):
                raise QueryLimitExceeded("spill", _message(exc)) from None
            raise QueryError(_message(exc)) from None
        finally:
            timer.cancel()
            for name, value in zip(("memory_limit", "max_temp_directory_size"), current):
                try:
                    self._con.execute(f"SET {name} = '{value}'")
                except duckdb.Error:  # pragma: no cover - an interrupted connection may refuse once
                    pass

    def execute(self, sql: str, params: Params = None) -> None:
        self._run(sql, params)

    def batches(self, sql: str, params: Params = None, batch_rows: int = 1_000_000) -> pa.RecordBatchReader:
        try:
            return self._con.sql(sql, params=dict(params) if params else None).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise QueryError(_message(exc)) from None

    def column_types(self, sql: str, params: Params = None) -> dict[str, str]:
        return {r[0]: r[1] for r in self._run(f"DESCRIBE {sql}", params).fetchall()}

    def register(self, name: str, source: Source, *, union_by_name: bool = True) -> None:
        self.drop(name)
        if isinstance(source, pa.Table):
            self._arrow[name] = source
            self._con.register(name, source)
            return
        paths = [Path(p) for p in source]
        if not paths:
            raise QueryError(f"relation {name}: no Parquet files to register")
        self.register_query(name, f"SELECT * FROM {self.dialect.read_parquet(paths, union_by_name)}")

    def register_query(self, name: str, sql: str) -> None:
        self.drop(name)
        self._run(f"CREATE TEMP VIEW {self.dialect.quote_identifier(name)} AS {sql}", None)

    def materialize(self, name: str, sql: str, params: Params = None) -> int:
        self.drop(name)
        self._run(f"CREATE TEMP TABLE {self.dialect.quote_identifier(name)} AS {sql}", params)
        return self.scalar(f"SELECT count(*) FROM {self.dialect.quote_identifier(name)}")

    def map_batches(self, name: str, sql: str, fn, schema: pa.Schema, params: Params = None,
                    batch_rows: int = 1_000_000) -> int:
        out = [fn(batch) for batch in self.batches(sql, params, batch_rows=batch_rows)]
        parts = [b.cast(schema) if b.schema != schema else b for b in out if b.num_rows]
        table = pa.Table.from_batches(parts, schema=schema)
        arrow = f"_arrow_{uuid.uuid4().hex[:8]}"
        self.register(arrow, table)
        try:
            return self.materialize(name, f"SELECT * FROM {self.dialect.quote_identifier(arrow)}")
        finally:
            self.drop(arrow)

    def drop(self, name: str) -> None:
        if name in self._arrow:
            self._con.unregister(name)
            del self._arrow[name]
        kinds = dict(self._con.execute(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_name = ? "
            "AND table_catalog IN ('temp', current_database())", [name]).fetchall())
        q = self.dialect.quote_identifier(name)
        if kinds.get(name) == "VIEW":
            self._con.execute(f"DROP VIEW IF EXISTS {q}")
        elif name in kinds:
            self._con.execute(f"DROP TABLE IF EXISTS {q}")

    def relations(self) -> set[str]:
        rows = self._con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog IN ('temp', current_database()) AND table_schema = 'main'").fetchall()
        return {r[0] for r in rows} | set(self._arrow)

    def write_parquet(self, sql: str, path: Path, params: Params = None, *, compression: str = "zstd") -> int:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            target = self.dialect.literal(str(tmp))
            rows = self._run(f"COPY ({sql}) TO {target} (FORMAT parquet, COMPRESSION {compression})", params).fetchall()
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        if self._con is not None:
            if self._owned:
                self._con.close()
            self._con = None  # type: ignore[assignment]


def _message(exc: Exception) -> str:
    return str(exc).strip()


_UNITS = {"B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4, "KB": 1000, "MB": 1000**2,
          "GB": 1000**3, "TB": 1000**4}


def _bytes(shown: str) -> int:
    """DuckDB's shown size ('18.8 GiB') as bytes; unbounded for anything else ('90% of available disk space')."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", shown or "")
    if not match or match.group(2).upper() not in _UNITS:
        return 1 << 62
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
