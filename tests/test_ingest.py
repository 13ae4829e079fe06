"""Ingest: discovery, reading every format/encoding, header mapping, quarantine, whole-extract errors.

Golden landing folders live in tests/data/ingest/ (see make_golden.py for what each row means).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from pipelines.contracts import load_contracts
from pipelines.errors import ExtractError
from pipelines.ingest import BOOKKEEPING, discover_extracts, ingest_extract, ingest_file
from pipelines.normalize import output_schema

GOLDEN = Path(__file__).parent / "data" / "ingest"
CONTRACTS = load_contracts()
PAYMENTS = CONTRACTS["pension_payments"]
DEATHS = CONTRACTS["deaths"]


def stage(extract: str, landing: Path, tmp_path: Path, files: list[Path] | None = None):
    files = files if files is not None else discover_extracts(landing, CONTRACTS)[extract]
    return ingest_extract(CONTRACTS[extract], files, landing, tmp_path / "staging")


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# ----------------------------------------------------------------------------- discovery


def test_discovery_of_the_formats_folder():
    found = discover_extracts(GOLDEN / "formats", CONTRACTS)
    landing = GOLDEN / "formats"
    assert {k: [p.relative_to(landing).as_posix() for p in v] for k, v in found.items()} == {
        "deaths": ["deaths.xlsx"],
        "household": ["household/part-0001.parquet"],
        "pension_payments": [
            "pension_payments_01_utf8.csv", "pension_payments_02_bom.csv",
            "pension_payments_03_gbk.csv", "pension_payments_04_tab.csv"],
    }
    assert [p.name for p in found.unrecognised] == ["README.md"]


def test_discovery_prefix_rules(tmp_path):
    for name in ["refund_transfers.csv", "refund_transfers_2024.csv", "refund-03.csv", "refundx.csv",
                 "deaths.csv", "deaths_police.tsv", "deathsX.csv", "Deaths_2.CSV", "deaths.json",
                 ".deaths.csv", "~$deaths.xlsx", "other.csv"]:
        write(tmp_path / name, "x\n")
    write(tmp_path / "household" / "part-2.parquet", "")
    write(tmp_path / "household" / "nested" / "part-1.parquet", "")
    write(tmp_path / "household" / "_SUCCESS", "")
    write(tmp_path / "household" / "notes.md", "")
    contracts = {"refund": PAYMENTS, "refund_transfers": PAYMENTS, "deaths": DEATHS, "household": DEATHS}
    found = discover_extracts(tmp_path, contracts)
    names = {k: [p.relative_to(tmp_path).as_posix() for p in v] for k, v in found.items()}
    assert names == {
        "refund": ["refund-03.csv"],
        # the longest matching extract name wins: refund_transfers*.csv are not 'refund' files
        "refund_transfers": ["refund_transfers.csv", "refund_transfers_2024.csv"],
        "deaths": ["Deaths_2.CSV", "deaths.csv", "deaths_police.tsv"],
        "household": ["household/nested/part-1.parquet", "household/part-2.parquet"],
    }
    assert sorted(p.relative_to(tmp_path).as_posix() for p in found.unrecognised) == [
        "deaths.json", "deathsX.csv", "household/notes.md", "other.csv", "refundx.csv"]


def test_discovery_of_a_missing_folder_names_it(tmp_path):
    with pytest.raises(ExtractError) as err:
        discover_extracts(tmp_path / "nope", CONTRACTS)
    assert "nope" in str(err.value)


# ----------------------------------------------------------------------------- formats


def test_every_csv_variant_gives_the_same_clean_rows(tmp_path):
    result = stage("pension_payments", GOLDEN / "formats", tmp_path)
    assert [f.encoding for f in result.files] == ["utf-8", "utf-8-sig", "gb18030", "utf-8"]
    assert result.rows_read == result.rows_clean == 12 and result.rows_quarantined == 0
    frames = [pl.read_parquet(f.staged_path).drop(BOOKKEEPING, strict=False).select(list(output_schema(PAYMENTS)))
              for f in result.files]
    for frame in frames[1:]:
        assert frame.equals(frames[0])
    first = frames[0].to_dicts()
    assert first[0] | {} == {
        "payment_id": "P001", "person_id": "11010519491231002X", "person_id_valid": True,
        "person_id_birth_date": dt.date(1949, 12, 31), "person_id_gender": "女", "name": "张三", "name_raw": "张 三",
        "scheme": "110", "region_code": "110105", "period": dt.date(2024, 3, 1), "amount": Decimal("1234.50"),
        "pay_date": dt.date(2024, 3, 5), "bank_account": "6222020200112233445",
    }
    # the legacy 15-digit ID is upgraded; the bad-checksum ID is kept and marked invalid
    assert [(r["person_id"], r["person_id_valid"]) for r in first[1:]] == [
        ("11010519491231002X", True), ("110105194912310021", False)]
    assert [(r["scheme"], r["amount"]) for r in first] == [("110", Decimal("1234.50")), ("110", Decimal("12.00")),
                                                          ("170", Decimal("100.00"))]


def test_staged_columns_are_the_warehouse_schema_then_bookkeeping_then_extras(tmp_path):
    result = stage("pension_payments", GOLDEN / "formats", tmp_path)
    schema = pl.read_parquet_schema(result.files[0].staged_path)
    assert list(schema) == [*output_schema(PAYMENTS), *BOOKKEEPING, "备注"]
    assert schema["amount"] == pl.Decimal(18, 2) and schema["period"] == pl.Date and schema["_source_row"] == pl.Int64
    extras = pl.read_parquet(result.files[0].staged_path)["备注"].to_list()
    assert extras == ["extra"] * 3


def test_file_facts_are_recorded(tmp_path):
    result = stage("pension_payments", GOLDEN / "formats", tmp_path)
    first = result.files[0]
    data = first.path.read_bytes()
    assert first.sha256 == hashlib.sha256(data).hexdigest() and first.size_bytes == len(data)
    assert first.source_file == "pension_payments_01_utf8.csv" and first.format == "csv"
    staged = pl.read_parquet(first.staged_path)
    assert staged["_source_row"].to_list() == [2, 3, 4]
    assert set(staged["_file_sha256"]) == {first.sha256} and set(staged["_source_file"]) == {first.source_file}


def test_gb18030_is_transcoded_without_leaving_temp_files(tmp_path):
    result = stage("pension_payments", GOLDEN / "formats", tmp_path)
    assert result.files[2].encoding == "gb18030"
    assert pl.read_parquet(result.files[2].staged_path)["name"].to_list() == ["张三", "李四", "王五"]
    assert not list((tmp_path / "staging").rglob("*.tmp"))


def test_xlsx_date_cells_serial_numbers_and_text(tmp_path):
    result = stage("deaths", GOLDEN / "formats", tmp_path)
    rows = pl.read_parquet(result.files[0].staged_path).to_dicts()
    assert [r["_source_row"] for r in rows] == [2, 3, 4]
    assert [r["death_date"] for r in rows] == [dt.date(2024, 1, 15), dt.date(2024, 3, 5), dt.date(2024, 2, 29)]
    assert [r["source"] for r in rows] == ["公安", "卫健", "民政"]
    assert [r["person_id"] for r in rows] == ["11010519491231002X", "440524188001010014", "110105194912310021"]
    assert rows[0]["record_id"] == "1001"  # a numeric cell in a text column, without ".0"
    assert rows[1]["name"] == "阿卜杜·热合曼"
    assert result.files[0].encoding == "xlsx"


def test_parquet_columns_are_read_as_text(tmp_path):
    result = stage("household", GOLDEN / "formats", tmp_path)
    rows = pl.read_parquet(result.files[0].staged_path).to_dicts()
    assert [r["_source_row"] for r in rows] == [1, 2]
    assert [r["region_code"] for r in rows] == ["110105", "440524"]  # Int64 column
    assert [r["birth_date"] for r in rows] == [dt.date(1949, 12, 31), dt.date(1880, 1, 1)]  # Date column
    assert [r["gender"] for r in rows] == ["女", "男"]
    assert rows[1]["name"] == "Ali" and rows[1]["name_raw"] == "Ａｌｉ"
    assert result.files[0].source_file == "household/part-0001.parquet"


def test_parquet_float_id_column_stops_the_extract_naming_the_column_type(tmp_path):
    path = tmp_path / "deaths.parquet"
    pl.DataFrame({"person_id": [1.1e17, 4.20113e17], "death_date": ["2024-01-01"] * 2, "source": ["公安"] * 2}).write_parquet(path)
    with pytest.raises(ExtractError) as err:
        stage("deaths", tmp_path, tmp_path)
    assert "floating point" in str(err.value) and "deaths.parquet" in str(err.value)
    assert "2 of 2 rows" in str(err.value) and "strings" in str(err.value)


def test_multiline_quoted_field_is_one_row(tmp_path):
    write(tmp_path / "deaths.csv",
          'person_id,name,death_date,source\n11010519491231002X,"张\n三",2024-01-01,公安\n11010519491231002X,李四,bad,公安\n'
          "11010519491231002X,王五,2024-01-02,公安\n")
    result = stage("deaths", tmp_path, tmp_path)
    quarantine = pl.read_parquet(result.files[0].quarantine_path)
    assert quarantine["source_row"].to_list() == [3]
    assert pl.read_parquet(result.files[0].staged_path)["name"].to_list() == ["张三", "王五"]


@pytest.mark.parametrize("control", ["\x1b[31m", "\x00", "\x85", "\u2028", "\u202e"], ids=repr)
def test_control_characters_in_a_csv_are_stored_escaped(tmp_path, control):
    write(tmp_path / "deaths.csv", f"person_id,name,death_date,source\n11010519491231002X,张{control}三,2024-01-01,公安\n"
                                   "11010519491231002X,李四,2024-01-02,公安\n")
    staged = pl.read_parquet(stage("deaths", tmp_path, tmp_path).files[0].staged_path)
    escaped = control.encode("unicode_escape").decode().replace("\\u00", "\\x")
    assert staged["name_raw"].to_list() == [f"张{escaped}三", "李四"]


# ----------------------------------------------------------------------------- quarantine


def test_each_quarantine_reason_with_its_row(tmp_path):
    result = stage("pension_payments", GOLDEN / "quarantine", tmp_path)
    [f] = result.files
    reasons = dict(pl.read_parquet(f.quarantine_path).select("source_row", "reason").iter_rows())
    assert reasons == {
        3: "missing_required: person_id",
        4: "unparseable_period: period='2024-13'",
        5: "unparseable_money: amount='1.234'",
        6: "unknown_scheme: scheme='999'",
        7: "bad_region_code: region_code='11010'",
        8: "unparseable_date: pay_date='2024-02-30'",
        9: "malformed_row: more fields than the 8 header columns",
        12: "missing_required: region_code; missing_required: period; missing_required: amount",
    }
    # row 10 is a blank line: neither read nor quarantined
    assert (f.rows_read, f.rows_clean, f.rows_quarantined) == (18, 10, 8)
    assert f.reasons == {"missing_required": 2, "bad_region_code": 1, "malformed_row": 1, "unknown_scheme": 1,
                         "unparseable_date": 1, "unparseable_money": 1, "unparseable_period": 1}
    clean = pl.read_parquet(f.staged_path)
    assert clean["_source_row"].to_list() == [2, 11, *range(13, 21)]
    # an invalid ID is evidence: kept, not quarantined
    assert clean.filter(pl.col("payment_id") == "P09")["person_id_valid"].to_list() == [False]


def test_quarantine_rows_carry_extract_file_and_raw_values(tmp_path):
    result = stage("pension_payments", GOLDEN / "quarantine", tmp_path)
    quarantine = pl.read_parquet(result.files[0].quarantine_path)
    assert list(quarantine.columns) == ["extract", "source_file", "source_row", "reason", "raw_json"]
    row = quarantine.row(0, named=True)
    assert row["extract"] == "pension_payments" and row["source_file"] == "pension_payments.csv"
    raw = json.loads(row["raw_json"])
    assert raw["payment_id"] == "P02" and raw["person_id"] is None and raw["name"] == "李四"
    malformed = json.loads(quarantine.filter(pl.col("source_row") == 9)["raw_json"][0])
    assert malformed["(extra fields)"] == "surplus"


def test_required_when_bad_boolean_and_invalid_uscc(tmp_path):
    result = stage("stabilization_refunds", GOLDEN / "quarantine", tmp_path)
    [f] = result.files
    reasons = dict(pl.read_parquet(f.quarantine_path).select("source_row", "reason").iter_rows())
    assert reasons == {
        4: "missing_required: dispatched_amount (required when is_labor_dispatch is true)",
        5: "bad_boolean: is_labor_dispatch='maybe'",
    }
    clean = pl.read_parquet(f.staged_path).select("refund_id", "firm_id_valid", "is_labor_dispatch", "dispatched_amount")
    assert clean.rows() == [("R1", True, True, Decimal("600.00")), ("R2", False, False, None)]


def test_unknown_enum_value(tmp_path):
    result = stage("deaths", GOLDEN / "quarantine", tmp_path)
    assert pl.read_parquet(result.files[0].quarantine_path)["reason"].to_list() == ["unknown_value: source='医院'"]


def test_long_raw_values_are_shortened_in_the_reason_only(tmp_path):
    long = "9" * 200
    write(tmp_path / "deaths.csv", f"person_id,death_date,source\n11010519491231002X,{long},公安\n"
                                   "11010519491231002X,2024-01-01,公安\n")
    result = stage("deaths", tmp_path, tmp_path)
    row = pl.read_parquet(result.files[0].quarantine_path).row(0, named=True)
    assert row["reason"] == f"unparseable_date: death_date='{'9' * 80}…'"
    assert json.loads(row["raw_json"])["death_date"] == long


# ----------------------------------------------------------------------------- whole-extract errors


def test_missing_required_column_names_file_column_and_aliases(tmp_path):
    landing = GOLDEN / "broken" / "missing_column"
    with pytest.raises(ExtractError) as err:
        stage("pension_payments", landing, tmp_path)
    text = str(err.value)
    assert "pension_payments.csv" in text and "'person_id'" in text and "公民身份号码" in text and "身份证号码" in text
    assert err.value.file.endswith("pension_payments.csv")


def test_header_without_rows_is_refused(tmp_path):
    with pytest.raises(ExtractError) as err:
        stage("deaths", GOLDEN / "broken" / "header_only", tmp_path)
    assert "no data rows" in str(err.value) and "deaths.csv" in str(err.value)


def test_empty_file_is_refused(tmp_path):
    write(tmp_path / "deaths.csv", "")
    with pytest.raises(ExtractError) as err:
        stage("deaths", tmp_path, tmp_path)
    assert "empty" in str(err.value) and "deaths.csv" in str(err.value)


def test_undecodable_file_is_refused_not_guessed(tmp_path):
    with pytest.raises(ExtractError) as err:
        stage("deaths", GOLDEN / "broken" / "undecodable", tmp_path)
    assert "neither UTF-8 nor GB18030" in str(err.value) and "deaths.csv" in str(err.value)
    assert not list((tmp_path / "staging").rglob("*.tmp"))


def test_mostly_broken_extract_names_file_and_top_reason(tmp_path):
    with pytest.raises(ExtractError) as err:
        stage("deaths", GOLDEN / "broken" / "mostly_broken", tmp_path)
    text = str(err.value)
    assert "3 of 4 rows" in text and "deaths.csv" in text and "unparseable_date (3)" in text


def test_broken_rate_at_the_limit_is_accepted(tmp_path):
    # exactly max_broken_rate (0.5) broken is still fine; one more row broken is not
    write(tmp_path / "a" / "deaths.csv", "person_id,death_date,source\n1,2024-01-01,公安\n1,bad,公安\n")
    assert stage("deaths", tmp_path / "a", tmp_path).rows_quarantined == 1
    write(tmp_path / "b" / "deaths.csv", "person_id,death_date,source\n1,2024-01-01,公安\n1,bad,公安\n1,bad,公安\n")
    with pytest.raises(ExtractError):
        stage("deaths", tmp_path / "b", tmp_path)


def test_two_headers_for_one_column_are_refused(tmp_path):
    write(tmp_path / "deaths.csv", "person_id,身份证号,death_date,source\n1,1,2024-01-01,公安\n")
    with pytest.raises(ExtractError) as err:
        stage("deaths", tmp_path, tmp_path)
    assert "'person_id' and '身份证号' both name 'person_id'" in str(err.value)


def test_corrupt_workbook_is_refused(tmp_path):
    write(tmp_path / "deaths.xlsx", "not a workbook")
    with pytest.raises(ExtractError) as err:
        stage("deaths", tmp_path, tmp_path)
    assert "deaths.xlsx" in str(err.value)


def test_ingest_file_outside_landing_uses_its_path(tmp_path):
    source = shutil.copy(GOLDEN / "quarantine" / "deaths.csv", tmp_path / "deaths.csv")
    result = ingest_file(DEATHS, Path(source), tmp_path / "landing", tmp_path / "out")
    assert result.source_file == Path(source).as_posix() and result.rows_read == 2


def test_windows_line_endings(tmp_path):
    (tmp_path / "deaths.csv").write_bytes(
        b"person_id,death_date,source\r\n11010519491231002X,2024-01-15,police\r\n11010519491231002X,2024-01-16,health\r\n")
    result = stage("deaths", tmp_path, tmp_path)
    staged = pl.read_parquet(result.files[0].staged_path)
    assert staged.select("source", "_source_row").rows() == [("公安", 2), ("卫健", 3)]


def test_damaged_utf8_is_refused_not_read_as_gbk(tmp_path):
    # b"\xe5\xbc" is a truncated 张 in UTF-8 but a valid GBK character: decoding the file as
    # GB18030 would silently turn every name into mojibake
    data = "person_id,name,death_date,source\n".encode() + "1,张三,2024-01-01,公安\n".encode() * 10
    (tmp_path / "deaths.csv").write_bytes(data + b"2,\xe5\xbc,2024-01-01,police\n")
    with pytest.raises(ExtractError) as err:
        stage("deaths", tmp_path, tmp_path)
    assert "UTF-8 but has an invalid byte sequence near byte" in str(err.value)


def test_long_gbk_text_is_still_detected_as_gbk(tmp_path):
    names = "".join(f"1,{a}{b}{c},2024-01-01,公安\n" for a in "王李张刘陈杨黄赵" for b in "伟芳娜秀英敏" for c in "静丽强磊军")
    (tmp_path / "deaths.csv").write_bytes(("身份证号,姓名,死亡日期,数据来源\n" + names).encode("gbk"))
    result = stage("deaths", tmp_path, tmp_path)
    assert result.files[0].encoding == "gb18030" and result.rows_read == 240
    assert pl.read_parquet(result.files[0].staged_path)["name"][0] == "王伟静"


def test_xlsx_rows_are_numbered_as_the_spreadsheet_shows_them(tmp_path):
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(tmp_path / "deaths.xlsx"))
    sheet = workbook.add_worksheet()
    sheet.write_row(2, 0, ["person_id", "death_date", "source"])  # header in row 3
    sheet.write_row(3, 0, ["11010519491231002X", "2024-01-01", "公安"])  # row 4
    sheet.write_row(5, 0, ["11010519491231002X", "bad", "公安"])  # row 6, after an empty row 5
    sheet.write_row(6, 0, ["11010519491231002X", "2024-01-02", "公安"])  # row 7
    workbook.close()
    result = stage("deaths", tmp_path, tmp_path)
    assert pl.read_parquet(result.files[0].staged_path)["_source_row"].to_list() == [4, 7]
    assert pl.read_parquet(result.files[0].quarantine_path)["source_row"].to_list() == [6]


def test_empty_workbook_is_refused(tmp_path):
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(tmp_path / "deaths.xlsx"))
    workbook.add_worksheet()
    workbook.close()
    with pytest.raises(ExtractError) as err:
        stage("deaths", tmp_path, tmp_path)
    assert "empty" in str(err.value)


def test_each_file_of_an_extract_is_hashed_once_and_a_damaged_later_file_is_named(tmp_path, monkeypatch):
    from pipelines import ingest, readers

    calls = []

    def counting(path, display, text=True):
        calls.append(Path(path).name)
        return readers.hash_and_detect(path, display, text)

    monkeypatch.setattr(ingest, "hash_and_detect", counting)
    good = "person_id,name,death_date,source\n" + "11010519491231002X,张三,2024-01-15,公安\n" * 10
    (tmp_path / "deaths_01.csv").write_text(good, encoding="utf-8")
    (tmp_path / "deaths_02.csv").write_text(good, encoding="utf-8")
    result = stage("deaths", tmp_path, tmp_path / "out")
    assert sorted(calls) == ["deaths_01.csv", "deaths_02.csv"] and result.rows_read == 20
    assert [f.sha256 for f in result.files] == [hashlib.sha256(good.encode()).hexdigest()] * 2

    (tmp_path / "deaths_02.csv").write_bytes(good.encode() + b"1,\xe5\xbc,2024-01-01,police\n")
    with pytest.raises(ExtractError) as err:
        stage("deaths", tmp_path, tmp_path / "out2")
    assert "deaths_02.csv" in str(err.value) and "invalid byte sequence" in str(err.value)


# ----------------------------------------------------------------------------- IDs damaged by a number, workbooks


def _damaged_landing(tmp_path: Path, damaged: int, clean: int) -> Path:
    lines = ["发放流水号,身份证号,姓名,险种,统筹区编码,发放年月,发放金额"]
    for i in range(clean):
        lines.append(f"P{i},'11010519491231002X,张三,110,110105,2024-01,100.00")
    forms = ["4.20113E+17", "420113194901010000.0", "1.10105E+17"]
    for i in range(damaged):
        lines.append(f"D{i},{forms[i % 3]},李四,110,110105,2024-01,100.00")
    write(tmp_path / "land" / "pension_payments.csv", "\n".join(lines) + "\n")
    return tmp_path / "land"


def test_a_few_ids_damaged_by_a_number_are_quarantined_and_counted(tmp_path):
    result = stage("pension_payments", _damaged_landing(tmp_path, damaged=3, clean=97), tmp_path)
    [f] = result.files
    assert (f.rows_clean, f.rows_quarantined, f.ids_damaged_by_number) == (97, 3, 3)
    quarantine = pl.read_parquet(f.quarantine_path)
    assert quarantine["reason"].to_list() == [
        "id_damaged_by_number: person_id='4.20113E+17'",
        "id_damaged_by_number: person_id='420113194901010000.0'",
        "id_damaged_by_number: person_id='1.10105E+17'"]
    assert quarantine["source_row"].to_list() == [99, 100, 101]
    # the text form with an apostrophe is the ID itself, loaded and valid
    staged = pl.read_parquet(f.staged_path)
    assert staged["person_id"].unique().to_list() == ["11010519491231002X"] and staged["person_id_valid"].all()


def test_an_extract_with_many_damaged_ids_stops_saying_it_went_through_a_spreadsheet(tmp_path):
    with pytest.raises(ExtractError) as err:
        stage("pension_payments", _damaged_landing(tmp_path, damaged=6, clean=94), tmp_path)
    text = str(err.value)
    assert "6 of 100 rows" in text and "pension_payments.csv" in text
    assert "spreadsheet" in text and "文本" in text


def _workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


PAY_HEADER = ["发放流水号", "身份证号", "姓名", "险种", "统筹区编码", "发放年月", "发放金额"]


def test_every_sheet_whose_header_matches_is_read_and_others_are_noted(tmp_path):
    _workbook(tmp_path / "land" / "pension_payments.xlsx", {
        "1月": [PAY_HEADER, ["P1", "11010519491231002X", "张三", "110", "110105", "2024-01", "100.00"]],
        "说明": [["本表为2024年养老金发放明细"], ["制表人：王芳"]],
        # columns in another order and an extra column: still the extract
        "2月": [["姓名", "发放流水号", "身份证号", "险种", "统筹区编码", "发放年月", "发放金额", "备注"],
                ["张三", "P2", "11010519491231002X", "110", "110105", "2024-02", "100.00", "补发"],
                ["张三", "P3", "11010519491231002X", "110", "110105", "bad", "100.00", ""]],
        "汇总": [["统筹区编码", "发放金额"], ["110105", "200.00"]],
    })
    result = stage("pension_payments", tmp_path / "land", tmp_path)
    [f] = result.files
    staged = pl.read_parquet(f.staged_path)
    assert staged.select("payment_id", "period", "_source_row", "source_sheet").rows() == [
        ("P1", dt.date(2024, 1, 1), 2, "1月"), ("P2", dt.date(2024, 2, 1), 2, "2月")]
    assert staged["备注"].to_list() == [None, "补发"]
    [bad] = pl.read_parquet(f.quarantine_path).to_dicts()
    assert bad["source_row"] == 3 and json.loads(bad["raw_json"])["(sheet)"] == "2月"
    assert len(f.notes) == 2 and "'说明'" in f.notes[0] and "'汇总'" in f.notes[1]


def test_a_workbook_with_no_matching_sheet_is_refused_naming_the_sheets(tmp_path):
    _workbook(tmp_path / "land" / "pension_payments.xlsx", {"说明": [["说明"], ["x"]], "汇总": [["统筹区编码", "发放金额"]]})
    with pytest.raises(ExtractError) as err:
        stage("pension_payments", tmp_path / "land", tmp_path)
    assert "'说明'" in str(err.value) and "'汇总'" in str(err.value) and "pension_payments.xlsx" in str(err.value)


def test_formula_cells_count_by_cached_value_and_without_one_are_a_row_problem(tmp_path):
    import xlsxwriter

    path = tmp_path / "land" / "pension_payments.xlsx"
    path.parent.mkdir(parents=True)
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("明细")
    sheet.write_row(0, 0, PAY_HEADER)
    sheet.write_row(1, 0, ["P1", "11010519491231002X", "张三", "110", "110105", "2024-01"])
    sheet.write_formula(1, 6, "=1000.5+1000", None, 2000.5)  # cached value saved, as Excel does
    sheet.write_row(2, 0, ["P2", "11010519491231002X", "张三", "110", "110105", "2024-02", "100.00"])
    book.close()
    # a formula without a cached value (what a program writes when nothing ever calculated it)
    _workbook(tmp_path / "land" / "pension_payments_02.xlsx", {"明细": [
        PAY_HEADER, ["P3", "11010519491231002X", "张三", "110", "110105", "2024-03", "=G3*2"],
        ["P4", "11010519491231002X", "张三", "110", "110105", "2024-04", "100.00"]]})
    result = stage("pension_payments", tmp_path / "land", tmp_path)
    first, second = result.files
    assert pl.read_parquet(first.staged_path)["amount"].to_list() == [Decimal("2000.50"), Decimal("100.00")]
    assert pl.read_parquet(second.staged_path)["payment_id"].to_list() == ["P4"]
    [bad] = pl.read_parquet(second.quarantine_path).to_dicts()
    assert bad["source_row"] == 2 and bad["reason"].startswith("formula_without_value: amount")


def test_numeric_id_cells_are_quarantined_text_cells_recovered(tmp_path):
    import xlsxwriter

    path = tmp_path / "land" / "deaths.xlsx"
    path.parent.mkdir(parents=True)
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["身份证号", "死亡日期", "数据来源"])
    sheet.write_number(1, 0, 110105194912310020)                   # a number cell: its digits are lost
    sheet.write_string(2, 0, "'11010519491231002X")                # text with Excel's marker
    sheet.write_formula(3, 0, '="11010519491231002X"', None, "11010519491231002X")  # formula, cached text
    for row in range(1, 21):
        if row > 3:
            sheet.write_string(row, 0, "11010519491231002X")
        sheet.write_string(row, 1, "2024-01-01")
        sheet.write_string(row, 2, "公安")
    book.close()
    result = stage("deaths", tmp_path / "land", tmp_path)
    [f] = result.files
    assert f.ids_damaged_by_number == 1
    [bad] = pl.read_parquet(f.quarantine_path).to_dicts()
    assert bad["source_row"] == 2 and bad["reason"].startswith("id_damaged_by_number: person_id=")
    staged = pl.read_parquet(f.staged_path)
    assert staged.height == 19 and staged["person_id"].unique().to_list() == ["11010519491231002X"]
