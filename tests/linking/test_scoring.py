"""Comparison levels, weights, score and agreed fields, on hand-made level codes."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.linking.blocking import CHECK_CHAR, REVALIDATED, SUBSTITUTION, TRANSPOSITION, TWO_EDITS
from pipelines.linking.scoring import (
    FIELDS, PRIOR, THRESHOLD, WEIGHTS, agreed_fields, id_codes, level_names, score_levels,
)


def score(id="substitution", name="exact", birth="equal", gender="equal", registry="one_registered",
          same_region=True, same_household=False, threshold=THRESHOLD) -> dict:
    names = {"id": id, "name": name, "birth": birth, "gender": gender, "registry": registry}
    levels = {f: np.array([FIELDS[f].index(v)], dtype=np.int8) for f, v in names.items()}
    levels |= {"same_region": np.array([same_region]), "same_household": np.array([same_household])}
    out = {k: v[0] for k, v in score_levels(levels, threshold).items()}
    out["agreed_fields"] = agreed_fields(int(out["agreed_bits"]))
    return out


@pytest.mark.parametrize("relation, pos, level", [
    (SUBSTITUTION, 3, "substitution"),
    (TRANSPOSITION, 16, "transposition"),
    (CHECK_CHAR, 18, "check_char"),
    (REVALIDATED, 16, "revalidated_seq"),
    (REVALIDATED, 15, "revalidated_seq"),
    (REVALIDATED, 13, "revalidated_birth"),
    (REVALIDATED, 7, "revalidated_birth"),
    (REVALIDATED, 6, "revalidated_region"),
    (TWO_EDITS, 2, "two_edits"),
    (None, None, "none"),
])
def test_id_levels(relation, pos, level):
    assert level_names("id", id_codes(np.array([relation], dtype=float), np.array([pos], dtype=float))) == [level]


@pytest.mark.parametrize("kw", [
    {"id": "substitution"},                                  # one digit of the region or sequence code
    {"id": "substitution", "same_region": False},
    {"id": "substitution", "gender": "differs"},             # the gender digit itself
    {"id": "transposition", "name": "t2s"},                  # swapped digits, traditional characters
    {"id": "check_char", "name": "homophone"},               # wrong check character, homophone name
    {"id": "substitution", "name": "homophone"},
    {"id": "revalidated_seq"},                               # forged valid ID unknown to the register
    {"id": "substitution", "registry": "unknown"},           # no household extract
    {"id": "two_edits", "registry": "neither"},              # two typos of one unregistered person
])
def test_variants_link(kw):
    out = score(**kw)
    assert out["linked"] and out["score"] >= THRESHOLD, out
    assert {"id", "name", "birth_date"} <= set(out["agreed_fields"])


@pytest.mark.parametrize("kw", [
    # twins: one household, same birth date, homophone names, valid IDs one digit apart, both registered
    {"id": "revalidated_seq", "name": "homophone", "registry": "both_registered", "same_household": True},
    # twins without a household extract: still not enough
    {"id": "revalidated_seq", "name": "homophone", "registry": "unknown"},
    # twins with similar names (张建国 / 张建军)
    {"id": "revalidated_seq", "name": "similar", "registry": "both_registered"},
    # 王伟 and 王伟 born the same day in neighbouring regions, both registered
    {"id": "revalidated_region", "registry": "both_registered", "same_region": False},
    # ... and without a household extract
    {"id": "revalidated_region", "registry": "unknown", "same_region": False},
    # a typo inside the birth digits: the birth dates disagree
    {"id": "substitution", "birth": "differs"},
    # a birth date that cannot be compared
    {"id": "substitution", "birth": "unknown"},
    # one digit apart but another name, or a similar name only
    {"id": "substitution", "name": "different"},
    {"id": "substitution", "name": "similar"},
    # a wrong check character but only a similar name (a body typo hitting another person's body)
    {"id": "check_char", "name": "similar"},
    {"id": "check_char", "name": "different"},
    # same name and birth date, unrelated IDs
    {"id": "none"},
    {"id": "none", "registry": "one_registered"},
    # forged-looking valid ID but the gender digit says another person
    {"id": "revalidated_seq", "gender": "differs"},
])
def test_near_misses_do_not_link(kw):
    out = score(**kw)
    assert not out["linked"] and out["score"] < THRESHOLD, out


def test_weight_sum_and_score_agree():
    out = score(id="transposition", name="t2s")
    weights = {f: out[f"w_{f}"] for f in FIELDS}
    assert weights == {"id": WEIGHTS["id"]["transposition"], "name": WEIGHTS["name"]["t2s"],
                       "birth": WEIGHTS["birth"]["equal"], "gender": WEIGHTS["gender"]["equal"],
                       "registry": WEIGHTS["registry"]["one_registered"]}
    assert out["match_weight"] == pytest.approx(PRIOR + sum(weights.values()))
    assert out["score"] == pytest.approx(1 / (1 + 2 ** -out["match_weight"]))


def test_every_level_has_a_weight():
    for field, levels in FIELDS.items():
        assert set(WEIGHTS[field]) == set(levels), field


def test_agreed_fields_name_what_agreed():
    assert score(same_region=False, gender="differs")["agreed_fields"] == ["id", "name", "birth_date"]
    out = score(id="none", name="different", birth="differs", same_household=True)
    assert out["agreed_fields"] == ["gender", "region", "household"]


def test_threshold_is_a_parameter():
    assert score(id="revalidated_seq")["linked"]
    assert not score(id="revalidated_seq", threshold=0.99999)["linked"]
