"""Reading extract files as all-text polars frames: CSV (encoding detected: UTF-8, UTF-8 with BOM,
GB18030), XLSX (every sheet whose header matches the extract) and Parquet, each with a 1-based
``_source_row`` as a spreadsheet shows it, and flags for cells that went through a number or are
formulas without a cached value.

Files are hashed (sha256) while the encoding is detected, in one streaming pass.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.contracts import Contract, ValueType, header_key
from pipelines.errors import ExtractError
from pipelines.guards.csv_shape import CsvShape
from pipelines.guards.workbook import check_parquet, check_xlsx
from pipelines.limits import current as current_limits
from pipelines.textsafe import STORED_CONTROLS

_CHUNK = 16 * 1024 * 1024
OVERFLOW = "_overflow"
_NON_ASCII_BYTES = bytes(range(128, 256))
# GBK text almost never passes for this much UTF-8 (each GBK character is valid UTF-8 by chance
# about one time in ten), so a file with more valid UTF-8 than this before an error is UTF-8.
_UTF8_EVIDENCE = 16


@dataclass
class RawFile:
    frame: pl.LazyFrame  # '_source_row' Int64 + String columns c0..c{n-1} (+ '_overflow' for CSV; flags, '_sheet')
    headers: list[str]
    excel: bool
    notes: list[str] = field(default_factory=list)  # for the run notes (e.g. workbook sheets not read)


def _non_ascii(data: bytes) -> int:
    return len(data) - len(data.translate(None, _NON_ASCII_BYTES))


class _Utf8Scan:
    """Streaming UTF-8 check of a file's chunks, validated by Arrow (SIMD; no Python ``str`` is made).

    A chunk is checked up to its last newline; the rest waits for the next chunk, so a character
    split across chunks is whole when checked. ``good_non_ascii`` counts non-ASCII bytes that
    decoded before any error (counting stops once it is enough evidence); ``truncated`` says the
    only fault is a character cut off at the end of the file.
    """

    def __init__(self) -> None:
        self.tail = b""
        self.checked = 0  # file offset of the first byte not yet checked
        self.good_non_ascii = 0
        self.truncated = False

    def feed(self, chunk: bytes, final: bool = False) -> int | None:
        """File offset of the first bad byte, or None while everything so far is valid."""
        data = self.tail + chunk if self.tail else chunk
        cut = len(data) if final else data.rfind(b"\n") + 1
        if not final and cut == 0 and len(data) > 4 * _CHUNK:  # no newline at all: check up to the last character
            cut = len(data) - 1
            while cut > len(data) - 4 and data[cut] & 0xC0 == 0x80:  # continuation bytes
                cut -= 1
        head, self.tail = memoryview(data)[:cut], data[cut:]
        bad = _first_bad_utf8(head)
        if self.good_non_ascii < _UTF8_EVIDENCE:
            self.good_non_ascii += _non_ascii(bytes(head[: len(head) if bad is None else bad]))
        if bad is not None and final:
            self.truncated = _is_cut_off(bytes(head[bad:]))
        start, self.checked = self.checked, self.checked + cut
        return None if bad is None else start + bad


def _first_bad_utf8(data: memoryview) -> int | None:
    if not len(data):
        return None
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, pa.py_buffer(_offsets(len(data))), pa.py_buffer(data)]
                              ).validate(full=True)
        return None
    except pa.ArrowInvalid:
        pass
    try:  # slow path, only for a file that is not UTF-8: where exactly it breaks
        codecs.getincrementaldecoder("utf-8")("strict").decode(bytes(data), final=True)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def _offsets(length: int) -> bytes:
    return (0).to_bytes(8, "little") + length.to_bytes(8, "little")


def _is_cut_off(rest: bytes) -> bool:
    """True when ``rest`` is the start of a character with its last bytes missing."""
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(rest, final=False)
    except UnicodeDecodeError:
        return False
    return True


class Detected(NamedTuple):
    """What the hashing pass over a file found (:func:`hash_and_detect`)."""

    sha256: str
    size: int
    encoding: str | None  # 'utf-8' | 'utf-8-sig', or None when not UTF-8 (may be GB18030)
    controls: bool        # the file may hold a control character that is stored escaped (textsafe)


# The characters textsafe stores escaped (textsafe.STORED_CONTROLS), as UTF-8: the one-byte ones are
# the C0 controls but tab, LF and CR, and DEL; the others are C1 controls (C2 80-9F) and the
# line/paragraph separators and bidi overrides (E2 80 A8-AE, E2 81 A6-A9), which the numpy check in
# _c1_or_bidi looks for chunk by chunk and this pattern where a chunk boundary cuts one.
_C1_OR_BIDI = re.compile(b"|".join(re.escape(c.encode()) for c in STORED_CONTROLS if ord(c) > 0x7F))


class _ControlScan:
    """Whether a UTF-8 file holds any character textsafe stores escaped, chunk by chunk (numpy and
    memchr-speed byte counts; a three-byte sequence cut by a chunk boundary is seen whole). When it
    holds none, ingest skips escaping every value of the file (12% of ingest's CPU)."""

    def __init__(self) -> None:
        self.found = False
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        if self.found or not chunk:
            return
        a = np.frombuffer(chunk, dtype=np.uint8)
        # numpy counts (bytes.count over a chunk was a third of hashing): a chunk whose only bytes
        # below 0x20 are line feeds is clear; otherwise look whether any is not \t, \n or \r
        low = a < 0x20
        control = np.count_nonzero(low) != np.count_nonzero(a == 0x0A) and \
            bool(np.count_nonzero(low & (a != 0x0A) & (a != 0x0D) & (a != 0x09)))
        if control or b"\x7f" in chunk:
            self.found = True
            return
        seam = self.tail + chunk[:2]
        self.tail = seam[-2:] if len(chunk) < 2 else chunk[-2:]
        self.found = bool(_C1_OR_BIDI.search(seam)) or _c1_or_bidi(a, chunk)


def _c1_or_bidi(a: np.ndarray, chunk: bytes) -> bool:
    """Whether the chunk holds a C1 control or a separator/bidi character (whole, as UTF-8)."""
    if b"\xc2" in chunk:  # also the lead byte of '·' in names: look at what follows each
        at = np.flatnonzero(a[:-1] == 0xC2) + 1
        if ((a[at] >= 0x80) & (a[at] <= 0x9F)).any():
            return True
    if b"\xe2" in chunk:
        at = np.flatnonzero(a[:-2] == 0xE2) + 1
        b1, b2 = a[at], a[at + 1]
        return bool((((b1 == 0x80) & (b2 >= 0xA8) & (b2 <= 0xAE)) | ((b1 == 0x81) & (b2 >= 0xA6) & (b2 <= 0xA9))).any())
    return False


def hash_and_detect(path: Path, display: str, text: bool = True) -> Detected:
    """sha256, size and encoding ('utf-8' | 'utf-8-sig', or None when the file is not UTF-8 and
    may be GB18030), and whether it may hold control characters, in one streaming pass.

    ``text=False`` (binary formats) only hashes. A file that decodes as UTF-8 for a while (non-ASCII
    text included) and then hits a bad byte is damaged UTF-8, not GBK: GB18030 would "decode" it
    into mojibake, so it is refused instead.
    """
    digest = hashlib.sha256()
    shape = CsvShape(display, current_limits()) if text else None  # field/line limits, before parsing
    scan = _Utf8Scan()
    controls = _ControlScan() if text else None
    utf8 = text
    size = 0
    first = b""
    bad: int | None = None
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            first += chunk[: 3 - len(first)]
            digest.update(chunk)
            if shape:
                shape.feed(chunk)
            size += len(chunk)
            if utf8:
                bad = scan.feed(chunk)
                utf8 = bad is None
                controls.feed(chunk)
        if utf8 and scan.tail:
            bad = scan.feed(b"", final=True)
            utf8 = bad is None
    if not utf8 and text and scan.good_non_ascii >= _UTF8_EVIDENCE:
        if scan.truncated:
            raise ExtractError("the file is UTF-8 but ends in the middle of a character", file=display,
                               hint="the file is truncated or damaged; export it again")
        raise ExtractError(
            f"the file is UTF-8 but has an invalid byte sequence near byte {bad}",
            file=display, hint="the file is damaged or mixes encodings; export it again",
        )
    encoding = ("utf-8-sig" if first.startswith(codecs.BOM_UTF8) else "utf-8") if utf8 else None
    # only a UTF-8 text file is known free of them; GB18030, XLSX and Parquet are always escaped
    return Detected(digest.hexdigest(), size, encoding, controls.found if utf8 else True)


def transcode_gb18030(path: Path, target: Path, display: str) -> None:
    """Strict GB18030 → UTF-8 copy in chunks; raises ExtractError when the bytes are not GB18030."""
    decoder = codecs.getincrementaldecoder("gb18030")("strict")
    offset = 0
    try:
        with open(path, "rb") as src, open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                text = decoder.decode(chunk)
                if offset == 0:
                    text = text.lstrip("\ufeff")
                dst.write(text.encode("utf-8"))
                offset += len(chunk)
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError as exc:
        target.unlink(missing_ok=True)
        raise ExtractError(
            f"cannot decode the file: it is neither UTF-8 nor GB18030/GBK (bad bytes near byte {offset + exc.start})",
            file=display,
            hint="re-export the file as UTF-8 (or GBK) text; fraudwatch never guesses an encoding lossily",
        ) from None


def read_csv_file(path: Path, display: str) -> RawFile:
    """A UTF-8 CSV (comma or tab separated, with or without BOM) as all-text columns."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        first_line = fh.readline()
    if not first_line.strip():
        raise ExtractError("the file has no header row", file=display, hint="the first line must name the columns")
    separator = "\t" if path.suffix.lower() == ".tsv" or first_line.count("\t") > first_line.count(",") else ","
    headers = next(csv.reader([first_line], delimiter=separator))
    schema = {f"c{i}": pl.String() for i in range(len(headers))}
    schema[OVERFLOW] = pl.String()
    # The header line is scanned as data (row 1) and dropped: it fixes the field count, so a longer
    # row fills '_overflow' (→ malformed_row) and a shorter one leaves NULLs (→ missing_required).
    frame = (
        pl.scan_csv(
            path, has_header=False, separator=separator, schema=schema, missing_columns="insert",
            truncate_ragged_lines=True, row_index_name="_source_row", row_index_offset=1, encoding="utf8",
        )
        .filter(pl.col("_source_row") > 1)
        .with_columns(pl.col("_source_row").cast(pl.Int64))
    )
    return RawFile(frame, headers, excel=False)


# Columns a reader may add beside c0..c{n-1}: per ID column cN, ``_num_cN`` is True where the cell
# was a number (a numeric XLSX cell, a Parquet float); per column cN, ``_fx_cN`` is True where a
# formula cell has no cached value; ``_sheet`` names the workbook sheet a row came from.
NUMBER_FLAG = "_num_"
FORMULA_FLAG = "_fx_"
SHEET = "_sheet"


def read_xlsx_file(path: Path, display: str, contract: Contract | None = None) -> RawFile:
    """Every sheet of a workbook whose header matches the extract (all required columns named), as one
    all-text frame with ``_sheet`` and each row's spreadsheet row number. Other sheets are listed in
    ``RawFile.notes``. A formula cell counts by its cached value; ``_fx_cN`` marks one without.
    ID cells stored as numbers are marked ``_num_cN`` (their digits are lost)."""
    import fastexcel

    check_xlsx(path, display, current_limits())  # sizes, ratios, rows and cells, before the reader

    try:
        reader = fastexcel.read_excel(path)
        names = list(reader.sheet_names)
    except Exception as exc:  # fastexcel raises its own exception types
        raise ExtractError(f"cannot read the workbook: {exc}", file=display, hint="save it as .xlsx from Excel or WPS") from None
    layout = _xlsx_layout(path)
    sheets: list[tuple[str, pl.DataFrame, list[str]]] = []
    skipped: list[str] = []
    for index, sheet_name in enumerate(names):
        try:
            data = reader.load_sheet(index, header_row=0, dtypes="string").to_polars()
        except Exception as exc:
            if index == 0 and len(names) == 1:
                raise ExtractError(f"cannot read the workbook: {exc}", file=display,
                                   hint="save it as .xlsx from Excel or WPS") from None
            skipped.append(f"{sheet_name!r} (unreadable: {exc})")
            continue
        headers = [str(h) for h in data.columns]
        if contract is not None and not _matches(contract, headers):
            skipped.append(f"{sheet_name!r} (its header names no {contract.extract} columns)" if not _names_any(contract, headers)
                           else f"{sheet_name!r} (header lacks required columns of {contract.extract})")
            continue
        if not headers:
            skipped.append(f"{sheet_name!r} (empty)")
            continue
        first_row, first_col = layout.get(sheet_name, (1, 1))
        data = data.rename({h: f"c{i}" for i, h in enumerate(data.columns)})
        data = data.with_columns(pl.all().str.replace(r"^(\d{4}-\d{2}-\d{2}) 00:00:00$", "$1"))  # date cells: keep the date
        if contract is not None:
            data = data.with_columns(_number_flags(reader, index, contract, headers))
        data = data.with_columns(_formula_flags(path, sheet_name, first_row, first_col, len(headers), data.height))
        data = data.with_row_index("_source_row", offset=first_row + 1).with_columns(
            pl.col("_source_row").cast(pl.Int64), pl.lit(sheet_name).alias(SHEET))
        sheets.append((sheet_name, data, headers))
    if not sheets:
        if contract is not None and names:  # the usual message naming the missing column, for the first sheet
            first = next((h for h in (_sheet_headers(reader, i) for i in range(len(names))) if h), None)
            if first is None:
                raise ExtractError("the workbook is empty: no sheet has a header row", file=display,
                                   hint="put the header in row 1 of the sheet")
            raise ExtractError(
                f"no sheet's header matches {contract.extract}: " + "; ".join(skipped), file=display,
                hint=f"row 1 of a sheet must name the columns of {contract.extract}; found headers {', '.join(map(repr, first))}")
        raise ExtractError("the first sheet is empty", file=display, hint="put the header in row 1 of the first sheet")
    frame, headers = _union_sheets(sheets)
    notes = [f"{display}: sheet {s} not read" for s in skipped]
    return RawFile(frame.lazy(), headers, excel=True, notes=notes)


def _matches(contract: Contract, headers: list[str]) -> bool:
    mapped = {contract.header_map().get(header_key(h.lstrip("\ufeff"))) for h in headers}
    return all(c.name in mapped for c in contract.required)


def _names_any(contract: Contract, headers: list[str]) -> bool:
    return any(contract.header_map().get(header_key(h.lstrip("\ufeff"))) for h in headers)


def _sheet_headers(reader, index: int) -> list[str]:
    try:
        return [str(h) for h in reader.load_sheet(index, header_row=0, n_rows=0, dtypes="string").to_polars().columns]
    except Exception:
        return []


def _number_flags(reader, index: int, contract: Contract, headers: list[str]) -> list[pl.Series]:
    """``_num_cN`` for the ID columns: True where the cell holds a number, not text. Loading a column
    as boolean gives a value for numeric (and boolean) cells only; text cells come out NULL."""
    header_map = contract.header_map()
    id_columns = [i for i, h in enumerate(headers)
                  if (target := header_map.get(header_key(h.lstrip("\ufeff"))))
                  and contract.column(target).type in (ValueType.person_id, ValueType.firm_id)]
    if not id_columns:
        return []
    flags = reader.load_sheet(index, header_row=0, use_columns=id_columns,
                              dtypes={i: "boolean" for i in id_columns}).to_polars()
    return [flags.to_series(k).is_not_null().alias(f"{NUMBER_FLAG}c{i}") for k, i in enumerate(id_columns)]


_CELL_REF = re.compile(rb'\br="([A-Z]{1,3})(\d+)"')
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]+)</(?:\w+:)?v>")


def _column_index(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _formula_flags(path: Path, sheet_name: str, first_row: int, first_col: int, width: int, height: int) -> list[pl.Series]:
    """``_fx_cN`` columns (only for columns that have one): True where a formula cell has no cached
    value (a workbook written by a program and never opened in Excel). Scans the sheet's XML for
    formula elements only; sheets without formulas cost one pass over the bytes."""
    missing: dict[int, list[int]] = {}
    for row, col in _formulas_without_value(path, sheet_name):
        c, r = col - first_col, row - first_row - 1
        if 0 <= c < width and 0 <= r < height:
            missing.setdefault(c, []).append(r)
    out = []
    for c, rows in sorted(missing.items()):
        flag = np.zeros(height, dtype=bool)
        flag[rows] = True
        out.append(pl.Series(f"{FORMULA_FLAG}c{c}", flag))
    return out


def _formulas_without_value(path: Path, sheet_name: str) -> list[tuple[int, int]]:
    """(row, column) 1-based of the formula cells of a sheet without a cached value."""
    target = _xlsx_sheet_parts(path).get(sheet_name)
    if target is None:
        return []
    found: list[tuple[int, int]] = []
    with zipfile.ZipFile(path) as archive, archive.open(target) as member:
        tail = b""
        while chunk := member.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b"</c>")
            cut = len(data) if cut < 0 else cut + 4
            if len(data) - cut > 4 * _CHUNK:  # no cell end at all: malformed, stop looking
                break
            block, tail = data[:cut], data[cut:]
            for match in _FORMULA.finditer(block):
                start = max(block.rfind(b"<c ", 0, match.start()), block.rfind(b":c ", 0, match.start()))
                end = block.find(b"</c>", match.end())
                ref = _CELL_REF.search(block, start, match.start()) if start >= 0 else None
                if ref is None or end < 0:
                    continue
                if _VALUE.search(block, match.end(), end) is None:
                    found.append((int(ref.group(2)), _column_index(ref.group(1))))
    return found


def _xlsx_sheet_parts(path: Path) -> dict[str, str]:
    """Sheet name -> the zip member holding its XML (from workbook.xml and its relationships)."""
    from xml.etree import ElementTree

    main = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    rel_ns = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
    try:
        with zipfile.ZipFile(path) as archive:
            book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
            rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, zipfile.BadZipFile, ElementTree.ParseError):
        return {}
    targets = {r.get("Id"): r.get("Target", "") for r in rels}
    parts = {}
    for sheet in book.iter(f"{main}sheet"):
        target = targets.get(sheet.get(f"{rel_ns}id"), "")
        parts[sheet.get("name")] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return parts


def _union_sheets(sheets: list[tuple[str, pl.DataFrame, list[str]]]) -> tuple[pl.DataFrame, list[str]]:
    """One frame over the sheets: columns c0.. follow the union of their header labels (first seen
    first); a sheet without a column has NULLs there."""
    headers: list[str] = []
    for _, _, labels in sheets:
        for label in labels:
            if label not in headers:
                headers.append(label)
    frames = []
    for _, data, labels in sheets:
        where = {f"c{i}": f"c{headers.index(label)}" for i, label in enumerate(labels)}
        renamed = data.rename({old: new for old, new in where.items()} | {
            f"{prefix}{old}": f"{prefix}{new}" for old, new in where.items() for prefix in (NUMBER_FLAG, FORMULA_FLAG)
            if f"{prefix}{old}" in data.columns})
        frames.append(renamed)
    frame = pl.concat(frames, how="diagonal_relaxed")
    flags = [c for c in frame.columns if c.startswith((NUMBER_FLAG, FORMULA_FLAG))]
    frame = frame.with_columns(pl.col(flags).fill_null(False)) if flags else frame
    data_cols = [f"c{i}" for i in range(len(headers))]
    return frame.select("_source_row", *data_cols, *sorted(flags), SHEET), headers


def _xlsx_layout(path: Path) -> dict[str, tuple[int, int]]:
    """Sheet name -> (spreadsheet row of the header, first column): the reader skips leading empty
    rows and columns, row numbers must not."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True)
        try:
            return {ws.title: (max(int(ws.min_row or 1), 1), max(int(ws.min_column or 1), 1)) for ws in workbook.worksheets}
        finally:
            workbook.close()
    except Exception:  # no usable dimension record: assume the header is in row 1, column A
        return {}


def read_parquet_file(path: Path, contract: Contract, display: str) -> RawFile:
    check_parquet(path, display, current_limits())  # rows, columns, row-group sizes from the footer
    try:
        schema = pl.scan_parquet(path).collect_schema()
    except Exception as exc:  # polars raises several error types for corrupt files
        raise ExtractError(f"cannot read the Parquet file: {exc}", file=display) from None
    header_map = contract.header_map()
    headers = list(schema)
    # An ID column stored as floating point has lost the digits of an 18-digit ID: its values are
    # marked (quarantined as id_damaged_by_number), never loaded as some other ID.
    floats = [pl.col(h).is_not_null().alias(f"{NUMBER_FLAG}c{i}") for i, (h, dtype) in enumerate(schema.items())
              if dtype.is_float() and (target := header_map.get(header_key(h)))
              and contract.column(target).type in (ValueType.person_id, ValueType.firm_id)]
    frame = (
        pl.scan_parquet(path)
        .select([pl.col(h).cast(pl.String).alias(f"c{i}") for i, h in enumerate(headers)] + floats)
        .with_row_index("_source_row", offset=1)
        .with_columns(pl.col("_source_row").cast(pl.Int64))
    )
    return RawFile(frame, headers, excel=False)
