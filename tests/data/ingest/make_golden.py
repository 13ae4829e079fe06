"""Regenerate the tiny golden landing folders used by tests/test_ingest.py and tests/benchmarks/test_legacy_warehouse.py.

Run from the repository root:  .venv/bin/python tests/data/ingest/make_golden.py
The outputs are committed; tests never regenerate them. Every value here is hand-chosen so the
tests can state exact expectations (see the comments next to each row).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import xlsxwriter

HERE = Path(__file__).resolve().parent

# 11010519491231002X: valid (female, 1949-12-31). 110105491231002: its legacy 15-digit form.
# 440524188001010014: valid (male, 1880-01-01). 110105194912310021: wrong check character.
PAYMENT_ROWS = [
    # payment_id, person_id, name, scheme, region, period, amount, pay_date, bank_account
    ["P001", "11010519491231002X", "张 三", "110", "110105", "2024-03", "1,234.50", "2024/3/5", "6222020200112233445"],
    ["P002", "110105491231002", "李四", "职工养老", "110105", "202403", "¥12", "", ""],
    ["P003", "110105194912310021", "王五", "城乡居民基本养老保险", "110105", "2024年3月", "100", "20240305", ""],
]


def write_text(path: Path, text: str, encoding: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


def csv_text(header: list[str], rows: list[list[str]], sep: str = ",") -> str:
    def field(value: str) -> str:
        return f'"{value}"' if sep in value else value

    return "\n".join(sep.join(field(v) for v in r) for r in [header, *rows]) + "\n"


def formats() -> None:
    """One landing folder with the same payments in every supported format and encoding."""
    out = HERE / "formats"
    english = ["payment_id", "person_id", "name", "scheme", "region_code", "period", "amount", "pay_date", "bank_account"]
    # case, surrounding spaces and full-width letters in headers must not matter
    variants = [" Payment_ID ", "PERSON_ID", "Ｎａｍｅ", "scheme", "Region_Code ", "period", "AMOUNT", "pay_date", "bank_account"]
    chinese = ["发放流水号", "公民身份号码", "姓名", "险种", "统筹区编码", "发放年月", "发放金额", "发放日期", "银行账号"]
    write_text(out / "pension_payments_01_utf8.csv", csv_text(variants + ["备注"], [r + ["extra"] for r in PAYMENT_ROWS]), "utf-8")
    write_text(out / "pension_payments_02_bom.csv", csv_text(chinese, PAYMENT_ROWS), "utf-8-sig")
    write_text(out / "pension_payments_03_gbk.csv", csv_text(chinese, PAYMENT_ROWS), "gb18030")
    write_text(out / "pension_payments_04_tab.csv", csv_text(english, PAYMENT_ROWS, sep="\t"), "utf-8")
    write_text(out / "README.md", "not an extract\n", "utf-8")

    # deaths.xlsx: a real date cell, an Excel serial number in a General cell, text dates
    workbook = xlsxwriter.Workbook(str(out / "deaths.xlsx"))
    workbook.set_properties({"created": dt.datetime(2024, 1, 1)})  # byte-identical reruns
    sheet = workbook.add_worksheet("死亡")
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, ["身份证号", "姓名", "死亡日期", "数据来源", "记录编号"])
    sheet.write_string(1, 0, "11010519491231002X")
    sheet.write_string(1, 1, "张三")
    sheet.write_datetime(1, 2, dt.datetime(2024, 1, 15), date_format)  # real date cell
    sheet.write_string(1, 3, "公安")
    sheet.write_number(1, 4, 1001)  # numeric cell in a text column
    sheet.write_string(2, 0, "440524188001010014")
    sheet.write_string(2, 1, "阿卜杜·热合曼")
    sheet.write_number(2, 2, 45356)  # Excel serial for 2024-03-05
    sheet.write_string(2, 3, "health")
    sheet.write_string(3, 0, "110105194912310021")
    sheet.write_string(3, 1, "王五")
    sheet.write_string(3, 2, "2024年2月29日")
    sheet.write_string(3, 3, "民政")
    workbook.close()

    # household/part-0001.parquet: typed Parquet columns (Date, Int64) all read back as text
    frame = pl.DataFrame({
        "person_id": ["11010519491231002X", "440524188001010014"],
        "name": ["张三", "Ａｌｉ"],
        "gender": ["F", "男"],
        "birth_date": [dt.date(1949, 12, 31), dt.date(1880, 1, 1)],
        "household_id": ["H1", "H2"],
        "region_code": [110105, 440524],
        "status": ["注销", "正常"],
        "cancel_date": [dt.date(2024, 1, 10), None],
        "cancel_reason": ["死亡", None],
    })
    (out / "household").mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out / "household" / "part-0001.parquet")


def quarantine() -> None:
    """One row per quarantine reason (row numbers as a spreadsheet shows them)."""
    out = HERE / "quarantine"
    header = ["payment_id", "person_id", "name", "scheme", "region_code", "period", "amount", "pay_date"]
    rows = [
        "P01,11010519491231002X,张三,110,110105,2024-03,10.00,2024-03-05",  # row 2: clean
        "P02,,李四,110,110105,2024-03,10.00,",  # row 3: missing_required person_id
        "P03,11010519491231002X,王五,110,110105,2024-13,10.00,",  # row 4: unparseable_period
        "P04,11010519491231002X,赵六,110,110105,2024-03,1.234,",  # row 5: unparseable_money
        "P05,11010519491231002X,钱七,999,110105,2024-03,10.00,",  # row 6: unknown_scheme
        "P06,11010519491231002X,孙八,110,11010,2024-03,10.00,",  # row 7: bad_region_code
        "P07,11010519491231002X,周九,110,110105,2024-03,10.00,2024-02-30",  # row 8: unparseable_date
        "P08,11010519491231002X,吴十,110,110105,2024-03,10.00,,surplus",  # row 9: malformed_row
        "",  # row 10: blank line, skipped
        'P09,110105194912310021,"郑 十一",170,110105,202403,-5,',  # row 11: clean, invalid ID kept
        "P10,11010519491231002X,冯十二,110",  # row 12: too few fields -> missing_required
    ]
    # rows 13-20: clean, so the file stays under max_broken_rate (8 broken of 18)
    rows += [f"P{i},11010519491231002X,陈{i},110,110105,2024-03,1.00," for i in range(11, 19)]
    write_text(out / "pension_payments.csv", "\n".join([",".join(header), *rows]) + "\n", "utf-8")
    refunds = [
        "refund_id,firm_id,firm_name,is_labor_dispatch,region_code,amount,dispatched_amount,paid_date",
        "R1,91350100M000100Y43,甲 公司,是,350100,1000.00,600.00,2024-01-10",  # clean, valid USCC
        "R2,91350100M000100Y44,乙公司,否,350100,500,,2024-01-10",  # clean, bad USCC kept invalid
        "R3,91350100M000100Y43,丙公司,Y,350100,500,,2024-01-10",  # missing dispatched_amount
        "R4,91350100M000100Y43,丁公司,maybe,350100,500,,2024-01-10",  # bad_boolean
    ]
    write_text(out / "stabilization_refunds.csv", "\n".join(refunds) + "\n", "utf-8")
    deaths = [
        "person_id,death_date,source",
        "11010519491231002X,2024-01-15,police",  # clean
        "11010519491231002X,2024-01-15,医院",  # unknown_value
    ]
    write_text(out / "deaths.csv", "\n".join(deaths) + "\n", "utf-8")


def broken() -> None:
    """Files that stop the run."""
    out = HERE / "broken"
    write_text(out / "missing_column" / "pension_payments.csv",
               "payment_id,name,scheme,region_code,period,amount\nP1,张三,110,110105,2024-03,1\n", "utf-8")
    write_text(out / "header_only" / "deaths.csv", "person_id,death_date,source\n", "utf-8")
    # 0xFF is not a lead byte in UTF-8 nor in GB18030
    (out / "undecodable").mkdir(parents=True, exist_ok=True)
    (out / "undecodable" / "deaths.csv").write_bytes("person_id,death_date,source\n".encode() + b"\xff\xfe\xff,2024-01-01,\xff\n")
    rows = ["person_id,death_date,source", "11010519491231002X,2024-01-15,police"]
    rows += [f"11010519491231002X,bad{i},police" for i in range(3)]  # 3 of 4 rows broken
    write_text(out / "mostly_broken" / "deaths.csv", "\n".join(rows) + "\n", "utf-8")


def main() -> None:
    for name in ("formats", "quarantine", "broken"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    formats()
    quarantine()
    broken()


if __name__ == "__main__":
    main()
