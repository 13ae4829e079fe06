"""--messy changes representation only: normalising every messy value gives back the
clean value, row for row; the planted unreadable rows are where the record says."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from decimal import Decimal
from pathlib import Path

import polars as pl

from pipelines.contracts import header_key, load_contracts
from synth_helpers import EXTRACTS, decode, extract_files, upgrade

SCHEMES = {"企业职工基本养老保险": "110", "职工养老": "110", "机关事业单位养老保险": "120", "机关养老": "120",
           "城乡居民基本养老保险": "170", "居民养老": "170"}
TRUE = {"true", "是", "y", "1"}


def norm(kind: str, value: str, enum_aliases: dict[str, str]) -> str:
    v = unicodedata.normalize("NFKC", value).strip()
    if v == "":
        return ""
    if kind == "person_id":  # the spreadsheet text forms of extracts.md, taken off independently
        v = re.sub(r"[\s\u200b-\u200f\u2060\ufeff]", "", v)
        v = re.sub(r'^="(.*)"$', r"\1", v).lstrip("'").upper()
        return upgrade(v) if len(v) == 15 else v
    if kind == "firm_id":
        return v.upper()
    if kind == "name":
        return re.sub(r"\s+", "", v)
    if kind == "money":
        return f"{Decimal(v.replace('¥', '').replace(',', '')):.2f}"
    if kind == "scheme":
        return SCHEMES.get(v, v)
    if kind == "boolean":
        return "true" if v.lower() in TRUE else "false"
    if kind == "enum":
        return enum_aliases.get(v, v)
    if kind == "period":
        m = re.fullmatch(r"(\d{4})(?:-|/|年)?(\d{1,2})月?", v)
        return f"{m[1]}-{int(m[2]):02d}"
    if kind == "date":
        m = re.fullmatch(r"(\d{4})(?:-|/|年)?(\d{1,2})(?:-|/|月)?(\d{1,2})日?", v) if not v.isdigit() else \
            re.fullmatch(r"(\d{4})(\d{2})(\d{2})", v)
        return f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}"
    return v


def read_rows(path: Path, extract: str | None) -> list[list[str]]:
    if extract is None:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.reader(fh))
    text, sep = decode(path, extract)
    return list(csv.reader(io.StringIO(text), delimiter=sep))


def test_messy_values_normalise_to_clean_values(clean_csv, messy_csv):
    bad = pl.read_parquet(messy_csv / "planted_bad_rows.parquet")
    contracts = load_contracts()
    legacy = total = 0
    for extract in EXTRACTS:
        contract = contracts[extract]
        mapping = contract.header_map()
        for clean_path, messy_path in zip(extract_files(clean_csv, extract), extract_files(messy_csv, extract)):
            clean, messy = read_rows(clean_path, None), read_rows(messy_path, extract)
            columns = [mapping[header_key(h)] for h in messy[0]]
            assert columns == clean[0]
            skip = set(bad.filter(pl.col("file") == messy_path.name)["source_row"].to_list())
            kept = [row for i, row in enumerate(messy[1:], start=2) if i not in skip]
            assert len(kept) == len(clean) - 1 and len(messy) - 1 == len(clean) - 1 + len(skip)
            for clean_row, messy_row in zip(clean[1:], kept):
                for col, c, m in zip(columns, clean_row, messy_row):
                    column = contract.column(col)
                    aliases = {a: k for k, v in (column.values or {}).items() for a in v}
                    kind = column.type.value
                    assert norm(kind, m, aliases) == norm(kind, c, aliases), (messy_path.name, col, c, m)
                    if kind == "person_id" and extract == "pension_payments":
                        total += 1
                        legacy += len(m.strip()) == 15 and len(c) == 18
    assert 0.02 < legacy / total < 0.10


def test_planted_bad_rows_are_unreadable_where_recorded(messy_csv):
    bad = pl.read_parquet(messy_csv / "planted_bad_rows.parquet")
    assert set(bad["reason"]) >= {"unparseable_money", "missing_required", "unparseable_period", "unparseable_date"}
    assert set(bad["extract"]) == set(EXTRACTS)
    contracts = load_contracts()
    for file, extract, source_row, reason, column in bad.rows():
        rows = read_rows(messy_csv / file, extract)
        mapping = contracts[extract].header_map()
        value = rows[source_row - 1][[mapping[header_key(h)] for h in rows[0]].index(column)]
        expected = {"unparseable_money": lambda v: v == "abc", "missing_required": lambda v: v == "",
                    "unparseable_period": lambda v: v.endswith("-13"),
                    "unparseable_date": lambda v: v.endswith("-13-45"),
                    "id_damaged_by_number": lambda v: re.fullmatch(r"\d\.\d{5}E\+17", v) is not None}[reason]
        assert expected(value), (file, source_row, column, value)


def test_messy_has_every_kind_of_mess(messy_csv):
    text, _ = decode(messy_csv / "pension_payments_202403.csv", "pension_payments")
    for needle in ["年", "¥", "职工养老", "居民养老", "/", '"', " "]:
        assert needle in text, needle
    assert any(chr(0xFF10 + d) in text for d in range(10))
