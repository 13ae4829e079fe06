"""Cases sent to each region: one workbook per region with its deadline, scoped imports, print
layout read back with openpyxl, safe CSV cells, no silent overwrite."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import openpyxl
import pytest
from audit_helpers import FIRM, PERSON_A, PERSON_B, hit, publish_run
from typer.testing import CliRunner

from pipelines import export, outcomes
from pipelines.case_store import open_store
from pipelines.dispatch import export_by_region
from pipelines.errors import OutcomeError, RunError
from pipelines.regions import region_label, region_name

RUN = "20240701T000000.000Z"
TODAY = dt.date(2024, 7, 10)
PERSON_C = "310101195507070021"


@pytest.fixture()
def out(tmp_path):
    rows = [
        hit("paid_after_death", PERSON_A, "7500.00", region="110101"),
        hit("paid_after_death", PERSON_B, "300.00", name="王五", region="110101"),
        hit("duplicate_cross_region", PERSON_C, "2600.50", name="李四", region="310101"),
        hit("refund_retained", FIRM, "5000.00", subject_type="firm", name="=HYPERLINK(\"http://x\")", region="440300",
            first=None, last=None, reason="-1+1 某公司滞留稳岗资金"),
    ]
    publish_run(tmp_path / "o", RUN, rows, manifest={"parameters": {"as_of": "2024-07-01"}})
    return tmp_path / "o"


@pytest.fixture()
def store(out):
    with open_store(out) as s:
        yield s


def test_region_names_come_from_the_bundled_gb2260_table():
    assert region_name("110101") == "北京市东城区" and region_name("440300") == "广东省深圳市"
    assert region_name("419001") == "河南省济源市"  # province-administered county: no pseudo-prefecture in the name
    assert region_label("999999") == "999999 (未知地区)"


def test_one_workbook_per_region_with_only_its_suspects_and_its_deadline(out, store, tmp_path):
    result = export_by_region(out, tmp_path / "sent", store, due_days=30, today=TODAY)
    files = {w.region_code: w for w in result.workbooks}
    assert set(files) == {"110101", "310101", "440300"}
    bj = files["110101"]
    assert bj.file.name == "110101_北京市东城区_疑点核查_20240701.xlsx" and bj.suspects == 2
    assert bj.due_date == dt.date(2024, 8, 9)
    wb = openpyxl.load_workbook(bj.file)
    assert wb.sheetnames == ["汇总", "死亡冒领养老金", "填写说明"]
    info = {r[0]: r[1] for r in wb["汇总"].iter_rows(values_only=True) if r[0]}
    assert info["下发地区"] == "110101 北京市东城区" and info["答复期限"] == "2024-08-09"
    assert wb["汇总"]["A1"].value == "疑点核查清单 110101 北京市东城区汇总"
    ws = wb["死亡冒领养老金"]
    header = [c.value for c in ws[1]]
    ids = [r[header.index("身份证号/信用代码")] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert ids == [PERSON_A, PERSON_B]
    # page header names the region (code and name) and the deadline
    assert "110101 北京市东城区" in ws.oddHeader.right.text and "2024-08-09" in ws.oddHeader.right.text
    # recorded in the case store as sent
    items = store.dispatch_items().to_pylist()
    assert sorted((i["region_code"], i["subject_id"]) for i in items) == [
        ("110101", PERSON_A), ("110101", PERSON_B), ("310101", PERSON_C), ("440300", FIRM)]
    assert store.dispatch(bj.dispatch_id)["due_date"] == dt.date(2024, 8, 9)


def test_printed_layout_landscape_fit_to_width_repeated_header_frozen_names_key_hidden_last(out, store, tmp_path):
    result = export_by_region(out, tmp_path / "sent", store, today=TODAY)
    ws = openpyxl.load_workbook(result.workbooks[0].file)["死亡冒领养老金"]
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.paperSize == 9
    # fit to one page wide (fitToWidth 1 is the default, so omitted), as many pages tall as needed
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth in (None, 1)
    assert ws.page_setup.fitToHeight == 0
    assert ws.print_title_rows == "$1:$1"
    assert ws.freeze_panes == "C2"
    header = [c.value for c in ws[1]]
    assert header[:2] == ["身份证号/信用代码", "姓名/单位名称"] and header[-1] == "疑点编号"
    letter = openpyxl.utils.get_column_letter
    assert ws.column_dimensions[letter(len(header))].hidden
    assert not ws.column_dimensions[letter(header.index("疑点说明") + 1)].hidden
    # evidence readable: lines, not JSON
    evidence = ws.cell(2, header.index("证据") + 1).value
    assert not evidence.startswith("{") and "subject: " in evidence and ws.cell(2, header.index("证据") + 1).alignment.wrap_text


def fill(path, subject_cells: dict[str, dict], extra_rows: list[dict] | None = None, target=None):
    """Fill outcome cells like an auditor: {subject_id: {header: value}}; extra_rows are appended."""
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets[1:-1]:
        header = [c.value for c in ws[1]]
        for row in ws.iter_rows(min_row=2):
            subject = row[header.index("身份证号/信用代码")].value
            for name, value in subject_cells.get(subject, {}).items():
                row[header.index(name)].value = value
        for extra in extra_rows or []:
            ws.append([extra.get(h) for h in header])
        extra_rows = None
    wb.save(target or path)
    return target or path


def test_a_workbook_records_only_its_regions_suspects(out, store, tmp_path, monkeypatch):
    monkeypatch.setenv("FRAUDWATCH_USER", "东城区审计局")
    result = export_by_region(out, tmp_path / "sent", store, today=TODAY)
    bj = next(w for w in result.workbooks if w.region_code == "110101")
    foreign = {"疑点编号": f"{RUN}|duplicate_cross_region|{PERSON_C}", "处置结果": "无问题", "复核人": "张"}
    fill(bj.file, {PERSON_A: {"处置结果": "确认违规", "追回金额(元)": 7500, "复核人": "李"}}, [foreign])
    with pytest.raises(OutcomeError) as info:
        outcomes.import_outcomes(store, bj.file, out, today=TODAY)
    text = str(info.value)
    assert "1 row(s) rejected, nothing imported" in text and "row 4" in text
    assert "the suspect belongs to region 310101" in text and "only for 110101 北京市东城区" in text
    assert store.history().num_rows == 0
    # the auditor removes the foreign row: the region's own verdict is recorded with scope and recorder
    wb = openpyxl.load_workbook(bj.file)
    wb["死亡冒领养老金"].delete_rows(4)
    wb.save(bj.file)
    done = outcomes.import_outcomes(store, bj.file, out, today=TODAY)
    assert (done.recorded, done.scope, done.recorded_by) == (1, "110101", "东城区审计局")
    entry = store.history().to_pylist()[0]
    assert (entry["subject_id"], entry["scope"], entry["recorded_by"], entry["dispatch_id"], entry["region_code"]) == (
        PERSON_A, "110101", "东城区审计局", bj.dispatch_id, "110101")


def test_a_workbook_from_an_unknown_dispatch_is_refused(out, store, tmp_path):
    result = export_by_region(out, tmp_path / "sent", store, today=TODAY)
    with open_store(tmp_path / "other") as other:
        with pytest.raises(OutcomeError, match="does not know"):
            outcomes.import_outcomes(other, result.workbooks[0].file, out, today=TODAY)


def test_no_export_overwrites_a_file_without_force(out, store, tmp_path):
    target = tmp_path / "x.xlsx"
    export.export_suspects(out, target, store=store)
    target.write_bytes(b"an auditor's work")
    with pytest.raises(RunError, match="file exists"):
        export.export_suspects(out, target, store=store)
    assert target.read_bytes() == b"an auditor's work"
    export.export_suspects(out, target, store=store, force=True)
    assert zipfile.is_zipfile(target)
    export_by_region(out, tmp_path / "sent", store, today=TODAY)
    with pytest.raises(RunError, match="file exists"):
        export_by_region(out, tmp_path / "sent", store, today=TODAY)
    assert len(store.dispatch_items()) == 4  # the refused export recorded nothing
    export_by_region(out, tmp_path / "sent", store, today=TODAY, force=True)


def test_csv_cells_that_would_start_a_formula_are_neutralised_and_import_back(out, store, tmp_path):
    path = export.export_suspects(out, tmp_path / "x.csv", "csv", store=store).files[0]
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    firm = next(r for r in rows if r["身份证号/信用代码"] == FIRM)
    assert firm["姓名/单位名称"] == "'=HYPERLINK(\"http://x\")" and firm["疑点说明"] == "'-1+1 某公司滞留稳岗资金"
    assert firm["涉及金额(元)"] == "5000.00"  # numbers stay numbers
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", value
    # an auditor's note that starts like a formula is neutralised in the export and recorded as written
    outcomes.set_outcome(store, out, "refund_retained", FIRM, "确认违规", "李", note="=1+1 已追回", today=TODAY)
    again = export.export_suspects(out, tmp_path / "y.csv", "csv", store=store).files[0]
    row = next(r for r in csv.DictReader(io.StringIO(again.read_text(encoding="utf-8-sig"))) if r["身份证号/信用代码"] == FIRM)
    assert row["处置说明"] == "'=1+1 已追回"
    assert outcomes.import_outcomes(store, again, out, today=TODAY).recorded == 0  # unchanged: the ' is not kept


def test_cli_export_by_region(out, tmp_path):
    from pipelines.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", "--by-region", "--out", str(tmp_path / "sent"), "--due-days", "15",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 regional workbooks" in result.output and "北京市东城区" in result.output
    result = runner.invoke(app, ["export", "--by-region", "--out", str(tmp_path / "sent"), "--output", str(out)])
    assert result.exit_code == 2 and "--force" in " ".join(result.output.split())
    result = runner.invoke(app, ["export", "--by-region", "--format", "csv", "--out", str(tmp_path / "s2"), "--output", str(out)])
    assert result.exit_code == 2 and "use --format xlsx" in result.output
