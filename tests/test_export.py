"""Exports for auditors: Chinese headers, summary + category sheets, exact amounts, text IDs, masking."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import duckdb
import openpyxl
import pytest
from audit_helpers import FIRM, PERSON_A, PERSON_B, hit, publish_run
from typer.testing import CliRunner

from pipelines import export
from pipelines.errors import RunError
from pipelines.outcomes import OUTCOME_HEADERS, set_outcome

RUN = "20240701T000000.000Z"


@pytest.fixture()
def out(tmp_path):
    rows = [
        hit("paid_after_death", PERSON_A, "0.10", region="110101"),
        hit("paid_after_death", PERSON_B, "0.20", name="欧阳娜娜", region="110101"),
        hit("duplicate_cross_region", PERSON_A, "1234567.89", region="310101"),
        hit("refund_retained", FIRM, "5000.00", subject_type="firm", name="某劳务派遣有限公司", region="440300",
            first=None, last=None, reason="某劳务派遣有限公司（信用代码91110105MA01ABCD2X）滞留稳岗资金5000.00元。"),
        hit("new_rule", PERSON_B, None, category="brand_new_category", name="欧阳娜娜"),
    ]
    publish_run(tmp_path, RUN, rows, manifest={"parameters": {"as_of": "2024-07-01"}})
    return tmp_path


def sheet_rows(ws):
    rows = list(ws.iter_rows(values_only=True))
    return rows[0], rows[1:]


def test_xlsx_has_summary_category_sheets_and_instructions(out, tmp_path):
    result = export.export_suspects(out, tmp_path / "x.xlsx", "xlsx")
    wb = openpyxl.load_workbook(result.files[0])
    assert wb.sheetnames == ["汇总", "死亡冒领养老金", "跨地区重复领取", "稳岗资金滞留", "brand_new_category", "填写说明"]
    header, rows = sheet_rows(wb["死亡冒领养老金"])
    for h in ["疑点编号", "规则编号", "类别", "严重程度", "对象类型", "身份证号/信用代码", "姓名/单位名称", "地区", "起始所属期",
              "截止所属期", "涉及金额(元)", "证据", "疑点说明", "状态", "批次号", "规则版本", *OUTCOME_HEADERS.values()]:
        assert h in header
    assert len(rows) == 2
    record = dict(zip(header, rows[1]))  # sorted by amount, largest first
    assert record["类别"] == "死亡冒领养老金" and record["严重程度"] == "高" and record["对象类型"] == "个人"
    assert record["状态"] == "新增"
    assert record["疑点编号"] == f"{RUN}|paid_after_death|{PERSON_A}"
    assert all(record[h] is None for h in OUTCOME_HEADERS.values())
    assert result.per_category == {"paid_after_death": 2, "duplicate_cross_region": 1, "refund_retained": 1,
                                   "brand_new_category": 1}


def test_ids_are_text_cells_and_amounts_formatted_numbers(out, tmp_path):
    wb = openpyxl.load_workbook(export.export_suspects(out, tmp_path / "x.xlsx").files[0])
    ws = wb["跨地区重复领取"]
    header = [c.value for c in ws[1]]
    cells = {h: c for h, c in zip(header, ws[2])}
    assert cells["身份证号/信用代码"].data_type == "s" and cells["身份证号/信用代码"].value == PERSON_A
    assert cells["地区"].data_type == "s"
    assert cells["涉及金额(元)"].data_type == "n" and cells["涉及金额(元)"].value == 1234567.89
    assert cells["涉及金额(元)"].number_format == "#,##0.00"


def test_summary_sums_are_exact_decimals(out, tmp_path):
    wb = openpyxl.load_workbook(export.export_suspects(out, tmp_path / "x.xlsx").files[0])
    rows = list(wb["汇总"].iter_rows(values_only=True))
    top = next(i for i, r in enumerate(rows) if r[0] == "类别")
    table = {(r[1], r[2]): r for r in rows[top + 1:]}
    # 0.10 + 0.20 summed as floats is 0.30000000000000004; DECIMAL gives 0.30
    assert table[("paid_after_death", "110101")][5] == 0.3
    assert table[("paid_after_death", "小计")][3] == 2
    total = table[("", "合计")]
    assert total[0] == "全部" and total[3] == 5 and total[5] == 1239568.19
    assert ("批次号", RUN) in [(r[0], r[1]) for r in rows[:top]]
    assert ("数据截止日期", "2024-07-01") in [(r[0], r[1]) for r in rows[:top]]
    csv_result = export.export_suspects(out, tmp_path / "x.csv", "csv")
    summary = list(csv.DictReader(io.StringIO(csv_result.files[1].read_text(encoding="utf-8-sig"))))
    assert {r["涉及金额(元)"] for r in summary if r["地区"] == "小计" and r["类别代码"] == "paid_after_death"} == {"0.30"}


def test_csv_is_utf8_with_bom_one_file_plus_summary(out, tmp_path):
    result = export.export_suspects(out, tmp_path / "list", "csv")
    path, summary = result.files
    assert path.name == "list.csv" and summary.name == "list.summary.csv"
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and summary.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 5
    firm = next(r for r in rows if r["规则编号"] == "refund_retained")
    assert firm["身份证号/信用代码"] == FIRM and firm["涉及金额(元)"] == "5000.00" and firm["对象类型"] == "单位"
    assert {r["类别"] for r in rows} == {"死亡冒领养老金", "跨地区重复领取", "稳岗资金滞留", "brand_new_category"}
    assert not list(tmp_path.glob(".*partial*"))


def test_mask_hides_person_ids_and_given_names_everywhere_but_not_firms(out, tmp_path):
    result = export.export_suspects(out, tmp_path / "m.csv", "csv", mask=True)
    text = result.files[0].read_text(encoding="utf-8-sig")
    assert PERSON_A not in text and PERSON_B not in text
    assert "张三" not in text and "欧阳娜娜" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    a = next(r for r in rows if r["规则编号"] == "duplicate_cross_region")
    assert a["身份证号/信用代码"] == "110101********0013" and a["姓名/单位名称"] == "张*"
    assert a["疑点说明"].startswith("张*（身份证号110101********0013）")
    assert '"name":"张**"' in a["证据"]
    b = next(r for r in rows if r["规则编号"] == "paid_after_death" and r["姓名/单位名称"].startswith("欧阳"))
    assert b["姓名/单位名称"] == "欧阳**"
    firm = next(r for r in rows if r["规则编号"] == "refund_retained")
    assert firm["身份证号/信用代码"] == FIRM and firm["姓名/单位名称"] == "某劳务派遣有限公司" and FIRM in firm["疑点说明"]
    # the key carries the suspect's position in the run instead of its ID
    assert a["疑点编号"] == f"{RUN}|duplicate_cross_region|#1"


def test_mask_sql_functions():
    con = duckdb.connect()
    got = con.execute(f"SELECT {export.mask_id_sql('x')}, {export.mask_name_sql('n')} FROM (VALUES "
                      "('11010519491231002X', '张伟'), ('110101500315001', '诸葛亮明'), ('12345', '李')) t(x, n)").fetchall()
    assert got == [("110105********002X", "张*"), ("110101*****5001", "诸葛**"), ("*****", "李*")]


def test_masked_reason_hides_other_people_named_with_their_id(tmp_path):
    reason = (f"张三（身份证号{PERSON_A}）的养老金发放银行账号同时用于发放另外2名非同户人员的养老金"
              f"（王五（{PERSON_B}）、刘梅（110101194806200024）），请核实。")
    publish_run(tmp_path, RUN, [hit("shared_bank_account", PERSON_A, None, reason=reason,
                                    evidence=f'{{"other_payees":[{{"person_id":"{PERSON_B}","name":"王五"}}]}}')])
    text = export.export_suspects(tmp_path, tmp_path / "m.csv", "csv", mask=True).files[0].read_text(encoding="utf-8-sig")
    assert "王五" not in text and "刘梅" not in text and PERSON_B not in text and "110101194806200024" not in text
    assert "非同户人员的养老金（王**（440300********0049）、刘**（110101********0024））" in text


def test_large_category_continues_on_a_second_sheet(out, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "XLSX_MAX_ROWS", 1)
    wb = openpyxl.load_workbook(export.export_suspects(out, tmp_path / "x.xlsx").files[0])
    assert "死亡冒领养老金 (2)" in wb.sheetnames
    assert len(list(wb["死亡冒领养老金 (2)"].iter_rows())) == 2  # header + 1 row


def test_progress_is_reported_and_reaches_total(out, tmp_path):
    seen = []
    export.export_suspects(out, tmp_path / "x.xlsx", progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (5, 5)


def test_current_outcomes_are_prefilled(out, tmp_path):
    from pipelines.case_store import open_store

    with open_store(out) as store:
        set_outcome(store, out, "paid_after_death", PERSON_A, "确认违规", "李审计", recovered="0.10", review_date="2024-07-02")
    result = export.export_suspects(out, tmp_path / "x.xlsx")
    assert result.prefilled_outcomes == 1
    header, rows = sheet_rows(openpyxl.load_workbook(result.files[0])["死亡冒领养老金"])
    record = next(dict(zip(header, r)) for r in rows if r[header.index("身份证号/信用代码")] == PERSON_A)
    assert record["处置结果"] == "确认违规" and record["追回金额(元)"] == 0.1 and record["复核人"] == "李审计"
    assert str(record["复核日期"])[:10] == "2024-07-02"


def test_unknown_run_and_format_are_errors(out, tmp_path):
    with pytest.raises(RunError, match="no suspects.parquet"):
        export.export_suspects(out, tmp_path / "x.xlsx", run="nope")
    with pytest.raises(RunError, match="unknown export format"):
        export.export_suspects(out, tmp_path / "x.pdf", "pdf")


def test_cli_export(out, tmp_path):
    from pipelines.cli import app

    result = CliRunner().invoke(app, ["export", "--output", str(out), "--format", "xlsx", "--out", str(tmp_path / "e.xlsx"), "--mask"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e.xlsx").exists() and "死亡冒领养老金" in result.output and "(masked)" in result.output
    wb = openpyxl.load_workbook(tmp_path / "e.xlsx")
    assert PERSON_A not in {c for row in wb["跨地区重复领取"].iter_rows(values_only=True) for c in row}


def test_run_overview_aggregates_exactly(out):
    ov = export.run_overview(out)
    cat = {r["category"]: r for r in ov.by_category.iter_rows(named=True)}
    assert cat["paid_after_death"]["amount_at_risk"] == Decimal("0.30") and cat["paid_after_death"]["category_zh"] == "死亡冒领养老金"
    assert ov.by_region.filter(ov.by_region["region_code"] == "110101")["hits"].item() == 3
    assert set(ov.by_month["month"]) == {"2024-03"}
    assert ov.as_of == "2024-07-01" and ov.run_id == RUN
