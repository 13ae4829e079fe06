"""holds.xlsx for the paying office: the hold list with Chinese headers (IDs as text, amounts as
numbers formatted ``#,##0.00``), a summary sheet per hold reason, printable (landscape, fit to
width, header row repeated, name and ID frozen)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa

HOLD_REASON_ZH = {
    "paid_after_death": "死亡后仍发放",
    "certified_after_death": "死亡后仍通过资格认证",
    "paid_during_imprisonment": "服刑期间发放",
    "duplicate_cross_region": "跨地区重复领取",
    "duplicate_cross_scheme": "跨险种重复领取",
    "duplicate_identity": "一人多号重复领取",
    "duplicate_payment_same_period": "同期重复发放",
}
ACTION_ZH = {"high": "暂停发放", "medium": "核实后发放", "low": "核实后发放"}
SCHEME_ZH = {"110": "企业职工基本养老保险", "120": "机关事业单位养老保险", "170": "城乡居民基本养老保险"}
# (holds.parquet column, header, kind, width)
COLUMNS = [
    ("name", "姓名", "text", 10),
    ("person_id", "身份证号", "id", 21),
    ("region_code", "统筹区编码", "id", 11),
    ("scheme", "险种", "scheme", 22),
    ("period", "所属期", "id", 9),
    ("amount", "发放金额(元)", "money", 14),
    ("hold_reason", "暂停原因", "reason", 18),
    ("severity", "处理要求", "action", 11),
    ("reason", "说明", "wrap", 70),  # REASON_WIDTH
    ("payment_id", "发放流水号", "id", 20),
    ("hold_reasons", "全部原因", "text", 30),
    ("source_row", "名单行号", "int", 9),
    ("evidence", "证据(JSON)", "text", 12),
    ("screen_id", "核实批次号", "id", 22),
]
HEADERS = {col: header for col, header, _, _ in COLUMNS}
REASON_WIDTH = 70
XLSX_MAX_ROWS = 1_048_575  # data rows per sheet under Excel's 1,048,576-row limit


def write_holds_xlsx(holds: pa.Table, out: Path, screen_id: str, summary: list[dict], info: list[tuple[str, str]]) -> None:
    """Write ``holds`` (holds.parquet's rows, in order) and a summary sheet to ``out``."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(out), {"constant_memory": True, "strings_to_numbers": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    head = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"})
    money = wb.add_format({"num_format": "#,##0.00", "valign": "top"})
    money_bold = wb.add_format({"num_format": "#,##0.00", "bold": True})
    text = wb.add_format({"num_format": "@", "valign": "top"})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    top = wb.add_format({"valign": "top"})

    values = {col: holds.column(col).to_pylist() for col, _, _, _ in COLUMNS}
    sheets = max(1, -(-holds.num_rows // XLSX_MAX_ROWS))  # Excel's row limit: continue on "(2)", "(3)" …
    for part in range(sheets):
        ws = wb.add_worksheet("暂停发放核实名单" + (f" ({part + 1})" if part else ""))
        ws.set_landscape(), ws.set_paper(9), ws.fit_to_pages(1, 0), ws.repeat_rows(0), ws.set_margins(0.4, 0.4, 0.5, 0.5)
        ws.set_header(f"&L暂停发放核实名单 {screen_id}&R第 &P 页，共 &N 页")
        for j, (_, header, kind, width) in enumerate(COLUMNS):
            fmt = text if kind in ("id", "text") else wrap if kind == "wrap" else top
            ws.set_column(j, j, width, fmt, {"hidden": header in ("证据(JSON)", "核实批次号")})
            ws.write_string(0, j, header, head)
        ws.freeze_panes(1, 2)
        rows = range(part * XLSX_MAX_ROWS, min(holds.num_rows, (part + 1) * XLSX_MAX_ROWS))
        for r, i in enumerate(rows, start=1):
            # the 说明 column wraps: give the row the lines it needs (a CJK character is two columns wide)
            ws.set_row(r, 15 * max(1, -(-2 * len(values["reason"][i] or "") // REASON_WIDTH)))
            for j, (col, _, kind, _) in enumerate(COLUMNS):
                v = values[col][i]
                if v is None:
                    continue
                if kind == "money":
                    ws.write_number(r, j, float(v), money)
                elif kind == "int":
                    ws.write_number(r, j, v, top)
                elif kind == "reason":
                    ws.write_string(r, j, HOLD_REASON_ZH.get(v, v), top)
                elif kind == "action":
                    ws.write_string(r, j, ACTION_ZH.get(v, v), top)
                elif kind == "scheme":
                    ws.write_string(r, j, SCHEME_ZH.get(v, v), top)
                elif kind == "wrap":
                    ws.write_string(r, j, str(v), wrap)
                else:
                    ws.write_string(r, j, str(v), text)
        ws.autofilter(0, 0, max(len(rows), 1), len(COLUMNS) - 1)

    ws = wb.add_worksheet("汇总")
    ws.set_landscape(), ws.fit_to_pages(1, 0)
    ws.set_column(0, 0, 24), ws.set_column(1, 1, 30), ws.set_column(2, 3, 16)
    ws.write_string(0, 0, "暂停发放核实名单汇总", wb.add_format({"bold": True, "font_size": 14}))
    row = 1
    for key, value in [*info, ("生成时间", datetime.now().strftime("%Y-%m-%d %H:%M"))]:
        ws.write_string(row, 0, key, head), ws.write_string(row, 1, str(value), text)
        row += 1
    row += 1
    for j, h in enumerate(("暂停原因", "hold_reason", "笔数", "金额(元)")):
        ws.write_string(row, j, h, head)
    for item in summary:
        row += 1
        strong = item["hold_reason"] is None
        ws.write_string(row, 0, "合计" if strong else HOLD_REASON_ZH.get(item["hold_reason"], item["hold_reason"]))
        ws.write_string(row, 1, item["hold_reason"] or "")
        ws.write_number(row, 2, item["rows"])
        ws.write_number(row, 3, float(item["amount"]), money_bold if strong else money)
    wb.close()
