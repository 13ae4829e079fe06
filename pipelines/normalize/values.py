"""Vectorised normalisers for plain values: text, names, dates, periods, money, scheme,
region codes, booleans and enums.

Each public ``parse_*``/``text``/``name`` function takes the raw text column as a ``pl.Expr`` and
returns the canonical value as a ``pl.Expr``. A blank input (null, empty or whitespace only) gives
NULL; a present value that cannot be parsed also gives NULL, and :func:`is_present` tells the two
apart. The ``*_from_clean`` variants take text already passed through :func:`clean`.

Multi-step parsers compute inside one struct with :func:`stepwise`, so every intermediate is
evaluated once per row (a nested expression tree would recompute shared sub-expressions).
"""

from __future__ import annotations

import unicodedata
from datetime import date

import polars as pl

MONEY_DTYPE = pl.Decimal(18, 2)
# Decimal(18,2) leaves 16 digits before the decimal point.
MONEY_INT_DIGITS = 16

SCHEME_NAMES: dict[str, str] = {
    "110": "110",
    "120": "120",
    "170": "170",
    "企业职工基本养老保险": "110",
    "机关事业单位养老保险": "120",
    "城乡居民基本养老保险": "170",
    "职工养老": "110",
    "机关养老": "120",
    "居民养老": "170",
}

BOOLEAN_WORDS: dict[str, bool] = {
    "是": True, "y": True, "yes": True, "true": True, "1": True,
    "否": False, "n": False, "no": False, "false": False, "0": False,
}

# Excel's day 0 is 1900-01-00 and it believes 1900-02-29 existed (serial 60): serials from 61 on
# count from 1899-12-30, serials 1..59 from 1899-12-31.
_EXCEL_EPOCH = date(1899, 12, 30)
_EXCEL_LAST = 2958465  # 9999-12-31

_TIME_SUFFIX = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_DATE_SEPARATED = r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?" + _TIME_SUFFIX + "$"
_DATE_COMPACT = r"^(\d{4})(\d{2})(\d{2})$"
_PERIOD_SEPARATED = r"^(\d{4})[-/.年](\d{1,2})月?$"
_PERIOD_COMPACT = r"^(\d{4})(\d{2})$"
_EXCEL_SERIAL = r"^(\d{1,7})(?:\.\d+)?$"
# sign, optional yuan sign, sign, integer part (plain or with thousands commas), fraction, optional 元
_MONEY = r"^([-+]?)¥?([-+]?)(\d{1,3}(?:,\d{3})+|\d*)(?:\.(\d*))?元?$"

f = pl.field


def stepwise(first: dict[str, pl.Expr], *steps: dict[str, pl.Expr]) -> pl.Expr:
    """A struct built step by step: each later step may refer to earlier fields with ``pl.field``."""
    result = pl.struct(**first)
    for step in steps:
        result = result.struct.with_fields(**step)
    return result


# Characters NFKC leaves as they are in any string: ASCII, the CJK unified ideographs and '·' (none
# has a decomposition, none is the second of a composing pair; tests check this against unicodedata).
# Text made only of them (IDs, codes, amounts, most Chinese names) is not normalised.
NFKC_STABLE = r"\x00-\x7F\x{4E00}-\x{9FFF}\x{B7}"


def clean(raw: pl.Expr) -> pl.Expr:
    """NFKC-normalise (full-width → half-width) and strip; blank → NULL."""
    cleaned = stepwise(
        {"t": raw.cast(pl.String)},
        # Only text with a character outside NFKC_STABLE is normalised (~3x faster on names, ~10x
        # on ASCII columns). Bytes = characters is an ASCII row, checked before the regex (8x faster).
        {"n": pl.when(f("t").str.len_bytes() != f("t").str.len_chars()).then(f("t")).str.contains(f"[^{NFKC_STABLE}]")},
        {"t": pl.coalesce(pl.when(f("n")).then(f("t")).str.normalize("NFKC"), f("t"))},
        {"t": f("t").str.strip_chars()},
        {"t": pl.when(f("t").str.len_bytes() > 0).then(f("t"))},
    )
    return cleaned.struct.field("t").name.keep()


def is_present(raw: pl.Expr) -> pl.Expr:
    """True where the raw value is not blank (null, empty or whitespace only)."""
    return clean(raw).is_not_null()


def text(raw: pl.Expr) -> pl.Expr:
    """Plain text: NFKC, trimmed; blank → NULL."""
    return clean(raw)


def name_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`name` on cleaned text."""
    squeezed = text_.str.replace_all(r"\s+", "")
    return stepwise({"s": squeezed}, {"s": pl.when(f("s").str.len_bytes() > 0).then(f("s"))}).struct.field("s")


def name(raw: pl.Expr) -> pl.Expr:
    """Person or firm name: NFKC with every whitespace character removed (``·`` is kept)."""
    return name_from_clean(clean(raw)).name.keep()


def raw_text(raw: pl.Expr) -> pl.Expr:
    """The value exactly as given, for evidence; blank → NULL."""
    return pl.when(is_present(raw)).then(raw.cast(pl.String))


def _ymd(year: pl.Expr, month: pl.Expr, day: pl.Expr) -> pl.Expr:
    """Zero-pad the parts into ISO text and parse it; impossible dates (2024-02-30) → NULL."""
    iso = pl.concat_str([year, month.str.zfill(2), day.str.zfill(2)], separator="-")
    return iso.str.strptime(pl.Date, "%Y-%m-%d", strict=False)


def _excel_serial_from_clean(text_: pl.Expr) -> pl.Expr:
    days = text_.str.extract(_EXCEL_SERIAL, 1).cast(pl.Int64, strict=False)
    return stepwise(
        {"d": days},
        {"v": pl.when((f("d") >= 1) & (f("d") <= _EXCEL_LAST) & (f("d") != 60)).then(
            pl.lit(_EXCEL_EPOCH) + pl.duration(days=pl.when(f("d") < 60).then(f("d") + 1).otherwise(f("d"))))},
    ).struct.field("v").cast(pl.Date)


def _only_where_null(value: pl.Expr, text_: pl.Expr) -> pl.Expr:
    """``text_`` on the rows where ``value`` is NULL, else NULL: lets a slow parser run only on the
    rows a fast path could not handle (string functions skip NULLs cheaply). A Python UDF skipping
    the slow parser on batches without such rows was tried: faster on one 1 M-row file alone, but
    two 10 M-run payments files took 27 s instead of 20 s through ingest_extract (a Python call per
    batch of the streaming engine, while another thread hashes the next file)."""
    return pl.when(value.is_null()).then(text_)


def _date_slow(text_: pl.Expr, excel_serial: bool) -> pl.Expr:
    steps = stepwise(
        {"t": text_},
        {"a": f("t").str.extract_groups(_DATE_SEPARATED), "b": f("t").str.extract_groups(_DATE_COMPACT)},
        {"v": pl.coalesce(
            _ymd(f("a").struct.field("1"), f("a").struct.field("2"), f("a").struct.field("3")),
            _ymd(f("b").struct.field("1"), f("b").struct.field("2"), f("b").struct.field("3")),
            *([_excel_serial_from_clean(f("t"))] if excel_serial else []),
        )},
    )
    return steps.struct.field("v")


def date_from_clean(text_: pl.Expr, excel_serial: bool = False) -> pl.Expr:
    """:func:`parse_date` on cleaned text."""
    steps = stepwise(
        {"t": text_},
        # fast path for the common ISO form; other forms go through the regex parser
        {"v": pl.when(f("t").str.contains(r"^\d{4}-\d{2}-\d{2}$")).then(
            f("t").str.strptime(pl.Date, "%Y-%m-%d", strict=False))},
        {"v": pl.coalesce(f("v"), _date_slow(_only_where_null(f("v"), f("t")), excel_serial))},
    )
    return steps.struct.field("v")


def parse_date(raw: pl.Expr, excel_serial: bool = False) -> pl.Expr:
    """Date from ``2024-03-05``, ``2024/3/5``, ``20240305``, ``2024年3月5日`` (a trailing time of day
    is ignored); with ``excel_serial`` (XLSX sources only) also Excel serial day numbers."""
    return date_from_clean(clean(raw), excel_serial).name.keep()


def _period_slow(text_: pl.Expr, excel_serial: bool) -> pl.Expr:
    one = pl.lit("1")
    steps = stepwise(
        {"t": text_},
        {"a": f("t").str.extract_groups(_PERIOD_SEPARATED)},
        {"v": _ymd(f("a").struct.field("1"), f("a").struct.field("2"), one)},
        {"v": pl.coalesce(f("v"), date_from_clean(_only_where_null(f("v"), f("t")), excel_serial).dt.month_start())},
    )
    return steps.struct.field("v")


def period_from_clean(text_: pl.Expr, excel_serial: bool = False) -> pl.Expr:
    """:func:`parse_period` on cleaned text."""
    steps = stepwise(
        {"t": text_},
        # fast paths for 202403 and 2024-03; other forms go through the regex parser
        {"v": pl.when(f("t").str.contains(r"^\d{4}-\d{2}$")).then(
            (f("t") + "-01").str.strptime(pl.Date, "%Y-%m-%d", strict=False))
            .when(f("t").str.contains(_PERIOD_COMPACT)).then(
            (f("t") + "01").str.strptime(pl.Date, "%Y%m%d", strict=False))},
        {"v": pl.coalesce(f("v"), _period_slow(_only_where_null(f("v"), f("t")), excel_serial))},
    )
    return steps.struct.field("v")


def parse_period(raw: pl.Expr, excel_serial: bool = False) -> pl.Expr:
    """Benefit month as DATE (first day of the month) from ``202403``, ``2024-03``, ``2024/03``,
    ``2024年3月``; a full date gives its month."""
    return period_from_clean(clean(raw), excel_serial).name.keep()


def _money_slow(text_: pl.Expr) -> pl.Expr:
    steps = stepwise(
        {"t": text_.str.replace_all(r"\s+", "")},
        {"ok": f("t").str.contains(_MONEY), "p": f("t").str.extract_groups(_MONEY)},
        {
            "s1": f("p").struct.field("1"),
            "s2": f("p").struct.field("2"),
            "whole": f("p").struct.field("3").str.replace_all(",", "", literal=True),
            "raw_frac": f("p").struct.field("4").fill_null(""),
        },
        {"frac": f("raw_frac").str.replace(r"0+$", "")},
        {"ok": f("ok")
            # a lone "." or "¥" is not a number
            & ((f("whole").str.len_bytes() > 0) | (f("raw_frac").str.len_bytes() > 0))
            & ~((f("s1") != "") & (f("s2") != ""))
            & (f("frac").str.len_bytes() <= 2)
            & (f("whole").str.replace(r"^0+", "").str.len_bytes() <= MONEY_INT_DIGITS)},
        {"v": pl.when(f("ok")).then(pl.concat_str([
            pl.when((f("s1") == "-") | (f("s2") == "-")).then(pl.lit("-")).otherwise(pl.lit("")),
            pl.when(f("whole").str.len_bytes() > 0).then(f("whole")).otherwise(pl.lit("0")),
            pl.lit("."),
            f("frac").str.pad_end(2, "0"),
        ])).cast(MONEY_DTYPE, strict=False)},
    )
    return steps.struct.field("v")


def money_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`parse_money` on cleaned text."""
    steps = stepwise(
        {"t": text_},
        # fast path: plain numbers with at most two decimals convert exactly
        {"v": pl.when(f("t").str.contains(r"^-?\d{1,16}(?:\.\d{1,2})?$")).then(f("t").cast(MONEY_DTYPE, strict=False))},
        {"v": pl.coalesce(f("v"), _money_slow(_only_where_null(f("v"), f("t"))))},
    )
    return steps.struct.field("v")


def parse_money(raw: pl.Expr) -> pl.Expr:
    """Amount in 元 as Decimal(18,2), parsed from text and never through a float.

    Accepts ``1234.5``, ``1,234.50``, ``¥1234.50``, ``￥``, full-width digits, a trailing ``元`` and a
    sign. More than two significant decimals (``1.234``) is not rounded: it gives NULL so the row is
    quarantined; trailing zeros (``1.500``) are fine.
    """
    return money_from_clean(clean(raw)).name.keep()


def lookup(expr: pl.Expr, mapping: dict, dtype: pl.DataType) -> pl.Expr:
    """``mapping[value]`` or NULL, as a when/is_in chain (``replace_strict`` would hold the whole
    column in memory and break streaming)."""
    by_target: dict = {}
    for key, target in mapping.items():
        by_target.setdefault(target, []).append(key)
    if not by_target:
        return pl.lit(None, dtype=dtype)
    chain = None
    for target, keys in by_target.items():
        condition = expr.is_in(pl.Series(keys, dtype=pl.String).implode())
        value = pl.lit(target, dtype=dtype)
        chain = pl.when(condition).then(value) if chain is None else chain.when(condition).then(value)
    return chain


def scheme_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`parse_scheme` on cleaned text."""
    codes = [key for key, code in SCHEME_NAMES.items() if key == code]
    # fast path: a code as is; names go through the whitespace-squeezing lookup
    return pl.when(text_.is_in(pl.Series(codes, dtype=pl.String).implode())).then(text_).otherwise(
        lookup(text_.str.replace_all(r"\s+", ""), SCHEME_NAMES, pl.String()))


def parse_scheme(raw: pl.Expr) -> pl.Expr:
    """Pension scheme code '110' / '120' / '170' from the code or its full or short Chinese name."""
    return scheme_from_clean(clean(raw)).name.keep()


def region_code_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`parse_region_code` on cleaned text."""
    return stepwise({"t": text_}, {"t": pl.when(f("t").str.contains(r"^\d{6}$")).then(f("t"))}).struct.field("t")


def parse_region_code(raw: pl.Expr) -> pl.Expr:
    """Six-digit administrative division code as text; anything else → NULL."""
    return region_code_from_clean(clean(raw)).name.keep()


def boolean_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`parse_boolean` on cleaned text."""
    return lookup(text_.str.to_lowercase(), BOOLEAN_WORDS, pl.Boolean())


def parse_boolean(raw: pl.Expr) -> pl.Expr:
    """BOOLEAN from 是/否, Y/N, yes/no, true/false, 1/0 (any case)."""
    return boolean_from_clean(clean(raw)).name.keep()


def enum_key(label: str) -> str:
    """How enum values and aliases are matched: NFKC, trimmed, case-insensitive."""
    return unicodedata.normalize("NFKC", label).strip().lower()


def enum_from_clean(text_: pl.Expr, values: dict[str, list[str]]) -> pl.Expr:
    """:func:`parse_enum` on cleaned text."""
    mapping = {enum_key(label): canonical for canonical, aliases in values.items() for label in [canonical, *aliases]}
    return lookup(text_.str.to_lowercase(), mapping, pl.String())


def parse_enum(raw: pl.Expr, values: dict[str, list[str]]) -> pl.Expr:
    """The canonical enum value for a canonical value or one of its aliases (NFKC, any case);
    anything else → NULL."""
    return enum_from_clean(clean(raw), values).name.keep()
