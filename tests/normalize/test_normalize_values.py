"""Dates, periods, money, scheme, region codes, names, booleans, enums and text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from pipelines.normalize import (
    MONEY_DTYPE, clean, is_present, name, parse_boolean, parse_date, parse_enum, parse_money, parse_period,
    parse_region_code, parse_scheme, raw_text, text,
)


def run(fn, inputs, **kwargs) -> list:
    frame = pl.DataFrame({"raw": inputs}, schema={"raw": pl.String})
    return frame.select(fn(pl.col("raw"), **kwargs).alias("v"))["v"].to_list()


# ----------------------------------------------------------------------------- text and names


def test_clean_nfkc_strip_and_blank_to_null():
    assert run(clean, ["  ＡＢＣ１２３ ", "\u3000", "", None, "a b"]) == ["ABC123", None, None, None, "a b"]


def test_is_present_tells_blank_from_value():
    assert run(is_present, ["x", " ", "", None, "0"]) == [True, False, False, False, True]


def test_text_keeps_inner_spaces():
    assert run(text, [" 户 号 "]) == ["户 号"]


def test_name_removes_all_whitespace_and_keeps_middle_dot():
    assert run(name, ["张 三", "阿卜杜·热 合曼", "ＡＢＣ\u3000ｄ", "\t李\n四 ", "  "]) == [
        "张三", "阿卜杜·热合曼", "ABCd", "李四", None]


def test_raw_text_is_as_given():
    assert run(raw_text, [" 张 三 ", "", None]) == [" 张 三 ", None, None]


# ----------------------------------------------------------------------------- dates


@pytest.mark.parametrize("given", [
    "2024-03-05", "2024/3/5", "2024/03/05", "20240305", "2024年3月5日", "2024.3.5", "2024-3-5",
    "2024-03-05 00:00:00", "2024-03-05 13:45:10.000000", " ２０２４－０３－０５ ",
])
def test_date_formats(given):
    assert run(parse_date, [given]) == [dt.date(2024, 3, 5)]


@pytest.mark.parametrize("given", ["2024-13-45", "2024-02-30", "24-03-05", "2024-03", "05/03/2024", "yesterday", "45356"])
def test_unparseable_dates_are_null(given):
    assert run(parse_date, [given]) == [None]


def test_leap_day():
    assert run(parse_date, ["2024-02-29", "2023-02-29"]) == [dt.date(2024, 2, 29), None]


def test_excel_serial_dates_only_when_allowed():
    # 45356 = 2024-03-05; Excel's fictitious 1900-02-29 is serial 60
    values = ["45356", "1", "59", "60", "61", "0", "45356.75"]
    assert run(parse_date, values, excel_serial=True) == [
        dt.date(2024, 3, 5), dt.date(1900, 1, 1), dt.date(1900, 2, 28), None, dt.date(1900, 3, 1), None,
        dt.date(2024, 3, 5)]
    assert run(parse_date, ["45356"]) == [None]


def test_blank_date_is_null():
    assert run(parse_date, [None, "", " "]) == [None, None, None]


# ----------------------------------------------------------------------------- periods


@pytest.mark.parametrize("given", [
    "202403", "2024-03", "2024/03", "2024/3", "2024年3月", "2024年03月", "2024-3", "2024-03-17", "20240317",
    "２０２４０３",
])
def test_period_formats_give_first_of_month(given):
    assert run(parse_period, [given]) == [dt.date(2024, 3, 1)]


@pytest.mark.parametrize("given", ["202413", "2024-00", "2024", "24-03", "2024-03-32", "march"])
def test_unparseable_periods_are_null(given):
    assert run(parse_period, [given]) == [None]


def test_period_from_excel_serial_only_when_allowed():
    assert run(parse_period, ["45356"], excel_serial=True) == [dt.date(2024, 3, 1)]
    assert run(parse_period, ["45356"]) == [None]


# ----------------------------------------------------------------------------- money


@pytest.mark.parametrize("given, expected", [
    ("1234.5", "1234.50"),
    ("1,234.50", "1234.50"),
    ("¥1234.50", "1234.50"),
    ("￥1234.50", "1234.50"),
    ("１２３４.５０", "1234.50"),
    (" 12 元", "12.00"),
    ("1,234,567.8元", "1234567.80"),
    ("-5", "-5.00"),
    ("-¥5", "-5.00"),
    ("¥-5", "-5.00"),
    ("+7", "7.00"),
    (".5", "0.50"),
    ("5.", "5.00"),
    ("1.500", "1.50"),
    ("0.07", "0.07"),
    ("9999999999999999.99", "9999999999999999.99"),
])
def test_money_is_exact(given, expected):
    [value] = run(parse_money, [given])
    assert value == Decimal(expected)


@pytest.mark.parametrize("given", [
    "1.234",  # three significant decimals: never rounded silently
    "1,23", "12,3456", "--1", "-¥-1", ".", "¥", "1e3", "abc", "1.2.3",
    "12345678901234567",  # 17 integer digits do not fit DECIMAL(18,2)
])
def test_unparseable_money_is_null(given):
    assert run(parse_money, [given]) == [None]


def test_money_dtype_is_decimal_18_2():
    frame = pl.DataFrame({"raw": ["1"]}).select(parse_money(pl.col("raw")))
    assert frame.schema["raw"] == MONEY_DTYPE


def test_money_never_goes_through_float():
    # 0.1 + 0.2 in binary floating point is 0.30000000000000004
    assert sum(run(parse_money, ["0.1", "0.2"])) == Decimal("0.30")


# ----------------------------------------------------------------------------- scheme, region, boolean, enum


@pytest.mark.parametrize("given, expected", [
    ("110", "110"), ("120", "120"), ("170", "170"), (" 110 ", "110"), ("１７０", "170"),
    ("企业职工基本养老保险", "110"), ("机关事业单位养老保险", "120"), ("城乡居民基本养老保险", "170"),
    ("职工养老", "110"), ("机关养老", "120"), ("居民养老", "170"), ("居民 养老", "170"),
])
def test_scheme(given, expected):
    assert run(parse_scheme, [given]) == [expected]


@pytest.mark.parametrize("given", ["999", "11", "养老", "1100"])
def test_unknown_scheme_is_null(given):
    assert run(parse_scheme, [given]) == [None]


def test_region_code():
    assert run(parse_region_code, ["110105", " １１０１０５ ", "11010", "1101050", "11O105", None]) == [
        "110105", "110105", None, None, None, None]


def test_boolean_words_any_case():
    values = ["是", "否", "Y", "n", "Yes", "NO", "TRUE", "false", "1", "0", "maybe", "", None]
    assert run(parse_boolean, values) == [
        True, False, True, False, True, False, True, False, True, False, None, None, None]


def test_enum_canonical_and_aliases():
    values = {"公安": ["police"], "民政": ["civil_affairs"], "卫健": ["health"]}
    got = run(parse_enum, ["公安", "police", "POLICE", " Civil_Affairs ", "卫健", "ｈｅａｌｔｈ", "医院", None], values=values)
    assert got == ["公安", "公安", "公安", "民政", "卫健", "卫健", None, None]


# ----------------------------------------------------------------------------- the fast paths


def test_nfkc_stable_characters_are_left_alone_by_nfkc_in_any_string():
    """clean() skips NFKC for text made only of NFKC_STABLE characters: none may decompose, change
    under NFKC, combine, or be the second character of a composing pair (checked against Python's
    Unicode database for every code point)."""
    import re
    import sys
    import unicodedata

    from pipelines.normalize.values import NFKC_STABLE

    # polars' regex syntax \x{4E00} as Python's \U00004e00
    python_class = re.sub(r"\\x\{([0-9A-Fa-f]+)\}", lambda m: "\\U%08x" % int(m.group(1), 16), NFKC_STABLE)
    stable = re.compile(f"[{python_class}]")

    def in_set(cp: int) -> bool:
        return stable.fullmatch(chr(cp)) is not None

    assert in_set(ord("王")) and in_set(ord("·")) and in_set(ord("a")) and not in_set(ord("Ａ"))
    broken = []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        if in_set(cp) and (unicodedata.normalize("NFKC", ch) != ch or unicodedata.combining(ch)):
            broken.append(hex(cp))
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2 and in_set(int(parts[1], 16)):
                broken.append(f"{hex(cp)} composes from {decomposition}")
    assert broken == []


def test_clean_normalises_mixed_chinese_and_full_width_text():
    assert run(clean, ["王小明", "王 小明", "张三（北京）", "王ＡＢ", "e\u0301", "ｱ"]) == [
        "王小明", "王 小明", "张三(北京)", "王AB", "é", "ア"]


@pytest.mark.parametrize("parse, plain, fast, odd, slow", [
    (parse_date, "2024-03-05", dt.date(2024, 3, 5), "2024年3月5日", dt.date(2024, 3, 5)),
    (parse_period, "2024-03", dt.date(2024, 3, 1), "2024年3月", dt.date(2024, 3, 1)),
    (parse_money, "1234.50", Decimal("1234.50"), "¥1,234.50", Decimal("1234.50")),
])
def test_a_lone_odd_value_among_plain_ones_is_parsed_when_streaming(parse, plain, fast, odd, slow):
    """Streaming in batches, a lone odd value among 300 000 plain ones goes through the slow parser
    (only the rows the fast path left do), and the plain ones through the fast path."""
    frame = pl.LazyFrame({"raw": [plain] * 150_000 + [odd, "junk"] + [plain] * 150_000})
    got = frame.select(parse(pl.col("raw")).alias("v")).collect(engine="streaming")["v"]
    assert got[150_000] == slow and got[150_001] is None
    assert got.null_count() == 1 and got[0] == fast and got[-1] == fast
