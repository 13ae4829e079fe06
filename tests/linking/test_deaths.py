"""Weak death matches: which death records are eligible, when a match is unique, what it records."""

from __future__ import annotations

from linkhelpers import NS1, NS2, ZHANG, ZHANG_BAD_CHECK, ZHANG_BIRTH_TYPO, ZHANG_SUB_REGION, death, house, pay, rows, valid


def matches(con) -> list[dict]:
    return rows(con, "SELECT death_person_id, status, matched_person_id, candidate_count, candidate_ids, name_level, "
                     "id_level, death_id_problem, link_score, match_basis FROM death_matches ORDER BY ALL")


def test_wrong_check_character_matches_the_payee(link):
    con, result = link({"pension_payments": [pay(ZHANG, "张三")], "deaths": [death(ZHANG_BAD_CHECK, "张三")]})
    [m] = matches(con)
    assert m["status"] == "matched" and m["matched_person_id"] == ZHANG and m["candidate_count"] == 1
    assert m["name_level"] == "exact" and m["id_level"] == "check_char" and m["death_id_problem"] == "invalid_id"
    assert m["link_score"] > 0.99 and result.death_matches == 1


def test_traditional_name_matches_and_says_so(link):
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")], "deaths": [death(ZHANG_SUB_REGION, "張三")]})
    [m] = matches(con)
    assert m["matched_person_id"] == ZHANG and m["name_level"] == "t2s" and m["id_level"] == "substitution"


def test_unrelated_broken_id_matches_by_name_and_birth_only(link):
    garbled = "120201195003150214"  # two wrong digits and a wrong checksum, birth digits intact
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")], "deaths": [death(garbled, "张三")]})
    [m] = matches(con)
    assert m["matched_person_id"] == ZHANG and m["id_level"] == "none" and m["match_basis"] == "invalid_id"


def test_a_valid_id_more_than_one_typo_away_is_another_person(link):
    """Near miss: 120201195003150213 is valid (two digits from 张三's): a namesake born the same day."""
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")], "deaths": [death("120201195003150213", "张三")]})
    assert matches(con) == []


def test_valid_unregistered_id_one_digit_or_one_swap_away_matches_and_says_which(link):
    one_digit, swapped = valid("11010119500315003"), valid("10110119500315001")
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")],
                   "deaths": [death(one_digit, "张三"), death(swapped, "张三", "2024-02-02")]})
    assert [(m["death_person_id"], m["matched_person_id"], m["match_basis"]) for m in matches(con)] == sorted(
        [(one_digit, ZHANG, "one_digit"), (swapped, ZHANG, "adjacent_swap")])


def test_a_contradicting_gender_digit_is_never_matched(link):
    """Near miss: the record's ID is ZHANG's with the 17th digit 1 → 2 (invalid, female)."""
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")], "deaths": [death("110101195003150023", "张三")]})
    assert matches(con) == []


def test_valid_unknown_id_is_eligible_but_a_registered_one_is_not(link):
    unknown = valid("11010119500315009")
    registered = valid("11010519500315001")
    con, _ = link({
        "household": [house(ZHANG, "张三", "1950-03-15"), house(registered, "张三", "1950-03-15", "H9")],
        "pension_payments": [pay(ZHANG, "张三")],
        "deaths": [death(unknown, "张三"), death(registered, "张三", "2024-02-02")],
    })
    assert [(m["death_person_id"], m["death_id_problem"]) for m in matches(con)] == [(unknown, "unknown_id")]


def test_paid_valid_death_id_is_an_exact_record_not_a_weak_one(link):
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")], "deaths": [death(ZHANG, "张三")]})
    assert matches(con) == []


def test_two_candidates_are_ambiguous(link):
    broken = "320102194806200025"  # invalid; gender digit 2 as the two women's
    con, result = link({"pension_payments": [pay(NS1, "王伟"), pay(NS2, "王伟")], "deaths": [death(broken, "王伟")]})
    [m] = matches(con)
    assert m["status"] == "ambiguous" and m["matched_person_id"] is None and m["candidate_count"] == 2
    assert sorted(m["candidate_ids"]) == sorted([NS1, NS2]) and result.death_ambiguous == 1


def test_homophone_or_other_birth_date_is_no_candidate(link):
    con, _ = link({"pension_payments": [pay(NS1, "王伟"), pay(ZHANG, "张三")],
                   "deaths": [death("110101194806200025", "王玮"), death(ZHANG_BIRTH_TYPO, "张三")]})
    assert matches(con) == []


def test_death_record_without_a_name_cannot_match(link):
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")],
                   "deaths": [{"person_id": ZHANG_BAD_CHECK, "death_date": "2024-01-10", "source": "公安"}]})
    assert matches(con) == []


def test_household_death_cancellation_uses_the_declared_birth_date(link):
    """A household row cancelled for death under a broken ID whose birth digits are garbage: the
    declared birth date still lets it match."""
    broken = "11010119501345001X"  # month 13: no birth date in the ID
    con, _ = link({
        "household": [house(broken, "张三", "1950-03-15", "H8", status="注销", cancel_date="2024-01-10",
                            cancel_reason="死亡")],
        "pension_payments": [pay(ZHANG, "张三")],
    })
    [m] = matches(con)
    assert m["matched_person_id"] == ZHANG and m["death_id_problem"] == "invalid_id"


def test_no_death_extracts_gives_an_empty_table(link):
    con, _ = link({"pension_payments": [pay(ZHANG, "张三")]})
    assert matches(con) == []
