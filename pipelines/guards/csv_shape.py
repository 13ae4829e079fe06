"""CSV shape checks while the file is hashed, before it is parsed, and parse errors without content.

:class:`CsvShape` is fed the file's chunks (the same pass that hashes it) and fails as soon as one
field or one record (line; quoted line breaks included) is longer than its limit, naming the row
and the limit: a 2 GiB field is refused after reading ``limit`` bytes of it, not parsed into memory.
Quotes are tracked with numpy over each chunk (no Python loop over rows).

:func:`read_failure` turns a parser error into a message naming the file and line, never quoting
the rows (polars' own message quotes them, and they hold IDs, names and bank accounts).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipelines.errors import ExtractError, FraudwatchError
from pipelines.guards.oserrors import os_failure
from pipelines.limits import Limits, show_bytes

_QUOTE, _NEWLINE = 34, 10
_LINE_BREAK = b"\n"


class CsvShape:
    def __init__(self, display: str, limits: Limits) -> None:
        self.display = display
        self.field_limit = limits.csv_max_field_bytes
        self.line_limit = limits.csv_max_line_bytes
        self.separator: int | None = None
        self.offset = 0          # file offset of the next chunk
        self.in_quote = False
        self.last_field = -1     # file offset of the last field boundary (separator or line break outside quotes)
        self.last_record = -1    # file offset of the last line break outside quotes
        self.records = 0         # line breaks outside quotes so far

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        a = np.frombuffer(chunk, dtype=np.uint8)
        if self.separator is None:
            first = chunk.split(b"\n", 1)[0]
            self.separator = 9 if first.count(b"\t") > first.count(b",") else 44
        quotes = a == _QUOTE
        if quotes.any():
            # parity of quotes so far (uint8 wraps at 256, which keeps the parity)
            outside = ((np.cumsum(quotes, dtype=np.uint8) + np.uint8(self.in_quote)) & 1) == 0
            self.in_quote = bool((int(np.count_nonzero(quotes)) + self.in_quote) & 1)
        else:
            outside = None if not self.in_quote else False
        if outside is False:  # the whole chunk is inside one quoted field
            newlines = fields = np.empty(0, dtype=np.int64)
        else:
            is_newline = a == _NEWLINE
            if outside is not None:
                is_newline &= outside
            newlines = np.flatnonzero(is_newline)
            longest = int(np.diff(np.concatenate(([self.last_record - self.offset], newlines, [len(chunk)]))).max())
            if outside is None and longest <= self.field_limit:
                # no quotes and no line longer than a field may be: no field is too long; only the
                # chunk's last boundary matters (for a field that goes on in the next chunk)
                last = max(chunk.rfind(b"\n"), chunk.rfind(bytes([self.separator])))
                fields = None
                if last >= 0:
                    self.last_field = self.offset + last
            else:
                is_field = (a == _NEWLINE) | (a == self.separator)
                if outside is not None:
                    is_field &= outside
                fields = np.flatnonzero(is_field)
        if fields is not None:
            self._check(fields, self.last_field, self.field_limit, newlines, "a field", "limits.csv_max_field_bytes",
                        len(chunk))
        self._check(newlines, self.last_record, self.line_limit, newlines, "a line", "limits.csv_max_line_bytes",
                    len(chunk))
        if fields is not None and len(fields):
            self.last_field = self.offset + int(fields[-1])
        if len(newlines):
            self.last_record = self.offset + int(newlines[-1])
        self.records += len(newlines)
        self.offset += len(chunk)

    def _check(self, boundaries: np.ndarray, last: int, limit: int, newlines: np.ndarray, what: str, name: str,
               size: int) -> None:
        starts = np.concatenate(([last - self.offset], boundaries))
        ends = np.concatenate((boundaries, [size]))  # the open piece at the end counts as far as it goes
        lengths = ends - starts - 1
        over = np.flatnonzero(lengths > limit)
        if len(over):
            at = int(starts[over[0]]) + 1  # chunk position where the long piece starts
            row = self.records + int(np.searchsorted(newlines, at)) + 1
            raise ExtractError(
                f"row {row}: {what} is longer than the limit of {show_bytes(limit)} ({name})", file=self.display,
                hint="a real export has no such value: check the file (an unclosed quote makes the rest of the "
                     f"file one field); raise the limit with --limit {name.split('.')[1]}=… only if it is genuine")


_OFFSET = re.compile(r"offset in the file is (\d+) bytes")


def read_failure(exc: Exception, display: str, csv_path: Path | None) -> FraudwatchError:
    """An error for a file the parser could not read, naming file and line, quoting none of its rows.
    A disk full (or other OS failure) while writing the staged output is said as such, not blamed on the file."""
    failure = os_failure(exc)
    if failure is not None:
        return failure
    text = str(exc)
    if csv_path is None:
        return ExtractError("cannot read the file: it is damaged or not in the format its name says", file=display,
                            hint="check that it is a well-formed CSV/XLSX/Parquet export")
    where = ""
    match = _OFFSET.search(text)
    if match:
        offset = int(match.group(1))
        try:
            with open(csv_path, "rb") as fh:
                head = fh.read(offset)
            where = f" near line {head.count(_LINE_BREAK) + 1}"
        except OSError:
            where = f" near byte {offset}"
    kind = ("a field has a quote (\") that is not escaped as \"\" or quotes that do not balance"
            if "not properly escaped" in text or "quote" in text.lower() else "a row cannot be parsed as CSV")
    return ExtractError(f"the CSV file is malformed{where}: {kind}", file=display,
                        hint="fix that line in the export (quote a field containing quotes, commas or line breaks, "
                             "and double the quotes inside it) and run again")
