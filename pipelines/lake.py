"""The canonical Parquet lake under ``<output>/lake/`` and a run's pinned snapshot of it.

Ingest writes each landing file once as canonical typed Parquet (the warehouse schema of
docs/architecture.md) plus its quarantine rows, named by the file's content hash::

    lake/<extract>/<sha256>-<file>.parquet             clean rows
    lake/<extract>/<sha256>-<file>.quarantine.parquet  rows ingest quarantined
    lake/<extract>/<sha256>-<file>.json                what ingest found (rows, encoding, reasons, contract)
    lake/<extract>/_duplicates/<key>.parquet           duplicate_id verdicts of one set of files
    lake/_index.json                                   landing path -> size, mtime, sha256 (the cheap check)

Lake files are immutable: a changed landing file gets a new entry, a run never rewrites one, so
a run (or an analyst) reading them is never disturbed by the next ingest. A run pins, at its
start, the lake files of each extract: its :class:`Snapshot`, recorded in manifest.json. Every
relation rules and linking read is defined over the snapshot (:func:`register_snapshot`), and
``views.sql`` in the run folder defines the same relations for any DuckDB client.

Unique columns: the first row with a value, ordered by (source_file, source_row) over all files
of the extract's snapshot, is kept; later ones are quarantined as ``duplicate_id``. Computed from
the whole snapshot (never from load history) and cached per set of files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import polars as pl

from pipelines.contracts import Contract
from pipelines.engine import Engine
from pipelines.ingest import FileResult, IngestResult, ingest_extract
from pipelines.normalize import output_schema

LAKE_DIR = "lake"
INDEX_FILE = "_index.json"
VIEWS_SQL = Path(__file__).with_name("warehouse_views.sql")
# Bump when ingest's canonical output changes: every lake entry is then written again.
LAKE_FORMAT = 2
BOOKKEEPING_TYPES = {"_source_file": "VARCHAR", "_source_row": "BIGINT", "_file_sha256": "VARCHAR"}
QUARANTINE_COLUMNS = ("extract", "source_file", "source_row", "reason", "raw_json")


# ---------------------------------------------------------------------------- schema (defined once)


def _sql_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Decimal):
        return f"DECIMAL({dtype.precision},{dtype.scale})"
    return {pl.Boolean: "BOOLEAN", pl.Date: "DATE", pl.Int64: "BIGINT"}.get(dtype.base_type(), "VARCHAR")


def table_columns(contract: Contract) -> dict[str, str]:
    """Column -> SQL type of an extract's relation (extra text columns come on top)."""
    columns = {name: _sql_type(dtype) for name, dtype in output_schema(contract).items()}
    return columns | BOOKKEEPING_TYPES


def contract_fingerprint(contract: Contract) -> str:
    """Changes whenever the contract (and so the canonical output) changes."""
    text = json.dumps({"format": LAKE_FORMAT, "contract": contract.model_dump(mode="json", exclude={"path"})},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class LakeFile:
    """One landing file as the lake holds it."""

    extract: str
    source_file: str
    sha256: str
    data: str         # lake Parquet path (absolute)
    quarantine: str   # lake quarantine Parquet path (absolute)


@dataclass(frozen=True)
class Snapshot:
    """The lake files a run reads, per extract (pinned at the start of the run)."""

    files: dict[str, tuple[LakeFile, ...]]

    @classmethod
    def of(cls, ingested: dict[str, IngestResult]) -> "Snapshot":
        return cls({name: tuple(LakeFile(name, f.source_file, f.sha256, str(Path(f.staged_path).resolve()),
                                         str(Path(f.quarantine_path).resolve()))
                                for f in r.files) for name, r in sorted(ingested.items())})

    def key(self, extracts: Iterable[str]) -> str:
        """A digest of the files of ``extracts`` (same files, same key)."""
        parts = [[e, [(f.source_file, f.sha256) for f in self.files.get(e, ())]] for e in sorted(extracts)]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]

    def to_manifest(self) -> dict:
        return {e: [{"source_file": f.source_file, "sha256": f.sha256, "lake_file": f.data} for f in fs]
                for e, fs in self.files.items()}


# ---------------------------------------------------------------------------- ingest into the lake


def _safe(source_file: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", source_file.replace("/", "__"))[:120]


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _entry(lake: Path, extract: str, sha256: str, source_file: str) -> Path:
    return lake / extract / f"{sha256}-{_safe(source_file)}"


def _cached(lake: Path, contract: Contract, path: Path, source_file: str, index: dict) -> FileResult | None:
    """The lake entry of ``path`` when its size and mtime are those indexed and the entry exists
    for the current contract: nothing is read."""
    st = path.stat()
    known = index.get(str(path.resolve()))
    if not known or known["size"] != st.st_size or known["mtime_ns"] != st.st_mtime_ns:
        return None
    base = _entry(lake, contract.extract, known["sha256"], source_file)
    meta = _load_json(base.with_suffix(".json"))
    data, quarantine = Path(f"{base}.parquet"), Path(f"{base}.quarantine.parquet")
    if meta.get("fingerprint") != contract_fingerprint(contract) or not data.exists() or not quarantine.exists():
        return None
    return FileResult(path=path, source_file=source_file, format=meta["format"], size_bytes=meta["size_bytes"],
                      sha256=meta["sha256"], encoding=meta["encoding"], rows_read=meta["rows_read"],
                      rows_clean=meta["rows_clean"], rows_quarantined=meta["rows_quarantined"],
                      staged_path=data, quarantine_path=quarantine, reasons=meta["reasons"],
                      notes=meta.get("notes", []))


def _store(lake: Path, contract: Contract, f: FileResult) -> FileResult:
    """Move a freshly ingested file into the lake (atomic renames; an existing entry is kept)."""
    base = _entry(lake, contract.extract, f.sha256, f.source_file)
    base.parent.mkdir(parents=True, exist_ok=True)
    data, quarantine = Path(f"{base}.parquet"), Path(f"{base}.quarantine.parquet")
    os.replace(f.staged_path, data)
    os.replace(f.quarantine_path, quarantine)
    stored = FileResult(**(asdict(f) | {"staged_path": data, "quarantine_path": quarantine}))
    meta = {k: v for k, v in asdict(stored).items() if k not in ("path", "staged_path", "quarantine_path")}
    _write_json(base.with_suffix(".json"), meta | {"fingerprint": contract_fingerprint(contract)})
    return stored


def clean_partial_ingests(output: Path) -> None:
    """Remove what an ingest killed midway left (temporary folders; lake entries are renamed into
    place only when complete). Call under the run lock."""
    lake = Path(output) / LAKE_DIR
    for tmp in lake.glob(".ingest-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def ingest_to_lake(contract: Contract, files: list[Path], landing: Path, output: Path) -> tuple[IngestResult, list[str]]:
    """Ingest an extract's landing files into the lake; files already there (same size and mtime
    as indexed, same contract) are neither read nor hashed. Returns the result over every file and
    the source files actually read. Raises like :func:`pipelines.ingest.ingest_extract`, except that the broken-row rate is
    checked by the caller (:func:`pipelines.ingest.check_broken_rate`) once the snapshot is pinned."""
    lake = Path(output) / LAKE_DIR
    lake.mkdir(parents=True, exist_ok=True)
    index_path = lake / INDEX_FILE
    index = _load_json(index_path)
    landing = Path(landing)
    results: dict[Path, FileResult] = {}
    todo: list[Path] = []
    for path in files:
        try:
            source_file = Path(path).resolve().relative_to(landing.resolve()).as_posix()
        except ValueError:
            source_file = Path(path).as_posix()
        hit = _cached(lake, contract, Path(path), source_file, index)
        if hit is None:
            todo.append(Path(path))
        else:
            results[Path(path)] = hit
    if todo:
        tmp = Path(tempfile.mkdtemp(prefix=f".ingest-{contract.extract}-", dir=lake))
        try:
            fresh = ingest_extract(contract, todo, landing, tmp, check=False)
            for path, f in zip(todo, fresh.files):
                results[path] = _store(lake, contract, f)
                st = path.stat()
                index[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": f.sha256}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _write_json(index_path, _load_json(index_path) | {k: index[k] for k in (str(p.resolve()) for p in todo)})
    result = IngestResult(contract.extract, [results[Path(p)] for p in files])
    return result, [str(p) for p in todo]


# ---------------------------------------------------------------------------- duplicates over a snapshot


def _duplicates_sql(engine: Engine, contract: Contract, relation: str, present: Iterable[str] | None = None) -> str | None:
    """SELECT of the rows of ``relation`` that repeat a unique value of an earlier row
    (_source_file, _source_row, reason, raw_json, and ``duplicate_of``: per unique column the row
    repeats, the value and the first row having it), or None when the contract has no unique column.
    ``present`` limits the contract columns used to those the relation has (default: all)."""
    q = engine.dialect.quote_identifier
    columns = [c for c in contract.columns if present is None or c.name in set(present)]
    parts = []
    for col in (c.name for c in columns if c.unique):
        k = q(col)
        parts.append(f"""
            SELECT _source_file, _source_row,
                   'duplicate_id: {col}=''' || k || ''' (first at ' || first_file || ' row ' || first_row || ')' AS reason,
                   '{col}' AS column_name, CAST(k AS VARCHAR) AS value, first_file, first_row
            FROM (
                SELECT {k} AS k, _source_file, _source_row,
                       row_number() OVER w AS rn, first_value(_source_file) OVER w AS first_file,
                       first_value(_source_row) OVER w AS first_row
                FROM {relation}
                WHERE {k} IN (
                    -- the repeated 64-bit hashes first (cheaper than grouping the text)
                    SELECT {k} FROM {relation}
                    WHERE {k} IS NOT NULL AND hash({k}) IN ({engine.dialect.repeated_hashes(k, relation)})
                    GROUP BY {k} HAVING count(*) > 1)
                WINDOW w AS (PARTITION BY {k} ORDER BY _source_file, _source_row)
            ) WHERE rn > 1""")
    if not parts:
        return None
    fields = ", ".join(f"'{c.name}', CAST(n.{q(c.name)} AS VARCHAR)" for c in columns)
    return f"""
        WITH losers AS ({' UNION ALL '.join(parts)})
        SELECT l._source_file, l._source_row, string_agg(l.reason, '; ' ORDER BY l.reason) AS reason,
               any_value(CAST(json_object({fields}) AS VARCHAR)) AS raw_json,
               list_sort(list({{'column_name': l.column_name, 'value': l.value, 'first_file': l.first_file,
                               'first_row': l.first_row}})) AS duplicate_of
        FROM losers l JOIN {relation} n USING (_source_file, _source_row)
        GROUP BY l._source_file, l._source_row
        ORDER BY l._source_file, l._source_row"""


DUPLICATES_FORMAT = "v2"  # v2 added duplicate_of; verdict files of another format are computed again


def duplicates_file(engine: Engine, contract: Contract, snapshot: Snapshot, output: Path) -> Path | None:
    """The Parquet of duplicate_id verdicts of the extract's snapshot files (computed once per
    set of files, then reused), or None when the extract has no unique column."""
    files = snapshot.files.get(contract.extract, ())
    if not files or not any(c.unique for c in contract.columns):
        return None
    target = Path(output) / LAKE_DIR / contract.extract / "_duplicates" / \
        f"{snapshot.key([contract.extract])}-{contract_fingerprint(contract)}-{DUPLICATES_FORMAT}.parquet"
    if not target.exists():
        engine.register("_raw_rows", [f.data for f in files])
        try:
            engine.write_parquet(_duplicates_sql(engine, contract, "_raw_rows"), target)
        finally:
            engine.drop("_raw_rows")
    return target


# ---------------------------------------------------------------------------- relations over a snapshot


@dataclass(frozen=True)
class RunRelations:
    """The SQL defining each relation of a run: extract relations over the snapshot, the rule
    views, and derived (link) tables written as Parquet in the run folder."""

    extracts: dict[str, str]        # name -> SELECT over lake Parquet
    duplicates: dict[str, str]      # extract -> lake Parquet of its duplicate_id verdicts
    derived: dict[str, str]         # name -> Parquet path

    def statements(self, engine: Engine) -> list[tuple[str, str]]:
        """(name, SELECT) in dependency order: extracts, rule views, derived tables."""
        out = list(self.extracts.items())
        out += _view_selects(set(self.extracts))
        out += [(n, f"SELECT * FROM {engine.dialect.read_parquet([p])}") for n, p in self.derived.items()]
        return out


def run_relations(engine: Engine, contracts: dict[str, Contract], snapshot: Snapshot, output: Path,
                  derived: dict[str, Path] | None = None) -> RunRelations:
    """Relations of a run over ``snapshot`` (duplicate verdicts computed or reused)."""
    extracts, dups = {}, {}
    for name, files in snapshot.files.items():
        if not files:
            continue
        dup = duplicates_file(engine, contracts[name], snapshot, output)
        if dup is not None and engine.scalar(f"SELECT count(*) FROM {engine.dialect.read_parquet([dup])}"):
            dups[name] = str(dup)
        extracts[name] = rows_sql(engine, [f.data for f in files], dups.get(name))
    return RunRelations(extracts, dups, {k: str(v) for k, v in (derived or {}).items()})


def rows_sql(engine: Engine, data: list[str], duplicates: str | None) -> str:
    """SELECT of the rows of the lake files ``data`` less the rows the duplicate_id verdicts file
    ``duplicates`` (if any) quarantined: what a run reads of an extract (or of some of its files)."""
    scan = f"SELECT * FROM {engine.dialect.read_parquet(data)}"
    if duplicates is None:
        return scan
    return (f"SELECT r.* FROM ({scan}) AS r ANTI JOIN "
            f"(SELECT _source_file, _source_row FROM {engine.dialect.read_parquet([duplicates])}) AS d "
            "USING (_source_file, _source_row)")


def register_relations(engine: Engine, relations: RunRelations) -> None:
    """Define every relation of ``relations`` in ``engine`` (views: nothing is copied)."""
    for name, sql in relations.statements(engine):
        engine.register_query(name, sql)


_MARKER = re.compile(r"^--\s*(part|view):\s*(\w+)\s+requires:\s*([\w\s]+?)\s*(\[in place\])?\s*$")


def view_blocks(sql: str) -> list[tuple[str, str, list[str], str]]:
    """(kind, view, required relations, SELECT text) for each marked block of the views file."""
    blocks: list[tuple[str, str, list[str], list[str]]] = []
    for line in sql.splitlines():
        marker = _MARKER.match(line.strip())
        if marker:
            blocks.append((marker[1], marker[2], marker[3].split(), []))
        elif blocks:
            blocks[-1][3].append(line)
    return [(kind, view, needs, "\n".join(body).strip()) for kind, view, needs, body in blocks]


def in_place_views(sql_path: Path = VIEWS_SQL) -> set[str]:
    """Views marked ``[in place]``: projections of whole extracts, which a rule reads with its own
    filters; computing one once for several rules would copy every row it projects."""
    return {m[2] for line in Path(sql_path).read_text(encoding="utf-8").splitlines()
            if (m := _MARKER.match(line.strip())) and m[4]}


def _view_selects(available: set[str], sql_path: Path = VIEWS_SQL) -> list[tuple[str, str]]:
    """(view, SELECT) of the rule views of ``warehouse_views.sql`` whose sources are available."""
    blocks = view_blocks(Path(sql_path).read_text(encoding="utf-8"))
    have = set(available)
    out = []
    for view in dict.fromkeys(v for _, v, _, _ in blocks):
        selects = [body for _, name, needs, body in blocks if name == view and set(needs) <= have]
        if selects:
            out.append((view, "\nUNION ALL\n".join(f"({s})" if len(selects) > 1 else s for s in selects)))
            have.add(view)
    return out


def create_views(engine: Engine) -> list[str]:
    """(Re)create the rule views over the relations ``engine`` holds; returns the views created."""
    names: list[str] = []
    for view in dict.fromkeys(v for _, v, _, _ in view_blocks(VIEWS_SQL.read_text(encoding="utf-8"))):
        engine.drop(view)
    for view, sql in _view_selects(engine.relations()):
        engine.execute(f"CREATE VIEW {engine.dialect.quote_identifier(view)} AS {sql}")
        names.append(view)
    return names


# ---------------------------------------------------------------------------- views.sql for analysts


VIEWS_FILE = "views.sql"


def write_views_sql(engine: Engine, relations: RunRelations, run_dir: Path, extra: dict[str, str],
                    final_dir: Path, output: Path) -> Path:
    """``views.sql`` in the (partial) run folder ``run_dir``: CREATE VIEW statements naming every
    relation of the run over its Parquet files, for any DuckDB client, 1.x included. Paths are
    relative to the output folder (``lake/…``, ``runs/<run_id>/…``, as they will be once the run
    folder is renamed to ``final_dir``), so the file works wherever the output folder is moved or
    mounted: read it from the output folder, or use :func:`absolute_views_sql` (``fraudwatch views``)."""
    lines = ["-- fraudwatch: named views over this run's Parquet files, paths relative to the output folder.",
             "-- In any DuckDB (1.x or later), from the output folder:  cd OUT && duckdb -cmd \".read latest/views.sql\"",
             "-- From anywhere: `fraudwatch views --output OUT > views_here.sql` writes it with this machine's paths.",
             "-- Opening these files never blocks a run: runs only add new files."]
    items = relations.statements(engine) + [(n, f"SELECT * FROM {engine.dialect.read_parquet([p])}")
                                            for n, p in extra.items()]
    for name, sql in items:
        lines.append(f"CREATE OR REPLACE VIEW {engine.dialect.quote_identifier(name)} AS\n{sql};")
    path = Path(run_dir) / VIEWS_FILE
    tmp = path.with_name(f".{VIEWS_FILE}.tmp")
    text = "\n".join(lines) + "\n"
    for here, there in ((Path(run_dir).resolve(), Path(final_dir).resolve()),
                        (Path(run_dir).absolute(), Path(final_dir).absolute()), (Path(run_dir), Path(final_dir))):
        text = text.replace(str(here), str(there))
    for prefix in sorted({str(Path(output).resolve()), str(Path(output).absolute()), str(Path(output))}, key=len, reverse=True):
        text = text.replace("'" + prefix.replace("'", "''") + os.sep, "'")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


_RELATIVE = re.compile(r"'((?:lake|runs)/)")


def absolute_views_sql(text: str, output: Path) -> str:
    """A ``views.sql`` text with its output-relative paths made absolute for this machine (paths
    already absolute, as earlier versions wrote them, are left alone)."""
    root = str(Path(output).resolve()).replace("'", "''")
    return _RELATIVE.sub(lambda m: f"'{root}/{m.group(1)}", text)


def run_views_sql(engine: Engine, views: Path, output: Path) -> None:
    """Define in ``engine`` every view of a run's ``views.sql`` (its paths relative to ``output``);
    nothing when the file is absent."""
    if not Path(views).exists():
        return
    text = absolute_views_sql(Path(views).read_text(encoding="utf-8"), output)
    for statement in text.split(";\n"):
        body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
        if body:
            engine.execute(body)


def open_published(output: Path, run: str = "latest", outcomes_db: Path | None = None) -> Engine:
    """An in-memory session over a published run: its ``views.sql`` (extract tables, rule views,
    link tables, suspects, quarantine) plus, read-only, ``_outcomes`` of ``outcomes_db`` when that
    file exists. Opening it never blocks a run. With no published run, the session is empty."""
    from pipelines.engine import connect

    engine = connect("duckdb")
    run_dir = Path(output) / (run if run == "latest" else f"runs/{run}")
    run_views_sql(engine, run_dir / VIEWS_FILE, output)
    if outcomes_db is not None and Path(outcomes_db).exists():
        engine.execute(f"ATTACH {engine.dialect.literal(str(outcomes_db))} AS outcome_store (READ_ONLY)")
        tables = engine.query("SELECT table_name FROM information_schema.tables "
                              "WHERE table_catalog = 'outcome_store' AND table_name = '_outcomes'")
        if tables.num_rows:
            engine.execute("CREATE VIEW main._outcomes AS SELECT * FROM outcome_store._outcomes")
    return engine
