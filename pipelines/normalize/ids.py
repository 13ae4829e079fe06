"""Vectorised normalisers for identifiers: citizen ID numbers (GB 11643) and unified social
credit codes (USCC, GB 32100-2015).

An ID with a wrong checksum is evidence, not noise: it is kept as given (after NFKC, trim,
upper-case) and only marked invalid.
"""

from __future__ import annotations

import polars as pl

from pipelines.normalize.values import clean, stepwise

PERSON_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
PERSON_ID_CHECK = "10X98765432"
# The earliest birth year accepted as real (the ID system itself dates from 1984).
MIN_BIRTH_YEAR = 1800

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

f = pl.field


def person_id_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`person_id_parts` on text already passed through ``clean``."""
    parts = stepwise(
        {"g": text_.str.to_uppercase()},
        {"is18": f("g").str.contains(r"^\d{17}[\dX]$"), "is15": f("g").str.contains(r"^\d{15}$")},
        {"body": pl.when(f("is18")).then(f("g").str.slice(0, 17)).when(f("is15")).then(
            pl.concat_str([f("g").str.slice(0, 6), pl.lit("19"), f("g").str.slice(6, 9)]))},
        # The weights are 2^(17-i) mod 11, and 13 = 2 (mod 11): reading the 17 digits as a base-13
        # number gives sum(d_i * 2^(16-i)), so the weighted sum mod 11 is 2 * that (mod 11).
        # One parse instead of 17 digit extractions; 13^17 < 2^63, so it fits an Int64.
        {"n": f("body").cast(pl.Int64, strict=False),
         "b13": f("body").str.to_integer(base=13, strict=False),
         "birth": f("body").str.slice(6, 8).str.strptime(pl.Date, "%Y%m%d", strict=False)},
        {"check": pl.lit(PERSON_ID_CHECK).str.slice(((f("b13") % 11) * 2) % 11, 1)},
        {"valid": pl.when(f("g").is_not_null()).then((
            ((f("is18") & (f("g").str.slice(17, 1) == f("check"))) | f("is15"))
            & f("birth").is_not_null()
            & (f("birth").dt.year() >= MIN_BIRTH_YEAR)
        ).fill_null(False))},
        {"out": pl.struct(
            value=pl.when(f("is15") & f("valid")).then(pl.concat_str([f("body"), f("check")])).otherwise(f("g")),
            valid=f("valid"),
            birth_date=pl.when(f("valid")).then(f("birth")),
            gender=pl.when(f("valid")).then(pl.when(f("n") % 2 == 1).then(pl.lit("男")).otherwise(pl.lit("女"))),
        )},
    )
    return parts.struct.field("out")


def person_id_parts(raw: pl.Expr) -> pl.Expr:
    """Canonical citizen ID and what it says, as a struct with fields ``value`` (18-char text;
    an invalid ID as given), ``valid``, ``birth_date``, ``gender`` ('男' odd / '女' even 17th digit).

    18-char IDs are checked with GB 11643 (mod 11-2); legacy 15-digit IDs are upgraded by inserting
    ``19`` after the 6-digit region and appending the computed check character. Valid means right
    check character and a real embedded birth date (year >= 1800). The region is not checked.
    Blank input gives NULL in every field.
    """
    return person_id_from_clean(clean(raw)).name.keep()


def person_id(raw: pl.Expr) -> pl.Expr:
    """Canonical 18-char citizen ID (an invalid one as given after NFKC/trim/upper)."""
    return person_id_parts(raw).struct.field("value").name.keep()


def person_id_valid(raw: pl.Expr) -> pl.Expr:
    """True when the ID's check character and embedded birth date are right; NULL when blank."""
    return person_id_parts(raw).struct.field("valid").name.keep()


def firm_id_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`firm_id_parts` on text already passed through ``clean``."""
    def value_at(i: int) -> pl.Expr:
        # base-36 value, less the letters the charset skips (I, O, S, V, Z) before it
        b36 = f("g").str.slice(i, 1).str.to_integer(base=36, strict=False)
        return b36 - (b36 > 18).cast(pl.Int64) - (b36 > 24).cast(pl.Int64) - (b36 > 28).cast(pl.Int64) \
            - (b36 > 31).cast(pl.Int64)

    parts = stepwise(
        {"g": text_.str.to_uppercase()},
        {"ok": f("g").str.contains(r"^[0-9A-HJ-NPQRTUWXY]{18}$"),
         "total": pl.sum_horizontal([value_at(i) * weight for i, weight in enumerate(USCC_WEIGHTS)]),
         "given_check": value_at(17)},
        {"out": pl.struct(
            value=f("g"),
            valid=pl.when(f("g").is_not_null()).then(
                (f("ok") & (f("given_check") == (31 - f("total") % 31) % 31)).fill_null(False)),
        )},
    )
    return parts.struct.field("out")


def firm_id_parts(raw: pl.Expr) -> pl.Expr:
    """USCC upper-cased and checked with GB 32100-2015, as a struct with fields ``value``, ``valid``.

    Check = 31 - (sum of char values x weights mod 31), 31 → 0, written as ``USCC_CHARSET[check]``.
    Blank input gives NULL in both fields.
    """
    return firm_id_from_clean(clean(raw)).name.keep()


def firm_id(raw: pl.Expr) -> pl.Expr:
    """USCC, NFKC/trimmed/upper-cased (kept even when invalid)."""
    return firm_id_parts(raw).struct.field("value").name.keep()


def firm_id_valid(raw: pl.Expr) -> pl.Expr:
    """True when the USCC is 18 valid characters with the right check character; NULL when blank."""
    return firm_id_parts(raw).struct.field("valid").name.keep()
