"""The case store: what auditors recorded, in its own transactional database.

Outcomes (处置结果) and the cases sent to each region live here, not in the analytic warehouse the
pipeline rebuilds: deleting or corrupting the warehouse loses no verdict. The store is reached
through SQLAlchemy:

- by default an embedded SQLite file ``<output>/cases.sqlite``;
- any SQLAlchemy URL (``--case-store`` or the environment variable ``FRAUDWATCH_CASE_STORE``), e.g.
  ``postgresql+psycopg://fraudwatch@dbhost/fraudwatch`` for a store shared by several offices.

Tables (created on first use; ``store_meta`` holds the schema version and migration marks):

- ``outcomes``: append-only history of verdicts (INSERT only; the current outcome of a suspect is
  its latest row by ``recorded_at``, then ``entry_id``), with who recorded it (``recorded_by``) and
  for which scope (``scope``: a region code, or ``*`` for the whole province);
- ``dispatches`` / ``dispatch_items``: the workbooks sent to regions, their reply deadline and the
  suspects each one holds (what ``outcomes progress`` counts).

Money is exact: NUMERIC(18,2) on PostgreSQL, decimal text on SQLite (which has no exact decimal);
sums are computed after reading, as DECIMAL, never by SQLite.

Outcomes recorded by earlier versions in the warehouse table ``_outcomes`` of
``<output>/warehouse.duckdb`` are copied here automatically the first time the store is opened
next to it (idempotent: an entry already copied is never copied again; the warehouse file is only
read). :func:`backup` / :func:`restore` copy the whole store to and from a portable SQLite file.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Sequence

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.errors import RunError

ENV_VAR = "FRAUDWATCH_CASE_STORE"
USER_ENV_VAR = "FRAUDWATCH_USER"
DEFAULT_FILE = "cases.sqlite"
LEGACY_WAREHOUSE = "warehouse.duckdb"
SCHEMA_VERSION = "1"
PROVINCE_SCOPE = "*"
OUTCOME_CODES = ("confirmed_fraud", "admin_error", "no_issue", "under_review")


class Money(sa.types.TypeDecorator):
    """DECIMAL(18,2) exactly: NUMERIC on PostgreSQL, decimal text on SQLite."""

    impl = sa.Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(24))
        return dialect.type_descriptor(sa.Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value).quantize(Decimal("0.01"))
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(value).quantize(Decimal("0.01"))


class UTCDateTime(sa.types.TypeDecorator):
    """A UTC timestamp: TIMESTAMPTZ on PostgreSQL, naive UTC text on SQLite; always aware when read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = sa.MetaData()
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only

outcomes_table = sa.Table(
    "outcomes", metadata,
    sa.Column("entry_id", _Id, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.String(200), nullable=False),
    sa.Column("subject_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("recovered_amount", Money()),
    sa.Column("note", sa.Text()),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("review_date", sa.Date(), nullable=False),
    sa.Column("category", sa.String(200)),
    sa.Column("subject_type", sa.String(16)),
    sa.Column("amount_at_risk", Money()),
    sa.Column("first_period", sa.String(7)),
    sa.Column("last_period", sa.String(7)),
    sa.Column("region_code", sa.String(16)),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("source_file", sa.Text()),
    sa.Column("source_sheet", sa.String(64)),
    sa.Column("source_row", sa.BigInteger()),
    sa.Column("scope", sa.String(16), nullable=False, server_default=PROVINCE_SCOPE),
    sa.Column("dispatch_id", sa.String(64)),
    sa.Column("recorded_by", sa.String(200)),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("legacy_entry_id", sa.BigInteger()),
    sa.CheckConstraint("outcome IN (" + ", ".join(f"'{c}'" for c in OUTCOME_CODES) + ")", name="outcome_code"),
    sa.Index("outcomes_suspect", "rule_id", "subject_id"),
)

dispatches_table = sa.Table(
    "dispatches", metadata,
    sa.Column("dispatch_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("region_code", sa.String(16), nullable=False),
    sa.Column("region_name", sa.String(200)),
    sa.Column("file", sa.Text()),
    sa.Column("sent_at", UTCDateTime(), nullable=False),
    sa.Column("due_date", sa.Date(), nullable=False),
    sa.Column("sent_by", sa.String(200)),
    sa.Column("suspects", sa.Integer(), nullable=False),
)

dispatch_items_table = sa.Table(
    "dispatch_items", metadata,
    sa.Column("dispatch_id", sa.String(64), sa.ForeignKey("dispatches.dispatch_id"), primary_key=True),
    sa.Column("rule_id", sa.String(200), primary_key=True),
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("region_code", sa.String(16), nullable=False),
    sa.Column("amount_at_risk", Money()),
    sa.Index("dispatch_items_suspect", "rule_id", "subject_id"),
)

meta_table = sa.Table(
    "store_meta", metadata,
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("value", sa.Text()),
)

# Arrow types of the columns handed to DuckDB/polars
_ARROW: dict[str, pa.DataType] = {
    "entry_id": pa.int64(), "recovered_amount": pa.decimal128(18, 2), "amount_at_risk": pa.decimal128(18, 2),
    "review_date": pa.date32(), "due_date": pa.date32(), "source_row": pa.int64(), "legacy_entry_id": pa.int64(),
    "recorded_at": pa.timestamp("us", tz="UTC"), "sent_at": pa.timestamp("us", tz="UTC"), "suspects": pa.int64(),
}


def current_user() -> str:
    """Who is recording: ``FRAUDWATCH_USER`` when set, else the login name."""
    name = os.environ.get(USER_ENV_VAR)
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return "unknown"


def store_url(output: Path, url: str | None = None) -> str:
    """The store's SQLAlchemy URL: ``url``, else ``FRAUDWATCH_CASE_STORE``, else ``<output>/cases.sqlite``."""
    chosen = url or os.environ.get(ENV_VAR)
    if chosen:
        return chosen
    return f"sqlite:///{(Path(output) / DEFAULT_FILE).resolve()}"


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable case store URL)"


def _arrow_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.Table:
    return pa.table({c: pa.array([r[i] for r in rows], _ARROW.get(c, pa.string())) for i, c in enumerate(columns)})


@dataclass
class CaseStore:
    """An open case store. Use as a context manager or call :meth:`close`."""

    url: str
    engine: Engine
    notes: list[str] = field(default_factory=list)

    def __enter__(self) -> "CaseStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def shown(self) -> str:
        return display_url(self.url)

    # -- reading -------------------------------------------------------------------------------

    def query(self, statement: sa.Select, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows of ``statement`` as an Arrow table (money DECIMAL(18,2), dates, UTC timestamps)."""
        try:
            with self.engine.connect() as con:
                result = con.execute(statement)
                rows = result.fetchall()
                names = list(columns or result.keys())
        except sa.exc.SQLAlchemyError as exc:
            raise _store_error(self, exc) from None
        return _arrow_table(names, rows)

    def history(self, *, rule_id: str | None = None, subject_id: str | None = None) -> pa.Table:
        """All outcome entries (optionally of one suspect or subject), oldest first."""
        o = outcomes_table
        stmt = sa.select(o).order_by(o.c.recorded_at, o.c.entry_id)
        if rule_id is not None:
            stmt = stmt.where(o.c.rule_id == rule_id)
        if subject_id is not None:
            stmt = stmt.where(o.c.subject_id == subject_id)
        return self.query(stmt, [c.name for c in o.columns])

    def current_outcomes(self) -> pa.Table:
        """The current outcome of every suspect that has one (latest ``recorded_at``, then ``entry_id``)."""
        o = outcomes_table
        rank = sa.func.row_number().over(partition_by=(o.c.rule_id, o.c.subject_id),
                                         order_by=(o.c.recorded_at.desc(), o.c.entry_id.desc())).label("rank")
        inner = sa.select(o, rank).subquery()
        names = [c.name for c in o.columns]
        return self.query(sa.select(*[inner.c[n] for n in names]).where(inner.c["rank"] == 1), names)

    def dispatch(self, dispatch_id: str) -> dict | None:
        """One dispatch (a workbook sent to a region) or None."""
        table = self.query(sa.select(dispatches_table).where(dispatches_table.c.dispatch_id == dispatch_id),
                           [c.name for c in dispatches_table.columns])
        return table.to_pylist()[0] if table.num_rows else None

    def dispatch_items(self) -> pa.Table:
        """Every suspect ever sent, with its dispatch's region, due date and send time."""
        d, i = dispatches_table, dispatch_items_table
        stmt = sa.select(i.c.dispatch_id, i.c.rule_id, i.c.subject_id, i.c.region_code, i.c.amount_at_risk,
                         d.c.region_name, d.c.due_date, d.c.sent_at, d.c.run_id).join(d, d.c.dispatch_id == i.c.dispatch_id)
        return self.query(stmt, ["dispatch_id", "rule_id", "subject_id", "region_code", "amount_at_risk",
                                 "region_name", "due_date", "sent_at", "run_id"])

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        try:
            with self.engine.connect() as con:
                return {t.name: con.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                        for t in (outcomes_table, dispatches_table, dispatch_items_table)}
        except sa.exc.SQLAlchemyError as exc:
            raise _store_error(self, exc) from None

    # -- writing -------------------------------------------------------------------------------

    def append_outcomes(self, rows: list[dict]) -> None:
        """Append outcome entries in one transaction (``recorded_at`` defaults to now)."""
        if not rows:
            return
        now = datetime.now(timezone.utc)
        rows = [{**r, "recorded_at": r.get("recorded_at") or now} for r in rows]
        try:
            with self.engine.begin() as con:
                con.execute(sa.insert(outcomes_table), rows)
        except sa.exc.SQLAlchemyError as exc:
            raise _store_error(self, exc) from None

    def add_dispatches(self, dispatches: list[dict], items: list[dict]) -> None:
        """Record sent workbooks and the suspects in each, in one transaction."""
        try:
            with self.engine.begin() as con:
                if dispatches:
                    con.execute(sa.insert(dispatches_table), dispatches)
                if items:
                    con.execute(sa.insert(dispatch_items_table), items)
        except sa.exc.SQLAlchemyError as exc:
            raise _store_error(self, exc) from None


def _store_error(store: CaseStore, exc: Exception) -> RunError:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return RunError(f"case store {store.shown}: {text}", hint=f"check the store (or {ENV_VAR}); "
                    "`fraudwatch outcomes restore BACKUP` brings back a backup")


def _engine(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        raise RunError(f"not a database URL: {url!r}", hint=f"set {ENV_VAR} to e.g. sqlite:///cases.sqlite or "
                       "postgresql+psycopg://user@host/db") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    try:
        return sa.create_engine(parsed, **kwargs)
    except Exception as exc:  # unknown dialect, missing driver
        raise RunError(f"cannot use the case store {display_url(url)}: {exc}",
                       hint="a PostgreSQL URL needs the psycopg driver: postgresql+psycopg://user@host/db") from None


def open_store(output: Path, url: str | None = None, *, migrate_legacy: bool = True) -> CaseStore:
    """Open (and create when new) the case store of ``output`` (see :func:`store_url`).

    When ``<output>/warehouse.duckdb`` still holds a legacy ``_outcomes`` table, its entries are
    copied here once (a note in ``store.notes`` says how many). Raises :class:`RunError` with the
    way out when the store cannot be opened."""
    chosen = store_url(output, url)
    store = CaseStore(chosen, _engine(chosen))
    try:
        metadata.create_all(store.engine)
        with store.engine.begin() as con:
            version = con.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
            if version is None:
                con.execute(sa.insert(meta_table), [{"key": "schema_version", "value": SCHEMA_VERSION}])
            elif version != SCHEMA_VERSION:
                raise RunError(f"case store {store.shown} has schema version {version}, this fraudwatch knows {SCHEMA_VERSION}",
                               hint="use the fraudwatch version that wrote it, or restore a backup")
    except sa.exc.SQLAlchemyError as exc:
        store.close()
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise RunError(f"cannot open the case store {store.shown}: {text}",
                       hint=f"check {ENV_VAR} / --case-store and that the database is reachable; if the file is damaged, "
                            "move it away and run `fraudwatch outcomes restore BACKUP`") from None
    except BaseException:
        store.close()
        raise
    if migrate_legacy:
        legacy = Path(output) / LEGACY_WAREHOUSE
        if legacy.exists():
            migrate_legacy_outcomes(store, legacy)
    return store


# ---------------------------------------------------------------------------------------------
# Legacy outcomes (warehouse table _outcomes)

_LEGACY_COLUMNS = ("entry_id", "rule_id", "subject_id", "run_id", "outcome", "recovered_amount", "note", "reviewer",
                   "review_date", "category", "subject_type", "amount_at_risk", "first_period", "last_period", "source",
                   "source_file", "source_sheet", "source_row", "recorded_at")


def migrate_legacy_outcomes(store: CaseStore, warehouse: Path) -> int:
    """Copy the ``_outcomes`` rows of a legacy warehouse into the store; returns how many were new.

    Reads the warehouse read-only and only when it changed since the last look (size and mtime
    kept in ``store_meta``). Entries are matched on their legacy ``entry_id`` and ``recorded_at``,
    so a second migration copies nothing. An unreadable warehouse is noted, not fatal."""
    from pipelines.engine import QueryError, connect

    stat = warehouse.stat()
    mark_key = f"legacy_checked:{warehouse.resolve()}"
    mark = f"{stat.st_size}:{stat.st_mtime_ns}"
    with store.engine.connect() as con:
        if con.execute(sa.select(meta_table.c.value).where(meta_table.c.key == mark_key)).scalar() == mark:
            return 0
    try:
        wh = connect("duckdb", database=warehouse, read_only=True)
    except QueryError as exc:
        first = exc.message.strip().splitlines()[0]
        store.notes.append(f"legacy outcomes not checked: cannot read {warehouse} ({first}); "
                           "if it held outcomes recorded before the case store existed, restore it from a backup "
                           "and run any `fraudwatch outcomes` command again")
        return 0
    try:
        present = "_outcomes" in wh.relations()
        rows = wh.query(f"SELECT {', '.join(_LEGACY_COLUMNS)} FROM _outcomes ORDER BY recorded_at, entry_id").to_pylist() \
            if present else []
    except QueryError as exc:
        store.notes.append(f"legacy outcomes not read from {warehouse}: {exc.message.splitlines()[0]}")
        return 0
    finally:
        wh.close()
    new = 0
    with store.engine.begin() as con:
        if rows:
            o = outcomes_table
            seen = {(e, _utc(t)) for e, t in con.execute(
                sa.select(o.c.legacy_entry_id, o.c.recorded_at).where(o.c.legacy_entry_id.is_not(None))).fetchall()}
            batch = []
            for row in rows:
                entry = dict(row)
                if (entry["entry_id"], _utc(entry["recorded_at"])) in seen:
                    continue
                entry["legacy_entry_id"] = entry.pop("entry_id")
                entry["recorded_at"] = _utc(entry["recorded_at"])
                entry["scope"] = PROVINCE_SCOPE
                batch.append(entry)
            if batch:
                con.execute(sa.insert(o), batch)
            new = len(batch)
        con.execute(sa.delete(meta_table).where(meta_table.c.key == mark_key))
        con.execute(sa.insert(meta_table), [{"key": mark_key, "value": mark}])
    if new:
        store.notes.append(f"copied {new} outcome entries recorded before the case store existed from {warehouse} "
                           f"into {store.shown}; they are kept there from now on (the warehouse copy is no longer used)")
    return new


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------
# Backup and restore

_TABLES = (meta_table, outcomes_table, dispatches_table, dispatch_items_table)


def _copy_rows(src: Engine, dst_con: sa.Connection, tables: Iterable[sa.Table], batch: int = 10_000) -> dict[str, int]:
    counts = {}
    with src.connect() as con:
        for table in tables:
            result = con.execution_options(stream_results=True).execute(sa.select(table).order_by(*table.primary_key.columns))
            n = 0
            while chunk := result.fetchmany(batch):
                dst_con.execute(sa.insert(table), [dict(r._mapping) for r in chunk])
                n += len(chunk)
            counts[table.name] = n
    return counts


def backup(store: CaseStore, path: Path, force: bool = False) -> dict[str, int]:
    """Copy every table of the store into a new SQLite file ``path`` (atomic; no overwrite unless ``force``)."""
    path = Path(path)
    if path.exists() and not force:
        raise RunError("file exists", file=path, hint="choose another name or pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    dst = sa.create_engine(f"sqlite:///{tmp.resolve()}")
    try:
        metadata.create_all(dst)
        with dst.begin() as con:
            counts = _copy_rows(store.engine, con, _TABLES)
    except sa.exc.SQLAlchemyError as exc:
        dst.dispose()
        tmp.unlink(missing_ok=True)
        raise _store_error(store, exc) from None
    except BaseException:
        dst.dispose()
        tmp.unlink(missing_ok=True)
        raise
    dst.dispose()
    tmp.replace(path)
    return counts


def restore(store: CaseStore, path: Path, replace: bool = False) -> dict[str, int]:
    """Load a backup made by :func:`backup` into the store, in one transaction.

    The store must hold no outcomes or dispatches (a fresh store), unless ``replace``: then its
    contents are replaced by the backup's."""
    path = Path(path)
    if not path.exists():
        raise RunError("backup file not found", file=path)
    src = sa.create_engine(f"sqlite:///{path.resolve()}?mode=ro", connect_args={"uri": True})
    try:
        names = set(sa.inspect(src).get_table_names())
        if not {t.name for t in _TABLES} <= names:
            raise RunError("not a case store backup (tables missing)", file=path,
                           hint="use a file written by `fraudwatch outcomes backup`")
        with src.connect() as con:
            version = con.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).scalar()
        if version != SCHEMA_VERSION:
            raise RunError(f"backup has schema version {version}, this fraudwatch knows {SCHEMA_VERSION}", file=path)
        existing = store.counts()
        if not replace and (existing["outcomes"] or existing["dispatches"]):
            raise RunError(f"the case store {store.shown} is not empty ({existing['outcomes']} outcome entries, "
                           f"{existing['dispatches']} dispatches)", file=path,
                           hint="restore into a new store (another --case-store), or pass --replace to replace its contents")
        with store.engine.begin() as con:
            for table in reversed(_TABLES):
                con.execute(sa.delete(table))
            counts = _copy_rows(src, con, _TABLES)
            if store.engine.dialect.name == "postgresql":
                con.execute(sa.text("SELECT setval(pg_get_serial_sequence('outcomes', 'entry_id'), "
                                    "coalesce((SELECT max(entry_id) FROM outcomes), 0) + 1, false)"))
        return counts
    except sa.exc.SQLAlchemyError as exc:
        raise RunError(f"cannot restore: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}", file=path) from None
    finally:
        src.dispose()


def as_date(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value
