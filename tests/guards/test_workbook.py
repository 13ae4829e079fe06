"""Hostile workbooks and Parquet files: zip bombs, far-away cells, huge row groups — refused before
the reader starts, quickly and with little memory, naming the file and the limit."""

from __future__ import annotations

import resource
import time
import zipfile
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter
from hostile import PERSON_ID, assert_clean_failure, landing, run

from pipelines import limits
from pipelines.contracts import load_contracts
from pipelines.errors import ExtractError
from pipelines.readers import read_parquet_file, read_xlsx_file


def workbook(path: Path, rows: list[list[str]]) -> Path:
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet()
    for i, row in enumerate(rows):
        sheet.write_row(i, 0, row)
    book.close()
    return path


def zip_bomb(path: Path, megabytes: int = 200) -> Path:
    """A real workbook whose sheet is replaced by ``megabytes`` of repetitive XML (a few hundred KB zipped)."""
    base = workbook(path.with_suffix(".base.xlsx"), [["person_id", "name", "death_date", "source"]])
    row = f'<row><c t="inlineStr"><is><t>{PERSON_ID}</t></is></c></row>'.encode() * 1000
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as dst:
        for item in src.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(item, src.read(item))
                continue
            with dst.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as out:
                out.write(b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
                for _ in range(megabytes * 1024 * 1024 // len(row)):
                    out.write(row)
                out.write(b"</sheetData></worksheet>")
    base.unlink()
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    return zip_bomb(tmp_path_factory.mktemp("bomb") / "deaths.xlsx")


def test_zip_bomb_fails_fast_with_little_memory(bomb):
    assert bomb.stat().st_size < 2 * 1024 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ExtractError) as info:
        read_xlsx_file(bomb, str(bomb))
    assert time.perf_counter() - started < 10
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200
    assert "limits.xlsx_max_compression_ratio" in str(info.value) and str(bomb) in str(info.value)


def test_zip_bomb_within_the_ratio_is_held_to_the_size_limit_while_streaming(bomb):
    relaxed = limits.DEFAULT.with_overrides({"xlsx_max_compression_ratio": 1e9, "xlsx_max_uncompressed_bytes": "50MB"})
    with limits.using(relaxed), pytest.raises(ExtractError, match="limits.xlsx_max_uncompressed_bytes"):
        read_xlsx_file(bomb, str(bomb))
    relaxed = limits.DEFAULT.with_overrides({"xlsx_max_compression_ratio": 1e9, "xlsx_max_rows": 1000})
    with limits.using(relaxed), pytest.raises(ExtractError, match="limits.xlsx_max_"):
        read_xlsx_file(bomb, str(bomb))


def test_one_far_away_cell_is_refused_before_the_reader_builds_its_grid(tmp_path):
    path = tmp_path / "deaths.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["person_id", "name", "death_date", "source"])
    sheet.write(1_048_575, 16_383, "x")  # XFD1048576: a 17-billion-cell dense grid
    book.close()
    assert path.stat().st_size < 20_000
    with pytest.raises(ExtractError, match=r"1,048,576 rows × 16,384 columns, more than the limit of 30,000,000 cells"):
        read_xlsx_file(path, str(path))


def test_too_many_rows_and_a_normal_workbook(tmp_path):
    path = workbook(tmp_path / "deaths.xlsx", [["person_id", "name", "death_date", "source"]] +
                    [[PERSON_ID, "张三", "2024-01-15", "police"]] * 50)
    assert read_xlsx_file(path, str(path)).frame.collect().height == 50
    with limits.using(limits.DEFAULT.with_overrides({"xlsx_max_rows": 20})):
        with pytest.raises(ExtractError, match=r"reaches row 51, more than the limit of 20 rows \(limits.xlsx_max_rows\)"):
            read_xlsx_file(path, str(path))


def test_a_renamed_non_zip_is_a_clear_error(tmp_path):
    path = tmp_path / "deaths.xlsx"
    path.write_bytes(b"person_id,name\n" + PERSON_ID.encode() + b",x\n")
    with pytest.raises(ExtractError, match="not a valid .xlsx") as info:
        read_xlsx_file(path, str(path))
    assert PERSON_ID not in str(info.value)


def test_parquet_limits_come_from_the_footer(tmp_path):
    contract = load_contracts()["deaths"]
    path = tmp_path / "deaths.parquet"
    pl.DataFrame({"person_id": [PERSON_ID] * 5000, "name": ["张三"] * 5000}).write_parquet(path, row_group_size=1000)
    assert read_parquet_file(path, contract, str(path)).frame.collect().height == 5000
    with limits.using(limits.DEFAULT.with_overrides({"parquet_max_row_group_bytes": 100})):
        with pytest.raises(ExtractError, match=r"row group 0 is .* more than the limit of 100 bytes"):
            read_parquet_file(path, contract, str(path))
    with limits.using(limits.DEFAULT.with_overrides({"parquet_max_rows": 4999})):
        with pytest.raises(ExtractError, match="limits.parquet_max_rows"):
            read_parquet_file(path, contract, str(path))
    path.write_bytes(path.read_bytes()[:-100])  # truncated footer
    with pytest.raises(ExtractError, match="not a valid Parquet file"):
        read_parquet_file(path, contract, str(path))


@pytest.mark.slow
def test_a_zip_bomb_in_the_landing_folder_fails_the_run_clearly(tmp_path, bomb):
    folder = landing(tmp_path / "landing")
    (folder / "deaths.csv").unlink()
    (folder / "deaths.xlsx").write_bytes(bomb.read_bytes())
    proc = run(folder, tmp_path / "out")
    assert_clean_failure(proc, "deaths.xlsx", "limits.xlsx_max_compression_ratio", "zip bomb")
