"""Identity cases (issue 4): the planted variants have the shape their kind promises, the near misses
sit on their boundary, and ground_truth_identity equals an independent SQL recomputation."""

from __future__ import annotations

from datetime import date

import json

import duckdb
import polars as pl
import pytest
from synth_helpers import id_ok
from test_ground_truth import CANON, valid_as_of

from fraudwatch_synth import IDENTITY_FILES, generate
from fraudwatch_synth.identity import COMMON_NAMES, HOMOPHONES


def files(folder):
    return {name: pl.read_parquet(folder / name) for name in IDENTITY_FILES}


def variants(folder, kind=None) -> pl.DataFrame:
    v = pl.read_parquet(folder / "identity_variants.parquet")
    return v if kind is None else v.filter(pl.col("kind") == kind)


def test_files_and_schema(clean_csv):
    f = files(clean_csv)
    gt = f["ground_truth_identity.parquet"]
    assert gt.columns == ["category", "subject_type", "subject_id", "amount_at_risk", "first_period", "last_period",
                          "region_code", "rule_id", "severity", "kind"]
    assert gt.schema["amount_at_risk"] == pl.Decimal(18, 2)
    assert set(gt["rule_id"]) == {"duplicate_identity", "paid_after_death_weak_match", "paid_after_death",
                                  "duplicate_cross_region"}
    for rule in ("duplicate_identity", "paid_after_death", "duplicate_cross_region"):
        assert set(gt.filter(pl.col("rule_id") == rule)["severity"]) == {"high"}
        assert rule == "duplicate_identity" or set(gt.filter(pl.col("rule_id") == rule)["category"]) == {rule}
    assert set(gt.filter(pl.col("rule_id") == "paid_after_death_weak_match")["category"]) == {"paid_after_death"}
    assert set(gt.filter(pl.col("rule_id") == "paid_after_death_weak_match")["severity"]) == {"medium"}
    assert (gt["amount_at_risk"] > 0).all()
    near = f["near_misses_identity.parquet"]
    assert set(near["kind"]) == {"twins_in_one_household", "common_name_same_birthday", "id_typo_in_birth_digits",
                                 "death_id_birth_differs", "namesake_died", "death_gender_differs",
                                 "typo_id_then_own_id_elsewhere"}
    assert set(near["category_it_must_not_fire"]) == {"duplicate_identity", "paid_after_death", "duplicate_cross_region"}


def test_strict_ground_truth_untouched(clean_csv):
    """The identity cases never appear in ground_truth.parquet and fire no strict category."""
    strict = pl.read_parquet(clean_csv / "ground_truth.parquet")
    ids = set(variants(clean_csv)["person_id"]) | set(variants(clean_csv)["variant_id"])
    assert not set(strict["subject_id"]) & ids
    assert "duplicate_identity" not in set(strict["category"])


@pytest.mark.parametrize("kind", ["di_substitution", "di_transposition_trad", "di_bad_check_homophone",
                                  "wd_bad_check", "wd_typo_trad", "wd_garbled", "id_typo_in_birth_digits",
                                  "death_id_birth_differs", "twins_in_one_household", "common_name_same_birthday"])
def test_broken_ids_fail_the_checksum(clean_csv, kind):
    v = variants(clean_csv, kind)
    assert v.height >= 1
    assert not any(id_ok(x) for x in v["variant_id"]) and not v["variant_valid"].any()


def _diff(a: str, b: str) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


def test_variant_shapes(clean_csv):
    for a, b in variants(clean_csv, "di_substitution").select("variant_id", "person_id").iter_rows():
        assert len(_diff(a, b)) == 1 and _diff(a, b)[0] not in range(6, 14)
    for a, b in variants(clean_csv, "di_transposition_trad").select("variant_id", "person_id").iter_rows():
        i, j = _diff(a, b)
        assert j == i + 1 and a[i] == b[j] and a[j] == b[i] and i not in range(5, 14)
    for a, b in variants(clean_csv, "di_bad_check_homophone").select("variant_id", "person_id").iter_rows():
        assert _diff(a, b) == [17]
    for a, b in variants(clean_csv, "wd_garbled").select("variant_id", "person_id").iter_rows():
        d = _diff(a, b)
        assert d[0] < 6 and d[1] in (14, 15) and len(d) in (2, 3)
    for kind in ("di_forged_valid", "wd_unknown_valid"):
        v = variants(clean_csv, kind)
        assert v["variant_valid"].all() and all(id_ok(x) for x in v["variant_id"])
        for a, b in v.select("variant_id", "person_id").iter_rows():
            assert _diff(a, b)[0] in (14, 15) and set(_diff(a, b)) <= {14, 15, 17}
            assert int(a[16]) % 2 == int(b[16]) % 2  # the gender digit is kept
    for kind in ("id_typo_in_birth_digits", "death_id_birth_differs"):
        for a, b in variants(clean_csv, kind).select("variant_id", "person_id").iter_rows():
            assert _diff(a, b) in ([12], [13]) and date.fromisoformat(f"{a[6:10]}-{a[10:12]}-{a[12:14]}")


def test_names_of_variants(clean_csv):
    from pypinyin import lazy_pinyin
    import opencc

    t2s = opencc.OpenCC("t2s")
    for kind in ("di_transposition_trad", "wd_typo_trad"):
        for vn, n in variants(clean_csv, kind).select("variant_name", "name").iter_rows():
            assert vn != n and t2s.convert(vn) == n
    for vn, n in variants(clean_csv, "di_bad_check_homophone").select("variant_name", "name").iter_rows():
        assert vn != n and lazy_pinyin(vn) == lazy_pinyin(n)
    for kind in ("di_substitution", "di_forged_valid", "wd_bad_check", "wd_garbled", "wd_unknown_valid"):
        v = variants(clean_csv, kind)
        assert (v["variant_name"] == v["name"]).all()


def test_homophone_table_really_sounds_alike():
    from pypinyin import lazy_pinyin

    for char, others in HOMOPHONES.items():
        for other in others:
            assert lazy_pinyin(other) == lazy_pinyin(char), (char, other)


def _household(folder) -> pl.DataFrame:
    return pl.read_csv(folder / "household.csv", infer_schema=False)


def test_twins_share_household_and_birth_ids_one_digit_apart(clean_csv):
    from pypinyin import lazy_pinyin

    near = pl.read_parquet(clean_csv / "near_misses_identity.parquet")
    twins = sorted(set(near.filter(pl.col("kind") == "twins_in_one_household")["subject_id"]))
    house = _household(clean_csv).filter(pl.col("person_id").is_in(twins))
    groups = house.group_by("household_id").agg(pl.col("person_id"), pl.col("name"), pl.col("birth_date").n_unique())
    assert groups.height * 2 == len(twins)
    for ids, names, births in groups.select("person_id", "name", "birth_date").iter_rows():
        a, b = ids
        assert births == 1 and all(id_ok(x) for x in ids)
        assert _diff(a[:17], b[:17]) == [16]
        assert names[0] != names[1] and names[0][0] == names[1][0]
        same_sound = lazy_pinyin(names[0]) == lazy_pinyin(names[1])
        assert same_sound or names[0][:-1] == names[1][:-1]
    # the dead twin's only death record carries her or his ID with a wrong check character
    deaths = variants(clean_csv, "twins_in_one_household")
    assert set(deaths["person_id"]) < set(twins)
    for a, b in deaths.select("variant_id", "person_id").iter_rows():
        assert _diff(a, b) == [17]


def test_common_name_namesakes(clean_csv):
    near = pl.read_parquet(clean_csv / "near_misses_identity.parquet")
    ids = sorted(set(near.filter(pl.col("kind") == "common_name_same_birthday")["subject_id"]))
    house = _household(clean_csv).filter(pl.col("person_id").is_in(ids))
    assert house.height == len(ids) >= 2
    assert set(house["name"]) <= set(COMMON_NAMES)
    pairs = house.with_columns(key=pl.col("name") + pl.col("birth_date")).group_by("key").agg("person_id")
    for (a, b) in pairs["person_id"]:
        d = _diff(a, b)
        assert d[0] < 6 and set(d) <= {d[0], 17}  # one region digit (and the check character)
    third = variants(clean_csv, "common_name_same_birthday")
    for dead, alive in third.select("variant_id", "person_id").iter_rows():
        assert len(_diff(dead[:6], alive[:6])) >= 2 and dead[6:14] == alive[6:14]


# --- independent recomputation ------------------------------------------------------------

DUPLICATES = """
WITH v AS (SELECT variant_id, person_id FROM variants WHERE kind LIKE 'di_%' OR kind = 'dcr_typo_second_id'),
own AS (SELECT DISTINCT canon(person_id) AS person, period FROM pension_payments),
own_subsidy AS (SELECT DISTINCT canon(person_id) AS person, program, period FROM subsidy_payments),
dup AS (
    SELECT v.person_id AS subject, p.region_code, p.period, CAST(p.amount AS DECIMAL(18,2)) AS amount
    FROM pension_payments AS p JOIN v ON upper(p.person_id) = v.variant_id
    JOIN own ON own.person = v.person_id AND own.period = p.period
    UNION ALL
    SELECT v.person_id, s.region_code, s.period, CAST(s.amount AS DECIMAL(18,2))
    FROM subsidy_payments AS s JOIN v ON upper(s.person_id) = v.variant_id
    JOIN own_subsidy AS o ON o.person = v.person_id AND o.program = s.program AND o.period = s.period),
top AS (SELECT subject, region_code FROM dup GROUP BY subject, region_code
        QUALIFY row_number() OVER (PARTITION BY subject ORDER BY sum(amount) DESC, region_code) = 1)
SELECT 'duplicate_identity', d.subject, sum(amount), min(period), max(period), t.region_code
FROM dup AS d JOIN top AS t USING (subject) GROUP BY d.subject, t.region_code
"""

WEAK = """
WITH registered AS (SELECT DISTINCT canon(person_id) AS id FROM household),
paid AS (SELECT DISTINCT canon(person_id) AS id, t2s(name) AS name FROM pension_payments),
paid_valid AS (SELECT * FROM paid WHERE ok(id)),
paid_keys AS (SELECT id, name, try_strptime(substr(id, 7, 8), '%Y%m%d')::DATE AS birth FROM paid_valid),
exact_dead AS (SELECT DISTINCT canon(person_id) AS id FROM deaths WHERE ok(canon(person_id))
               UNION SELECT DISTINCT canon(person_id) FROM household WHERE cancel_reason = '死亡'),
eligible AS (
    SELECT upper(person_id) AS id, t2s(name) AS name, CAST(death_date AS DATE) AS death_date,
           try_strptime(substr(upper(person_id), 7, 8), '%Y%m%d')::DATE AS birth, ok(upper(person_id)) AS valid
    FROM deaths
    WHERE upper(person_id) NOT IN (SELECT id FROM paid)
      AND (NOT ok(upper(person_id)) OR upper(person_id) NOT IN (SELECT id FROM registered))),
pairs AS (SELECT e.*, k.id AS match,
                 list_filter(range(1, 18), lambda i: substr(e.id, i, 1) <> substr(k.id, i, 1)) AS d
          FROM eligible AS e JOIN paid_keys AS k ON k.name = e.name AND k.birth = e.birth
          WHERE TRY_CAST(substr(e.id, 17, 1) AS INT) % 2 IS NOT DISTINCT FROM TRY_CAST(substr(k.id, 17, 1) AS INT) % 2
             OR TRY_CAST(substr(e.id, 17, 1) AS INT) IS NULL),
cands AS (SELECT id AS death_id, death_date, match FROM pairs
          WHERE NOT valid OR len(d) = 1
             OR (len(d) = 2 AND d[2] = d[1] + 1 AND substr(id, d[1], 1) = substr(match, d[2], 1)
                 AND substr(id, d[2], 1) = substr(match, d[1], 1))),
matched AS (SELECT death_id, any_value(death_date) AS death_date, any_value(match) AS match
            FROM cands GROUP BY death_id HAVING count(DISTINCT match) = 1),
dead AS (SELECT match, strftime(min(death_date), '%Y-%m') AS death_month FROM matched
         WHERE match NOT IN (SELECT id FROM exact_dead) GROUP BY match),
after AS (SELECT d.match AS subject, p.region_code, p.period, CAST(p.amount AS DECIMAL(18,2)) AS amount
          FROM pension_payments AS p JOIN dead AS d ON canon(p.person_id) = d.match WHERE p.period > d.death_month),
top AS (SELECT subject, region_code FROM after GROUP BY subject, region_code
        QUALIFY row_number() OVER (PARTITION BY subject ORDER BY sum(amount) DESC, region_code) = 1)
SELECT 'paid_after_death_weak_match', a.subject, sum(amount), min(period), max(period), t.region_code
FROM after AS a JOIN top AS t USING (subject) GROUP BY a.subject, t.region_code
"""


# The person rules through identity clusters: a payment or a death record under a second ID the
# linker joins to a person's (a payee variant of the linked kinds) is that person's.
LINKED_KINDS = ("di_substitution", "di_transposition_trad", "di_bad_check_homophone", "di_forged_valid",
                "pad_typo_second_id", "pad_death_under_paid_typo", "dcr_typo_second_id", "di_subsidy_typo",
                "typo_id_then_own_id_elsewhere")
CLUSTERS = f"""
WITH linked AS (SELECT variant_id, person_id FROM variants
                WHERE role = 'payee' AND kind IN ({", ".join(f"'{k}'" for k in LINKED_KINDS)})),
persons AS (SELECT DISTINCT person_id FROM linked),
pay AS (SELECT coalesce(l.person_id, canon(p.person_id)) AS person, p.scheme, p.region_code, p.period,
               CAST(p.amount AS DECIMAL(18,2)) AS amount
        FROM pension_payments AS p LEFT JOIN linked AS l ON upper(p.person_id) = l.variant_id),
pay_linked AS (SELECT * FROM pay WHERE person IN (SELECT person_id FROM persons)),
records AS (SELECT person_id, death_date FROM deaths
            UNION ALL SELECT person_id, cancel_date FROM household WHERE cancel_reason = '死亡'),
died AS (SELECT coalesce(l.person_id, canon(r.person_id)) AS person, strftime(min(CAST(r.death_date AS DATE)), '%Y-%m') AS month
         FROM records AS r LEFT JOIN linked AS l ON upper(r.person_id) = l.variant_id GROUP BY 1),
after AS (SELECT p.* FROM pay_linked AS p JOIN died AS d ON d.person = p.person WHERE p.period > d.month),
started AS (SELECT person, scheme, region_code, min(period) AS started FROM pay_linked GROUP BY ALL),
per_period AS (SELECT p.person, p.scheme, p.period, p.region_code, sum(p.amount) AS amount, any_value(s.started) AS started
               FROM pay_linked AS p JOIN started AS s USING (person, scheme, region_code) GROUP BY ALL),
overlap AS (SELECT *, row_number() OVER (PARTITION BY person, scheme, period ORDER BY started, region_code) AS k,
                   count(*) OVER (PARTITION BY person, scheme, period) AS n FROM per_period),
cross_region AS (SELECT person, region_code, period, amount FROM overlap WHERE n > 1 AND k > 1),
rows AS (SELECT 'paid_after_death' AS rule_id, person, region_code, period, amount FROM after
         UNION ALL SELECT 'duplicate_cross_region', person, region_code, period, amount FROM cross_region),
top AS (SELECT rule_id, person, region_code FROM rows GROUP BY rule_id, person, region_code
        QUALIFY row_number() OVER (PARTITION BY rule_id, person ORDER BY sum(amount) DESC, region_code) = 1)
SELECT r.rule_id, r.person, sum(amount), min(period), max(period), t.region_code
FROM rows AS r JOIN top AS t USING (rule_id, person) GROUP BY r.rule_id, r.person, t.region_code
"""


def recompute(folder) -> list[tuple]:
    import opencc

    t2s = opencc.OpenCC("t2s")
    con = duckdb.connect()
    con.execute(CANON)
    con.execute("""CREATE MACRO ok(id) AS regexp_full_match(id, '[0-9]{17}[0-9X]')
        AND substr('10X98765432', 1 + CAST(list_sum(list_transform(range(17),
            lambda i: CAST(substr(id, i + 1, 1) AS INT) * [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2][i + 1]))
            AS BIGINT) % 11, 1) = substr(id, 18, 1)""")
    con.create_function("t2s", lambda s: None if s is None else t2s.convert(s), ["VARCHAR"], "VARCHAR")
    for name in ("deaths", "household", "subsidy_payments"):
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{folder / name}.csv', all_varchar=true)")
    con.execute(f"CREATE TABLE pension_payments AS SELECT * FROM read_csv('{folder}/pension_payments_*.csv', all_varchar=true)")
    con.execute(f"CREATE TABLE variants AS SELECT * FROM read_parquet('{folder / 'identity_variants.parquet'}')")
    rows = con.execute(DUPLICATES).fetchall() + con.execute(WEAK).fetchall() + con.execute(CLUSTERS).fetchall()
    return sorted((r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows)


def truth(folder) -> list[tuple]:
    gt = pl.read_parquet(folder / "ground_truth_identity.parquet")
    return sorted(gt.select("rule_id", "subject_id", "amount_at_risk", "first_period", "last_period",
                            "region_code").rows())


def test_identity_truth_matches_sql_recomputation(clean_csv):
    expected = truth(clean_csv)
    assert recompute(clean_csv) == expected
    assert {r[0] for r in expected} == {"duplicate_identity", "paid_after_death_weak_match", "paid_after_death",
                                        "duplicate_cross_region"}


@pytest.mark.parametrize("persons,months,seed,start", [(400, 4, 7, "2023-11"), (250, 13, 99, "2022-06")])
def test_identity_truth_other_shapes(tmp_path, persons, months, seed, start):
    generate(persons, months, seed, tmp_path, start_period=start)
    assert recompute(tmp_path) == truth(tmp_path)
    assert valid_as_of(tmp_path)


def test_near_misses_never_expected(clean_csv):
    near = pl.read_parquet(clean_csv / "near_misses_identity.parquet")
    gt = pl.read_parquet(clean_csv / "ground_truth_identity.parquet")
    assert near.join(gt, left_on=["subject_id", "category_it_must_not_fire"],
                     right_on=["subject_id", "category"]).is_empty()


def test_identity_files_identical_across_formats(clean_csv, messy_csv, clean_parquet):
    for name in IDENTITY_FILES:
        expected = (clean_csv / name).read_bytes()
        assert (messy_csv / name).read_bytes() == expected
        assert (clean_parquet / name).read_bytes() == expected


def test_messy_never_repairs_a_broken_id():
    """A legacy 15-digit rendering would recompute the check character on upgrade and silently turn a
    broken ID into a valid one: messy exports render only valid IDs in the 15-digit form."""
    import numpy as np

    from fraudwatch_synth.messy import person_id

    good, broken = "110101195003150013", "110101195003150213"
    out = person_id(pl.Series([good, broken] * 2000), np.random.default_rng(3)).str.strip_chars()
    lengths = pl.DataFrame({"id": [good, broken] * 2000, "len": out.str.len_chars()})
    assert lengths.filter(pl.col("id") == good)["len"].to_list().count(15) > 50
    assert 15 not in lengths.filter(pl.col("id") == broken)["len"].to_list()


@pytest.mark.parametrize("persons", [200, 300, 600])
def test_small_populations_keep_death_ids_mostly_valid(tmp_path, persons):
    """The deaths contract asks for 80 % valid IDs; the broken-ID death kinds are planted sparsely."""
    generate(persons, 6, 3, tmp_path)
    deaths = pl.read_csv(tmp_path / "deaths.csv", infer_schema=False)
    share = sum(id_ok(x) for x in deaths["person_id"]) / deaths.height
    assert share >= 0.82, share  # the contract needs 0.80


def test_new_death_near_misses_and_outsiders(clean_csv):
    """A namesake with a valid ID of a far region, and a death record whose gender digit contradicts,
    are planted and never expected; the deaths of people outside the payroll are valid IDs that
    nobody else has."""
    namesakes = variants(clean_csv, "namesake_died")
    assert namesakes.height >= 1 and namesakes["variant_valid"].all()
    for dead, alive in namesakes.select("variant_id", "person_id").iter_rows():
        assert len(_diff(dead[:6], alive[:6])) >= 2 and dead[6:14] == alive[6:14]
        assert int(dead[16]) % 2 == int(alive[16]) % 2
    flipped = variants(clean_csv, "death_gender_differs")
    assert flipped.height >= 1 and not flipped["variant_valid"].any()
    for dead, alive in flipped.select("variant_id", "person_id").iter_rows():
        assert dead[:16] == alive[:16] and int(dead[16]) % 2 != int(alive[16]) % 2
    deaths = pl.read_csv(clean_csv / "deaths.csv", infer_schema=False)
    known = set(_household(clean_csv)["person_id"]) | set(variants(clean_csv)["variant_id"])
    outsiders = deaths.filter(~pl.col("person_id").is_in(sorted(known)))
    meta = json.loads((clean_csv / "synth_meta.json").read_text())
    assert outsiders.height == meta["outsider_deaths"] > 0
    assert all(id_ok(x) for x in outsiders["person_id"])
