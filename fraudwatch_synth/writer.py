"""Writing extracts: clean CSV (UTF-8) or typed Parquet, or --messy exports with
Chinese headers, mixed encodings (GB18030, UTF-8 with BOM, one tab-separated) and
planted unreadable rows. Large frames are encoded chunk by chunk."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.contracts import Contract
from fraudwatch_synth.messy import bad_rows, chinese_headers, messy_values

# Messy CSV per extract: (encoding, separator).
MESSY_STYLE: dict[str, tuple[str, str]] = {
    "pension_payments": ("gb18030", ","),
    "deaths": ("gb18030", ","),
    "subsidy_payments": ("gb18030", ","),
    "household": ("utf-8-sig", ","),
    "prisoners": ("utf-8-sig", "\t"),
    "stabilization_refunds": ("utf-8-sig", ","),
    "refund_transfers": ("utf-8-sig", ","),
    "certifications": ("gb18030", ","),
}
CHUNK_ROWS = 500_000
PARQUET_OPTIONS = dict(compression="zstd", compression_level=3, statistics=True, row_group_size=1_000_000)
BAD_ROWS_SCHEMA = {"file": pl.String, "extract": pl.String, "source_row": pl.Int64, "reason": pl.String, "column": pl.String}


def write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Parquet with fixed settings, so equal frames give equal bytes."""
    df.write_parquet(path, **PARQUET_OPTIONS)


def write_csv_chunked(df: pl.DataFrame, path: Path, encoding: str = "utf-8", separator: str = ",") -> None:
    """CSV in any Python codec, encoded CHUNK_ROWS rows at a time."""
    with open(path, "wb") as fh:
        if encoding == "utf-8-sig":
            fh.write(b"\xef\xbb\xbf")
        for start in range(0, max(len(df), 1), CHUNK_ROWS):
            buf = io.BytesIO()
            df.slice(start, CHUNK_ROWS).write_csv(buf, include_header=start == 0, separator=separator)
            data = buf.getvalue()
            if encoding not in ("utf-8", "utf-8-sig"):
                data = data.decode("utf-8").encode(encoding)
            fh.write(data)


def typed(df: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """Clean text columns -> Parquet types: money Decimal(18,2), dates Date, booleans Boolean."""
    exprs = []
    for col in contract.columns:
        if col.name not in df.columns:
            continue
        kind = col.type.value
        if kind == "money":
            exprs.append(pl.col(col.name).cast(pl.Decimal(18, 2)))
        elif kind == "date":
            exprs.append(pl.col(col.name).str.to_date("%Y-%m-%d"))
        elif kind == "boolean":
            exprs.append(pl.col(col.name) == "true")
    return df.with_columns(exprs)


class ExtractWriter:
    """Writes extract frames into one folder and remembers files, row counts and bad rows.

    With ``province`` the files go into the national layout ``<out>/<extract>/<province>/``."""

    def __init__(self, out: Path, fmt: str, messy: bool, contracts: dict[str, Contract], rng: np.random.Generator,
                 province: str | None = None):
        self.out, self.fmt, self.messy, self.contracts, self.rng = out, fmt, messy, contracts, rng
        self.province = province
        self.files: list[Path] = []
        self.rows: dict[str, int] = {}
        self.bad: list[pl.DataFrame] = []

    def write(self, extract: str, df: pl.DataFrame, stem: str | None = None) -> Path:
        """Write one file of an extract (stem defaults to the extract name)."""
        contract = self.contracts[extract]
        folder = self.out if self.province is None else self.out / extract / self.province
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem or extract}.{self.fmt}"
        df = df.select([c.name for c in contract.columns if c.name in df.columns])
        self.rows[extract] = self.rows.get(extract, 0) + len(df)
        if self.messy:
            df = messy_values(df, contract, self.rng)
            df, bad = bad_rows(df, contract, self.rng, min(3, max(1, len(df) // 10)) if len(df) else 0)
            first_row = 1 if self.fmt == "parquet" else 2  # a spreadsheet shows the header as row 1
            self.bad.append(bad.select(
                file=pl.lit(path.relative_to(self.out).as_posix()), extract=pl.lit(extract), source_row=pl.col("position") + first_row,
                reason="reason", column="column",
            ))
            df = chinese_headers(df, contract, self.rng)
            if self.fmt == "csv":
                encoding, sep = MESSY_STYLE[extract]
                write_csv_chunked(df, path, encoding, sep)
            else:
                write_parquet(df, path)
        elif self.fmt == "csv":
            df.write_csv(path)
        else:
            write_parquet(typed(df, contract), path)
        self.files.append(path)
        return path

    def bad_rows(self) -> pl.DataFrame:
        """All planted unreadable rows (empty unless messy)."""
        frames = [b.cast(BAD_ROWS_SCHEMA) for b in self.bad]
        return pl.concat(frames) if frames else pl.DataFrame(schema=BAD_ROWS_SCHEMA)
