"""Ingest: find extract files in a landing folder, read them as all-text, map headers, canonicalise
values per data contract and split clean rows from quarantined rows into staged Parquet.

Everything is lazy/streaming polars: a file is scanned once and sunk into two Parquet files
(clean rows in warehouse column order, and quarantine), so memory stays bounded at 10^8 rows.
The extract-level "too many broken rows" check (``Contract.max_broken_rate``) lives here.
"""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipelines.contracts import Contract, header_key
from pipelines.errors import ExtractError
from pipelines.guards.csv_shape import read_failure
from pipelines.guards.landing import check_landing
from pipelines.textsafe import visible, visible_expr
from pipelines.normalize import ID_DAMAGED, normalize_column, output_schema
from pipelines.readers import FORMULA_FLAG, NUMBER_FLAG, OVERFLOW, SHEET, RawFile, hash_and_detect, read_csv_file, \
    read_parquet_file, read_xlsx_file, transcode_gb18030

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".parquet": "parquet"}
BOOKKEEPING = ("_source_file", "_source_row", "_file_sha256")
QUARANTINE_SCHEMA = {
    "extract": pl.String(), "source_file": pl.String(), "source_row": pl.Int64(),
    "reason": pl.String(), "raw_json": pl.String(),
}
# Longest raw value quoted in a quarantine reason; raw_json keeps the whole value.
_REASON_VALUE_CHARS = 80
# An extract with more than this share of rows whose ID went through a number was saved through a
# spreadsheet: the run stops and says how to export it as text (a few such rows are quarantined).
DAMAGED_ID_STOP_RATE = 0.05
# Clean rows of a workbook carry the sheet they came from in this (extra) column; quarantined rows
# carry it in raw_json under SHEET_KEY.
SHEET_COLUMN, SHEET_KEY = "source_sheet", "(sheet)"


class Discovered(dict):
    """``extract -> sorted files``; ``.unrecognised`` lists landing files no contract claims."""

    unrecognised: list[Path]


@dataclass
class FileResult:
    """What ingest did with one file."""

    path: Path
    source_file: str  # relative to the landing folder, POSIX separators
    format: str
    size_bytes: int
    sha256: str
    encoding: str  # 'utf-8', 'utf-8-sig', 'gb18030', or 'xlsx' / 'parquet'
    rows_read: int  # data rows, blank lines not counted
    rows_clean: int
    rows_quarantined: int
    staged_path: Path
    quarantine_path: Path
    reasons: dict[str, int] = field(default_factory=dict)  # reason code -> rows with it
    notes: list[str] = field(default_factory=list)  # for the run notes (workbook sheets not read, …)

    @property
    def ids_damaged_by_number(self) -> int:
        """Rows quarantined because an ID went through a number."""
        return self.reasons.get(ID_DAMAGED, 0)


@dataclass
class IngestResult:
    """Ingest of one extract: per-file results and totals."""

    extract: str
    files: list[FileResult]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_clean(self) -> int:
        return sum(f.rows_clean for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def reasons(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.reasons)
        return dict(total.most_common())


# ---------------------------------------------------------------------------- discovery


def _claimed_by(name: str, extracts: list[str]) -> str | None:
    """The extract whose canonical name starts ``name`` followed by an end or a separator; the
    longest such name wins (so ``refund_transfers_01.csv`` is not taken by a ``refund`` extract)."""
    lowered = name.lower()
    for extract in sorted(extracts, key=len, reverse=True):
        rest = lowered[len(extract):]
        if lowered.startswith(extract.lower()) and (rest == "" or rest[0] in "._- "):
            return extract
    return None


def _ignorable(path: Path) -> bool:
    # hidden files, Excel lock files, Spark/Hive markers (_SUCCESS, _metadata)
    return path.name.startswith((".", "~$", "_"))


def discover_extracts(landing: Path, contracts: dict[str, Contract]) -> Discovered:
    """Files per extract in ``landing``: ``<extract>.csv``, ``<extract>_202401.xlsx``,
    ``<extract>/part-0001.parquet`` (folders are searched recursively). Sorted, deterministic.
    Files nobody claims, or with an unsupported format, are listed in ``.unrecognised``."""
    landing = Path(landing)
    if not landing.is_dir():
        raise ExtractError("landing folder not found", file=landing, hint="pass the folder holding the extract files")
    check_landing(landing, _ignorable)
    found = Discovered()
    found.unrecognised = []
    names = list(contracts)
    for entry in sorted(landing.iterdir(), key=lambda p: p.name):
        if _ignorable(entry):
            continue
        stem = entry.name if entry.is_dir() else entry.name[: len(entry.name) - len(entry.suffix)]
        extract = _claimed_by(stem, names)
        if extract is None:
            found.unrecognised.append(entry)
            continue
        candidates = [entry] if entry.is_file() else sorted(
            (p for p in entry.rglob("*") if p.is_file() and not any(_ignorable(Path(part)) for part in p.relative_to(entry).parts)),
            key=lambda p: p.relative_to(entry).as_posix(),
        )
        for path in candidates:
            if path.suffix.lower() in FORMATS:
                found.setdefault(extract, []).append(path)
            else:
                found.unrecognised.append(path)
    return found


# ---------------------------------------------------------------------------- canonicalising


def _map_headers(contract: Contract, headers: list[str], display: str) -> tuple[dict[str, str], dict[str, str]]:
    """(canonical column -> raw column cN, extra column name -> cN); raises on a missing required
    column or two headers naming the same column."""
    header_map = contract.header_map()
    mapped: dict[str, str] = {}
    extras: dict[str, str] = {}
    taken = set(output_schema(contract)) | set(BOOKKEEPING)
    for i, header in enumerate(headers):
        label = header.lstrip("\ufeff")
        canonical = header_map.get(header_key(label))
        if canonical is not None:
            if canonical in mapped:
                first = headers[int(mapped[canonical][1:])]
                raise ExtractError(
                    f"columns {first!r} and {header!r} both name {canonical!r}", file=display,
                    hint="keep one of them or rename the other",
                )
            mapped[canonical] = f"c{i}"
            continue
        key = header_key(label) or f"column_{i + 1}"
        key = f"extra{key}" if key.startswith("_") else key
        base, n = key, 2
        while key in taken:
            key, n = f"{base}_{n}", n + 1
        taken.add(key)
        extras[key] = f"c{i}"
    for col in contract.required:
        if col.name not in mapped:
            accepted = ", ".join(repr(a) for a in [col.name, *col.aliases])
            # Headers are quoted only when the first row is a header row: otherwise it is data.
            shown = ", ".join(f"'{visible(h)}'" for h in headers)
            found = (f"found headers: {shown}" if mapped else
                     f"none of the {len(headers)} values in row 1 is a known column name: is the header row missing?")
            raise ExtractError(
                f"required column {col.name!r} is missing", file=display,
                hint=f"add a column headed one of {accepted}; {found}",
            )
    return mapped, extras


def _quoted(raw: pl.Expr) -> pl.Expr:
    shown = pl.when(raw.str.len_chars() > _REASON_VALUE_CHARS).then(
        raw.str.slice(0, _REASON_VALUE_CHARS) + "…").otherwise(raw)
    return pl.concat_str([pl.lit("'"), shown, pl.lit("'")])


def _plan(contract: Contract, raw: RawFile, where: str, source_file: str, sha256: str) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(clean rows in warehouse order, quarantine rows) for one file."""
    mapped, extras = _map_headers(contract, raw.headers, where)
    data_cols = [f"c{i}" for i in range(len(raw.headers))]
    have = set(raw.frame.collect_schema())
    has_overflow = OVERFLOW in have
    has_sheet = SHEET in have
    if has_sheet:
        name, n = SHEET_COLUMN, 2
        while name in extras or name in output_schema(contract):
            name, n = f"{SHEET_COLUMN}_{n}", n + 1
        extras = {**extras, name: SHEET}
    schema = output_schema(contract)

    def number(c: str) -> pl.Expr | None:
        return pl.col(f"{NUMBER_FLAG}{c}") if f"{NUMBER_FLAG}{c}" in have else None

    # One struct column per mapped contract column ('_n_<col>'): outputs plus _present/_failed.
    normalised = {
        col.name: normalize_column(col, pl.col(mapped[col.name]), excel_serial=raw.excel, number=number(mapped[col.name]))
        for col in contract.columns if col.name in mapped
    }
    struct_of = {name: f"_n_{name}" for name in normalised}
    outputs = {out: pl.col(struct_of[name]).struct.field(out) for name, n in normalised.items() for out in n.outputs}

    def flag(name: str, which: str) -> pl.Expr:
        return pl.col(struct_of[name]).struct.field(which) if name in normalised else pl.lit(False)

    problems: list[pl.Expr] = []
    for col in contract.columns:
        present = flag(col.name, "_present")
        formula = f"{FORMULA_FLAG}{mapped[col.name]}" if col.name in mapped else None
        if formula in have:  # the cell is not blank: a formula whose result was never saved
            present = present | pl.col(formula)
            problems.append(pl.when(pl.col(formula)).then(
                pl.lit(f"formula_without_value: {col.name} (a formula cell with no saved result)")))
        if col.required:
            problems.append(pl.when(~present).then(pl.lit(f"missing_required: {col.name}")))
        elif col.required_when and col.required_when in normalised:
            condition = outputs[col.required_when].fill_null(False)
            problems.append(pl.when(condition & ~present).then(
                pl.lit(f"missing_required: {col.name} (required when {col.required_when} is true)")))
        n = normalised.get(col.name)
        if n is not None and n.reason_code:
            # the raw value only where it failed: quoting it (length, slice, concat) on every row
            # cost more than the check itself
            failed_raw = pl.when(flag(col.name, "_failed")).then(pl.col(mapped[col.name]))
            problems.append(pl.concat_str([pl.lit(f"{n.reason_code}: {col.name}="), _quoted(failed_raw)]))
    reason = pl.concat_str(problems, separator="; ", ignore_nulls=True) if problems else pl.lit("")
    if has_overflow:
        malformed = f"malformed_row: more fields than the {len(raw.headers)} header columns"
        reason = pl.when(pl.col(OVERFLOW).is_not_null()).then(pl.lit(malformed)).otherwise(reason)
    reason = pl.when(reason.str.len_bytes() > 0).then(reason)

    scan_cols = data_cols + ([OVERFLOW] if has_overflow else [])
    staged = (
        raw.frame.filter(pl.any_horizontal(pl.col(scan_cols).is_not_null()))  # blank lines carry nothing
        .with_columns(*[n.expr.alias(struct_of[name]) for name, n in normalised.items()])
        .with_columns(_reason=reason)
    )
    clean = staged.filter(pl.col("_reason").is_null()).select(
        *[outputs.get(name, pl.lit(None)).cast(dtype).alias(name) for name, dtype in schema.items()],
        pl.lit(source_file).alias("_source_file"),
        pl.col("_source_row"),
        pl.lit(sha256).alias("_file_sha256"),
        *[pl.col(c).alias(name) for name, c in extras.items()],
    )
    json_keys = _unique_labels(raw.headers)
    raw_fields = [pl.col(c).alias(k) for c, k in zip(data_cols, json_keys)]
    if has_sheet:
        raw_fields.insert(0, pl.col(SHEET).alias(SHEET_KEY))
    if has_overflow:
        raw_fields.append(pl.col(OVERFLOW).alias("(extra fields)"))
    quarantine = staged.filter(pl.col("_reason").is_not_null()).select(
        pl.lit(contract.extract).alias("extract"),
        pl.lit(source_file).alias("source_file"),
        pl.col("_source_row").alias("source_row"),
        pl.col("_reason").alias("reason"),
        pl.struct(raw_fields).struct.json_encode().alias("raw_json"),
    ).cast(QUARANTINE_SCHEMA)
    return clean, quarantine


def _unique_labels(headers: list[str]) -> list[str]:
    seen: Counter[str] = Counter()
    labels = []
    for i, h in enumerate(headers):
        label = h.lstrip("\ufeff") or f"column_{i + 1}"
        seen[label] += 1
        labels.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return labels


def _reason_counts(quarantine_path: Path) -> dict[str, int]:
    """Rows per reason code (a row with several problems counts once for each code it has)."""
    codes = (
        pl.scan_parquet(quarantine_path)
        .select("source_row", pl.col("reason").str.split("; ").alias("code"))
        .explode("code")
        .select("source_row", pl.col("code").str.extract(r"^([a-z_]+)", 1))
        .group_by("code").agg(pl.col("source_row").n_unique().alias("rows"))
        .sort(["rows", "code"], descending=[True, False])
        .collect()
    )
    return dict(zip(codes["code"].to_list(), codes["rows"].to_list()))


def _count(path: Path) -> int:
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def _visible_controls(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Control characters in values (ESC, NUL, BEL …) are stored as visible escapes, never raw."""
    text = [c for c, t in frame.collect_schema().items() if t == pl.String]
    return frame.with_columns(visible_expr(pl.col(text))) if text else frame


def _safe_name(source_file: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", source_file.replace("/", "__"))


def ingest_file(contract: Contract, path: Path, landing: Path, out_dir: Path, index: int = 0,
                detected: Future | None = None) -> FileResult:
    """Read, canonicalise and stage one file (see :func:`ingest_extract`). ``detected`` is a
    :func:`hash_and_detect` of the file already under way (see :func:`ingest_extract`)."""
    path = Path(path)
    try:
        source_file = path.resolve().relative_to(Path(landing).resolve()).as_posix()
    except ValueError:
        source_file = path.as_posix()
    display = str(path)  # errors name the file as the caller gave it
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExtractError(f"unsupported file type {path.suffix!r}", file=display, hint=f"use one of {', '.join(FORMATS)}")
    sha256, size, encoding, controls = detected.result() if detected else hash_and_detect(path, display, text=fmt == "csv")
    if size == 0:
        raise ExtractError("the file is empty", file=display, hint="an extract needs a header row and data rows")
    stem = f"{index:04d}-{_safe_name(source_file)}"
    staged_path = out_dir / f"{stem}.parquet"
    quarantine_path = out_dir / "quarantine" / f"{stem}.parquet"
    quarantine_path.parent.mkdir(parents=True, exist_ok=True)
    transcoded = out_dir / f"{stem}.utf8.tmp"
    try:
        if fmt == "csv":
            source = path
            if encoding is None:
                transcode_gb18030(path, transcoded, display)
                source, encoding = transcoded, "gb18030"
            raw = read_csv_file(source, display)
        elif fmt == "xlsx":
            raw, encoding = read_xlsx_file(path, display, contract), "xlsx"
        else:
            raw, encoding = read_parquet_file(path, contract, display), "parquet"
        # escaping every value costs 12% of ingest: skipped for a UTF-8 file holding no control character
        raw = RawFile(_visible_controls(raw.frame) if controls else raw.frame, [visible(h) for h in raw.headers], raw.excel,
                      [visible(n) for n in raw.notes])
        clean, quarantine = _plan(contract, raw, display, source_file, sha256)
        try:
            pl.collect_all(
                # lz4: staged files are read once or twice and then deleted, so cheap beats small
                [clean.sink_parquet(staged_path, lazy=True, compression="lz4"),
                 quarantine.sink_parquet(quarantine_path, lazy=True)],
                engine="streaming",
            )
        except pl.exceptions.PolarsError as exc:  # its message quotes rows: never shown
            raise read_failure(exc, display, source if fmt == "csv" else None) from None
    finally:
        transcoded.unlink(missing_ok=True)
    rows_clean, rows_quarantined = _count(staged_path), _count(quarantine_path)
    if rows_clean + rows_quarantined == 0:
        raise ExtractError("the file has a header but no data rows", file=display,
                           hint="remove the file or export it again with its rows")
    return FileResult(
        path=path, source_file=source_file, format=fmt, size_bytes=size, sha256=sha256, encoding=encoding,
        rows_read=rows_clean + rows_quarantined, rows_clean=rows_clean, rows_quarantined=rows_quarantined,
        staged_path=staged_path, quarantine_path=quarantine_path,
        reasons=_reason_counts(quarantine_path) if rows_quarantined else {},
        notes=list(raw.notes),
    )


def ingest_extract(contract: Contract, files: list[Path], landing: Path, staging_dir: Path, *,
                   check: bool = True) -> IngestResult:
    """Stage every file of one extract under ``staging_dir/<extract>/``: clean rows (warehouse columns
    and types, then ``_source_file``, ``_source_row``, ``_file_sha256``, then extra columns as text)
    and quarantined rows (``extract, source_file, source_row, reason, raw_json``), one Parquet pair
    per file. Raises :class:`ExtractError` for an unusable file, or when more than
    ``contract.max_broken_rate`` of the extract's rows were quarantined."""
    out_dir = Path(staging_dir) / contract.extract
    out_dir.mkdir(parents=True, exist_ok=True)
    # Hashing a file (one thread) overlaps with staging the one before it (polars, every core).
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraudwatch-hash")

    def detect(path: Path) -> Future | None:
        fmt = FORMATS.get(Path(path).suffix.lower())
        return pool.submit(hash_and_detect, Path(path), str(path), fmt == "csv") if fmt else None

    staged = []
    try:
        pending = detect(files[0]) if files else None
        for index, path in enumerate(files):
            upcoming = detect(files[index + 1]) if index + 1 < len(files) else None
            staged.append(ingest_file(contract, path, landing, out_dir, index, detected=pending))
            pending = upcoming
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    result = IngestResult(contract.extract, staged)
    if check:  # False when the caller checks the whole extract (some files came from the lake)
        check_damaged_ids(contract, result)
        check_broken_rate(contract, result)
    return result


def check_damaged_ids(contract: Contract, result: IngestResult) -> None:
    """Refuse the extract when more than DAMAGED_ID_STOP_RATE of its rows carry an ID that went
    through a number: the file was saved through a spreadsheet, and only a new export helps."""
    damaged = sum(f.ids_damaged_by_number for f in result.files)
    if not result.rows_read or damaged / result.rows_read <= DAMAGED_ID_STOP_RATE:
        return
    worst = sorted((f for f in result.files if f.ids_damaged_by_number),
                   key=lambda f: (-f.ids_damaged_by_number / f.rows_read, f.source_file))
    files = "; ".join(f"{f.source_file}: {f.ids_damaged_by_number} of {f.rows_read} rows" for f in worst[:5])
    parquet = worst[0].format == "parquet"
    raise ExtractError(
        f"{damaged} of {result.rows_read} rows of {contract.extract} have an ID number that went through a number "
        f"(like 4.20113E+17 or 420113194901010000.0: its last digits are lost) — {files}. "
        + ("The ID column is stored as floating point." if parquet else
           "The file was saved through a spreadsheet (Excel/WPS) that read the ID column as numbers."),
        file=str(worst[0].path),
        hint=("write the ID columns as strings (text) and export again" if parquet else
              "export the extract again from the source system as CSV and do not open and save it in Excel; "
              "if it must pass through Excel, import it with 数据 → 自文本/CSV and set the ID column to 文本 (Text), "
              "or format the column as 文本 before pasting, then save as .xlsx or CSV UTF-8"),
    )


def check_broken_rate(contract: Contract, result: IngestResult) -> None:
    """Refuse the extract when more than ``max_broken_rate`` of its rows were quarantined."""
    if not result.rows_read or result.rows_quarantined / result.rows_read <= contract.max_broken_rate:
        return
    worst = sorted((f for f in result.files if f.rows_quarantined), key=lambda f: -f.rows_quarantined / f.rows_read)
    files = "; ".join(f"{f.source_file}: {f.rows_quarantined} of {f.rows_read} rows" for f in worst[:5])
    reasons = ", ".join(f"{code} ({n})" for code, n in list(result.reasons.items())[:3])
    raise ExtractError(
        f"{result.rows_quarantined} of {result.rows_read} rows of {contract.extract} are broken "
        f"(more than {contract.max_broken_rate:.0%}) — {files}; top reasons: {reasons}",
        file=str(worst[0].path) if worst else None,
        hint="look at the quarantine output for these files and fix the export; a header mapped to the wrong column often causes this",
    )
