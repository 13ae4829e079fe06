"""Weak death matches: death records whose ID does not identify a paid person, matched to one by
name and birth date (suspects.md, note under the categories) — only where the ID cannot speak for
itself.

A death record is *eligible* when its ID is not paid a pension (the same ID, valid or not, on the
payroll is an exact match: paid_after_death), and either

* the ID is invalid (checksum or embedded birth date wrong, or malformed): it identifies nobody,
  even when the household register holds it; or
* the ID is valid, not in the household register (a registered ID is another, known person), and
  one typo away from the candidate payee's ID: its 17-digit body differs from the payee's in one
  digit, or by two adjacent digits swapped (the check character recomputed).

A valid ID further away belongs to another person — at provincial scale mostly a namesake born the
same day — and is never matched. Neither is a record whose gender digit (the 17th) contradicts the
payee's. Its birth date is the date embedded in its ID digits 7-14 when they form a real date (also
for an invalid ID: a typo elsewhere leaves it intact), plus the declared birth date when the ID is
in the household register. Its name is compared in simplified characters (opencc t2s), so 張偉
matches 张伟; homophones (张玮) do *not* match here.

The *candidates* of a record are the pension payees with a valid ID whose name (the ID's representative name: the
household register's, else the most frequent) is the same once simplified, who have a birth date
(from their ID or declared) equal to the record's, no contradicting gender digit and, for a valid
record ID, an ID one typo away. A record with exactly one candidate is ``matched``; with several it
is ``ambiguous`` and never reported (namesakes born the same day cannot be told apart by name and
birth date). Records without candidates are not listed. ``match_basis`` says which case applied
(``invalid_id``, ``one_digit``, ``adjacent_swap``); each row also carries how the two IDs relate
(``id_level``) and the linker's score and agreed fields for the pair, so the evidence explains the
match.
"""

from __future__ import annotations


from pipelines.engine import Engine
from pipelines.linking.records import births_sql

_DEATH_MATCHES = """
CREATE OR REPLACE TEMP TABLE _lk_death_matches AS
WITH records AS (
    SELECT person_id, any_value(person_id_valid) AS person_id_valid, name, death_date, source, record_id
    FROM death_records
    WHERE person_id IS NOT NULL AND name IS NOT NULL AND death_date IS NOT NULL
    GROUP BY person_id, name, death_date, source, record_id
),
eligible AS (
    SELECT r.*, n.node, {births} AS births,
           CASE WHEN NOT coalesce(r.person_id_valid, false) THEN 'invalid_id' ELSE 'unknown_id' END AS why,
           k.name_s
    FROM records AS r
    JOIN _lk_nodes AS n ON n.person_id = r.person_id
    JOIN _lk_names AS k ON k.name = r.name
    WHERE NOT n.paid AND (NOT coalesce(r.person_id_valid, false) OR NOT n.registered)
),
keys AS (
    SELECT e.*, unnest(e.births) AS birth, n.gender AS gender
    FROM eligible AS e JOIN _lk_nodes AS n ON n.node = e.node
    WHERE array_length(e.births) > 0
),
paid AS (
    -- pension payees with a valid ID whose (representative) simplified name is one of the
    -- eligible records' names; driven by those few names
    SELECT n.node, n.name, n.name_s, n.person_id, n.id_birth, n.birth_decl, n.gender
    FROM (SELECT DISTINCT name_s FROM keys) AS ks
    JOIN _lk_nodes AS n ON n.name_s = ks.name_s
    WHERE n.paid AND n.valid
),
pairs AS (
    -- name and birth date agree, the gender digits do not contradict; where the record's ID is
    -- valid, the digits of the two 17-digit bodies that differ
    SELECT k.*, p.node AS paid_node, p.person_id AS paid_id, p.name AS paid_name,
           CASE WHEN coalesce(k.person_id_valid, false)
                THEN list_filter(range(1, 18), lambda i: substr(k.person_id, i, 1) <> substr(p.person_id, i, 1)) END AS diff
    FROM keys AS k JOIN paid AS p ON p.name_s = k.name_s AND (p.id_birth = k.birth OR p.birth_decl = k.birth)
    WHERE k.gender IS NULL OR p.gender IS NULL OR k.gender = p.gender
),
hits AS (
    SELECT death_person_id, death_person_id_valid, death_name, death_births, death_date, source, record_id, why,
           death_node, paid_node, paid_id, bool_or(exact_name) AS exact_name, min(basis) AS basis
    FROM (
        SELECT person_id AS death_person_id, person_id_valid AS death_person_id_valid, name AS death_name,
               births AS death_births, death_date, source, record_id, why, node AS death_node,
               paid_node, paid_id, paid_name = name AS exact_name,
               CASE WHEN NOT coalesce(person_id_valid, false) THEN 'invalid_id'
                    WHEN array_length(diff) = 1 THEN 'one_digit'
                    WHEN array_length(diff) = 2 AND diff[2] = diff[1] + 1
                         AND substr(person_id, diff[1], 1) = substr(paid_id, diff[2], 1)
                         AND substr(person_id, diff[2], 1) = substr(paid_id, diff[1], 1) THEN 'adjacent_swap'
               END AS basis
        FROM pairs
    )
    WHERE basis IS NOT NULL
    GROUP BY ALL
),
per_record AS (
    SELECT death_person_id, death_person_id_valid, death_name, death_births, death_date, source, record_id, why,
           death_node,
           count(DISTINCT paid_node) AS candidate_count,
           array_slice(list_sort(list(DISTINCT paid_id)), 1, 10) AS candidate_ids,
           any_value(paid_node) AS paid_node,
           any_value(paid_id) AS paid_id,
           bool_or(exact_name) AS exact_name,
           any_value(basis) AS basis
    FROM hits
    GROUP BY death_person_id, death_person_id_valid, death_name, death_births, death_date, source, record_id, why,
             death_node
)
SELECT r.death_person_id, r.death_person_id_valid, r.death_name, r.death_births, r.death_date,
       r.source, r.record_id, r.why AS death_id_problem,
       CASE WHEN r.candidate_count = 1 THEN 'matched' ELSE 'ambiguous' END AS status,
       CASE WHEN r.candidate_count = 1 THEN r.paid_id END AS matched_person_id,
       CASE WHEN r.candidate_count = 1 THEN n.name END AS matched_name,
       CAST(r.candidate_count AS INTEGER) AS candidate_count, r.candidate_ids,
       CASE WHEN r.candidate_count = 1 THEN CASE WHEN r.exact_name THEN 'exact' ELSE 't2s' END END AS name_level,
       CASE WHEN r.candidate_count = 1 THEN coalesce(c.id_level, 'none') END AS id_level,
       CASE WHEN r.candidate_count = 1 THEN c.score END AS link_score,
       CASE WHEN r.candidate_count = 1 THEN c.agreed_fields END AS link_agreed_fields,
       CASE WHEN r.candidate_count = 1 THEN r.basis END AS match_basis
FROM per_record AS r
LEFT JOIN _lk_nodes AS n ON n.node = r.paid_node AND r.candidate_count = 1
LEFT JOIN _lk_scored AS c
       ON r.candidate_count = 1
      AND c.person_id_a = least(r.death_person_id, r.paid_id) AND c.person_id_b = greatest(r.death_person_id, r.paid_id)
ORDER BY r.death_person_id, r.death_date, r.source, r.record_id
"""


def match_deaths(con: Engine, have_death_records: bool) -> tuple[int, int]:
    """Create temp table ``_lk_death_matches``; return (matched records, ambiguous records).
    Without the ``death_records`` view (no deaths or household extract) the table is empty."""
    if not have_death_records:
        con.execute("""CREATE OR REPLACE TEMP TABLE _lk_death_matches AS
            SELECT NULL::VARCHAR AS death_person_id, NULL::BOOLEAN AS death_person_id_valid, NULL::VARCHAR AS death_name,
                   NULL::DATE[] AS death_births, NULL::DATE AS death_date, NULL::VARCHAR AS source,
                   NULL::VARCHAR AS record_id, NULL::VARCHAR AS death_id_problem, NULL::VARCHAR AS status,
                   NULL::VARCHAR AS matched_person_id, NULL::VARCHAR AS matched_name, NULL::INTEGER AS candidate_count,
                   NULL::VARCHAR[] AS candidate_ids, NULL::VARCHAR AS name_level, NULL::VARCHAR AS id_level,
                   NULL::DOUBLE AS link_score, NULL::VARCHAR[] AS link_agreed_fields, NULL::VARCHAR AS match_basis
            WHERE false""")
        return 0, 0
    con.execute(_DEATH_MATCHES.replace("{births}", births_sql("n")))
    rows = {r["status"]: r["n"] for r in con.query("SELECT status, count(*) AS n FROM _lk_death_matches GROUP BY status").to_pylist()}
    return int(rows.get("matched", 0)), int(rows.get("ambiguous", 0))
