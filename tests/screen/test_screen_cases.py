"""fraudwatch screen on hand-made cases: every hold reason with its near misses, the in-file
duplicates, quarantine of bad payroll rows, the workbook read back, reruns.

One tiny landing folder goes through the real audit pipeline (ingest → … → link → publish);
the payroll file is then screened against it."""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest

from pipelines.errors import ExtractError, RunError
from pipelines.pipeline import RunConfig
from pipelines.screen import ScreenConfig, screen_payroll
from pipelines.screen.run import HOLD_COLUMNS
from pipelines.stages import run_pipeline

_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def pid(region: str, birth: str, seq: str) -> str:
    """A valid 18-character ID (GB 11643 check character)."""
    body = region + birth + seq
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _W)) % 11]


def broken(valid: str) -> str:
    """The same ID with a wrong check character."""
    return valid[:17] + ("0" if valid[17] != "0" else "1")


DEAD = pid("110101", "19450101", "011")           # died 2024-12-15: January is improper
DEAD_JAN = pid("110101", "19450202", "013")       # died 2025-01-10: January (the death month) is payable
DEAD_ARREARS = pid("110101", "19450303", "015")   # died 2024-12-05: arrears for September are fine
WEAK = pid("110101", "19500315", "017")           # death record carries a broken ID; name + birth match
PRISON = pid("320102", "19550505", "019")         # serving since 2024-06
RELEASED = pid("320102", "19560606", "021")       # released 2024-12-20, before the period
PROBATION = pid("320102", "19570707", "023")      # 缓刑 does not stop pensions
ADMITTED_JAN = pid("320102", "19580808", "025")   # admitted 2025-01-05: the admission month is payable
TWO_REGIONS = pid("310101", "19480909", "027")    # paid by 310101 since 2024-10; 110105 pays January too (in file)
ARREARS_REGION = pid("310101", "19491010", "029")  # 310101 paid December; 440300 pays December as arrears
MOVED = pid("310101", "19501111", "031")          # 310101 stopped in November; 440300 pays from January
TWO_SCHEMES = pid("440300", "19511212", "033")    # 110 and 170 in January
RESIDENT_ONLY = pid("440300", "19520101", "035")  # 110 stopped in December; 170 in January only
LINKED = pid("110105", "19530202", "037")         # also paid under a typo of the ID
LINKED_TYPO = broken(LINKED)
LINKED_ALONE = pid("110105", "19540303", "039")   # linked typo not in the payroll
LINKED_ALONE_TYPO = broken(LINKED_ALONE)
TWICE = pid("110105", "19550404", "041")          # the same period twice in the file, same region
ARREARS_TWICE = pid("110105", "19560505", "043")  # September arrears and January: two periods
DEAD_TWO_REGIONS = pid("110101", "19440606", "045")  # dead and paid by two regions
REVERSED = pid("110101", "19430707", "047")       # dead; the payroll reverses a payment

NAMES = {DEAD: "张一", DEAD_JAN: "张二", DEAD_ARREARS: "张三", WEAK: "王伟", PRISON: "李一", RELEASED: "李二",
         PROBATION: "李三", ADMITTED_JAN: "李四", TWO_REGIONS: "赵一", ARREARS_REGION: "赵二", MOVED: "赵三",
         TWO_SCHEMES: "钱一", RESIDENT_ONLY: "钱二", LINKED: "孙一", LINKED_TYPO: "孙一", LINKED_ALONE: "孙二",
         LINKED_ALONE_TYPO: "孙二", TWICE: "周一", ARREARS_TWICE: "周二", DEAD_TWO_REGIONS: "吴一", REVERSED: "吴二"}
AUDIT_MONTHS = ("2024-10", "2024-11", "2024-12")
HEAD = ["payment_id", "person_id", "name", "scheme", "region_code", "period", "amount", "pay_date"]


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _audit_payments() -> list[list]:
    rows = []
    monthly = {p: ("110", p[:6]) for p in NAMES}
    monthly[TWO_SCHEMES] = ("110", "440300")
    monthly[RESIDENT_ONLY] = ("110", "440300")
    for person, (scheme, region) in monthly.items():
        months = AUDIT_MONTHS
        if person in (MOVED,):
            months = ("2024-10", "2024-11")
        if person == RESIDENT_ONLY:
            months = AUDIT_MONTHS
        for m in months:
            rows.append([f"W{len(rows):04d}", person, NAMES[person], scheme, region, m, "2000.00", f"{m}-10"])
    return rows


# The payroll for January 2025: payment id -> (person, scheme, region, period, amount); expected holds below.
PAYROLL = {
    "J01": (DEAD, "110", "110101", "2025-01", "2000.00"),
    "J02": (DEAD_JAN, "110", "110101", "2025-01", "2000.00"),
    "J03": (DEAD_ARREARS, "110", "110101", "2024-09", "150.00"),
    "J04": (WEAK, "110", "110101", "2025-01", "2000.00"),
    "J05": (PRISON, "110", "320102", "2025-01", "2000.00"),
    "J06": (RELEASED, "110", "320102", "2025-01", "2000.00"),
    "J07": (PROBATION, "110", "320102", "2025-01", "2000.00"),
    "J08": (ADMITTED_JAN, "110", "320102", "2025-01", "2000.00"),
    "J09": (TWO_REGIONS, "110", "310101", "2025-01", "2000.00"),
    "J10": (TWO_REGIONS, "110", "110105", "2025-01", "1800.00"),
    "J11": (ARREARS_REGION, "110", "440300", "2024-12", "2100.00"),
    "J12": (MOVED, "110", "440300", "2025-01", "2000.00"),
    "J13": (TWO_SCHEMES, "110", "440300", "2025-01", "2000.00"),
    "J14": (TWO_SCHEMES, "170", "440300", "2025-01", "180.00"),
    "J15": (RESIDENT_ONLY, "170", "440300", "2025-01", "180.00"),
    "J16": (LINKED, "110", "110105", "2025-01", "2000.00"),
    "J17": (LINKED_TYPO, "110", "110105", "2025-01", "2000.00"),
    "J18": (LINKED_ALONE, "110", "110105", "2025-01", "2000.00"),
    "J19": (TWICE, "110", "110105", "2025-01", "2000.00"),
    "J20": (TWICE, "110", "110105", "2025-01", "2000.00"),
    "J21": (ARREARS_TWICE, "110", "110105", "2024-09", "2000.00"),
    "J22": (ARREARS_TWICE, "110", "110105", "2025-01", "2000.00"),
    "J23": (DEAD_TWO_REGIONS, "110", "110101", "2025-01", "2000.00"),
    "J24": (DEAD_TWO_REGIONS, "110", "320102", "2025-01", "2000.00"),
    "J25": (REVERSED, "110", "110101", "2024-12", "-2000.00"),
}
EXPECTED = {
    "J01": ("paid_after_death", "high"),
    "J04": ("paid_after_death", "medium"),
    "J05": ("paid_during_imprisonment", "high"),
    "J10": ("duplicate_cross_region", "high"),
    "J11": ("duplicate_cross_region", "high"),
    "J14": ("duplicate_cross_scheme", "high"),
    "J17": ("duplicate_identity", "high"),
    "J20": ("duplicate_payment_same_period", "medium"),
    "J23": ("paid_after_death", "high"),
    "J24": ("paid_after_death", "high"),
}
BAD_ROWS = [
    ["J90", "", "无号", "110", "110101", "2025-01", "2000.00", ""],          # missing person_id
    ["J91", TWICE, "周一", "110", "110101", "2025-01", "12.3.4", ""],       # unreadable amount
    ["J01", DEAD, "张一", "110", "110101", "2025-01", "2000.00", ""],        # payment id repeated
]


@pytest.fixture(scope="module")
def audit(tmp_path_factory) -> Path:
    """A full audit of a tiny landing folder (real pipeline, no Prefect); returns its output folder."""
    root = tmp_path_factory.mktemp("screen_audit")
    landing, output = root / "landing", root / "out"
    landing.mkdir()
    _write(landing / "pension_payments.csv", HEAD, _audit_payments())
    _write(landing / "deaths.csv", ["person_id", "name", "death_date", "source", "record_id"], [
        [DEAD, "张一", "2024-12-15", "公安", "GA1"], [DEAD_JAN, "张二", "2025-01-10", "民政", "MZ2"],
        [DEAD_ARREARS, "张三", "2024-12-05", "卫健", "WJ3"], [broken(WEAK), "王伟", "2024-12-01", "公安", "GA4"],
        [DEAD_TWO_REGIONS, "吴一", "2024-12-20", "公安", "GA5"], [REVERSED, "吴二", "2024-11-20", "公安", "GA6"]])
    _write(landing / "household.csv", ["person_id", "name", "birth_date", "household_id", "region_code", "status"], [
        [p, n, f"{p[6:10]}-{p[10:12]}-{p[12:14]}", f"H{i}", p[:6], "正常"]
        for i, (p, n) in enumerate(NAMES.items()) if p not in (LINKED_TYPO, LINKED_ALONE_TYPO)])
    _write(landing / "prisoners.csv", ["person_id", "name", "admission_date", "release_date", "sentence_type"], [
        [PRISON, "李一", "2024-06-01", "", "有期徒刑"], [RELEASED, "李二", "2024-03-01", "2024-12-20", "有期徒刑"],
        [PROBATION, "李三", "2024-05-01", "", "缓刑"], [ADMITTED_JAN, "李四", "2025-01-05", "", "拘役"]])
    run_pipeline(RunConfig(input=landing, output=output, as_of=date(2025, 1, 5)))
    return output


@pytest.fixture()
def payroll(tmp_path) -> Path:
    path = tmp_path / "payroll_202501.csv"
    rows = [[pid_, p, NAMES[p], s, r, period, amount, ""] for pid_, (p, s, r, period, amount) in PAYROLL.items()]
    _write(path, HEAD, rows + BAD_ROWS)
    return path


def _screen(output: Path, payroll: Path):
    return screen_payroll(ScreenConfig(payroll=payroll, output=output, as_of=date(2025, 1, 5)))


def test_holds_are_exactly_the_planted_cases_and_no_near_miss(audit, payroll):
    result = _screen(audit, payroll)
    holds = pl.read_parquet(result.holds)
    got = {r["payment_id"]: (r["hold_reason"], r["severity"]) for r in holds.iter_rows(named=True)}
    assert got == EXPECTED
    assert result.rows_held == len(EXPECTED)
    assert Decimal(result.amount_held) == sum(Decimal(PAYROLL[k][4]) for k in EXPECTED)
    assert result.per_reason["paid_after_death"] == {"rows": 4, "amount": "8000.00"}


def test_hold_rows_carry_the_spec_columns_canonical_values_and_evidence(audit, payroll):
    holds = pl.read_parquet(_screen(audit, payroll).holds)
    assert [c for c, _ in HOLD_COLUMNS][:12] == holds.columns[:12]
    assert holds.schema["amount"] == pl.Decimal(18, 2)
    row = holds.filter(pl.col("payment_id") == "J24").row(0, named=True)
    assert (row["person_id"], row["region_code"], row["scheme"], row["period"]) == (DEAD_TWO_REGIONS, "320102", "110", "2025-01")
    assert row["hold_reasons"] == "paid_after_death,duplicate_cross_region"
    evidence = json.loads(row["evidence"])
    assert evidence["findings"]["paid_after_death"]["death_date"] == "2024-12-20"
    assert evidence["findings"]["duplicate_cross_region"]["kept_region"] == "110101"
    assert "2024-12-20死亡" in row["reason"] and "另涉：跨地区重复领取）" in row["reason"]
    weak = json.loads(holds.filter(pl.col("payment_id") == "J04")["evidence"][0])
    assert weak["findings"]["paid_after_death_weak_match"]["death_records"][0]["death_person_id"] == broken(WEAK)
    arrears = holds.filter(pl.col("payment_id") == "J11").row(0, named=True)
    assert "已由统筹区310101发放" in arrears["reason"]
    assert json.loads(arrears["evidence"])["findings"]["duplicate_cross_region"]["kept_payment_already_paid"] is True


def test_bad_payroll_rows_are_quarantined_with_row_and_reason(audit, payroll):
    result = _screen(audit, payroll)
    q = pl.read_parquet(result.screen_dir / "quarantine.parquet")
    reasons = dict(zip(q["source_row"].to_list(), q["reason"].to_list()))
    first_bad = len(PAYROLL) + 2
    assert reasons[first_bad].startswith("missing_required: person_id")
    assert reasons[first_bad + 1].startswith("unparseable_money: amount='12.3.4'")
    assert reasons[first_bad + 2].startswith("duplicate_id: payment_id='J01'")
    assert (result.rows_read, result.rows_quarantined, result.rows_screened) == (len(PAYROLL) + 3, 3, len(PAYROLL))
    manifest = json.loads((result.screen_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["payroll"]["quarantine_reasons"] == {"duplicate_id": 1, "missing_required": 1, "unparseable_money": 1}
    assert manifest["counts"]["rows_held"] == len(EXPECTED)


def test_workbook_reads_back_with_chinese_headers_text_ids_and_exact_amounts(audit, payroll):
    result = _screen(audit, payroll)
    wb = openpyxl.load_workbook(result.xlsx)
    ws = wb["暂停发放核实名单"]
    header = [c.value for c in ws[1]]
    assert header[:8] == ["姓名", "身份证号", "统筹区编码", "险种", "所属期", "发放金额(元)", "暂停原因", "处理要求"]
    rows = [dict(zip(header, [c for c in r])) for r in ws.iter_rows(min_row=2)]
    assert len(rows) == len(EXPECTED)
    by_payment = {r["发放流水号"].value: r for r in rows}
    j01 = by_payment["J01"]
    assert j01["身份证号"].value == DEAD and j01["身份证号"].data_type == "s"
    assert j01["发放金额(元)"].value == 2000.0 and j01["发放金额(元)"].number_format == "#,##0.00"
    assert j01["暂停原因"].value == "死亡后仍发放" and j01["处理要求"].value == "暂停发放"
    assert by_payment["J20"]["处理要求"].value == "核实后发放"
    assert ws.freeze_panes == "C2" and ws.print_title_rows == "$1:$1"
    summary = wb["汇总"]
    totals = [[c.value for c in r] for r in summary.iter_rows() if r[0].value == "合计"]
    assert totals == [["合计", "", len(EXPECTED), float(sum(Decimal(PAYROLL[k][4]) for k in EXPECTED))]]


def test_rerun_lists_the_same_rows_again(audit, payroll):
    first, second = _screen(audit, payroll), _screen(audit, payroll)
    assert first.screen_id != second.screen_id
    a = pl.read_parquet(first.holds).drop("screen_id")
    b = pl.read_parquet(second.holds).drop("screen_id")
    assert a.equals(b) and a.height == len(EXPECTED)


def test_certified_after_death_when_certifications_are_present(audit, payroll, tmp_path):
    # the certifications extract is optional; put one in a copy of the audit's warehouse
    import shutil
    output = tmp_path / "out"
    shutil.copytree(audit, output, symlinks=True)
    con = duckdb.connect(str(output / "warehouse.duckdb"))
    con.execute("""CREATE TABLE certifications (record_id VARCHAR, person_id VARCHAR, person_id_valid BOOLEAN,
                   name VARCHAR, cert_date DATE, method VARCHAR, result VARCHAR, region_code VARCHAR)""")
    con.execute("INSERT INTO certifications VALUES ('C1', ?, true, '张一', DATE '2024-12-28', '人脸识别', '通过', '110101'),"
                "('C2', ?, true, '吴一', DATE '2024-12-28', '人脸识别', '未通过', '110101'),"
                "('C3', ?, true, '吴一', DATE '2024-12-01', '社区认证', '通过', '110101')",
                [DEAD, DEAD_TWO_REGIONS, DEAD_TWO_REGIONS])
    con.close()
    holds = pl.read_parquet(_screen(output, payroll).holds)
    got = {r["payment_id"]: r["hold_reason"] for r in holds.iter_rows(named=True)}
    assert got == {k: v for k, (v, _) in EXPECTED.items()} | {"J01": "certified_after_death"}
    j01 = holds.filter(pl.col("payment_id") == "J01").row(0, named=True)
    assert j01["severity"] == "high" and "2024-12-28（人脸识别）通过待遇资格认证" in j01["reason"]
    cert = json.loads(j01["evidence"])["findings"]["certified_after_death"]
    assert cert["certifications_after_death"][0]["record_id"] == "C1"


def test_a_payroll_without_required_column_stops_naming_the_file(audit, tmp_path):
    path = tmp_path / "payroll.csv"
    _write(path, ["payment_id", "person_id", "name"], [["X1", DEAD, "张一"]])
    with pytest.raises(ExtractError, match="required column 'scheme' is missing") as err:
        _screen(audit, path)
    assert str(path) in str(err.value)
    assert not list((audit / "screens").glob(".partial-*"))


def test_no_full_audit_yet_is_a_clear_error(tmp_path, payroll):
    with pytest.raises(RunError, match="no complete full audit run"):
        _screen(tmp_path, payroll)
