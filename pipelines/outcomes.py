"""Outcomes (处置结果): what auditors found each suspect to be.

Kept in the case store (:mod:`pipelines.case_store`: SQLite ``<output>/cases.sqlite`` by default,
or a shared PostgreSQL), never in the warehouse the pipeline rebuilds, as an append-only history:
a new verdict is a new row, nothing is ever updated or deleted. The *current* outcome of a suspect
is its latest row by ``recorded_at`` (then ``entry_id``) per ``(rule_id, subject_id)``. Each row
keeps the suspect's ``amount_at_risk``, periods and region as they were in the run the verdict was
given on, the ``run_id``, where it came from (file, sheet, row, or the command line), who recorded
it and for which scope (a region, for a workbook sent to that region; ``*`` otherwise).

Auditors fill the outcome columns of an export (:mod:`pipelines.export`) and import it back with
:func:`import_outcomes`, or record one verdict with :func:`set_outcome`. A file is checked as a
whole: any bad row (unknown suspect, a suspect of another region in a region's workbook, bad
amount, unknown outcome, bad date, ...) rejects the file with every bad row listed, and nothing is
imported. Rows whose outcome cell is empty are ignored; rows identical to the suspect's current
outcome are skipped, so importing a file twice adds nothing.

:func:`apply_outcomes` holds back from a new suspect list the suspects closed as 无问题 whose
facts did not change (see there). :mod:`pipelines.ledger` reports progress and savings.
"""

from __future__ import annotations

import zipfile
from xml.etree import ElementTree
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import publish
from pipelines.case_store import PROVINCE_SCOPE, CaseStore, current_user, open_store
from pipelines.errors import OutcomeError
from pipelines.engine import Engine, connect
from pipelines.normalize import clean, is_present, parse_date, parse_money, person_id

OUTCOME_LABELS: dict[str, str] = {
    "confirmed_fraud": "确认违规",
    "admin_error": "经办差错",
    "no_issue": "无问题",
    "under_review": "核查中",
}
DECIDED = ("confirmed_fraud", "admin_error", "no_issue")

KEY_HEADER = "疑点编号"
KEY_SEPARATOR = "|"
# field -> Chinese header of the export's outcome columns, in export order
OUTCOME_HEADERS: dict[str, str] = {
    "outcome": "处置结果",
    "recovered_amount": "追回金额(元)",
    "note": "处置说明",
    "reviewer": "复核人",
    "review_date": "复核日期",
}
# accepted header spellings (after NFKC, whitespace removed, lower-cased) -> field
_HEADER_ALIASES: dict[str, str] = {
    "疑点编号": "key", "suspect_key": "key",
    "处置结果": "outcome", "outcome": "outcome",
    "追回金额(元)": "recovered_amount", "追回金额": "recovered_amount", "recovered_amount": "recovered_amount",
    "recovered": "recovered_amount",
    "处置说明": "note", "note": "note",
    "复核人": "reviewer", "reviewer": "reviewer",
    "复核日期": "review_date", "review_date": "review_date", "date": "review_date",
}
_FIELDS = ("key", "outcome", "recovered_amount", "note", "reviewer", "review_date")
_OUTCOME_WORDS = {**{k: k for k in OUTCOME_LABELS}, **{v: k for k, v in OUTCOME_LABELS.items()}}

DISPATCH_PROPERTY = "fraudwatch_dispatch_id"  # custom document property of a workbook sent to a region


def read_dispatch_marker(path: Path) -> str | None:
    """The dispatch id an ``export --by-region`` workbook carries (custom document property), or None."""
    if Path(path).suffix.lower() != ".xlsx":
        return None
    try:
        with zipfile.ZipFile(path) as z:
            if "docProps/custom.xml" not in z.namelist():
                return None
            root = ElementTree.fromstring(z.read("docProps/custom.xml"))
    except (zipfile.BadZipFile, ElementTree.ParseError, OSError):
        return None  # read_outcome_file reports an unreadable workbook
    for prop in root:
        if prop.get("name") == DISPATCH_PROPERTY:
            return "".join(prop.itertext()).strip() or None
    return None


def suspect_key(run_id: str, rule_id: str, subject_id: str) -> str:
    """The stable key an export carries for a suspect: ``run_id|rule_id|subject_id``."""
    return KEY_SEPARATOR.join((run_id, rule_id, subject_id))


# ---------------------------------------------------------------------------------------------
# Reading an outcome file


def _header_field(header: str) -> str | None:
    import unicodedata

    text = "".join(unicodedata.normalize("NFKC", str(header)).split()).lower()
    return _HEADER_ALIASES.get(text)


def _frame_from(data: pl.DataFrame, sheet: str | None, first_row: int) -> pl.DataFrame | None:
    """The outcome fields of one table (all text), or None when it has no key/outcome column."""
    mapping: dict[str, str] = {}
    for col in data.columns:
        name = _header_field(col)
        if name and name not in mapping.values():
            mapping[col] = name
    if not {"key", "outcome"} <= set(mapping.values()):
        return None
    frame = data.select([pl.col(c).cast(pl.String).alias(n) for c, n in mapping.items()])
    frame = frame.with_columns([pl.lit(None, pl.String).alias(f) for f in _FIELDS if f not in frame.columns])
    return frame.select(_FIELDS).with_row_index("source_row", offset=first_row).with_columns(
        pl.col("source_row").cast(pl.Int64), pl.lit(sheet, pl.String).alias("source_sheet"))


def read_outcome_file(path: Path) -> pl.DataFrame:
    """The outcome rows of an export filled in by auditors, all values as text.

    XLSX: every sheet whose header row has 疑点编号 and 处置结果 (the summary sheet is skipped);
    CSV: UTF-8 (with or without BOM) or GB18030/GBK as Excel saves it. Headers may be the export's
    Chinese ones or the English field names. Columns: ``source_sheet, source_row`` (as a
    spreadsheet shows it: header = row 1) and ``key, outcome, recovered_amount, note, reviewer,
    review_date``.
    """
    path = Path(path)
    if not path.exists():
        raise OutcomeError("file not found", file=path)
    suffix = path.suffix.lower()
    frames: list[pl.DataFrame] = []
    if suffix == ".xlsx":
        import fastexcel

        try:
            book = fastexcel.read_excel(path)
            for sheet in book.sheet_names:
                data = book.load_sheet(sheet, header_row=0, dtypes="string").to_polars()
                frame = _frame_from(data, sheet, 2)
                if frame is not None:
                    frames.append(frame)
        except Exception as exc:  # fastexcel raises its own exception types
            raise OutcomeError(f"cannot read the workbook: {exc}", file=path, hint="save it as .xlsx from Excel or WPS") from None
    elif suffix in (".csv", ".tsv", ".txt"):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = raw.decode("gb18030")
            except UnicodeDecodeError:
                raise OutcomeError("the file is neither UTF-8 nor GB18030/GBK text", file=path,
                                   hint="save it as 'CSV UTF-8' from Excel") from None
        first_line = text.split("\n", 1)[0]
        sep = "\t" if first_line.count("\t") > first_line.count(",") else ","
        try:
            data = pl.read_csv(text.encode("utf-8"), separator=sep, infer_schema=False, truncate_ragged_lines=True)
        except pl.exceptions.PolarsError as exc:
            raise OutcomeError(f"cannot read the CSV: {exc}", file=path) from None
        frame = _frame_from(data, None, 2)
        if frame is not None:
            frames.append(frame)
    else:
        raise OutcomeError(f"unsupported file type {suffix!r}", file=path, hint="import the export's .xlsx or .csv")
    if not frames:
        raise OutcomeError(f"no sheet with the columns {KEY_HEADER} and {OUTCOME_HEADERS['outcome']}", file=path,
                           hint="import a file made by `fraudwatch export` with the 处置结果 column filled in")
    return pl.concat(frames, how="vertical")


# ---------------------------------------------------------------------------------------------
# Checking and recording


def _fmt(template: str, *values: pl.Expr) -> pl.Expr:
    """``pl.format`` via ``concat_str`` (polars 2.1's ``format`` panics on some string-view columns)."""
    pieces = template.split("{}")
    parts: list[pl.Expr] = []
    for i, piece in enumerate(pieces):
        if piece:
            parts.append(pl.lit(piece))
        if i < len(values):
            parts.append(values[i].cast(pl.String))
    return pl.concat_str(parts)


def _unneutralised(text: pl.Expr) -> pl.Expr:
    """Text without the leading ``'`` the CSV export adds before ``= + - @`` (a formula start)."""
    return pl.when(text.str.contains(r"^'[=+\-@\t\r]")).then(text.str.slice(1)).otherwise(text)


def _checked(rows: pl.DataFrame, excel_serial: bool, today: date) -> pl.DataFrame:
    """Parse the text fields (vectorised, with the package's normalisers) and list each row's problems."""
    parts = clean(pl.col("key")).str.split(KEY_SEPARATOR)
    third = parts.list.get(2, null_on_oob=True)
    word = clean(pl.col("outcome")).str.to_lowercase()
    df = rows.with_row_index("file_order").filter(is_present(pl.col("outcome"))).with_columns(
        where=pl.when(pl.col("source_sheet").is_not_null())
        .then(_fmt("sheet {} row {}", pl.col("source_sheet"), pl.col("source_row")))
        .when(pl.col("source_row") > 0).then(_fmt("row {}", pl.col("source_row")))
        .otherwise(pl.lit("command line")),
        key_ok=(parts.list.len() == 3) & parts.list.eval(pl.element().str.len_bytes() > 0).list.all(),
        run_id=parts.list.get(0, null_on_oob=True),
        rule_id=parts.list.get(1, null_on_oob=True),
        key_subject=pl.when(~third.str.starts_with("#")).then(third.str.to_uppercase()),
        ordinal=pl.when(third.str.starts_with("#")).then(third.str.slice(1).cast(pl.Int64, strict=False)),
        outcome_code=word.replace_strict(_OUTCOME_WORDS, default=None, return_dtype=pl.String),
        recovered=parse_money(pl.col("recovered_amount")),
        recovered_given=is_present(pl.col("recovered_amount")),
        day=parse_date(pl.col("review_date"), excel_serial=excel_serial),
        day_given=is_present(pl.col("review_date")),
        note_text=_unneutralised(clean(pl.col("note"))),
        reviewer_text=_unneutralised(clean(pl.col("reviewer"))),
    )
    df = df.with_columns(key_ok=pl.col("key_ok").fill_null(False)
                         & (pl.col("key_subject").is_not_null() | pl.col("ordinal").is_not_null()))
    labels = "/".join(OUTCOME_LABELS.values()) + " or " + "/".join(OUTCOME_LABELS)
    checks = [
        (~pl.col("key_ok"), _fmt("malformed suspect key '{}' (expected RUN_ID|RULE_ID|SUBJECT_ID)", pl.col("key").fill_null(""))),
        (pl.col("outcome_code").is_null(), _fmt("unknown outcome value '{}' (use {})", pl.col("outcome"), pl.lit(labels))),
        (pl.col("recovered_given") & pl.col("recovered").is_null(),
         _fmt("bad amount '{}' (元, at most 2 decimals)", pl.col("recovered_amount"))),
        (pl.col("recovered") < 0, _fmt("negative recovered amount {}", pl.col("recovered").cast(pl.String))),
        ((pl.col("outcome_code") == "no_issue") & (pl.col("recovered") > 0),
         pl.lit("a recovered amount with outcome 无问题 (no_issue)")),
        (pl.col("day_given") & pl.col("day").is_null(), _fmt("bad date '{}' (use YYYY-MM-DD)", pl.col("review_date"))),
        (pl.col("day") > pl.lit(today), _fmt("date {} is in the future", pl.col("day").cast(pl.String))),
        (pl.col("reviewer_text").is_null(), pl.lit("missing reviewer (复核人)")),
    ]
    problems = pl.concat_str([pl.when(cond.fill_null(False)).then(text) for cond, text in checks],
                             separator="; ", ignore_nulls=True)
    df = df.with_columns(problem=pl.when(problems.str.len_bytes() > 0).then(problems))
    # the same suspect twice in one file is ambiguous
    ident = ["run_id", "rule_id", "key_subject", "ordinal"]
    dups = (df.filter(pl.col("key_ok")).group_by(ident)
            .agg(pl.col("where").alias("all_where"), pl.len().alias("n")).filter(pl.col("n") > 1))
    df = df.join(dups, on=ident, how="left", nulls_equal=True).with_columns(
        problem=pl.concat_str([pl.col("problem"), pl.when(pl.col("n") > 1).then(
            _fmt("the same suspect is on {}", pl.col("all_where").list.join(", ")))], separator="; ", ignore_nulls=True))
    return df.with_columns(problem=pl.when(pl.col("problem").str.len_bytes() > 0).then(pl.col("problem")),
                           day=pl.coalesce(pl.col("day"), pl.lit(today))).drop("all_where", "n")


def _run_files(output: Path, run_ids: list[str]) -> list[str]:
    return [str(publish.runs_dir(output) / r / publish.SUSPECTS_FILE) for r in run_ids
            if r and not r.startswith(".") and "/" not in r and (publish.runs_dir(output) / r / publish.SUSPECTS_FILE).exists()]


_EMPTY_SUSPECTS = ("SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS rule_id, NULL::VARCHAR AS subject_id, "
                   "NULL::VARCHAR AS category, NULL::VARCHAR AS subject_type, NULL::DECIMAL(18,2) AS amount_at_risk, "
                   "NULL::VARCHAR AS first_period, NULL::VARCHAR AS last_period, NULL::VARCHAR AS region_code, "
                   "NULL::BIGINT AS ordinal WHERE false")


def _resolve(con: Engine, checked: pl.DataFrame, output: Path, scope: str, scope_label: str) -> pa.Table:
    """Join each row to its suspect in the run its key names; unknown suspects and suspects outside
    ``scope`` (a region code, or ``*``) get a problem in column ``unknown``."""
    run_ids = checked.filter(pl.col("key_ok"))["run_id"].unique().to_list()
    files = _run_files(output, run_ids)
    con.register("_checked", checked.to_arrow())
    if files:
        con.register("_suspect_files", [Path(f) for f in files])
        con.materialize("_suspects", """
            SELECT run_id, rule_id, subject_id, category, subject_type, amount_at_risk::DECIMAL(18,2) AS amount_at_risk,
                   first_period, last_period, region_code,
                   row_number() OVER (PARTITION BY run_id ORDER BY rule_id, subject_id) AS ordinal
            FROM _suspect_files
            WHERE run_id IN (SELECT DISTINCT run_id FROM _checked)""")
    else:
        con.materialize("_suspects", _EMPTY_SUSPECTS)
    known = list(set(run_ids) & {Path(f).parent.name for f in files})
    return con.query("""
        WITH j AS (
            SELECT c.*, coalesce(a.subject_id, b.subject_id) AS subject_id,
                   coalesce(a.category, b.category) AS category, coalesce(a.subject_type, b.subject_type) AS subject_type,
                   coalesce(a.amount_at_risk, b.amount_at_risk) AS amount_at_risk,
                   coalesce(a.first_period, b.first_period) AS first_period, coalesce(a.last_period, b.last_period) AS last_period,
                   coalesce(a.region_code, b.region_code) AS region_code
            FROM _checked c
            LEFT JOIN _suspects a ON a.run_id = c.run_id AND a.rule_id = c.rule_id AND a.subject_id = c.key_subject
            LEFT JOIN _suspects b ON b.run_id = c.run_id AND b.rule_id = c.rule_id AND b.ordinal = c.ordinal)
        SELECT *, CASE WHEN NOT key_ok THEN NULL
                       WHEN subject_id IS NULL AND NOT list_contains($known, run_id) THEN 'unknown suspect: run ' || run_id || ' not found'
                       WHEN subject_id IS NULL THEN 'unknown suspect: ' || rule_id || ' / ' || coalesce(key_subject, '#' || ordinal)
                            || ' is not in run ' || run_id
                       WHEN $scope <> '*' AND region_code IS DISTINCT FROM $scope
                       THEN 'not this workbook''s region: the suspect belongs to region ' || coalesce(region_code, '(none)')
                            || ', this workbook may record outcomes only for ' || $label END AS unknown
        FROM j ORDER BY file_order
    """, {"known": known, "scope": scope, "label": scope_label})


@dataclass
class ImportResult:
    """What :func:`import_outcomes` / :func:`set_outcome` recorded."""

    file: str
    rows_with_outcome: int
    recorded: int
    unchanged: int
    per_outcome: dict[str, int] = field(default_factory=dict)
    scope: str = PROVINCE_SCOPE
    recorded_by: str = ""


def _problem_lines(resolved: pa.Table) -> list[str]:
    df = pl.from_arrow(resolved).select("where", "problem", "unknown")
    df = df.with_columns(text=pl.concat_str(["problem", "unknown"], separator="; ", ignore_nulls=True))
    df = df.filter(pl.col("text").str.len_bytes() > 0)
    return [f"{w}: {t}" for w, t in df.select("where", "text").iter_rows()]


def record_outcomes(store: CaseStore, rows: pl.DataFrame, output: Path, *, source: str, source_file: str | None,
                    excel_serial: bool = False, today: date | None = None, scope: str = PROVINCE_SCOPE,
                    scope_label: str | None = None, dispatch_id: str | None = None,
                    recorded_by: str | None = None) -> ImportResult:
    """Check outcome rows (text fields as :func:`read_outcome_file` gives them) against the runs under
    ``output`` and append them to the case store in one transaction.

    Any bad row raises :class:`OutcomeError` listing every bad row and reason; nothing is recorded.
    A suspect outside ``scope`` (a region code; ``*`` = the whole province) is a bad row. Rows with
    an empty outcome are ignored; rows equal to the suspect's current outcome are skipped. Each entry
    keeps who recorded it (``recorded_by``, default :func:`case_store.current_user`) and the scope.
    """
    checked = _checked(rows, excel_serial, today or date.today())
    by = recorded_by or current_user()
    con = connect("duckdb")
    try:
        resolved = _resolve(con, checked, Path(output), scope, scope_label or scope)
        problems = _problem_lines(resolved)
        shown = source_file or "command line"
        if problems:
            raise OutcomeError(f"{len(problems)} row(s) rejected, nothing imported:\n  " + "\n  ".join(problems),
                               file=source_file, hint="fix these rows and import the file again" if source_file
                               else "fix the values and run the command again")
        con.register("_resolved", resolved)
        con.register("_current", store.current_outcomes())
        new = con.query("""
            SELECT rule_id, subject_id, run_id, outcome_code AS outcome, recovered AS recovered_amount, note_text AS note,
                   reviewer_text AS reviewer, day AS review_date, category, subject_type, amount_at_risk, first_period,
                   last_period, region_code, source_sheet, CASE WHEN source_row > 0 THEN source_row END AS source_row
            FROM _resolved r
            WHERE NOT EXISTS (
                SELECT 1 FROM _current c
                WHERE c.rule_id = r.rule_id AND c.subject_id = r.subject_id AND c.outcome = r.outcome_code
                  AND c.recovered_amount IS NOT DISTINCT FROM r.recovered AND c.note IS NOT DISTINCT FROM r.note_text
                  AND c.reviewer = r.reviewer_text AND c.review_date = r.day)
            ORDER BY file_order""").to_pylist()
    finally:
        con.close()
    store.append_outcomes([{**r, "source": source, "source_file": source_file, "scope": scope,
                            "dispatch_id": dispatch_id, "recorded_by": by} for r in new])
    per_outcome: dict[str, int] = {}
    for r in new:
        per_outcome[r["outcome"]] = per_outcome.get(r["outcome"], 0) + 1
    return ImportResult(shown, resolved.num_rows, len(new), resolved.num_rows - len(new), dict(sorted(per_outcome.items())),
                        scope, by)


def import_outcomes(store: CaseStore, path: Path, output: Path, today: date | None = None,
                    recorded_by: str | None = None) -> ImportResult:
    """Import an export with its outcome columns filled in (see :func:`record_outcomes`).

    A workbook written by ``export --by-region`` carries its dispatch id; its scope (the region) is
    taken from the case store's record of that dispatch, never from the file itself."""
    rows = read_outcome_file(path)
    scope, label, dispatch_id = PROVINCE_SCOPE, None, None
    marker = read_dispatch_marker(Path(path))
    if marker is not None:
        sent = store.dispatch(marker)
        if sent is None:
            raise OutcomeError(f"this workbook says it was sent as {marker!r}, which the case store {store.shown} "
                               "does not know", file=path,
                               hint="import it with the case store the export was made with (--case-store)")
        scope, dispatch_id = sent["region_code"], marker
        label = f"{sent['region_code']} {sent['region_name'] or ''}".strip()
    return record_outcomes(store, rows, output, source="import", source_file=str(path),
                           excel_serial=Path(path).suffix.lower() == ".xlsx", today=today, scope=scope,
                           scope_label=label, dispatch_id=dispatch_id, recorded_by=recorded_by)


def set_outcome(store: CaseStore, output: Path, rule_id: str, subject_id: str, outcome: str, reviewer: str,
                recovered: str | None = None, note: str | None = None, review_date: str | None = None,
                run: str = "latest", today: date | None = None, recorded_by: str | None = None) -> ImportResult:
    """Record one verdict for a suspect of ``run`` (``latest`` or a run id). ``subject_id`` is
    normalised (a 15-digit ID is upgraded to 18, x → X); values are checked as in an import."""
    run_id = publish.resolve_run(Path(output), run).name
    subject = pl.DataFrame({"v": [subject_id]}, schema={"v": pl.String}).select(person_id(pl.col("v"))).item() or subject_id
    rows = pl.DataFrame({
        "key": [suspect_key(run_id, rule_id.strip(), subject)], "outcome": [outcome], "recovered_amount": [recovered],
        "note": [note], "reviewer": [reviewer], "review_date": [review_date],
    }, schema={f: pl.String for f in _FIELDS}).with_columns(
        source_row=pl.lit(0, pl.Int64), source_sheet=pl.lit(None, pl.String))
    return record_outcomes(store, rows, output, source="cli", source_file=None, today=today, recorded_by=recorded_by)


# ---------------------------------------------------------------------------------------------
# Using outcomes


@dataclass
class HeldBack:
    """Suspects left out of a new list because they were closed as 无问题 and their facts did not change."""

    count: int
    per_rule: dict[str, int]
    reason: str
    table: pa.Table  # rule_id, subject_id, amounts/periods now and when closed, who closed it and when

    def to_manifest(self) -> dict:
        """A JSON-friendly summary for manifest.json."""
        return {"count": self.count, "per_rule": self.per_rule, "reason": self.reason}


def _held_reason(count: int) -> str:
    if count == 0:
        return "no suspects held back"
    return (f"held back {count} suspects closed as 无问题 with unchanged facts "
            "(amount at risk not larger and no later improper period than when closed)")


def apply_outcomes(store: CaseStore, hits: pa.Table) -> tuple[pa.Table, HeldBack]:
    """Drop from ``hits`` the suspects whose current outcome is no_issue, unless their facts changed.

    Facts changed = ``amount_at_risk`` larger than when closed (or now known where it was NULL), or
    ``last_period`` later than when closed (new improper payments). ``hits`` needs ``rule_id,
    subject_id, amount_at_risk, last_period`` ('YYYY-MM'); its other columns, schema and row order
    are kept. ``store`` is the case store (:func:`pipelines.case_store.open_store`).
    """
    empty = pa.table({"rule_id": pa.array([], pa.string()), "subject_id": pa.array([], pa.string())})
    if hits.num_rows == 0:
        return hits, HeldBack(0, {}, _held_reason(0), empty)
    current = store.current_outcomes()
    if current.num_rows == 0:
        return hits, HeldBack(0, {}, _held_reason(0), empty)
    keys = hits.select(["rule_id", "subject_id", "amount_at_risk", "last_period"]).append_column(
        "__rn", pa.array(range(hits.num_rows), pa.int64()))
    con = connect("duckdb")
    try:
        con.register("_hits_for_outcomes", keys)
        con.register("_current", current)
        held = con.query("""
            SELECT h.__rn, h.rule_id, h.subject_id, h.amount_at_risk::DECIMAL(18,2) AS amount_at_risk, h.last_period,
                   c.amount_at_risk AS closed_amount_at_risk, c.last_period AS closed_last_period,
                   c.run_id AS closed_in_run, c.reviewer AS closed_by, c.review_date AS closed_on, c.note AS closed_note
            FROM _hits_for_outcomes h JOIN _current c USING (rule_id, subject_id)
            WHERE c.outcome = 'no_issue'
              AND NOT (h.amount_at_risk IS NOT NULL AND (c.amount_at_risk IS NULL OR h.amount_at_risk > c.amount_at_risk))
              AND NOT (h.last_period IS NOT NULL AND (c.last_period IS NULL OR h.last_period > c.last_period))
            ORDER BY h.__rn""")
    finally:
        con.close()
    if held.num_rows == 0:
        return hits, HeldBack(0, {}, _held_reason(0), held.drop_columns(["__rn"]))
    drop = pc.is_in(keys.column("__rn"), value_set=held.column("__rn"))
    kept = hits.filter(pc.invert(drop))
    counts = held.group_by("rule_id").aggregate([("subject_id", "count")]).sort_by("rule_id")
    per_rule = dict(zip(counts.column("rule_id").to_pylist(), counts.column("subject_id_count").to_pylist()))
    return kept, HeldBack(held.num_rows, per_rule, _held_reason(held.num_rows), held.drop_columns(["__rn"]))


def apply_outcomes_of(output: Path, hits: pa.Table) -> tuple[pa.Table, HeldBack, list[str]]:
    """:func:`apply_outcomes` with the case store of ``output`` (opened and closed here), plus its notes."""
    with open_store(output) as store:
        kept, held = apply_outcomes(store, hits)
        return kept, held, list(store.notes)
