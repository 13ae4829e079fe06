"""Citizen IDs (GB 11643) and unified social credit codes (GB 32100-2015)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from faker import Faker

from pipelines.normalize import firm_id, firm_id_parts, firm_id_valid, person_id, person_id_parts, person_id_valid


def parts(values: list[str | None], fn=person_id_parts) -> list[dict]:
    frame = pl.DataFrame({"raw": values}, schema={"raw": pl.String})
    return frame.select(fn(pl.col("raw")).alias("p")).unnest("p").to_dicts()


def test_hand_checked_valid_id():
    # digits 1 1 0 1 0 5 1 9 4 9 1 2 3 1 0 0 2 x weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
    # = 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 % 11 = 2; "10X98765432"[2] = 'X'
    assert parts(["11010519491231002X"]) == [{
        "value": "11010519491231002X", "valid": True, "birth_date": dt.date(1949, 12, 31), "gender": "女",
    }]


def test_odd_17th_digit_is_male():
    # 44052418800101001 -> sum % 11 = 8 -> check '4'; 17th digit 1 is odd
    [row] = parts(["440524188001010014"])
    assert row["valid"] and row["gender"] == "男" and row["birth_date"] == dt.date(1880, 1, 1)


def test_lower_case_x_full_width_and_spaces_are_canonicalised():
    rows = parts(["11010519491231002x", "１１０１０５１９４９１２３１００２Ｘ", "  11010519491231002X\u3000"])
    assert [r["value"] for r in rows] == ["11010519491231002X"] * 3
    assert all(r["valid"] for r in rows)


def test_legacy_15_digit_id_is_upgraded():
    # insert '19' after the region 110105, then the check character is recomputed: 'X'
    [row] = parts(["110105491231002"])
    assert row == {"value": "11010519491231002X", "valid": True, "birth_date": dt.date(1949, 12, 31), "gender": "女"}


def test_legacy_15_digit_id_with_impossible_birth_date_is_kept_as_given():
    [row] = parts(["110105491331002"])
    assert row == {"value": "110105491331002", "valid": False, "birth_date": None, "gender": None}


def test_wrong_check_character_is_kept_and_marked_invalid():
    # near miss of 11010519491231002X: one character off
    [row] = parts(["110105194912310021"])
    assert row == {"value": "110105194912310021", "valid": False, "birth_date": None, "gender": None}


def test_impossible_birth_date_is_invalid_even_with_right_check_character():
    # 11010519491331002 has check char '5' by the weights, but month 13 does not exist
    body = "11010519491331002"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]
    [row] = parts([body + check])
    assert row["value"] == body + check and row["valid"] is False and row["birth_date"] is None


@pytest.mark.parametrize("given", ["ABC", "1101051949123100", "11010519491231002XX", "1101051949123100Y2", "11010519491231-002X"])
def test_malformed_ids_are_kept_upper_cased_and_invalid(given):
    [row] = parts([given])
    assert row["value"] == given.upper() and row["valid"] is False


def test_blank_id_gives_nulls_not_invalid():
    rows = parts([None, "", "   "])
    assert rows == [{"value": None, "valid": None, "birth_date": None, "gender": None}] * 3


def test_region_is_not_checked():
    # region 000000 does not exist, but that is only a soft signal for rules
    body = "00000019491231002"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]
    assert parts([body + check])[0]["valid"] is True


def test_ten_thousand_faker_ids_are_valid_and_unchanged():
    fake = Faker("zh_CN")
    fake.seed_instance(20241)
    ids = [fake.ssn() for _ in range(10_000)]
    frame = pl.DataFrame({"raw": ids}).select(
        value=person_id(pl.col("raw")), valid=person_id_valid(pl.col("raw")), raw=pl.col("raw"))
    assert frame["valid"].all()
    assert frame["value"].to_list() == ids


def test_eighteen_digit_ids_keep_every_digit():
    ids = ["999999999999999999", "110105194912310021"]
    out = pl.DataFrame({"raw": ids}).select(person_id(pl.col("raw")))["raw"].to_list()
    assert out == ids


# ----------------------------------------------------------------------------- USCC


def test_hand_checked_uscc():
    # 9 1 3 5 0 1 0 0 M(21) 0 0 0 1 0 0 Y(30) 4 x weights 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
    # = 9+3+27+135+0+26+0+0+420+0+0+0+8+0+0+900+112 = 1640; 1640 % 31 = 28; 31-28 = 3 -> '3'
    assert parts(["91350100M000100Y43"], firm_id_parts) == [{"value": "91350100M000100Y43", "valid": True}]


def test_published_uscc_with_letter_check_character():
    # 91440300708461136T (a Shenzhen company's published code): check value 27 -> 'T'
    assert parts(["91440300708461136T"], firm_id_parts)[0]["valid"] is True


def test_uscc_lower_case_and_full_width_are_upper_cased():
    rows = parts(["91350100m000100y43", "９１３５０１００Ｍ０００１００Ｙ４３"], firm_id_parts)
    assert rows == [{"value": "91350100M000100Y43", "valid": True}] * 2


@pytest.mark.parametrize("given", [
    "91350100M000100Y44",  # wrong check character
    "91350100I000100Y43",  # I is not in the charset
    "9135010OM000100Y43",  # O is not in the charset
    "91350100M000100Y4",  # 17 characters
])
def test_bad_uscc_is_kept_and_marked_invalid(given):
    frame = pl.DataFrame({"raw": [given]}).select(v=firm_id(pl.col("raw")), ok=firm_id_valid(pl.col("raw")))
    assert frame.row(0) == (given, False)


def test_blank_uscc_gives_nulls():
    assert parts([None, " "], firm_id_parts) == [{"value": None, "valid": None}] * 2


def test_birth_year_before_1800_is_not_a_real_birth_date():
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    rows = []
    for body in ("11010517991231002", "11010518000101002"):
        rows.append(body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11])
    assert [r["valid"] for r in parts(rows)] == [False, True]


def test_check_weights_are_powers_of_two_mod_11():
    # the base-13 shortcut in person_id_from_clean relies on this (13 = 2 mod 11)
    from pipelines.normalize.ids import PERSON_ID_WEIGHTS

    assert PERSON_ID_WEIGHTS == tuple(2 ** (17 - i) % 11 for i in range(17))


def test_check_character_matches_the_weighted_sum_on_random_bodies():
    import random

    rng = random.Random(7)
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    bodies = ["".join(rng.choice("0123456789") for _ in range(6)) + "19900101" + f"{rng.randrange(1000):03d}"
              for _ in range(2000)]
    right = [b + "10X98765432"[sum(int(c) * w for c, w in zip(b, weights)) % 11] for b in bodies]
    wrong = [r[:17] + ("0" if r[17] != "0" else "1") for r in right]
    valid = pl.DataFrame({"raw": right + wrong}).select(person_id_valid(pl.col("raw")))["raw"].to_list()
    assert valid == [True] * len(right) + [False] * len(wrong)


# ----------------------------------------------------------------------------- IDs as users' files carry them

SPREADSHEET_FORMS = [
    "'11010519491231002X",            # Excel's text marker
    '="11010519491231002X"',          # a formula returning the text
    "\t11010519491231002X",           # a leading tab
    "110105 19491231 002X",           # digits grouped by spaces
    "110105\u00a019491231\u3000002x",  # no-break and ideographic spaces
    "1101051949\u200b1231002X",       # a zero-width space
    "\ufeff11010519491231002X\u200d",  # BOM and zero-width joiner
    "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
    "\u2019110105491231002",          # typographic apostrophe before a 15-digit ID
]


@pytest.mark.parametrize("given", SPREADSHEET_FORMS)
def test_spreadsheet_text_forms_are_recovered(given):
    [row] = parts([given])
    assert row == {"value": "11010519491231002X", "valid": True, "birth_date": dt.date(1949, 12, 31), "gender": "女"}


def test_recovered_invalid_id_is_still_kept_and_marked_invalid():
    # near miss: the wrapper comes off, the wrong check character stays
    [row] = parts(['="110105194912310021"'])
    assert row["value"] == "110105194912310021" and row["valid"] is False


@pytest.mark.parametrize("given", ["'", '=""', "\u200b", "\t"])
def test_only_spreadsheet_marks_is_blank(given):
    assert parts([given]) == [{"value": None, "valid": None, "birth_date": None, "gender": None}]


@pytest.mark.parametrize("given, damaged", [
    ("4.20113E+17", True), ("4.20113e+17", True), ("4.2011319490101E17", True), ("420113194901010000.0", True),
    ("420113194901010000.", True), ("４．２０１１３Ｅ＋１７", True), ("42E+17", True), ("42e17", True),
    # near misses: IDs, not numbers
    ("420113194901010012", False), ("42011319490101001X", False), ("'420113194901010012", False),
    ("420113-19490101-0012", False), ("E420113", False), (None, None), ("", None),
])
def test_ids_that_went_through_a_number_are_recognised(given, damaged):
    from pipelines.normalize.ids import damaged_by_number

    frame = pl.DataFrame({"raw": [given]}, schema={"raw": pl.String})
    assert frame.select(damaged_by_number(pl.col("raw"))).item() is damaged


def test_uscc_spreadsheet_forms_are_recovered():
    rows = parts(["'91350100M000100Y43", '="91350100M000100Y43"', "9135 0100 M000 100Y 43"], fn=firm_id_parts)
    assert [r["value"] for r in rows] == ["91350100M000100Y43"] * 3 and all(r["valid"] for r in rows)
