"""The Spark engine: :class:`~pipelines.engine.base.Engine` over a SparkSession (local mode or a
cluster). The only module of the product that imports ``pyspark.sql`` besides
:mod:`pipelines.engine.spark_session` (how a session is started) and the Spark UDFs of linking.

Like every engine it takes statements in the rule dialect (DuckDB SQL, ``$name`` parameters) and
transpiles each with the custom sqlglot dialect of :mod:`pipelines.engine.spark_sqlglot`;
parameters are bound with Spark's named markers (``spark.sql(sql, args={...})``), never pasted.
Relations are session temp views. ``read_parquet([...])`` in a statement (the DuckDB dialect's
way of reading a list of Parquet files, e.g. a run's pinned lake snapshot) becomes a temp view
over ``spark.read.parquet(...)`` (schemas merged by name). The few DuckDB statements stage code
uses for session-scoped work tables map onto them: ``CREATE [OR REPLACE] [TEMP] TABLE x AS
SELECT`` and ``CREATE TABLE x (columns)`` materialise, ``INSERT INTO x SELECT`` materialises the
new rows as one more part of x, ``CREATE VIEW`` registers a view, ``DROP`` forgets, and
``BEGIN``/``COMMIT``/``ROLLBACK`` do nothing (temp views are private to the session, so nothing
half-done is seen).

Materialising writes Parquet into the engine's work folder and reads it back: the query plan of
every later statement starts from files (no lazily growing plan re-analysed by each statement,
which made linking on Spark take tens of minutes), Spark knows their size (broadcast joins of
small tables), and memory is bounded (files, not cached blocks).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.engine.base import Engine, Params, QueryError, Source
from pipelines.engine.dialects import SPARK
from pipelines.engine.spark_session import DEFAULT_MASTER, start_session


def spark_type_name(data_type: Any) -> str:
    """A Spark SQL type as the SQL type name the rule checks read (DuckDB's spelling):
    ``DECIMAL(18,2)``, ``DATE``, ``VARCHAR``, ``BIGINT``, ``X[]`` for arrays, ``STRUCT(...)``, ``MAP(...)``."""
    from pyspark.sql import types as T

    if isinstance(data_type, T.DecimalType):
        return f"DECIMAL({data_type.precision},{data_type.scale})"
    if isinstance(data_type, T.ArrayType):
        return f"{spark_type_name(data_type.elementType)}[]"
    if isinstance(data_type, T.StructType):
        return "STRUCT(" + ", ".join(f"{f.name} {spark_type_name(f.dataType)}" for f in data_type.fields) + ")"
    if isinstance(data_type, T.MapType):
        return f"MAP({spark_type_name(data_type.keyType)}, {spark_type_name(data_type.valueType)})"
    simple = {
        T.StringType: "VARCHAR", T.VarcharType: "VARCHAR", T.CharType: "VARCHAR", T.DateType: "DATE",
        T.TimestampType: "TIMESTAMP WITH TIME ZONE", T.TimestampNTZType: "TIMESTAMP", T.BooleanType: "BOOLEAN",
        T.ByteType: "TINYINT", T.ShortType: "SMALLINT", T.IntegerType: "INTEGER", T.LongType: "BIGINT",
        T.FloatType: "FLOAT", T.DoubleType: "DOUBLE", T.BinaryType: "BLOB", T.NullType: "NULL",
    }
    for cls, name in simple.items():
        if isinstance(data_type, cls):
            return name
    return data_type.simpleString().upper()


def _args(params: Params) -> dict[str, Any] | None:
    return dict(params) if params else None


@lru_cache(maxsize=4096)
def to_spark(sql: str) -> str:
    """One rule-dialect statement as Spark SQL (cached: stage code repeats its statements)."""
    try:
        return SPARK.from_rule_sql(sql)
    except sqlglot.errors.SqlglotError as exc:
        raise QueryError(f"the statement does not translate to Spark SQL: {exc}") from None


@lru_cache(maxsize=4096)
def _parse(sql: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError as exc:
        raise QueryError(f"cannot parse the statement: {exc}") from None


def _rule_sql(tree: exp.Expression) -> str:
    return tree.sql(dialect="duckdb")


class SparkEngine(Engine):
    """:class:`Engine` over one SparkSession.

    ``session``: an existing SparkSession (tests share one; :meth:`close` then leaves it running);
    otherwise one is started on ``master`` with ``session_options`` (see
    :func:`pipelines.engine.spark_session.session_config`) and stopped by :meth:`close`.
    """

    dialect = SPARK

    def __init__(self, master: str = DEFAULT_MASTER, *, session: Any = None, work_dir: Path | str | None = None,
                 **session_options: Any) -> None:
        self._owned = session is None
        self._spark = session if session is not None else start_session(master, **session_options)
        self._views: set[str] = set()
        self._parts: dict[str, list[Path]] = {}  # materialised relation -> its Parquet folders
        if work_dir is not None:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
        self._work = Path(tempfile.mkdtemp(prefix="spark-engine-", dir=work_dir)).absolute()

    @property
    def session(self):
        """The SparkSession (for Spark-only stage code such as the linking UDFs)."""
        return self._spark

    # ------------------------------------------------------------------ running SQL
    def frame(self, sql: str, params: Params = None):
        """The DataFrame of a rule-dialect query (lazy: analysed, not run)."""
        if "READ_PARQUET" in sql.upper():
            sql = self._parquet_views(sql)
        if "EXCLUDE" in sql.upper():
            sql = self._expand_exclude(sql)
        return self.spark_frame(to_spark(sql), params)

    def _parquet_views(self, sql: str) -> str:
        """Each ``read_parquet([paths], union_by_name = ...)`` of a statement becomes a temp view
        over those files (one per list of files, named by their digest)."""
        tree = _parse(sql).copy()
        for table in list(tree.find_all(exp.Table)):
            if not isinstance(table.this, exp.ReadParquet):
                continue
            args = table.this.expressions
            files = args[0].expressions if isinstance(args[0], exp.Array) else [args[0]]
            if not all(isinstance(f, exp.Literal) and f.is_string for f in files):
                raise QueryError("read_parquet on Spark needs a list of literal paths")
            paths = [f.this for f in files]
            name = "_parquet_" + hashlib.sha256("\0".join(paths).encode()).hexdigest()[:16]
            if name not in self._views:
                self.register(name, paths)
            alias = table.args.get("alias")
            table.replace(exp.Table(this=exp.to_identifier(name), alias=alias.copy() if alias else None))
        return tree.sql(dialect="duckdb")

    def _expand_exclude(self, sql: str) -> str:
        """``SELECT * EXCLUDE (c) FROM r``: Spark SQL has no EXCLUDE; the star becomes r's other
        columns, looked up in this session (the catalog is the engine's, not the dialect's)."""
        tree = _parse(sql).copy()
        for select in list(tree.find_all(exp.Select)):
            source = select.args.get("from_") or select.args.get("from")
            expanded = []
            for item in select.expressions:
                if not (isinstance(item, exp.Star) and item.args.get("except_")):
                    expanded.append(item)
                    continue
                if source is None or not isinstance(source.this, exp.Table):
                    raise QueryError("SELECT * EXCLUDE on Spark needs a single table in FROM")
                dropped = {c.name for c in item.args["except_"]}
                expanded += [exp.column(c) for c in self._spark.table(source.this.name).columns if c not in dropped]
            select.set("expressions", expanded)
        return tree.sql(dialect="duckdb")

    def spark_frame(self, spark_sql: str, params: Params = None):
        """The DataFrame of a query already in Spark SQL (lazy)."""
        from pyspark.errors import PySparkException

        if params:
            used = {m.lstrip(":") for m in _markers(spark_sql)}
            params = {k: v for k, v in params.items() if k in used}
        try:
            return self._spark.sql(spark_sql, args=_args(params))
        except PySparkException as exc:
            raise QueryError(_message(exc)) from None

    def query(self, sql: str, params: Params = None) -> pa.Table:
        from pyspark.errors import PySparkException

        frame = self.frame(sql, params)
        try:
            return frame.toArrow()
        except PySparkException as exc:
            raise QueryError(_message(exc)) from None

    def execute(self, sql: str, params: Params = None) -> None:
        from pyspark.errors import PySparkException

        tree = _parse(sql)
        if isinstance(tree, exp.Transaction) or isinstance(tree, (exp.Commit, exp.Rollback)):
            return
        if isinstance(tree, exp.Drop):
            self.drop(tree.this.name if isinstance(tree.this, exp.Table) else tree.find(exp.Table).name)
            return
        if isinstance(tree, exp.Create) and tree.args.get("kind", "").upper() in ("TABLE", "VIEW"):
            self._create(tree, params)
            return
        if isinstance(tree, exp.Insert):
            self._insert(tree, params)
            return
        frame = self.frame(sql, params)
        try:
            frame.collect()
        except PySparkException as exc:
            raise QueryError(_message(exc)) from None

    def _create(self, tree: exp.Create, params: Params) -> None:
        target = tree.this
        schema = target if isinstance(target, exp.Schema) else None
        name = (schema.this if schema else target).name
        query = tree.expression
        if tree.args["kind"].upper() == "VIEW":
            self.register_query(name, _rule_sql(query))
            return
        if query is None:  # CREATE TABLE x (columns): an empty typed relation
            columns = [c for c in schema.expressions if isinstance(c, exp.ColumnDef)]
            select = ", ".join(f"CAST(NULL AS {c.args['kind'].sql('duckdb')}) AS {c.this.sql('duckdb')}" for c in columns)
            self._register_empty(name, f"SELECT {select} WHERE false")
            return
        where = query.args.get("where") if isinstance(query, exp.Select) else None
        if schema is None and where is not None and where.this == exp.false():  # AS SELECT ... WHERE false
            self._register_empty(name, _rule_sql(query))
            return
        sql = _rule_sql(query)
        if schema is not None:  # CREATE TABLE x (columns) AS SELECT: the columns name the select's
            names = ", ".join((c.this if isinstance(c, exp.ColumnDef) else c).sql("duckdb") for c in schema.expressions)
            sql = f"SELECT * FROM ({sql}) AS _q({names})"
        self.materialize(name, sql, params)

    def _insert(self, tree: exp.Insert, params: Params) -> None:
        target = tree.this
        name = (target.this if isinstance(target, exp.Schema) else target).name
        existing = self.frame(f"SELECT * FROM {self.dialect.quote_identifier(name)}")
        new = self.frame(_rule_sql(tree.expression), params)
        if isinstance(target, exp.Schema):
            new = new.toDF(*[c.name for c in target.expressions])
            new = new.select(*[c for c in existing.columns if c in new.columns])
        by_name = bool(tree.args.get("by_name"))
        if not by_name and not isinstance(target, exp.Schema):
            new = new.toDF(*existing.columns)
        new = new.select(*[new[c].cast(existing.schema[c].dataType).alias(c) for c in existing.columns if c in new.columns])
        # The new rows become one more Parquet part of the relation (its plan stays a file scan).
        parts = self._parts.get(name, [])
        if not parts:  # the relation so far (e.g. CREATE TABLE x (columns)) is its first part
            parts = [self._write_part(existing)]
        parts.append(self._write_part(new))
        self._register_parts(name, parts, existing.schema)

    def _register_empty(self, name: str, sql: str) -> None:
        """An empty typed relation, as a lazy view (nothing to compute)."""
        self.register_frame(name, self.frame(sql))

    def batches(self, sql: str, params: Params = None, batch_rows: int = 1_000_000) -> pa.RecordBatchReader:
        table = self.query(sql, params)
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch_rows))

    def column_types(self, sql: str, params: Params = None) -> dict[str, str]:
        return {f.name: spark_type_name(f.dataType) for f in self.frame(sql, params).schema.fields}

    # ------------------------------------------------------------------ relations
    def register_frame(self, name: str, frame: Any) -> None:
        """Make a DataFrame queryable as ``name`` (replacing a relation of that name)."""
        self.drop(name)
        frame.createOrReplaceTempView(name)
        self._views.add(name)

    def register(self, name: str, source: Source, *, union_by_name: bool = True) -> None:
        if isinstance(source, pa.Table):
            frame = self._spark.createDataFrame(source) if source.num_columns else self._spark.range(0).select()
        else:
            paths = [str(Path(p).absolute()) for p in source]
            if not paths:
                raise QueryError(f"relation {name}: no Parquet files to register")
            frame = self._spark.read.schema(_parquet_schema(paths, union_by_name)).parquet(*paths)
        self.register_frame(name, frame)

    def register_query(self, name: str, sql: str) -> None:
        self.register_frame(name, self.frame(sql))

    def materialize(self, name: str, sql: str, params: Params = None) -> int:
        return self.materialize_frame(name, self.frame(sql, params))

    def materialize_frame(self, name: str, frame: Any) -> int:
        """Compute ``frame`` once into Parquet in the work folder and register the files as
        ``name`` (replacing it); return its rows."""
        part = self._write_part(frame)
        self._register_parts(name, [part], frame.schema)
        return sum(pq.ParquetFile(f).metadata.num_rows for f in part.glob("*.parquet"))

    def _write_part(self, frame: Any) -> Path:
        from pyspark.errors import PySparkException

        part = self._work / uuid.uuid4().hex
        try:
            frame.write.parquet(str(part))
        except PySparkException as exc:
            shutil.rmtree(part, ignore_errors=True)
            raise QueryError(_message(exc)) from None
        return part

    def _register_parts(self, name: str, parts: list[Path], schema: Any) -> None:
        for part in self._parts.pop(name, []):
            if part not in parts:
                shutil.rmtree(part, ignore_errors=True)
        self.register_frame(name, self._spark.read.schema(schema).parquet(*[str(p) for p in parts]))
        self._parts[name] = parts

    def map_batches(self, name: str, sql: str, fn, schema: pa.Schema, params: Params = None,
                    batch_rows: int = 1_000_000) -> int:
        from pyspark.sql.pandas.types import from_arrow_schema

        frame = self.frame(sql, params).mapInArrow(_BatchMapper(fn, schema), from_arrow_schema(schema))
        return self.materialize_frame(name, frame)

    def drop(self, name: str) -> None:
        for part in self._parts.pop(name, []):
            shutil.rmtree(part, ignore_errors=True)
        self._spark.catalog.dropTempView(name)
        self._views.discard(name)

    def relations(self) -> set[str]:
        return {t.name for t in self._spark.catalog.listTables() if t.isTemporary} | set(self._views)

    # ------------------------------------------------------------------ output
    def write_parquet(self, sql: str, path: Path, params: Params = None, *, compression: str = "zstd") -> int:
        """One Parquet file, atomically: Spark writes one part file into a hidden folder beside
        ``path`` (one partition), which is then renamed to ``path``."""
        from pyspark.errors import PySparkException

        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.spark")
        try:
            frame = self.frame(sql, params).coalesce(1)
            try:
                frame.write.option("compression", compression).parquet(str(tmp))
            except PySparkException as exc:
                raise QueryError(_message(exc), file=path) from None
            parts = sorted(tmp.glob("part-*.parquet"))
            if len(parts) != 1:
                raise QueryError(f"Spark wrote {len(parts)} part files for one Parquet file", file=path)
            os.replace(parts[0], path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return pq.ParquetFile(path).metadata.num_rows

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._spark is None:
            return
        for name in list(self._views):
            self.drop(name)
        shutil.rmtree(self._work, ignore_errors=True)
        if self._owned:
            self._spark.stop()
        self._spark = None


class _BatchMapper:
    """What ``mapInArrow`` runs in a Python worker: ``fn`` over each batch, cast to ``schema``."""

    def __init__(self, fn, schema: pa.Schema) -> None:
        self.fn, self.schema = fn, schema

    def __call__(self, batches):
        for batch in batches:
            out = self.fn(batch)
            if out.num_rows:
                yield out.cast(self.schema) if out.schema != self.schema else out


def _parquet_schema(paths: list[str], union_by_name: bool):
    """The Spark schema of a list of Parquet files, read from their footers in the driver (Spark's
    own ``mergeSchema`` runs a job per relation): columns matched by name, a column missing from
    a file read as NULL. Without ``union_by_name``, the first file's schema."""
    from pyspark.sql.pandas.types import from_arrow_schema

    try:
        schemas = [pq.read_schema(p) for p in (paths if union_by_name else paths[:1])]
        merged = pa.unify_schemas(schemas) if len(schemas) > 1 else schemas[0]
    except (OSError, pa.ArrowInvalid) as exc:
        raise QueryError(f"cannot read the Parquet schema: {exc}") from None
    return from_arrow_schema(merged)


@lru_cache(maxsize=4096)
def _markers(spark_sql: str) -> frozenset[str]:
    """The ``:name`` parameter markers of a Spark statement (only those are bound, as on DuckDB)."""
    tree = sqlglot.parse_one(spark_sql, read="fraudwatch_spark")
    return frozenset(p.name for p in tree.find_all(exp.Placeholder) if p.name)


def _message(exc: Exception) -> str:
    """The first lines of a Spark error (the JVM stack trace is left out)."""
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if not line.startswith(("\tat ", "JVM stacktrace"))]
    return "\n".join(lines[:6])
