"""Weak death matches: death records whose ID does not identify a paid person, matched to one by
name and birth date (suspects.md, note under the categories).

A death record is *eligible* when its ID fails the checksum, or is valid but unknown (neither paid
a pension nor in the household register). Its birth date is the date embedded in its ID digits
7-14 when they form a real date (also for an invalid ID: a typo elsewhere leaves it intact), plus
the declared birth date when the ID is in the household register. Its name is compared in
simplified characters (opencc t2s), so 張偉 matches 张伟; homophones (张玮) do *not* match here.

The *candidates* of a record are the pension payees with a valid ID whose name (the ID's
representative name: the household register's, else the most frequent) is the same once simplified
and who have a birth date (from their ID or declared) equal to the record's. A record with exactly
one candidate is ``matched``; with several it is ``ambiguous`` and never reported (namesakes born
the same day cannot be told apart by name and birth date). Records without candidates are not
listed. Each row also carries how the two IDs relate (``id_level``) and the linker's score and
agreed fields for the pair, so the evidence explains the match.
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
    WHERE NOT coalesce(r.person_id_valid, false) OR (NOT n.paid AND NOT n.registered)
),
keys AS (
    SELECT e.*, unnest(e.births) AS birth FROM eligible AS e WHERE array_length(e.births) > 0
),
paid AS (
    -- pension payees with a valid ID whose (representative) simplified name is one of the
    -- eligible records' names; driven by those few names
    SELECT n.node, n.name, n.name_s, n.person_id, n.id_birth, n.birth_decl
    FROM (SELECT DISTINCT name_s FROM keys) AS ks
    JOIN _lk_nodes AS n ON n.name_s = ks.name_s
    WHERE n.paid AND n.valid
),
hits AS (
    SELECT k.person_id AS death_person_id, k.person_id_valid AS death_person_id_valid, k.name AS death_name,
           k.births AS death_births, k.death_date, k.source, k.record_id, k.why, k.node AS death_node,
           p.node AS paid_node, p.person_id AS paid_id, bool_or(p.name = k.name) AS exact_name
    FROM keys AS k JOIN paid AS p ON p.name_s = k.name_s AND (p.id_birth = k.birth OR p.birth_decl = k.birth)
    GROUP BY ALL
),
per_record AS (
    SELECT death_person_id, death_person_id_valid, death_name, death_births, death_date, source, record_id, why,
           death_node,
           count(DISTINCT paid_node) AS candidate_count,
           array_slice(list_sort(list(DISTINCT paid_id)), 1, 10) AS candidate_ids,
           any_value(paid_node) AS paid_node,
           any_value(paid_id) AS paid_id,
           bool_or(exact_name) AS exact_name
    FROM hits
    GROUP BY ALL
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
       CASE WHEN r.candidate_count = 1 THEN c.agreed_fields END AS link_agreed_fields
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
                   NULL::DOUBLE AS link_score, NULL::VARCHAR[] AS link_agreed_fields
            WHERE false""")
        return 0, 0
    con.execute(_DEATH_MATCHES.replace("{births}", births_sql("n")))
    rows = {r["status"]: r["n"] for r in con.query("SELECT status, count(*) AS n FROM _lk_death_matches GROUP BY status").to_pylist()}
    return int(rows.get("matched", 0)), int(rows.get("ambiguous", 0))
