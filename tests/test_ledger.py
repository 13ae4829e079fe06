"""Progress per region and the savings ledger per rule and category, with exact figures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import openpyxl
import pytest
from audit_helpers import FIRM, PERSON_A, PERSON_B, hit, publish_run
from typer.testing import CliRunner

from pipelines import ledger, outcomes
from pipelines.case_store import open_store
from pipelines.dispatch import export_by_region
from pipelines.ledger import FutureLoss

RUN = "20240701T000000.000Z"
TODAY = dt.date(2024, 7, 10)
PRISONER = "320102196001010019"  # born 1960-01-01


@pytest.fixture()
def out(tmp_path):
    rows = [
        # 7500 over 2024-03..05 = 2500 a month; born 1950-03-15: 130 months from 2024-05 to age 85
        hit("paid_after_death", PERSON_A, "7500.00", region="110101"),
        hit("paid_after_death", PERSON_B, "300.00", name="王五", region="110101"),
        hit("paid_during_imprisonment", PRISONER, "1000.00", region="320102", first="2024-01", last="2024-02"),
        hit("refund_retained", FIRM, "5000.00", subject_type="firm", name="某公司", region="440300", first=None, last=None),
    ]
    publish_run(tmp_path, RUN, rows, manifest={"held_back": {"count": 1, "per_rule": {"paid_after_death": 1}, "reason": "x"}})
    return tmp_path


@pytest.fixture()
def store(out):
    with open_store(out) as s:
        yield s


def _record(store, out):
    outcomes.set_outcome(store, out, "paid_after_death", PERSON_A, "确认违规", "李", recovered="5000", today=TODAY)
    outcomes.set_outcome(store, out, "paid_after_death", PERSON_B, "无问题", "李", today=TODAY)
    outcomes.set_outcome(store, out, "paid_during_imprisonment", PRISONER, "经办差错", "王", recovered="1000", today=TODAY)
    outcomes.set_outcome(store, out, "refund_retained", FIRM, "确认违规", "赵", recovered="2500.50", today=TODAY)


def test_ledger_per_rule_with_overpayment_future_loss_recovered_and_precision(out, store):
    _record(store, out)
    rows = {r["rule_id"]: r for r in ledger.outcome_report(store, out).iter_rows(named=True)}
    pad = rows["paid_after_death"]
    assert (pad["hits"], pad["open"], pad["answered"], pad["confirmed_fraud"], pad["no_issue"]) == (2, 0, 2, 1, 1)
    assert pad["precision_pct"] == 50.0 and pad["held_back"] == 1
    assert pad["overpayment_found"] == Decimal("7500.00")  # the 无问题 suspect is not an overpayment
    assert pad["future_loss_prevented"] == Decimal("150000.00")  # 2500 a month × 60 (capped; 130 to age 85)
    assert pad["recovered"] == Decimal("5000.00")
    prison = rows["paid_during_imprisonment"]
    assert prison["future_loss_prevented"] == Decimal("6000.00")  # 500 a month × 12 (end of sentence unknown)
    assert prison["precision_pct"] == 100.0 and prison["admin_error"] == 1
    firm = rows["refund_retained"]
    assert firm["overpayment_found"] == Decimal("5000.00") and firm["future_loss_prevented"] == Decimal("0.00")
    # the method is a setting
    uncapped = {r["rule_id"]: r for r in ledger.outcome_report(store, out, future=FutureLoss(cap_months=240)).iter_rows(named=True)}
    assert uncapped["paid_after_death"]["future_loss_prevented"] == Decimal("325000.00")  # 2500 × 130
    younger = ledger.outcome_report(store, out, future=FutureLoss(until_age=75, cap_months=240))
    # age 75 on 2025-03-15: 10 months after the last improper period 2024-05
    assert younger.filter(younger["rule_id"] == "paid_after_death")["future_loss_prevented"].item() == Decimal("25000.00")


def test_ledger_per_category(out, store):
    _record(store, out)
    frame = ledger.outcome_report(store, out, by="category")
    assert frame.columns[0] == "category"
    rows = {r["category"]: r for r in frame.iter_rows(named=True)}
    assert set(rows) == {"paid_after_death", "paid_during_imprisonment", "refund_retained"}
    assert rows["paid_after_death"]["held_back"] == 1 and rows["refund_retained"]["recovered"] == Decimal("2500.50")


def test_progress_per_region_sent_answered_overdue_confirmed_recovered(out, store, tmp_path):
    export_by_region(out, tmp_path / "sent", store, due_days=10, today=TODAY)  # due 2024-07-20
    outcomes.set_outcome(store, out, "paid_after_death", PERSON_A, "确认违规", "李", recovered="5000", today=TODAY)
    outcomes.set_outcome(store, out, "paid_during_imprisonment", PRISONER, "核查中", "王", today=TODAY)
    early = {r["region_code"]: r for r in ledger.progress(store, dt.date(2024, 7, 15)).iter_rows(named=True)}
    assert early["110101"]["region_name"] == "北京市东城区"
    assert (early["110101"]["sent"], early["110101"]["answered"], early["110101"]["overdue"]) == (2, 1, 0)
    late = {r["region_code"]: r for r in ledger.progress(store, dt.date(2024, 7, 21)).iter_rows(named=True)}
    bj, js, gd = late["110101"], late["320102"], late["440300"]
    assert (bj["sent"], bj["answered"], bj["overdue"], bj["confirmed"], bj["recovered"]) == (2, 1, 1, 1, Decimal("5000.00"))
    assert (js["answered"], js["under_review"], js["overdue"]) == (0, 1, 1)  # 核查中 is not an answer
    assert (gd["sent"], gd["overdue"], gd["next_due"]) == (1, 1, dt.date(2024, 7, 20))
    assert bj["amount_sent"] == Decimal("7800.00")
    path = ledger.write_progress_xlsx(ledger.progress(store, dt.date(2024, 7, 21)), tmp_path / "p.xlsx", dt.date(2024, 7, 21))
    rows = list(openpyxl.load_workbook(path)["核查进度"].iter_rows(values_only=True))
    assert rows[2][:6] == ("地区代码", "地区", "下发疑点", "已答复", "核查中", "逾期未答复")
    assert rows[3][:4] == ("110101", "北京市东城区", 2, 1) and rows[-1][1] == "合计" and rows[-1][2] == 4
    with pytest.raises(Exception, match="file exists"):
        ledger.write_progress_xlsx(ledger.progress(store), path, TODAY)


def test_cli_progress_and_report(out, tmp_path):
    from pipelines.cli import app

    runner = CliRunner()
    assert "nothing sent yet" in runner.invoke(app, ["outcomes", "progress", "--output", str(out)]).output
    result = runner.invoke(app, ["export", "--by-region", "--out", str(tmp_path / "sent"), "--output", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["outcomes", "progress", "--output", str(out), "--xlsx", str(tmp_path / "p.xlsx")])
    assert result.exit_code == 0 and "progress per region" in result.output, result.output
    rows = list(openpyxl.load_workbook(tmp_path / "p.xlsx")["核查进度"].iter_rows(values_only=True))
    assert [r[0] for r in rows[3:6]] == ["110101", "320102", "440300"]
    with open_store(out) as store:
        _record(store, out)
    result = runner.invoke(app, ["outcomes", "report", "--output", str(out), "--by", "category", "--csv", str(tmp_path / "r.csv")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("category,hits,amount_at_risk,open,answered")
    assert "paid_after_death,2,7800.00,0,2,1,0,1,0,50.0,7500.00,150000.00,5000.00,1" in text
