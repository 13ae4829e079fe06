"""Outcomes: import from a filled-in export, append-only history, rejection of bad files,
held-back suspects, the per-rule report. Every test runs against both case stores: the default
SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import openpyxl
import pytest
from audit_helpers import FIRM, PERSON_A, PERSON_A_15, PERSON_B, hit, hits_table, publish_run
from case_store_helpers import postgres_server, store_url  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from pipelines import export, ledger, outcomes
from pipelines.case_store import open_store
from pipelines.errors import OutcomeError

RUN1 = "20240701T000000.000Z"
RUN2 = "20240801T000000.000Z"
TODAY = dt.date(2024, 8, 15)


@pytest.fixture()
def out(tmp_path):
    publish_run(tmp_path, RUN1, [
        hit("paid_after_death", PERSON_A, "7500.00", last="2024-05"),
        hit("paid_after_death", PERSON_B, "300.00", name="王五"),
        hit("refund_retained", FIRM, "5000.00", subject_type="firm", name="某公司", first=None, last=None),
    ])
    return tmp_path


@pytest.fixture()
def con(out, store_url):
    """The case store (named con as the tests' handle on where outcomes are kept)."""
    with open_store(out, store_url) as store:
        yield store


def fill(xlsx, path, values: dict[tuple[str, str], dict[str, object]]):
    """Fill outcome cells of an export like an auditor in Excel: {(sheet, subject_id): {header: value}}."""
    wb = openpyxl.load_workbook(xlsx)
    for (sheet, subject), cells in values.items():
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        row = next(r for r in ws.iter_rows(min_row=2) if subject in (r[header.index("身份证号/信用代码")].value, r[0].value))
        for name, value in cells.items():
            row[header.index(name)].value = value
    wb.save(path)
    return path


HISTORY = ["rule_id", "subject_id", "run_id", "outcome", "recovered_amount", "note", "reviewer", "review_date",
           "amount_at_risk", "last_period", "source", "source_file", "source_sheet", "source_row"]


def history(store):
    table = store.history().select(HISTORY)
    return [tuple(r[c] for c in HISTORY) for r in table.to_pylist()]


def test_import_filled_xlsx_records_outcomes_with_the_suspect_facts(out, con, tmp_path):
    xlsx = export.export_suspects(out, tmp_path / "e.xlsx").files[0]
    filled = fill(xlsx, tmp_path / "filled.xlsx", {
        ("死亡冒领养老金", PERSON_A): {"处置结果": "确认违规", "追回金额(元)": 7500.5, "复核人": "李审计",
                                      "复核日期": dt.datetime(2024, 8, 1), "处置说明": "已追回"},
        ("稳岗资金滞留", FIRM): {"处置结果": "under_review", "复核人": "王审计"},
    })
    result = outcomes.import_outcomes(con, filled, out, today=TODAY)
    assert (result.rows_with_outcome, result.recorded, result.unchanged) == (2, 2, 0)
    assert result.per_outcome == {"confirmed_fraud": 1, "under_review": 1}
    rows = history(con)
    assert rows[0] == ("paid_after_death", PERSON_A, RUN1, "confirmed_fraud", Decimal("7500.50"), "已追回", "李审计",
                       dt.date(2024, 8, 1), Decimal("7500.00"), "2024-05", "import", str(filled), "死亡冒领养老金", 2)
    assert rows[1][3] == "under_review" and rows[1][7] == TODAY  # no date given: the import day
    # importing the same file again adds nothing
    again = outcomes.import_outcomes(con, filled, out, today=TODAY)
    assert (again.recorded, again.unchanged) == (0, 2) and len(history(con)) == 2


def test_csv_import_accepts_english_values_and_excel_gbk_csv(out, con, tmp_path):
    path = tmp_path / "o.csv"
    key = f"{RUN1}|paid_after_death|{PERSON_B}"
    path.write_bytes(("疑点编号,处置结果,追回金额(元),复核人,复核日期\n"
                      f"{key},No_Issue,,张审计,2024/8/3\n").encode("gb18030"))
    result = outcomes.import_outcomes(con, path, out, today=TODAY)
    assert result.per_outcome == {"no_issue": 1}
    assert history(con)[0][3:8] == ("no_issue", None, None, "张审计", dt.date(2024, 8, 3))


def test_bad_file_lists_every_bad_row_and_imports_nothing(out, con, tmp_path):
    good = f"{RUN1}|paid_after_death|{PERSON_A}"
    path = tmp_path / "bad.csv"
    path.write_text(
        "疑点编号,处置结果,追回金额(元),复核人,复核日期\n"
        f"{good},确认违规,100.00,李,2024-08-01\n"                              # row 2: fine
        f"{RUN1}|paid_after_death|110101199001010000,确认违规,,李,\n"           # row 3: not in the run
        f"{RUN1}|refund_retained|{FIRM},可能违规,,李,\n"                      # row 4: unknown outcome
        f"{RUN1}|refund_retained|{FIRM},admin_error,12.345,李,2024-02-30\n"   # row 5: bad amount + bad date
        f"20990101T000000.000Z|paid_after_death|{PERSON_A},无问题,,李,\n"      # row 6: unknown run
        f"{good},无问题,,,\n"                                                  # row 7: missing reviewer, duplicate of row 2
        "just-a-key,无问题,,李,\n"                                             # row 8: malformed key
        f"{RUN1}|paid_after_death|{PERSON_B},,,,\n",                          # row 9: no outcome: ignored
        encoding="utf-8-sig")
    with pytest.raises(OutcomeError) as info:
        outcomes.import_outcomes(con, path, out, today=TODAY)
    text = str(info.value)
    assert "7 row(s) rejected, nothing imported" in text and str(path) in text
    for row, reason in [(2, "the same suspect is on row 2, row 7"), (3, "is not in run " + RUN1),
                        (4, "unknown outcome value '可能违规'"), (5, "bad amount '12.345'"), (5, "bad date '2024-02-30'"),
                        (6, "run 20990101T000000.000Z not found"), (7, "missing reviewer"), (8, "malformed suspect key")]:
        assert any(line.strip().startswith(f"row {row}:") and reason in line for line in text.splitlines()), (row, reason)
    assert "row 9" not in text
    assert history(con) == []


def test_file_without_outcome_columns_is_rejected(out, con, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(OutcomeError, match="no sheet with the columns 疑点编号 and 处置结果"):
        outcomes.import_outcomes(con, path, out)


def test_history_is_append_only_and_the_latest_entry_is_current(out, con):
    outcomes.set_outcome(con, out, "paid_after_death", PERSON_A_15, "核查中", "李", today=TODAY)
    outcomes.set_outcome(con, out, "paid_after_death", PERSON_A, "经办差错", "李", recovered="1,000.00",
                         note="多发", review_date="2024-08-10", today=TODAY)
    rows = history(con)
    assert [r[3] for r in rows] == ["under_review", "admin_error"] and rows[0][1] == PERSON_A  # 15 → 18 digits
    assert rows[1][4] == Decimal("1000.00") and rows[1][10] == "cli" and rows[1][11] is None
    assert con.current_outcomes().column("outcome").to_pylist() == ["admin_error"]
    with pytest.raises(OutcomeError, match="command line: .*date 2024-09-01 is in the future"):
        outcomes.set_outcome(con, out, "paid_after_death", PERSON_A, "确认违规", "李", review_date="2024-09-01", today=TODAY)
    with pytest.raises(OutcomeError, match="a recovered amount with outcome 无问题"):
        outcomes.set_outcome(con, out, "paid_after_death", PERSON_A, "无问题", "李", recovered="5", today=TODAY)
    assert len(history(con)) == 2


def test_masked_export_keys_import_back_to_the_right_suspect(out, con, tmp_path):
    xlsx = export.export_suspects(out, tmp_path / "m.xlsx", mask=True).files[0]
    wb = openpyxl.load_workbook(xlsx)
    ws = wb["死亡冒领养老金"]
    header = [c.value for c in ws[1]]
    row = next(r for r in ws.iter_rows(min_row=2) if r[header.index("姓名/单位名称")].value == "王*")
    row[header.index("处置结果")].value, row[header.index("复核人")].value = "无问题", "李"
    wb.save(tmp_path / "m_filled.xlsx")
    outcomes.import_outcomes(con, tmp_path / "m_filled.xlsx", out, today=TODAY)
    assert history(con)[0][:2] == ("paid_after_death", PERSON_B)


def _close(con, out, rule, subject, outcome="无问题"):
    outcomes.set_outcome(con, out, rule, subject, outcome, "李", today=TODAY)


def test_apply_outcomes_holds_back_no_issue_with_unchanged_facts(out, con):
    _close(con, out, "paid_after_death", PERSON_A)              # closed at 7500.00 / 2024-05
    _close(con, out, "paid_after_death", PERSON_B)              # closed at 300.00 / 2024-05
    _close(con, out, "refund_retained", FIRM, "确认违规")         # not no_issue: stays
    new = hits_table([
        hit("paid_after_death", PERSON_A, "7500.00", last="2024-05"),   # unchanged → held back
        hit("paid_after_death", PERSON_B, "300.01", name="王五"),        # larger amount → raised again
        hit("refund_retained", FIRM, "5000.00", subject_type="firm", first=None, last=None),
        hit("paid_after_death", "310101195201010035", "1.00"),          # never reviewed
    ])
    kept, held = outcomes.apply_outcomes(con, new)
    assert kept.schema == new.schema
    assert kept.column("subject_id").to_pylist() == [PERSON_B, FIRM, "310101195201010035"]
    assert (held.count, held.per_rule) == (1, {"paid_after_death": 1})
    assert "held back 1 suspects closed as 无问题 with unchanged facts" in held.reason
    assert held.table.column("closed_amount_at_risk").to_pylist() == [Decimal("7500.00")]
    assert held.to_manifest()["count"] == 1
    later = hits_table([hit("paid_after_death", PERSON_A, "7500.00", last="2024-06")])  # new improper period
    assert outcomes.apply_outcomes(con, later)[1].count == 0
    smaller = hits_table([hit("paid_after_death", PERSON_A, "100.00", last="2024-05")])
    assert outcomes.apply_outcomes(con, smaller)[1].count == 1


def test_a_newer_verdict_lifts_the_hold(out, con):
    _close(con, out, "paid_after_death", PERSON_A)
    _close(con, out, "paid_after_death", PERSON_A, "核查中")
    new = hits_table([hit("paid_after_death", PERSON_A, "7500.00", last="2024-05")])
    assert outcomes.apply_outcomes(con, new)[1].count == 0


def test_apply_outcomes_without_outcomes_keeps_everything(con):
    new = hits_table([hit("paid_after_death", PERSON_A, "1.00")])
    kept, held = outcomes.apply_outcomes(con, new)
    assert kept.equals(new) and held.count == 0 and held.per_rule == {}
    empty = new.slice(0, 0)
    assert outcomes.apply_outcomes(con, empty)[0].num_rows == 0


def test_report_per_rule(out, con):
    outcomes.set_outcome(con, out, "paid_after_death", PERSON_A, "确认违规", "李", recovered="7000.00", today=TODAY)
    outcomes.set_outcome(con, out, "paid_after_death", PERSON_B, "无问题", "李", today=TODAY)
    outcomes.set_outcome(con, out, "refund_retained", FIRM, "核查中", "李", today=TODAY)
    publish_run(out, RUN2, [hit("paid_after_death", PERSON_A, "7500.00"), hit("refund_retained", FIRM, "5000.00",
                                                                              subject_type="firm")],
                manifest={"held_back": {"count": 1, "per_rule": {"paid_after_death": 1}, "reason": "x"}})
    report = {r["rule_id"]: r for r in ledger.outcome_report(con, out).iter_rows(named=True)}
    pad = report["paid_after_death"]
    assert (pad["hits"], pad["open"], pad["answered"], pad["confirmed_fraud"], pad["no_issue"]) == (1, 0, 2, 1, 1)
    assert pad["precision_pct"] == 50.0 and pad["recovered"] == Decimal("7000.00") and pad["held_back"] == 1
    assert pad["amount_at_risk"] == Decimal("7500.00")
    rr = report["refund_retained"]
    assert (rr["hits"], rr["open"], rr["answered"], rr["under_review"], rr["precision_pct"]) == (1, 1, 0, 1, None)


def test_cli_outcomes_import_set_report(out, tmp_path, store_url, monkeypatch):
    from pipelines.cli import app

    if store_url:
        monkeypatch.setenv("FRAUDWATCH_CASE_STORE", store_url)
    runner = CliRunner()
    path = tmp_path / "o.csv"
    path.write_text(f"疑点编号,处置结果,复核人\n{RUN1}|paid_after_death|{PERSON_A},确认违规,李\n", encoding="utf-8-sig")
    result = runner.invoke(app, ["outcomes", "import", str(path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "recorded 1" in result.output
    result = runner.invoke(app, ["outcomes", "set", "refund_retained", FIRM.lower(), "--outcome", "bogus", "--reviewer", "李",
                                 "--output", str(out)])
    assert result.exit_code == 2 and "unknown outcome value 'bogus'" in result.output
    result = runner.invoke(app, ["outcomes", "set", "refund_retained", FIRM.lower(), "--outcome", "admin_error",
                                 "--reviewer", "李", "--recovered", "12.50", "--output", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["outcomes", "report", "--output", str(out), "--csv", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    assert "savings ledger per rule" in result.output
    text = (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    assert "refund_retained,1,5000.00,0,1,0,1,0,0,100.0,5000.00,0.00,12.50,0" in text
