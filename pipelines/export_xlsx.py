"""The XLSX layout of an export: a workbook an auditor can fill in on screen and print on paper.

- sheet 汇总 (what the workbook holds: run, region and reply deadline when sent to a region,
  hits/new hits/amounts per category and region), one sheet per category, sheet 填写说明;
- category sheets print landscape on A4, fit to the page width, with the header row repeated on
  every page, a page header naming the region (code and name) and the deadline, page numbers;
- the ID and name columns stay frozen on screen; the technical columns (rule id, subject type,
  run id, the suspect key 疑点编号) come last and are hidden (import still reads them);
- long text (reason, evidence, notes) wraps; the evidence is shown as readable lines, not JSON;
- a workbook sent to a region carries its dispatch id as a custom document property, which
  :func:`pipelines.outcomes.import_outcomes` uses to find the workbook's scope in the case store.

Streamed row by row with xlsxwriter in constant-memory mode; IDs are text cells, amounts numbers
formatted ``#,##0.00``, strings never become formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Callable

import polars as pl

from pipelines.outcomes import DISPATCH_PROPERTY, KEY_HEADER, OUTCOME_HEADERS, OUTCOME_LABELS

if TYPE_CHECKING:
    from pathlib import Path

    from pipelines.export import _Source

XLSX_MAX_ROWS = 1_048_575  # data rows per sheet under Excel's 1,048,576-row limit
XLSX_MAX_CELL = 32_767
Progress = Callable[[int, int], None]
_SUMMARY_HEADERS = ["类别", "类别代码", "地区", "疑点数", "其中新增", "涉及金额(元)"]


@dataclass(frozen=True)
class Scope:
    """A workbook sent to one region: whose suspects it holds and by when the answer is due."""

    region_code: str
    region_name: str
    due_date: date
    dispatch_id: str

    @property
    def label(self) -> str:
        return f"{self.region_code} {self.region_name}"


def sheet_name(label: str, used: set[str]) -> str:
    """A valid, unused sheet name (31 characters at most, without []:*?/\\)."""
    base = "".join(ch for ch in label if ch not in "[]:*?/\\")[:28] or "sheet"
    name, n = base, 2
    while name in used:
        name, n = f"{base} ({n})", n + 1
    used.add(name)
    return name


_LINE_POINTS = {"wrap": 13.0, "evidence": 10.5}  # line height of wrapped text at 10 pt / 8 pt


def _units(text: str) -> float:
    """Width of text in column-width units at 10 pt: wide (CJK) characters count about 1.8."""
    return sum(1.8 if ord(ch) >= 0x2E80 else 0.95 for ch in text)


def row_height(cells: list[tuple[str, float, str]]) -> float | None:
    """Points needed by the wrapped cells of a row (``(kind, column width, text)``), or None for one line.

    Spreadsheet programs do not all grow rows to fit wrapped text on opening (LibreOffice keeps
    the default height), so the writer sets it; this is an estimate that errs on the tall side."""
    points = 0.0
    for kind, width, text in cells:
        scale = 1.25 if kind == "evidence" else 1.0  # 8 pt text: more characters per width unit
        lines = sum(max(1, -(-int(_units(line)) // max(int(width * scale) - 1, 1))) for line in text.split("\n"))
        points = max(points, lines * _LINE_POINTS[kind] + 3)
    return min(points, 409.0) if points > 16 else None


def _header_text(text: str) -> str:
    return text.replace("&", "&&")


def write_xlsx(src: "_Source", out: "Path", mask: bool, run_id: str, progress: Progress | None,
               scope: Scope | None = None, max_rows: int = XLSX_MAX_ROWS) -> dict[str, int]:
    """Write the workbook; returns suspects per category."""
    import xlsxwriter

    from pipelines.export import readable_evidence

    cols, sql = src.rows_sql(mask, "DOUBLE")  # DECIMAL(18,2) → nearest double, as float(Decimal) gives
    summary = src.summary()
    total = int(summary.filter(pl.col("category_code").is_null())["hits"].sum() or 0)
    wb = xlsxwriter.Workbook(str(out), {"constant_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    title = f"疑点核查清单 {scope.label}" if scope else "疑点清单"
    wb.set_properties({"title": title, "subject": f"fraudwatch run {run_id}", "author": "fraudwatch"})
    if scope:
        wb.set_custom_property(DISPATCH_PROPERTY, scope.dispatch_id)
    base = {"font_size": 10, "valign": "top"}
    bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "vcenter",
                          "font_size": 10})
    money = wb.add_format({**base, "num_format": "#,##0.00"})
    money_bold = wb.add_format({"num_format": "#,##0.00", "bold": True})
    formats = {
        "id": wb.add_format({**base, "num_format": "@"}),
        "text": wb.add_format(base),
        "int": wb.add_format(base),
        "wrap": wb.add_format({**base, "text_wrap": True}),
        "evidence": wb.add_format({**base, "text_wrap": True, "font_size": 8}),
        "money": money,
        "date": wb.add_format({**base, "num_format": "yyyy-mm-dd"}),
    }
    used: set[str] = set()
    # summary sheet
    ws = wb.add_worksheet(sheet_name("汇总", used))
    ws.set_column(0, 0, 18), ws.set_column(1, 1, 30), ws.set_column(2, 5, 14)
    info = [("批次号", run_id), ("数据截止日期", src.as_of or ""), ("导出时间", datetime.now().strftime("%Y-%m-%d %H:%M"))]
    if scope:
        info += [("下发地区", scope.label), ("答复期限", scope.due_date.isoformat()), ("发送编号", scope.dispatch_id),
                 ("范围", f"本表只含 {scope.label} 的疑点；导入时只接受本地区疑点的处置结果")]
    info.append(("脱敏", "是（身份证号仅显示前6位和后4位，姓名仅显示姓氏）" if mask else "否"))
    if src.held_back:
        info.append(("暂缓列出", src.held_back))
    ws.write_string(0, 0, title + "汇总", wb.add_format({"bold": True, "font_size": 14}))
    for i, (k, v) in enumerate(info, start=1):
        ws.write_string(i, 0, k, bold), ws.write_string(i, 1, str(v))
    top = len(info) + 2
    for j, h in enumerate(_SUMMARY_HEADERS):
        ws.write_string(top, j, h, bold)
    for i, row in enumerate(summary.iter_rows(), start=top + 1):
        code, label, region, hits, new_hits, amount = row
        strong = region in ("小计", "合计")
        ws.write_string(i, 0, "全部" if code is None else label), ws.write_string(i, 1, code or "")
        ws.write_string(i, 2, region), ws.write_number(i, 3, hits), ws.write_number(i, 4, new_hits)
        ws.write_number(i, 5, float(amount), money_bold if strong else money)
    ws.set_landscape(), ws.set_paper(9), ws.fit_to_pages(1, 0)
    # category sheets, streamed
    per_category: dict[str, int] = {}
    ws, row, current, written = None, 0, None, 0
    outcome_col = next(i for i, c in enumerate(cols) if c.header == OUTCOME_HEADERS["outcome"])
    label_col = next(i for i, c in enumerate(cols) if c.header == "类别")
    frozen = 2  # ID and name

    def new_sheet(label: str):
        sheet = wb.add_worksheet(sheet_name(label, used))
        for j, c in enumerate(cols):
            sheet.set_column(j, j, c.width, formats[c.kind], {"hidden": True} if c.hidden else None)
            sheet.write_string(0, j, c.header, bold)
        sheet.set_row(0, 28)
        sheet.freeze_panes(1, frozen)
        sheet.data_validation(1, outcome_col, XLSX_MAX_ROWS, outcome_col, {
            "validate": "list", "source": list(OUTCOME_LABELS.values()), "error_type": "warning",
            "input_title": "处置结果", "input_message": "确认违规 / 经办差错 / 无问题 / 核查中"})
        # paper: A4 landscape, one page wide, header row on every page, region and deadline on top
        sheet.set_landscape(), sheet.set_paper(9), sheet.fit_to_pages(1, 0), sheet.repeat_rows(0)
        sheet.set_margins(left=0.4, right=0.4, top=0.7, bottom=0.6)
        where = f"{scope.label}　答复期限 {scope.due_date.isoformat()}" if scope else f"批次 {run_id}"
        sheet.set_header(f"&L{_header_text(title)}&C{_header_text(label)}&R{_header_text(where)}", {"margin": 0.3})
        sheet.set_footer("&C第 &P 页，共 &N 页", {"margin": 0.3})
        sheet.hide_gridlines(0)
        return sheet

    def finish(sheet, rows: int) -> None:
        if sheet is not None:
            sheet.autofilter(0, 0, max(rows, 1), len(cols) - 1)

    reader = src.engine.batches(sql, batch_rows=50_000)
    for batch in reader:
        category = batch.column(0).to_pylist()
        values = [batch.column(i + 1).to_pylist() for i in range(len(cols))]
        for r in range(batch.num_rows):
            if category[r] != current or row > max_rows - 1:
                finish(ws, row)
                if category[r] != current:
                    current = category[r]
                    per_category[current] = 0
                ws, row = new_sheet(values[label_col][r] or "(空)"), 0
            row += 1
            per_category[current] += 1
            texts = {j: (readable_evidence(values[j][r]) if c.kind == "evidence" else str(values[j][r]))[:XLSX_MAX_CELL]
                     for j, c in enumerate(cols) if values[j][r] is not None and c.kind in ("wrap", "evidence", "text", "id")}
            height = row_height([(cols[j].kind, cols[j].width, t) for j, t in texts.items()
                                 if cols[j].kind in _LINE_POINTS and not cols[j].hidden])
            if height:
                ws.set_row(row, height)
            for j, c in enumerate(cols):
                v = values[j][r]
                if v is None:
                    continue
                fmt = formats[c.kind]
                if c.kind == "money" or c.kind == "int":
                    ws.write_number(row, j, v, fmt)
                elif c.kind == "date":
                    ws.write_datetime(row, j, datetime(v.year, v.month, v.day), fmt)
                else:
                    ws.write_string(row, j, texts[j], fmt)
        written += batch.num_rows
        if progress:
            progress(written, total)
    finish(ws, row)
    _write_instructions(wb.add_worksheet(sheet_name("填写说明", used)), bold, scope)
    wb.close()
    return per_category


def _write_instructions(ws, bold, scope: Scope | None) -> None:
    lines = [
        ("列", "填写方法"),
        (OUTCOME_HEADERS["outcome"], "必填才会导入：确认违规 / 经办差错 / 无问题 / 核查中（也可填 confirmed_fraud / admin_error / no_issue / under_review）；留空的行不导入"),
        (OUTCOME_HEADERS["recovered_amount"], "已追回金额，单位元，最多两位小数；无问题的疑点不得填写"),
        (OUTCOME_HEADERS["note"], "处置情况说明"),
        (OUTCOME_HEADERS["reviewer"], "复核人姓名，填写处置结果时必填"),
        (OUTCOME_HEADERS["review_date"], "复核日期，如 2025-03-31；留空按导入当天"),
        (KEY_HEADER, "疑点的唯一编号（最后一列，已隐藏），请勿修改；导入时据此找到疑点"),
        ("导入", "fraudwatch outcomes import 本文件.xlsx  —— 任何一行有误则整份文件不导入，并列出所有错误行"),
        ("无问题", "结论为“无问题”的疑点，在事实未变化（涉及金额未增加、没有更晚的违规所属期）时，以后的批次不再列出"),
    ]
    if scope:
        lines += [("答复期限", f"请于 {scope.due_date.isoformat()} 前填写并交回；逾期未答复的疑点会在核查进度中列为逾期"),
                  ("范围", f"本表下发给 {scope.label}，只能记录本地区疑点的处置结果；其他地区的疑点会被拒绝")]
    ws.set_column(0, 0, 16), ws.set_column(1, 1, 110)
    for i, (a, b) in enumerate(lines):
        ws.write_string(i, 0, a, bold if i == 0 else None), ws.write_string(i, 1, b, bold if i == 0 else None)
