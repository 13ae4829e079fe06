"""Person nodes: one row per distinct canonical person ID over every extract that carries people.

The deterministic step of linking: all records with the same canonical 18-char ID (15-digit IDs
are upgraded by the loader, so both forms are one ID) are one node. A node carries what the
fuzzy step compares: the parsed ID (17-digit body as an integer, check character, embedded birth
date and gender digit, region prefix), the representative name and its keys, birth dates (from
the ID and as declared in the household register), and where the ID was seen.

The representative name is the household register's, else the name on most records, else (a
deterministic tie-break, the same on every engine) the largest name text. Most IDs carry one name, so the sources
are aggregated per ID with min/max name, and only IDs seen under two or more names are counted
per name.

Set-based SQL on any engine (the relations it reads and writes are named by the caller); name
keys are computed in Python once per distinct name (:mod:`pipelines.linking.names`), where the
engine runs Python (:meth:`~pipelines.engine.base.Engine.map_batches`).
"""

from __future__ import annotations


import polars as pl
import pyarrow as pa

from pipelines.engine import Engine
from pipelines.linking.names import name_keys
from pipelines.linking.schema import PERSON_EXTRACTS

# Per extract and ID: names (min/max), rows, named rows, and what the extract adds. ``{rel}`` is the
# relation read: the extract, or (incremental linking) the rows of its added files.
_COLUMNS = "person_id, valid, name_min, name_max, src, n, nn, first_paid, birth_decl, household_id"
_OBS = {
    "pension_payments": """
        SELECT person_id, bool_or(person_id_valid), min(name), max(name), 'pension_payments', count(*), count(name),
               min(period), NULL::DATE, NULL::VARCHAR
        FROM {rel} WHERE person_id IS NOT NULL GROUP BY person_id""",
    "subsidy_payments": """
        SELECT person_id, bool_or(person_id_valid), min(name), max(name), 'subsidy_payments', count(*), count(name),
               NULL::DATE, NULL::DATE, NULL::VARCHAR
        FROM {rel} WHERE person_id IS NOT NULL GROUP BY person_id""",
    "deaths": """
        SELECT person_id, bool_or(person_id_valid), min(name), max(name), 'deaths', count(*), count(name),
               NULL::DATE, NULL::DATE, NULL::VARCHAR
        FROM {rel} WHERE person_id IS NOT NULL GROUP BY person_id""",
    "household": """
        SELECT person_id, bool_or(person_id_valid), min(name), max(name), 'household', count(*), count(name),
               NULL::DATE, min(birth_date), min(household_id)
        FROM {rel} WHERE person_id IS NOT NULL GROUP BY person_id""",
    "prisoners": """
        SELECT person_id, bool_or(person_id_valid), min(name), max(name), 'prisoners', count(*), count(name),
               NULL::DATE, NULL::DATE, NULL::VARCHAR
        FROM {rel} WHERE person_id IS NOT NULL GROUP BY person_id""",
}
EMPTY_OBS = ("SELECT NULL::VARCHAR, NULL::BOOLEAN, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, 0::BIGINT, 0::BIGINT, "
             "NULL::DATE, NULL::DATE, NULL::VARCHAR WHERE false")


def obs_sql(relations: dict[str, str]) -> str:
    """Per (ID, extract) observations (:data:`_COLUMNS`) of the person extracts, each read from the
    relation ``relations`` names for it."""
    union = "\nUNION ALL\n".join(_OBS[t].format(rel=r) for t, r in relations.items()) if relations else EMPTY_OBS
    return f"SELECT * FROM ({union}) AS o({_COLUMNS})"


AGG_SQL = """
SELECT person_id,
       coalesce(bool_or(valid), false) AS valid,
       bool_or(src = 'household') AS registered,
       bool_or(src = 'pension_payments') AS paid,
       min(first_paid) AS first_paid,
       CAST(coalesce(sum(n) FILTER (WHERE src = 'pension_payments'), 0) AS BIGINT) AS payments,
       min(birth_decl) AS birth_decl,
       min(household_id) AS household_id,
       min(name_min) AS name_min,
       max(name_max) AS name_max,
       min(name_min) FILTER (WHERE src = 'household') AS house_min,
       max(name_max) FILTER (WHERE src = 'household') AS house_max,
       CAST(coalesce(sum(nn), 0) AS BIGINT) AS named_rows
FROM {obs} GROUP BY person_id
"""

# Per-name counts of the IDs seen under several names (kept as link state: incremental linking
# adds the counts of new rows instead of counting every extract again).
_MULTI_COUNTS = """
WITH ids AS (SELECT person_id FROM {agg} WHERE name_min <> name_max),
named AS (
    {union}
)
SELECT person_id, name, CAST(count(*) AS BIGINT) AS n, bool_or(src = 'household') AS in_house
FROM named WHERE name IS NOT NULL GROUP BY person_id, name
"""

# The representative name of those IDs: the household name, else the most frequent, else the
# largest text (never a hash: hash functions differ between engines, and the answer must not).
# Used only for IDs without one household name (the CASE in NODES_SQL).
MULTI_SQL = """
SELECT person_id, arg_max(name, {{'house': CAST(in_house AS INTEGER), 'n': n, 'name': name}}) AS name
FROM {counts} GROUP BY person_id
"""

NODES_SQL = """
WITH named AS (
    SELECT a.*,
           CASE WHEN a.house_min IS NOT NULL AND a.house_min = a.house_max THEN a.house_min
                WHEN a.name_min = a.name_max THEN a.name_min
                ELSE m.name END AS name,
           regexp_full_match(a.person_id, '[0-9X]{{18}}') AS id18
    FROM {agg} AS a LEFT JOIN {multi} AS m USING (person_id)
), ids AS (
    -- is18: a 17-digit body (the ID blocks need it); id18: 18 characters of digits and X, whose
    -- birth digits and gender digit are read where they are digits (an X swapped into the body)
    SELECT *,
           id18 AND strpos(substr(person_id, 1, 17), 'X') = 0 AS is18,
           CASE WHEN id18 THEN CAST(try_strptime(substr(person_id, 7, 8), '%Y%m%d') AS DATE) END AS id_birth_raw
    FROM named
), numbered AS (
    -- node ids in ID order, sorting the IDs alone (sorting the whole rows took twice as long)
    SELECT person_id, CAST(row_number() OVER (ORDER BY person_id) AS BIGINT) AS node FROM {agg}
)
SELECT o.node,
       i.person_id, i.valid, i.registered, i.paid, i.first_paid, i.payments,
       i.birth_decl, i.household_id, i.name, k.name_s, k.pinyin, k.name_id, k.s_id, k.p_id, k.s_len,
       i.is18, i.id18,
       CASE WHEN i.is18 THEN CAST(substr(i.person_id, 1, 17) AS BIGINT) END AS body,
       CASE WHEN i.is18 THEN substr(i.person_id, 18, 1) END AS chk,
       CASE WHEN i.id18 THEN TRY_CAST(substr(i.person_id, 17, 1) AS INTEGER) % 2 END AS gender,
       CASE WHEN i.id18 THEN substr(i.person_id, 1, 6) END AS region,
       CASE WHEN year(i.id_birth_raw) BETWEEN 1800 AND 2100 THEN i.id_birth_raw END AS id_birth,
       -- the per-ID aggregates the node came from (link state: merged with new rows' aggregates)
       i.name_min, i.name_max, i.house_min, i.house_max, i.named_rows
FROM ids AS i JOIN numbered AS o ON o.person_id = i.person_id LEFT JOIN {names} AS k ON k.name = i.name
"""

# Node columns that blocking and scoring read: a node whose values of these change is re-blocked
# and its pairs rescored by incremental linking (the others matter to clusters and death
# matches, which are recomputed whole). node/person_id and the ID-derived columns never change
# for an ID.
PAIR_COLUMNS = ("valid", "registered", "birth_decl", "household_id", "name_id", "s_id", "p_id")

# Integer ids of the name keys (1-based, by sorted value) so pairs compare integers, not text.
NAMES_SQL = """
SELECT name, name_s, pinyin,
       CAST(dense_rank() OVER (ORDER BY name) AS INTEGER) AS name_id,
       CAST(dense_rank() OVER (ORDER BY name_s) AS INTEGER) AS s_id,
       CAST(dense_rank() OVER (ORDER BY pinyin) AS INTEGER) AS p_id,
       CAST(length(name_s) AS INTEGER) AS s_len,
       CAST(coalesce(unicode(name_s), 0) AS INTEGER) AS s_first,
       CAST(coalesce(unicode(right(name_s, 1)), 0) AS INTEGER) AS s_last
FROM {keys}
"""

def named_sql(relations: dict[str, str], ids: str) -> str:
    """(person_id, name, src) of every row of the person extracts (read from ``relations``) whose ID
    is in the relation or CTE ``ids``."""
    if not relations:
        return "SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS name, NULL::VARCHAR AS src WHERE false"
    return "\nUNION ALL\n".join(f"SELECT person_id, name, '{t}' AS src FROM {r} SEMI JOIN {ids} USING (person_id)"
                                 for t, r in relations.items())


def births_sql(alias: str) -> str:
    """SQL list of the distinct known birth dates of node ``alias`` (from the ID and declared)."""
    return (f"CASE WHEN {alias}.id_birth IS NULL AND {alias}.birth_decl IS NULL THEN []::DATE[] "
            f"WHEN {alias}.birth_decl IS NULL OR {alias}.birth_decl = {alias}.id_birth THEN [{alias}.id_birth] "
            f"WHEN {alias}.id_birth IS NULL THEN [{alias}.birth_decl] "
            f"ELSE list_sort([{alias}.id_birth, {alias}.birth_decl]) END")


def present_person_extracts(con: Engine) -> list[str]:
    """The person-carrying extract tables that exist in the warehouse."""
    have = con.relations()
    return [t for t in PERSON_EXTRACTS if t in have]


KEYS_SCHEMA = pa.schema([("name", pa.string()), ("name_s", pa.string()), ("pinyin", pa.string())])


def keys_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Name keys (simplified name, pinyin) of a batch of distinct names: run where the engine
    runs Python (Spark's workers on Spark), once per distinct name."""
    keys = name_keys(pl.from_arrow(batch.column(0)).rename("name")).to_arrow().cast(KEYS_SCHEMA)
    return pa.RecordBatch.from_arrays([keys.column(i).combine_chunks() for i in range(3)], schema=KEYS_SCHEMA)


def build_nodes(con: Engine, extracts: list[str], *, names: str, nodes: str, multi_counts: str | None = None) -> int:
    """From the person-carrying extract relations ``extracts``, materialise ``names`` (name keys
    and their integer ids, one row per distinct name: every name a node or a death record may be
    looked up by) and ``nodes`` (node ids 1..n in ID order); return the number of nodes. With
    ``multi_counts``, the per-name counts of IDs seen under several names are kept under that name
    (link state). Work relations are named after ``nodes`` and dropped."""
    q = con.dialect.quote_identifier
    obs, agg, multi, keys = (f"{nodes}_{w}" for w in ("obs", "agg", "multi", "keys"))
    counts = multi_counts or f"{nodes}_counts"
    relations = {t: t for t in extracts}
    try:
        con.materialize(obs, obs_sql(relations))
        con.materialize(agg, AGG_SQL.format(obs=q(obs)))
        con.materialize(counts, _MULTI_COUNTS.format(union=named_sql(relations, "ids"), agg=q(agg)))
        con.materialize(multi, MULTI_SQL.format(counts=q(counts)))
        deaths = " UNION SELECT name FROM death_records WHERE name IS NOT NULL" if "death_records" in con.relations() else ""
        con.map_batches(keys, f"""SELECT name_min AS name FROM {q(obs)} WHERE name_min IS NOT NULL
                       UNION SELECT name_max FROM {q(obs)} WHERE name_max IS NOT NULL
                       UNION SELECT name FROM {q(multi)} WHERE name IS NOT NULL{deaths}""", keys_batch, KEYS_SCHEMA)
        con.materialize(names, NAMES_SQL.format(keys=q(keys)))
        con.materialize(nodes, NODES_SQL.format(agg=q(agg), multi=q(multi), names=q(names)))
    finally:
        for name in (obs, agg, multi, keys) + (() if multi_counts else (counts,)):
            con.drop(name)
    return con.scalar(f"SELECT count(*) FROM {q(nodes)}")


def registry_present(con: Engine, extracts: list[str]) -> bool:
    """Whether the household register was loaded and holds rows (so 'not registered' means unknown
    to the register, not merely that no register was given)."""
    return "household" in extracts and con.scalar("SELECT count(*) > 0 FROM household")
