"""XLSX and Parquet checks before a reader opens the file, from what the file says about itself
and, for XLSX, from a bounded streaming pass over the zip (declared sizes can lie).

An XLSX is a zip of XML. A zip bomb of a few hundred KB can hold gigabytes of XML, and one cell at
``XFD1048576`` makes the reader allocate a dense grid of 17 billion cells. So, before the reader:
the central directory's sizes and compression ratios are checked; every member is then
decompressed in 1 MiB pieces (zipfile stops at the declared size and checks the CRC, so a member
that lies fails) while the sheet XML is scanned for its last row and column.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from pipelines.errors import ExtractError
from pipelines.limits import Limits, show_bytes

_PIECE = 1024 * 1024
_DIMENSION = re.compile(rb'<dimension ref="(?:[A-Z]+\d+:)?([A-Z]+)(\d+)"')
_ROW = re.compile(rb'<row [^>]*?r="(\d+)"')
_WIDE_CELL = re.compile(rb'<c r="([A-Z]{2,3})\d')
_HINT = ("a real export stays far below this; if the workbook is genuine, save it as CSV, or raise the "
         "limit with --limit {name}=…")


def _refuse(display: str, message: str, name: str) -> ExtractError:
    return ExtractError(f"{message} ({'limits.' + name})", file=display, hint=_HINT.format(name=name))


def column_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def check_xlsx(path: Path, display: str, limits: Limits) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ExtractError("the file is not a valid .xlsx workbook (not a zip archive)", file=display,
                           hint="save it as .xlsx from Excel or WPS") from None
    with archive:
        members = archive.infolist()
        declared = sum(m.file_size for m in members)
        if declared > limits.xlsx_max_uncompressed_bytes:
            raise _refuse(display, f"the workbook unpacks to {show_bytes(declared)}, more than the limit of "
                                   f"{show_bytes(limits.xlsx_max_uncompressed_bytes)}", "xlsx_max_uncompressed_bytes")
        for m in members:
            ratio = m.file_size / max(m.compress_size, 1)
            if m.file_size > _PIECE and ratio > limits.xlsx_max_compression_ratio:
                raise _refuse(display, f"part {m.filename} of the workbook is compressed {ratio:,.0f} to 1, more than "
                                       f"the limit of {limits.xlsx_max_compression_ratio:g} (a zip bomb?)",
                              "xlsx_max_compression_ratio")
        total = 0
        for m in members:
            sheet = m.filename.startswith("xl/worksheets/") and m.filename.endswith(".xml")
            last_row = last_col = rows = 0
            tail = b""
            try:
                with archive.open(m) as fh:
                    while piece := fh.read(_PIECE):
                        total += len(piece)
                        if total > limits.xlsx_max_uncompressed_bytes:
                            raise _refuse(display, f"the workbook unpacks to more than "
                                                   f"{show_bytes(limits.xlsx_max_uncompressed_bytes)}",
                                          "xlsx_max_uncompressed_bytes")
                        if sheet:
                            text = tail + piece
                            rows += (tail[-3:] + piece).count(b"<row")  # rows written without r="…" count too
                            last_row, last_col = _extent(text, max(last_row, rows), last_col)
                            _check_extent(display, m.filename, last_row, last_col, limits)
                            tail = text[-64:]
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as exc:
                raise ExtractError(f"part {m.filename} of the workbook is damaged ({type(exc).__name__})",
                                   file=display, hint="save it again as .xlsx from Excel or WPS") from None


def _extent(text: bytes, last_row: int, last_col: int) -> tuple[int, int]:
    dim = _DIMENSION.search(text)
    if dim:
        last_row = max(last_row, int(dim.group(2)))
        last_col = max(last_col, column_number(dim.group(1)))
    start = text.rfind(b"<row ")
    if start >= 0:
        row = _ROW.match(text, start)
        if row:
            last_row = max(last_row, int(row.group(1)))
    wide = set(_WIDE_CELL.findall(text))
    if wide:
        last_col = max(last_col, *(column_number(w) for w in wide))
    return last_row, max(last_col, 1 if last_row else 0)


def _check_extent(display: str, part: str, last_row: int, last_col: int, limits: Limits) -> None:
    if last_row > limits.xlsx_max_rows:
        raise _refuse(display, f"sheet {part} reaches row {last_row:,}, more than the limit of {limits.xlsx_max_rows:,} rows",
                      "xlsx_max_rows")
    if last_row * last_col > limits.xlsx_max_cells:
        raise _refuse(display, f"sheet {part} spans {last_row:,} rows × {last_col:,} columns, more than the limit of "
                               f"{limits.xlsx_max_cells:,} cells", "xlsx_max_cells")


def check_parquet(path: Path, display: str, limits: Limits) -> None:
    """Rows, columns and row-group sizes from the footer, before any data is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError):
        raise ExtractError("the file is not a valid Parquet file (damaged or truncated footer)", file=display,
                           hint="write the file again") from None
    if meta.num_columns > limits.parquet_max_columns:
        raise _refuse(display, f"the file has {meta.num_columns:,} columns, more than the limit of "
                               f"{limits.parquet_max_columns:,}", "parquet_max_columns")
    if meta.num_rows > limits.parquet_max_rows:
        raise _refuse(display, f"the file has {meta.num_rows:,} rows, more than the limit of {limits.parquet_max_rows:,}",
                      "parquet_max_rows")
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        size = max(group.total_byte_size, sum(group.column(c).total_uncompressed_size for c in range(group.num_columns)))
        if size > limits.parquet_max_row_group_bytes:
            raise _refuse(display, f"row group {i} is {show_bytes(size)} uncompressed, more than the limit of "
                                   f"{show_bytes(limits.parquet_max_row_group_bytes)}", "parquet_max_row_group_bytes")
