"""Reading extract files as all-text polars frames: CSV (encoding detected: UTF-8, UTF-8 with BOM,
GB18030), XLSX (first sheet) and Parquet, each with a 1-based ``_source_row`` as a spreadsheet shows it.

Files are hashed (sha256) while the encoding is detected, in one streaming pass.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.contracts import Contract, ValueType, header_key
from pipelines.errors import ExtractError
from pipelines.guards.csv_shape import CsvShape
from pipelines.guards.workbook import check_parquet, check_xlsx
from pipelines.limits import current as current_limits

_CHUNK = 16 * 1024 * 1024
OVERFLOW = "_overflow"
_NON_ASCII_BYTES = bytes(range(128, 256))
# GBK text almost never passes for this much UTF-8 (each GBK character is valid UTF-8 by chance
# about one time in ten), so a file with more valid UTF-8 than this before an error is UTF-8.
_UTF8_EVIDENCE = 16


@dataclass
class RawFile:
    frame: pl.LazyFrame  # '_source_row' Int64 + String columns c0..c{n-1} (+ '_overflow' for CSV)
    headers: list[str]
    excel: bool


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


def hash_and_detect(path: Path, display: str, text: bool = True) -> tuple[str, int, str | None]:
    """sha256, size and encoding ('utf-8' | 'utf-8-sig', or None when the file is not UTF-8 and
    may be GB18030), in one streaming pass.

    ``text=False`` (binary formats) only hashes. A file that decodes as UTF-8 for a while (non-ASCII
    text included) and then hits a bad byte is damaged UTF-8, not GBK: GB18030 would "decode" it
    into mojibake, so it is refused instead.
    """
    digest = hashlib.sha256()
    shape = CsvShape(display, current_limits()) if text else None  # field/line limits, before parsing
    scan = _Utf8Scan()
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
    return digest.hexdigest(), size, encoding


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


def read_xlsx_file(path: Path, display: str) -> RawFile:
    import fastexcel

    check_xlsx(path, display, current_limits())  # sizes, ratios, rows and cells, before the reader

    try:
        sheet = fastexcel.read_excel(path).load_sheet(0, header_row=0, dtypes="string")
        data = sheet.to_polars()
    except Exception as exc:  # fastexcel raises its own exception types
        raise ExtractError(f"cannot read the workbook: {exc}", file=display, hint="save it as .xlsx from Excel or WPS") from None
    headers = list(data.columns)
    if not headers:
        raise ExtractError("the first sheet is empty", file=display, hint="put the header in row 1 of the first sheet")
    data = data.rename({h: f"c{i}" for i, h in enumerate(headers)})
    # Date cells come out as 'YYYY-MM-DD 00:00:00'; keep the date.
    data = data.with_columns(pl.all().str.replace(r"^(\d{4}-\d{2}-\d{2}) 00:00:00$", "$1"))
    first_data_row = _xlsx_header_row(path) + 1
    data = data.with_row_index("_source_row", offset=first_data_row).with_columns(pl.col("_source_row").cast(pl.Int64))
    return RawFile(data.lazy(), headers, excel=True)


def _xlsx_header_row(path: Path) -> int:
    """Spreadsheet row of the header: the reader skips leading empty rows, row numbers must not."""
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True)
        try:
            return max(int(workbook.worksheets[0].min_row or 1), 1)
        finally:
            workbook.close()
    except Exception:  # no usable dimension record: assume the header is in row 1
        return 1


def read_parquet_file(path: Path, contract: Contract, display: str) -> RawFile:
    check_parquet(path, display, current_limits())  # rows, columns, row-group sizes from the footer
    try:
        schema = pl.scan_parquet(path).collect_schema()
    except Exception as exc:  # polars raises several error types for corrupt files
        raise ExtractError(f"cannot read the Parquet file: {exc}", file=display) from None
    header_map = contract.header_map()
    for name, dtype in schema.items():
        target = header_map.get(header_key(name))
        if target and dtype.is_float() and contract.column(target).type in (ValueType.person_id, ValueType.firm_id):
            raise ExtractError(
                f"column {name!r} ({target}) is stored as floating point, which loses the digits of an 18-digit ID",
                file=display, hint="write ID columns as strings",
            )
    headers = list(schema)
    frame = (
        pl.scan_parquet(path)
        .select([pl.col(h).cast(pl.String).alias(f"c{i}") for i, h in enumerate(headers)])
        .with_row_index("_source_row", offset=1)
        .with_columns(pl.col("_source_row").cast(pl.Int64))
    )
    return RawFile(frame, headers, excel=False)
