"""Vectorised normalisers for identifiers: citizen ID numbers (GB 11643) and unified social
credit codes (USCC, GB 32100-2015).

IDs arrive as users' files carry them (docs/spec/extracts.md, "person ID"): full-width digits,
spaces grouping the digits, zero-width characters, and the spreadsheet tricks that keep an ID from
being read as a number (a leading apostrophe ``'110105…``, a ``="110105…"`` wrapper, a leading
tab). :func:`id_text_from_clean` takes all of that off. An ID that went through a number
(``4.20113E+17``, ``420113194901010000.0``) cannot be recovered: :func:`damaged_by_number` finds
it, and ingest quarantines the row (``id_damaged_by_number``) instead of loading some other ID.

An ID with a wrong checksum is evidence, not noise: it is kept as given (after the above and
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

# Characters that are never part of an ID: whitespace of every kind (inner spaces grouping the
# digits, the leading tab that keeps Excel from reading the cell as a number) and zero-width ones
# (ZWSP/ZWNJ/ZWJ, LRM/RLM, word joiner, BOM, soft hyphen).
_ID_NOISE = r"[\s\x{200B}-\x{200F}\x{2060}\x{FEFF}\x{00AD}]"
# ="110105…" (a formula returning the ID as text) and a leading apostrophe (Excel's text marker;
# also its typographic forms).
_ID_FORMULA = r'^="(.*)"$'
_ID_APOSTROPHE = r"^['\x{2018}\x{2019}`]"
# What a number did to an ID: scientific notation (4.20113E+17) or a decimal point (….0).
_ID_NUMBER = r"^[+-]?\d+(?:\.\d*)?E[+-]?\d+$|^\d+\.\d*$"


def id_text_from_clean(text_: pl.Expr) -> pl.Expr:
    """The ID characters of text already passed through ``clean``: noise characters removed, the
    ``="…"`` wrapper and a leading apostrophe taken off; upper-cased; blank → NULL."""
    # Most IDs are plain letters and digits: only the others go through the regexes (string
    # functions skip NULLs cheaply).
    plain = text_.str.contains(r"^[0-9A-Za-z]*$")
    odd = pl.when(~plain).then(text_)
    steps = stepwise(
        {"t": odd.str.replace_all(_ID_NOISE, "")},
        {"t": f("t").str.replace(_ID_FORMULA, "$1")},
        {"t": f("t").str.replace_all(_ID_NOISE, "").str.replace(_ID_APOSTROPHE, "")},
        {"t": pl.when(f("t").str.len_bytes() > 0).then(f("t"))},
    )
    return pl.when(plain).then(text_).otherwise(steps.struct.field("t")).str.to_uppercase()


def damaged_by_number_from_id_text(id_text: pl.Expr) -> pl.Expr:
    """:func:`damaged_by_number_from_clean` on text already passed through ``id_text_from_clean``."""
    # every form a number leaves has a '.' or an 'E': only those (rare) rows meet the regex
    suspect = id_text.str.contains(".", literal=True) | id_text.str.contains("E", literal=True)
    damaged = pl.when(suspect).then(id_text).str.contains(_ID_NUMBER)
    return pl.when(id_text.is_not_null()).then(damaged.fill_null(False))


def damaged_by_number_from_clean(text_: pl.Expr) -> pl.Expr:
    """True where the ID text shows it went through a number (``4.20113E+17``, ``…000.0``): its
    digits are lost. NULL for blank input."""
    return damaged_by_number_from_id_text(id_text_from_clean(text_))


def damaged_by_number(raw: pl.Expr) -> pl.Expr:
    """:func:`damaged_by_number_from_clean` on raw text."""
    return damaged_by_number_from_clean(clean(raw)).name.keep()


def person_id_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`person_id_parts` on text already passed through ``clean``."""
    return person_id_from_id_text(id_text_from_clean(text_))


def person_id_from_id_text(id_text: pl.Expr) -> pl.Expr:
    """:func:`person_id_parts` on text already passed through ``id_text_from_clean``."""
    parts = stepwise(
        {"g": id_text},
        # (the 15-digit regex only meets the few IDs of that length)
        {"is18": f("g").str.contains(r"^\d{17}[\dX]$"),
         "is15": pl.when(f("g").str.len_bytes() == 15).then(f("g")).str.contains(r"^\d{15}$").fill_null(False)},
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
    """Canonical 18-char citizen ID (an invalid one as given after NFKC, spreadsheet forms, upper)."""
    return person_id_parts(raw).struct.field("value").name.keep()


def person_id_valid(raw: pl.Expr) -> pl.Expr:
    """True when the ID's check character and embedded birth date are right; NULL when blank."""
    return person_id_parts(raw).struct.field("valid").name.keep()


def firm_id_from_clean(text_: pl.Expr) -> pl.Expr:
    """:func:`firm_id_parts` on text already passed through ``clean``."""
    return firm_id_from_id_text(id_text_from_clean(text_))


def firm_id_from_id_text(id_text: pl.Expr) -> pl.Expr:
    """:func:`firm_id_parts` on text already passed through ``id_text_from_clean``."""
    def value_at(i: int) -> pl.Expr:
        # base-36 value, less the letters the charset skips (I, O, S, V, Z) before it
        b36 = f("g").str.slice(i, 1).str.to_integer(base=36, strict=False)
        return b36 - (b36 > 18).cast(pl.Int64) - (b36 > 24).cast(pl.Int64) - (b36 > 28).cast(pl.Int64) \
            - (b36 > 31).cast(pl.Int64)

    parts = stepwise(
        {"g": id_text},
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
