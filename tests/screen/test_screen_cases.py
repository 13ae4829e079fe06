"""fraudwatch screen on hand-made cases: every hold reason with its near misses, the in-file
duplicates, quarantine of bad payroll rows, the workbook read back, reruns.

One tiny landing folder goes through the real audit pipeline (ingest → … → link → publish);
the payroll file is then screened against it (fixtures in conftest.py, cases in screen_cases.py)."""

from __future__ import annotations

import json
import shutil
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
from screen_cases import (DEAD, DEAD_TWO_REGIONS, DEAD_TYPO, DEAD_TYPO_OWNER, EXPECTED, HEAD, PAYROLL, REGIONS_TWO_IDS,
                          TYPO_DEATH, WEAK, _write, broken)


def _screen(output: Path, payroll: Path):
    return screen_payroll(ScreenConfig(payroll=payroll, output=output, as_of=date(2025, 1, 5)))


def test_holds_are_exactly_the_planted_cases_and_no_near_miss(audit, payroll):
    result = _screen(audit, payroll)
    holds = pl.read_parquet(result.holds)
    got = {r["payment_id"]: (r["hold_reason"], r["severity"]) for r in holds.iter_rows(named=True)}
    assert got == EXPECTED
    assert result.rows_held == len(EXPECTED)
    assert Decimal(result.amount_held) == sum(Decimal(PAYROLL[k][4]) for k in EXPECTED)
    assert result.per_reason["paid_after_death"] == {"rows": 7, "amount": "14000.00"}


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
    output = tmp_path / "out"
    shutil.copytree(audit, output, symlinks=True)
    con = duckdb.connect()
    con.execute("""CREATE TABLE certifications (record_id VARCHAR, person_id VARCHAR, person_id_valid BOOLEAN,
                   name VARCHAR, cert_date DATE, method VARCHAR, result VARCHAR, region_code VARCHAR)""")
    con.execute("INSERT INTO certifications VALUES ('C1', ?, true, '张一', DATE '2024-12-28', '人脸识别', '通过', '110101'),"
                "('C2', ?, true, '吴一', DATE '2024-12-28', '人脸识别', '未通过', '110101'),"
                "('C3', ?, true, '吴一', DATE '2024-12-01', '社区认证', '通过', '110101')",
                [DEAD, DEAD_TWO_REGIONS, DEAD_TWO_REGIONS])
    run_dir = (output / "latest").resolve()
    con.execute(f"COPY certifications TO '{run_dir / 'certifications.parquet'}' (FORMAT parquet)")
    con.close()
    with open(run_dir / "views.sql", "a", encoding="utf-8") as views:  # one more relation of the audit run
        views.write(f"CREATE OR REPLACE VIEW certifications AS SELECT * FROM read_parquet(['{run_dir / 'certifications.parquet'}']);\n")
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
    with pytest.raises(RunError, match="no complete full audit to screen against: jobs/full-audit/latest"):
        _screen(tmp_path, payroll)


def test_the_screen_follows_the_full_audit_pointer_not_the_newest_run(audit, payroll, tmp_path):
    """A daily death check after the full audit is newer, but the screen reads the full audit's run;
    an output folder holding only death checks has no full audit to screen against."""
    output = tmp_path / "out"
    shutil.copytree(audit, output, symlinks=True)
    landing = audit.parent / "landing"
    check = run_pipeline(RunConfig(input=landing, output=output, as_of=date(2025, 1, 5),
                                   categories=("paid_after_death",), job="death-check"))
    full = (output / "jobs" / "full-audit" / "latest").resolve().name
    assert (output / "latest").resolve().name == check.run_id != full
    assert _screen(output, payroll).audit_run == full
    only_checks = tmp_path / "checks"
    run_pipeline(RunConfig(input=landing, output=only_checks, as_of=date(2025, 1, 5),
                           categories=("paid_after_death",), job="death-check"))
    with pytest.raises(RunError, match="no complete full audit to screen against"):
        _screen(only_checks, payroll)


def test_more_holds_than_a_sheet_takes_continue_on_the_next_sheet(audit, payroll, monkeypatch):
    from pipelines.screen import workbook

    monkeypatch.setattr(workbook, "XLSX_MAX_ROWS", 4)
    wb = openpyxl.load_workbook(_screen(audit, payroll).xlsx)
    parts = [ws for ws in wb.worksheets if ws.title.startswith("暂停发放核实名单")]
    full, rest = divmod(len(EXPECTED), 4)
    sheets = full + (rest > 0)
    assert sheets >= 3
    assert [ws.title for ws in parts] == ["暂停发放核实名单"] + [f"暂停发放核实名单 ({i})" for i in range(2, sheets + 1)]
    assert [ws.max_row - 1 for ws in parts] == [4] * full + ([rest] if rest else [])


def test_invalid_ids_and_a_typo_of_a_dead_mans_id_are_held_and_say_so(audit, payroll):
    """An invalid ID is an identifier: the same invalid ID dead, imprisoned or paid by two regions is
    held, and the reason says to check identity first. A payee under a typo the audit linked to a dead
    man is held for his death; a registered namesake one digit away from a dead man is not."""
    holds = pl.read_parquet(_screen(audit, payroll).holds)
    row = {r["payment_id"]: r for r in holds.iter_rows(named=True)}
    for key in ("J26", "J27", "J28"):
        assert "该号码本身无效" in row[key]["reason"], key
        assert json.loads(row[key]["evidence"])["person_id_valid"] is False
    assert "该号码本身无效" not in row["J01"]["reason"]
    typo = row["J29"]
    assert typo["person_id"] == DEAD_TYPO
    assert f"与身份证号{DEAD_TYPO_OWNER}经比对为同一人，该人已于2024-11-10死亡" in typo["reason"]
    found = json.loads(typo["evidence"])["findings"]["paid_after_death"]
    assert found["this_person"] == DEAD_TYPO_OWNER and found["death_record_person_ids"] == [DEAD_TYPO_OWNER]
    assert "J30" not in row  # NAMESAKE
    two_ids = row["J34"]  # a second region paying a typo of the ID new in the payroll: one person, two regions
    assert two_ids["hold_reasons"] == "duplicate_cross_region,duplicate_identity"
    assert f"以经比对为同一人的身份证号{REGIONS_TWO_IDS}领取" in two_ids["reason"]
    under_typo = row["J32"]  # the death is recorded under the typo, once paid: the owner is held
    assert f"与身份证号{TYPO_DEATH}经比对为同一人，该人已于2024-12-03死亡" in under_typo["reason"]
    own = json.loads(row["J01"]["evidence"])["findings"]["paid_after_death"]
    assert own["this_person"] is None and "经比对为同一人" not in row["J01"]["reason"]
