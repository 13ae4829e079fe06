"""Output files: all seven extracts with their contract's columns, byte-identical
reruns, encodings of the messy export, argument checks."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import polars as pl
import pytest

from pipelines.contracts import header_key, load_contracts
from pipelines.errors import RunError
from fraudwatch_synth import generate
from synth_helpers import EXTRACTS, decode, extract_files


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def header(path: Path, extract: str, messy: bool) -> list[str]:
    if path.suffix == ".parquet":
        return pl.read_parquet_schema(path).names()
    if messy:
        text, sep = decode(path, extract)
        return next(csv.reader(io.StringIO(text), delimiter=sep))
    return path.read_text(encoding="utf-8").splitlines()[0].split(",")


@pytest.mark.parametrize(
    "folder,messy", [("clean_csv", False), ("messy_csv", True), ("clean_parquet", False), ("messy_parquet", True)]
)
def test_every_extract_has_its_contract_columns(request, folder, messy):
    out = request.getfixturevalue(folder)
    contracts = load_contracts()
    assert sorted(contracts) == sorted(EXTRACTS)
    for extract, contract in contracts.items():
        mapping = contract.header_map()
        for path in extract_files(out, extract):
            names = header(path, extract, messy)
            canonical = [mapping[header_key(h)] for h in names]
            assert canonical == [c.name for c in contract.columns], path
            if not messy:
                assert names == canonical
            else:
                assert all(h != c for h, c in zip(names, canonical) if contract.column(c).aliases), path


def test_pension_payments_one_file_per_month(clean_csv):
    names = [p.name for p in extract_files(clean_csv, "pension_payments")]
    assert names == [f"pension_payments_2024{m:02d}.csv" for m in range(1, 7)]


def test_same_arguments_same_bytes(tmp_path, synth_args, clean_csv, messy_csv, clean_parquet):
    PERSONS, MONTHS, SEED = synth_args
    for name, kw, ref in [("a", {}, clean_csv), ("b", {"messy": True}, messy_csv), ("c", {"fmt": "parquet"}, clean_parquet)]:
        generate(PERSONS, MONTHS, SEED, tmp_path / name, **kw)
        assert digests(tmp_path / name) == digests(ref)
    generate(PERSONS, MONTHS, SEED + 1, tmp_path / "d")
    assert digests(tmp_path / "d")["ground_truth.parquet"] != digests(clean_csv)["ground_truth.parquet"]


def test_rerun_into_same_folder_removes_stale_months(tmp_path):
    generate(200, 6, 1, tmp_path)
    generate(200, 4, 1, tmp_path)
    assert len(list(tmp_path.glob("pension_payments_*"))) == 4


def test_parquet_types(clean_parquet):
    pay = pl.read_parquet(clean_parquet / "pension_payments_202401.parquet")
    assert pay.schema["amount"] == pl.Decimal(18, 2)
    assert pay.schema["pay_date"] == pl.Date
    assert pay.schema["person_id"] == pl.String and pay.schema["period"] == pl.String
    refunds = pl.read_parquet(clean_parquet / "stabilization_refunds.parquet")
    assert refunds.schema["is_labor_dispatch"] == pl.Boolean


def test_messy_encodings_and_separators(messy_csv):
    for extract in EXTRACTS:
        for path in extract_files(messy_csv, extract):
            text, sep = decode(path, extract)
            first = text.splitlines()[0]
            assert (sep in first) and ((sep == "\t") == ("," not in first)), path


def test_arguments_checked(tmp_path):
    with pytest.raises(RunError):
        generate(10, 6, 1, tmp_path)
    with pytest.raises(RunError):
        generate(300, 2, 1, tmp_path)
    with pytest.raises(RunError):
        generate(300, 6, 1, tmp_path, start_period="2024-13")
    with pytest.raises(RunError):
        generate(300, 6, 1, tmp_path, fmt="xlsx")  # type: ignore[arg-type]
