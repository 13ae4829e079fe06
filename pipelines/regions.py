"""Region names for the 6-digit region codes (GB/T 2260 行政区划代码), from the bundled table
``pipelines/regions/gb2260.csv`` (source and version: ``pipelines/regions/README.md``)."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "regions" / "gb2260.csv"
UNKNOWN = "(未知地区)"


@lru_cache(maxsize=1)
def region_table() -> dict[str, tuple[str, str, str]]:
    """code → (name, level, full_name) for every code in the bundled table."""
    with open(TABLE, encoding="utf-8", newline="") as fh:
        return {r["code"]: (r["name"], r["level"], r["full_name"]) for r in csv.DictReader(fh)}


def region_name(code: str | None) -> str:
    """The full name of a region code (``北京市东城区``), or ``(未知地区)`` for a code not in the table."""
    entry = region_table().get((code or "").strip())
    return entry[2] if entry else UNKNOWN


def region_label(code: str | None) -> str:
    """Code and name, as headers show them: ``110101 北京市东城区``."""
    return f"{code or '(无)'} {region_name(code)}"
