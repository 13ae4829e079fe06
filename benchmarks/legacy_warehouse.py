"""The previous version's copy-in DuckDB warehouse, kept as a tool for the linking benchmarks and
tests that want the extract tables in one DuckDB file (runs no longer write it: they read the
Parquet lake, pipelines/lake.py). One table per extract (docs/architecture.md, "Warehouse schema"),
loaded set-based from staged Parquet, plus the bookkeeping tables ``_loaded_files`` and
``_quarantine`` and the views in ``warehouse_views.sql``.

The warehouse mirrors the landing folder. A file is identified by (extract, source_file, sha256):
an unchanged file is skipped, a changed file replaces its rows, and :func:`sync_extracts` removes
the rows of files no longer in the landing folder (and drops the table of an extract with no
files left, so rules see it as absent).

Unique columns (``unique: true``): the first row with a value, ordered by (source_file,
source_row) over all files of the extract, is kept; later ones go to ``_quarantine`` as
``duplicate_id``. So that the outcome never depends on load history, a change that could alter an
earlier verdict (a new file sorting before a file it duplicates, or any change while duplicates
across files exist) reloads the whole extract from the ingest result, which must therefore cover
every landing file of the extract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipelines.contracts import Contract
from pipelines.errors import RunError
from pipelines.ingest import IngestResult
from pipelines.lake import table_columns, view_blocks  # the extract schema and the views file's blocks, defined in lake


_BOOKKEEPING_DDL = """
CREATE TABLE IF NOT EXISTS _loaded_files (
    extract VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    size_bytes BIGINT,
    sha256 VARCHAR NOT NULL,
    rows_read BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    loaded_at TIMESTAMP WITH TIME ZONE DEFAULT current_timestamp,
    PRIMARY KEY (extract, source_file)
);
CREATE TABLE IF NOT EXISTS _quarantine (
    extract VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL,
    source_row BIGINT,
    reason VARCHAR NOT NULL,
    raw_json VARCHAR
);
"""

@dataclass
class LoadResult:
    """What :func:`load_extract` did."""

    extract: str
    files_loaded: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_quarantined: int = 0  # quarantined by ingest, for the files loaded now
    duplicates: int = 0  # rows quarantined as duplicate_id
    rebuilt: bool = False  # the whole extract was reloaded


def quote(identifier: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + identifier.replace('"', '""') + '"'


def connect(
    path: Path,
    memory_limit: str | None = None,
    temp_directory: Path | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (or create) the warehouse file and make sure the bookkeeping tables exist.

    ``memory_limit`` like ``'8GB'``; ``temp_directory`` is where DuckDB spills when over it.
    """
    from pipelines.engine.duckdb_engine import session_config

    config = session_config(memory_limit, temp_directory, threads)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        Path(path).unlink()  # never a database: the leftover of a creation that failed (disk full)
    try:
        con = duckdb.connect(str(path), config=config)
    except duckdb.Error as exc:
        from pipelines.guards.oserrors import os_failure

        if os_failure(exc) is not None:
            raise os_failure(exc) from None
        raise RunError(f"cannot open the warehouse: {exc}", file=path,
                       hint="check the settings (memory_limit like '8GB') and that no other process holds the file") from None
    con.execute(_BOOKKEEPING_DDL)
    return con


def relation_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Names of the tables and views in the connection's current schema."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def _relations(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()
    return {name: kind for name, kind in rows}


def _existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows}


def _ensure_table(con: duckdb.DuckDBPyConnection, contract: Contract, staged: list[Path]) -> None:
    columns = table_columns(contract)
    body = ", ".join(f"{quote(name)} {kind}" for name, kind in columns.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {quote(contract.extract)} ({body})")
    have = _existing_columns(con, contract.extract)
    for path in staged:
        for name in pl.scan_parquet(path).collect_schema():
            if name not in have:
                con.execute(f"ALTER TABLE {quote(contract.extract)} ADD COLUMN {quote(name)} VARCHAR")
                have.add(name)


def _forget(con: duckdb.DuckDBPyConnection, extract: str, files: list[str] | None) -> None:
    """Delete the rows, quarantine and registry entries of some files (all when ``files`` is None)."""
    has_table = extract in _relations(con)
    if files is None:
        if has_table:
            con.execute(f"DELETE FROM {quote(extract)}")
        con.execute("DELETE FROM _quarantine WHERE extract = ?", [extract])
        con.execute("DELETE FROM _loaded_files WHERE extract = ?", [extract])
        return
    if not files:
        return
    if has_table:
        con.execute(f"DELETE FROM {quote(extract)} WHERE _source_file IN (SELECT unnest(?))", [files])
    con.execute("DELETE FROM _quarantine WHERE extract = ? AND source_file IN (SELECT unnest(?))", [extract, files])
    con.execute("DELETE FROM _loaded_files WHERE extract = ? AND source_file IN (SELECT unnest(?))", [extract, files])


def _has_cross_file_duplicates(con: duckdb.DuckDBPyConnection, extract: str, besides: list[str]) -> bool:
    return con.execute(
        "SELECT count(*) FROM _quarantine WHERE extract = ? AND reason LIKE 'duplicate_id:%' "
        "AND source_file NOT IN (SELECT unnest(?))",
        [extract, besides],
    ).fetchall()[0][0] > 0


def _parquet_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _find_duplicates(con: duckdb.DuckDBPyConnection, contract: Contract, new_relation: str) -> int:
    """Fill temp table ``_losers`` with the new rows that repeat a unique value of an earlier row
    (ordered by source_file, source_row); return how many already loaded rows a new row now
    precedes (those verdicts change, so the caller rebuilds)."""
    table = quote(contract.extract)
    con.execute("CREATE OR REPLACE TEMP TABLE _losers (_source_file VARCHAR, _source_row BIGINT, reason VARCHAR)")
    demoted = 0
    for col in (c.name for c in contract.columns if c.unique):
        k = quote(col)
        # Only values repeated within the new rows or already in the table need ranking.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _ranked AS
            WITH dup_hashes AS (
                -- grouping 64-bit hashes is cheaper than grouping the text; a collision only adds a candidate
                SELECT hash({k}) AS h FROM {new_relation} WHERE {k} IS NOT NULL GROUP BY 1 HAVING count(*) > 1
            ), dup_keys AS (
                SELECT {k} AS k FROM {new_relation}
                WHERE {k} IS NOT NULL AND hash({k}) IN (SELECT h FROM dup_hashes)
                GROUP BY {k} HAVING count(*) > 1
                UNION
                SELECT DISTINCT n.{k} FROM {new_relation} n SEMI JOIN {table} t ON t.{k} = n.{k}
            ), candidates AS (
                SELECT {k} AS k, _source_file, _source_row, true AS is_new
                FROM {new_relation} WHERE {k} IN (SELECT k FROM dup_keys)
                UNION ALL
                SELECT {k}, _source_file, _source_row, false FROM {table} WHERE {k} IN (SELECT k FROM dup_keys)
            )
            SELECT *,
                row_number() OVER w AS rn,
                first_value(_source_file) OVER w AS first_file,
                first_value(_source_row) OVER w AS first_row
            FROM candidates
            WINDOW w AS (PARTITION BY k ORDER BY _source_file, _source_row)
        """)
        demoted += con.execute("SELECT count(*) FROM _ranked WHERE rn > 1 AND NOT is_new").fetchall()[0][0]
        reason = f"'duplicate_id: {col}=''' || k || ''' (first at ' || first_file || ' row ' || first_row || ')'"
        con.execute(f"INSERT INTO _losers SELECT _source_file, _source_row, {reason} FROM _ranked WHERE rn > 1 AND is_new")
    con.execute("DROP TABLE IF EXISTS _ranked")
    return demoted


def _schema_matches(con: duckdb.DuckDBPyConnection, contract: Contract) -> bool:
    """False when the extract's table exists with columns or types the contract no longer has."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?",
        [contract.extract],
    ).fetchall()
    existing = dict(rows)
    return not existing or all(existing.get(name) == kind for name, kind in table_columns(contract).items())


def _new_rows_view(con: duckdb.DuckDBPyConnection, files: list) -> str:
    con.execute("CREATE OR REPLACE TEMP VIEW _new_rows AS SELECT * FROM read_parquet("
                f"{_parquet_list([f.staged_path for f in files])}, union_by_name = true)")
    return "_new_rows"


def load_extract(con: duckdb.DuckDBPyConnection, contract: Contract, result: IngestResult) -> LoadResult:
    """Load an extract's staged Parquet into its table, idempotently (see the module docstring).

    Ingest-quarantined rows and duplicate rows go to ``_quarantine``; every loaded file is recorded
    in ``_loaded_files``. All in one transaction: a failure leaves the warehouse as it was. A table
    built for an older version of the contract (other columns or types) is rebuilt.
    """
    extract = contract.extract
    outcome = LoadResult(extract)
    stale_schema = not _schema_matches(con, contract)
    loaded = {} if stale_schema else dict(con.execute(
        "SELECT source_file, sha256 FROM _loaded_files WHERE extract = ?", [extract]).fetchall())
    todo = [f for f in result.files if loaded.get(f.source_file) != f.sha256]
    outcome.files_skipped = [f.source_file for f in result.files if f not in todo]
    if not todo:
        return outcome
    has_unique = any(c.unique for c in contract.columns)
    new_rows = None
    con.execute("BEGIN TRANSACTION")
    try:
        rebuild = stale_schema or (has_unique and _has_cross_file_duplicates(con, extract, [f.source_file for f in todo]))
        if not rebuild:
            _forget(con, extract, [f.source_file for f in todo])
            _ensure_table(con, contract, [f.staged_path for f in todo])
            if has_unique:
                new_rows = _new_rows_view(con, todo)
                rebuild = _find_duplicates(con, contract, new_rows) > 0
        if rebuild:
            outcome.rebuilt = True
            _forget(con, extract, None)
            con.execute(f"DROP TABLE IF EXISTS {quote(extract)}")
            todo = list(result.files)
            outcome.files_skipped = []
            _ensure_table(con, contract, [f.staged_path for f in todo])
            if has_unique:
                new_rows = _new_rows_view(con, todo)
                _find_duplicates(con, contract, new_rows)
        _insert(con, contract, todo, new_rows, outcome)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP VIEW IF EXISTS _new_rows")
    return outcome


def _insert(con: duckdb.DuckDBPyConnection, contract: Contract, todo: list, new_relation: str | None,
            outcome: LoadResult) -> None:
    table = quote(contract.extract)
    staged = _parquet_list([f.staged_path for f in todo])
    source = f"read_parquet({staged}, union_by_name = true)"
    if new_relation is None:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {source}")
        losers: dict[str, int] = {}
    else:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {new_relation} n "
                    "ANTI JOIN _losers l USING (_source_file, _source_row)")
        # canonical values as text, like the raw values of ingest's quarantine rows
        fields = ", ".join(f"'{c.name}', CAST(n.{quote(c.name)} AS VARCHAR)" for c in contract.columns)
        con.execute(f"""
            INSERT INTO _quarantine
            SELECT ?, l._source_file, l._source_row, string_agg(l.reason, '; ' ORDER BY l.reason),
                   any_value(CAST(json_object({fields}) AS VARCHAR))
            FROM _losers l JOIN {new_relation} n USING (_source_file, _source_row)
            GROUP BY l._source_file, l._source_row
        """, [contract.extract])
        losers = dict(con.execute(
            "SELECT _source_file, count(DISTINCT _source_row) FROM _losers GROUP BY ALL").fetchall())
    quarantines = _parquet_list([f.quarantine_path for f in todo])
    con.execute(f"INSERT INTO _quarantine SELECT extract, source_file, source_row, reason, raw_json "
                f"FROM read_parquet({quarantines})")
    for f in todo:
        dups = losers.get(f.source_file, 0)
        con.execute(
            "INSERT INTO _loaded_files VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp)",
            [contract.extract, f.source_file, f.size_bytes, f.sha256, f.rows_read,
             f.rows_clean - dups, f.rows_quarantined + dups],
        )
        outcome.files_loaded.append(f.source_file)
        outcome.rows_loaded += f.rows_clean - dups
        outcome.rows_quarantined += f.rows_quarantined
        outcome.duplicates += dups


def sync_extracts(con: duckdb.DuckDBPyConnection, present: dict[str, list[str]]) -> dict[str, list[str]]:
    """Make the warehouse mirror the landing folder: remove what came from files not in ``present``
    (``extract -> landing-relative source files``) and drop the tables of extracts with no files.

    Returns ``extract -> removed source files``. When a removed file may have decided a duplicate
    verdict, the extract's remaining files are forgotten too, so the next :func:`load_extract`
    reloads them. Views are rebuilt when a table was dropped.
    """
    removed: dict[str, list[str]] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for extract, source_file in con.execute(
                "SELECT extract, source_file FROM _loaded_files ORDER BY ALL").fetchall():
            if source_file not in set(present.get(extract, [])):
                removed.setdefault(extract, []).append(source_file)
        for extract, files in removed.items():
            if _has_cross_file_duplicates(con, extract, files):
                _forget(con, extract, None)
            else:
                _forget(con, extract, files)
        dropped = False
        for table, kind in _relations(con).items():
            if kind == "BASE TABLE" and not table.startswith("_") and not present.get(table) \
                    and "_file_sha256" in _existing_columns(con, table):
                con.execute(f"DROP TABLE {quote(table)}")
                _forget(con, table, None)
                dropped = True
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if dropped:
        create_views(con)
    return removed




def create_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The rule views of ``warehouse_views.sql`` on a warehouse connection (:func:`pipelines.lake.create_views`)."""
    from pipelines.engine import as_engine
    from pipelines.lake import create_views as create_rule_views

    return create_rule_views(as_engine(con))


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every table (extract tables and bookkeeping), by name."""
    tables = sorted(name for name, kind in _relations(con).items() if kind == "BASE TABLE")
    return {t: con.execute(f"SELECT count(*) FROM {quote(t)}").fetchall()[0][0] for t in tables}
