"""Identity links of the payroll's new IDs against the full audit's persons, set-based.

The audit linked every ID it saw (``identity_clusters``). An ID paid for the first time in the
payroll (not paid in the audit's last month and not in its clusters) was not there; a person paid
again under a typo of the ID would slip through ``duplicate_identity``. :func:`build_clusters`
links such new IDs the way the audit's linker does (:mod:`pipelines.linking.scoring`: the same
comparison levels, weights and threshold, imported from there) against the IDs that can matter
to a hold: those paid in the payroll's periods (the payroll and the audit's rows for them) and
those with a death record (a dead man's pension paid on under a typo of his ID is held as his).

Candidates come from the ID alone, as the linker's ID blocks: the same 17-digit body with another
check character, one body digit changed, or two adjacent characters swapped (one ID failing its
checksum). A pair related by name and birth date only scores −6 for the ID and never links, so no
name block is needed. Names are compared exact, simplified (t2s) and by toneless pinyin, computed
once per distinct name of the few candidate pairs (:func:`pipelines.linking.names.name_keys`).

The result is ``_sc_clusters`` (the columns of ``identity_clusters`` the checks read): the audit's
clusters, with every cluster a new ID joins re-ranked by the linker's order (valid checksum, in
the household register, earliest first paid period, most payments, smaller ID).
"""

from __future__ import annotations

import polars as pl

from pipelines.engine import Engine
from pipelines.linking.names import name_keys
from pipelines.linking.scoring import PRIOR, THRESHOLD, WEIGHTS

CLUSTER_COLUMNS = ("person_id", "canonical_id", "rank", "payment_count", "link_score", "link_agreed_fields",
                   "link_id_level", "link_name_level")
_EMPTY_CLUSTERS = ("SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS canonical_id, NULL::INTEGER AS rank, "
                   "NULL::BOOLEAN AS valid, NULL::BOOLEAN AS registered, NULL::DATE AS first_paid_period, "
                   "NULL::BIGINT AS payment_count, NULL::DOUBLE AS link_score, NULL::VARCHAR[] AS link_agreed_fields, "
                   "NULL::VARCHAR AS link_id_level, NULL::VARCHAR AS link_name_level WHERE false")


def _weight(field: str, level: str) -> str:
    """SQL: the linker's weight of ``field`` at the level expression ``level``."""
    cases = " ".join(f"WHEN '{lvl}' THEN {w!r}" for lvl, w in WEIGHTS[field].items())
    return f"(CASE {level} {cases} END)"


def _births(person_id: str, declared: str) -> str:
    """SQL list of an ID's birth dates: from its digits (when they are a date) and as the household declares."""
    digits = f"try_strptime(substr({person_id}, 7, 8), '%Y%m%d')"
    own = f"CASE WHEN year({digits}) BETWEEN 1800 AND 2100 THEN CAST({digits} AS DATE) END"
    return f"list_distinct(list_filter([{own}, {declared}], lambda d: d IS NOT NULL))"


def build_clusters(engine: Engine, relations: tuple[str, ...]) -> dict[str, int]:
    """Create ``_sc_clusters`` in the session (``payroll`` and ``pension_payments`` must exist);
    returns counts: new IDs, candidate pairs, links."""
    clusters = "identity_clusters" if "identity_clusters" in relations else f"({_EMPTY_CLUSTERS})"
    household = "household" in relations
    engine.materialize("_sc_new", f"""
        WITH last_paid AS (SELECT DISTINCT person_id FROM pension_payments
                           WHERE period = (SELECT max(period) FROM pension_payments))
        SELECT p.person_id, bool_or(p.person_id_valid) AS valid, min(p.name) AS name, min(p.period) AS first_paid,
               count(*) AS payments
        FROM payroll AS p
        WHERE regexp_full_match(p.person_id, '[0-9]{{17}}[0-9X]')
          AND p.person_id NOT IN (SELECT person_id FROM last_paid)
          AND p.person_id NOT IN (SELECT person_id FROM {clusters})
        GROUP BY p.person_id""")
    new_ids = engine.scalar("SELECT count(*) FROM _sc_new")
    if not new_ids:
        engine.materialize("_sc_clusters", f"SELECT {', '.join(CLUSTER_COLUMNS)} FROM {clusters}")
        return {"new_ids": 0, "candidate_pairs": 0, "links": 0}
    # the IDs a new one may be linked to: paid in the payroll's periods (in the payroll or by the audit),
    # and the dead (a dead man's pension paid on under a typo of his ID is his: paid_after_death)
    dead = ("UNION ALL SELECT person_id, person_id_valid, name FROM death_records"
            if "death_records" in relations else "")
    engine.materialize("_sc_known", f"""
        SELECT person_id, bool_or(person_id_valid) AS valid, min(name) AS name FROM (
            SELECT person_id, person_id_valid, name FROM payroll
            UNION ALL
            SELECT person_id, person_id_valid, name FROM pension_payments
            WHERE period IN (SELECT DISTINCT period FROM payroll)
            {dead})
        WHERE regexp_full_match(person_id, '[0-9]{{17}}[0-9X]')
        GROUP BY person_id""")
    engine.materialize("_sc_pairs", """
        WITH n AS (SELECT person_id, substr(person_id, 1, 17) AS body FROM _sc_new),
        bodies AS (
            -- the same body (another check character: position 18), or one body digit changed
            SELECT person_id AS new_id, body AS other_body, 18 AS pos FROM n
            UNION ALL
            SELECT n.person_id, substr(n.body, 1, i) || CAST(d AS VARCHAR) || substr(n.body, i + 2), i + 1
            FROM n, range(17) AS t(i), range(10) AS u(d)
            WHERE substr(n.body, i + 1, 1) <> CAST(d AS VARCHAR)
        ),
        by_body AS (
            SELECT b.new_id, k.person_id AS other_id, b.pos, false AS swapped
            FROM bodies AS b JOIN _sc_known AS k ON substr(k.person_id, 1, 17) = b.other_body
            WHERE k.person_id <> b.new_id
        ),
        swaps AS (
            SELECT person_id AS new_id, i + 1 AS pos,
                   substr(person_id, 1, i) || substr(person_id, i + 2, 1) || substr(person_id, i + 1, 1)
                       || substr(person_id, i + 3) AS other_id
            FROM _sc_new, range(17) AS t(i)
            WHERE substr(person_id, i + 1, 1) <> substr(person_id, i + 2, 1)
        ),
        by_swap AS (
            SELECT s.new_id, k.person_id AS other_id, s.pos, true AS swapped
            FROM swaps AS s JOIN _sc_known AS k ON k.person_id = s.other_id
        )
        SELECT * FROM by_body UNION ALL SELECT * FROM by_swap""")
    pairs = engine.scalar("SELECT count(*) FROM _sc_pairs")
    names = engine.query("SELECT name FROM _sc_new WHERE person_id IN (SELECT new_id FROM _sc_pairs) "
                         "UNION SELECT k.name FROM _sc_known AS k JOIN _sc_pairs AS p ON p.other_id = k.person_id")
    engine.register("_sc_name_keys", name_keys(pl.from_arrow(names).get_column("name")).to_arrow())
    registered = ("SELECT person_id, true AS registered, min(birth_date) AS birth_decl FROM household GROUP BY person_id"
                  if household else "SELECT NULL::VARCHAR AS person_id, NULL::BOOLEAN AS registered, "
                                    "NULL::DATE AS birth_decl WHERE false")
    registry = ("CASE WHEN reg_a AND reg_b THEN 'both_registered' WHEN reg_a OR reg_b THEN 'one_registered' "
                "ELSE 'neither' END") if household else "'unknown'"
    engine.materialize("_sc_reg", registered)
    engine.materialize("_sc_scored", f"""
        WITH ends AS (
            SELECT p.*, a.valid AS valid_a, b.valid AS valid_b
            FROM _sc_pairs AS p JOIN _sc_new AS a ON a.person_id = p.new_id JOIN _sc_known AS b ON b.person_id = p.other_id
            WHERE NOT p.swapped OR NOT (a.valid AND b.valid)
        ),
        related AS (
            -- the ID relation, as the linker's blocks classify it; the closest one per pair
            SELECT new_id, other_id,
                   arg_min(id_level, code) AS id_level, arg_min(pos, code) AS pos
            FROM (
                SELECT *, CASE WHEN swapped THEN 'transposition'
                               WHEN pos = 18 THEN 'check_char'
                               WHEN right(new_id, 1) = right(other_id, 1) THEN 'substitution'
                               WHEN valid_a AND valid_b THEN
                                   CASE WHEN pos >= 15 THEN 'revalidated_seq' WHEN pos >= 7 THEN 'revalidated_birth'
                                        ELSE 'revalidated_region' END
                               ELSE 'two_edits' END AS id_level,
                          CASE WHEN swapped THEN 3 WHEN pos = 18 THEN 1
                               WHEN right(new_id, 1) = right(other_id, 1) THEN 2
                               WHEN valid_a AND valid_b THEN 4 ELSE 7 END AS code
                FROM ends)
            GROUP BY new_id, other_id
        ),
        sides AS (
            SELECT r.*, x.name AS name_a, y.name AS name_b, coalesce(ra.registered, false) AS reg_a,
                   coalesce(rb.registered, false) AS reg_b, ra.birth_decl AS decl_a, rb.birth_decl AS decl_b,
                   ka.name_s AS s_a, kb.name_s AS s_b, ka.pinyin AS py_a, kb.pinyin AS py_b
            FROM related AS r
            JOIN _sc_new AS x ON x.person_id = r.new_id JOIN _sc_known AS y ON y.person_id = r.other_id
            LEFT JOIN _sc_reg AS ra ON ra.person_id = r.new_id LEFT JOIN _sc_reg AS rb ON rb.person_id = r.other_id
            LEFT JOIN _sc_name_keys AS ka ON ka.name = x.name LEFT JOIN _sc_name_keys AS kb ON kb.name = y.name
        ),
        levels AS (
            SELECT new_id, other_id, id_level, pos,
                   CASE WHEN name_a IS NULL OR name_b IS NULL THEN 'unknown' WHEN name_a = name_b THEN 'exact'
                        WHEN s_a = s_b THEN 't2s' WHEN py_a = py_b THEN 'homophone' ELSE 'different' END AS name_level,
                   CASE WHEN len(ba) = 0 OR len(bb) = 0 THEN 'unknown' WHEN list_has_any(ba, bb) THEN 'equal'
                        ELSE 'differs' END AS birth_level,
                   CASE WHEN ga IS NULL OR gb IS NULL THEN 'unknown' WHEN ga = gb THEN 'equal' ELSE 'differs' END
                       AS gender_level,
                   {registry} AS registry_level,
                   substr(new_id, 1, 6) = substr(other_id, 1, 6) AS same_region
            FROM (SELECT *, {_births('new_id', 'decl_a')} AS ba, {_births('other_id', 'decl_b')} AS bb,
                            TRY_CAST(substr(new_id, 17, 1) AS INTEGER) % 2 AS ga,
                            TRY_CAST(substr(other_id, 17, 1) AS INTEGER) % 2 AS gb
                  FROM sides)
        ),
        weighted AS (
            SELECT *, {PRIOR!r} + {_weight('id', 'id_level')} + {_weight('name', 'name_level')}
                      + {_weight('birth', 'birth_level')} + {_weight('gender', 'gender_level')}
                      + {_weight('registry', 'registry_level')} AS match_weight
            FROM levels
        )
        SELECT *, 1.0 / (1.0 + pow(2.0, -match_weight)) AS score,
               list_filter(['id', 'name', 'birth_date', 'gender', 'region'],
                           lambda f, i: [true, name_level IN ('exact', 't2s', 'homophone'), birth_level = 'equal',
                                         gender_level = 'equal', same_region][i]) AS agreed_fields
        FROM weighted""")
    engine.materialize("_sc_links", f"""
        SELECT * FROM _sc_scored WHERE score >= {THRESHOLD!r}
        QUALIFY row_number() OVER (PARTITION BY new_id ORDER BY score DESC, other_id) = 1""")
    links = engine.scalar("SELECT count(*) FROM _sc_links")
    engine.materialize("_sc_clusters", f"""
        WITH c AS (SELECT * FROM {clusters}),
        joined AS (
            -- the group a new ID joins: its partner's cluster, else its partner (old) or the pair (both new)
            SELECT l.*, coalesce(c.canonical_id,
                                 CASE WHEN l.other_id IN (SELECT person_id FROM _sc_new) THEN least(l.new_id, l.other_id)
                                      ELSE l.other_id END) AS grp
            FROM _sc_links AS l LEFT JOIN c ON c.person_id = l.other_id
        ),
        partners AS (
            -- old partners outside any cluster: their attributes from the audit's payments
            SELECT DISTINCT other_id AS person_id, grp FROM joined
            WHERE other_id NOT IN (SELECT person_id FROM c) AND other_id NOT IN (SELECT person_id FROM _sc_new)
        ),
        partner_paid AS (
            SELECT person_id, bool_or(person_id_valid) AS valid, min(period) AS first_paid, count(*) AS payments
            FROM pension_payments WHERE person_id IN (SELECT person_id FROM partners) GROUP BY person_id
        ),
        members AS (
            SELECT c.person_id, j.grp, c.valid, c.registered, c.first_paid_period AS first_paid,
                   c.payment_count AS payments, c.link_score, c.link_agreed_fields, c.link_id_level, c.link_name_level
            FROM c JOIN (SELECT DISTINCT grp FROM joined) AS j ON j.grp = c.canonical_id
            UNION ALL
            SELECT p.person_id, p.grp, coalesce(pp.valid, k.valid), coalesce(r.registered, false), pp.first_paid,
                   coalesce(pp.payments, 0), b.score, b.agreed_fields, b.id_level, b.name_level
            FROM partners AS p LEFT JOIN partner_paid AS pp USING (person_id)
            LEFT JOIN _sc_known AS k USING (person_id) LEFT JOIN _sc_reg AS r USING (person_id)
            LEFT JOIN (SELECT * FROM joined QUALIFY row_number() OVER (PARTITION BY other_id ORDER BY score DESC, new_id) = 1)
                AS b ON b.other_id = p.person_id
            UNION ALL
            SELECT j.new_id, j.grp, n.valid, coalesce(r.registered, false), n.first_paid, n.payments,
                   j.score, j.agreed_fields, j.id_level, j.name_level
            FROM joined AS j JOIN _sc_new AS n ON n.person_id = j.new_id LEFT JOIN _sc_reg AS r ON r.person_id = j.new_id
        ),
        ranked AS (
            SELECT *, CAST(row_number() OVER (PARTITION BY grp ORDER BY valid DESC, registered DESC,
                                              first_paid ASC NULLS LAST, payments DESC, person_id) AS INTEGER) AS rank
            FROM (SELECT DISTINCT ON (person_id) * FROM members ORDER BY person_id, grp)
        )
        SELECT {", ".join(CLUSTER_COLUMNS)}
        FROM c WHERE canonical_id NOT IN (SELECT grp FROM ranked)
        UNION ALL
        SELECT r.person_id, first(r.person_id) OVER (PARTITION BY r.grp ORDER BY r.rank) AS canonical_id, r.rank,
               r.payments, r.link_score, r.link_agreed_fields, r.link_id_level, r.link_name_level
        FROM ranked AS r""")
    for name in ("_sc_known", "_sc_pairs", "_sc_name_keys", "_sc_reg", "_sc_scored"):
        engine.drop(name)
    return {"new_ids": int(new_ids), "candidate_pairs": int(pairs), "links": int(links)}
