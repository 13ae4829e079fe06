"""Incremental linking: the previous run's links updated with the rows of added files, equal to a
full relink of the same snapshot (tests/linking/test_incremental.py compares every link table and
the suspects).

Used by the link stage (:func:`pipelines.stages.link_stage`) when the person-bearing files of
this run are those of a run with link state (:mod:`pipelines.linking.state`) plus added files
(in practice the daily deaths file), with the same linking code and parameters. Steps, each
set-based SQL over the engine session:

1. **Touched IDs.** The added rows are aggregated per (ID, extract) as a full link does
   (:func:`~pipelines.linking.records.obs_sql`) and merged into the stored per-ID aggregates
   (``bool_or``, min/max, sums: all mergeable). The representative name of a touched ID seen
   under several names comes from the stored per-name counts plus the added rows' counts (no
   extract is scanned again). New names get their keys and new integer ids (a name key already
   known keeps its id: scoring compares ids for equality only).
2. **Changed nodes** (T): new IDs, and touched IDs whose blocking or scoring inputs
   (:data:`~pipelines.linking.records.PAIR_COLUMNS`) changed. A death record for a payee under
   the payee's name changes nothing here.
3. **Blocks recomputed whole.** K = the name/birth keys of the changed nodes, old and new; M = every
   node holding a key of K (plus T). The ID relatives of T (one digit, check character, adjacent
   swap) join them. Blocking runs over that subset with each name/birth block's size counted over
   *all* nodes (``max_block_size`` as in a full run: a block grown past the cap loses its pairs,
   one shrunk below it gains them). The pairs kept are those touching T or lying inside M: every
   other pair's blocks, ID relation and both nodes are unchanged, so its stored score stands.
4. **Rescoring** of those pairs only; the stored scored pairs of the rest are kept as they were
   (a score depends on the two nodes, their blocking relation and the registry flag only; the
   flag is part of the state's reuse condition).
5. Clusters and weak death matches over the whole link set, as a full link does.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.engine import Engine
from pipelines.linking import state as link_state
from pipelines.linking.blocking import NAME_BIRTH_KEY_ROWS, generate_candidates
from pipelines.linking.link import Laps, LinkRelations, LinkResult, finish_link
from pipelines.linking.records import (AGG_SQL, KEYS_SCHEMA, MULTI_SQL, NODES_SQL, PAIR_COLUMNS, keys_batch,
                                       named_sql, obs_sql, present_person_extracts)
from pipelines.linking.scoring import THRESHOLD, score_candidates


STATE_ONLY = ("name_min", "name_max", "house_min", "house_max", "named_rows")  # node columns only the state needs


class TooManyChanges(Exception):
    """More changed IDs than an incremental update is worth: the caller links in full."""


_MERGE = """
SELECT d.person_id,
       coalesce(p.valid, false) OR d.valid AS valid,
       coalesce(p.registered, false) OR d.registered AS registered,
       coalesce(p.paid, false) OR d.paid AS paid,
       least(p.first_paid, d.first_paid) AS first_paid,
       CAST(coalesce(p.payments, 0) + d.payments AS BIGINT) AS payments,
       least(p.birth_decl, d.birth_decl) AS birth_decl,
       least(p.household_id, d.household_id) AS household_id,
       least(p.name_min, d.name_min) AS name_min,
       greatest(p.name_max, d.name_max) AS name_max,
       least(p.house_min, d.house_min) AS house_min,
       greatest(p.house_max, d.house_max) AS house_max,
       CAST(coalesce(p.named_rows, 0) + d.named_rows AS BIGINT) AS named_rows
FROM {dagg} AS d LEFT JOIN {prev} AS p ON p.person_id = d.person_id
"""

# Per-name counts of the touched IDs seen under several names: the stored counts (or, for an ID
# that had one name, that name and its row count), plus the added rows' counts.
_COUNTS = """
WITH ids AS (SELECT person_id FROM {touched} WHERE name_min <> name_max),
old AS (
    SELECT m.person_id, m.name, m.n, m.in_house FROM {prev_multi} AS m SEMI JOIN ids USING (person_id)
    UNION ALL
    SELECT p.person_id, p.name_min, p.named_rows, p.house_min IS NOT NULL
    FROM {prev} AS p SEMI JOIN ids USING (person_id)
    WHERE p.name_min = p.name_max AND p.named_rows > 0
),
added AS (
    SELECT person_id, name, count(*) AS n, bool_or(src = 'household') AS in_house
    FROM ({named}) WHERE name IS NOT NULL GROUP BY person_id, name
)
SELECT person_id, name, CAST(sum(n) AS BIGINT) AS n, bool_or(in_house) AS in_house
FROM (SELECT * FROM old UNION ALL SELECT * FROM added)
GROUP BY person_id, name
"""

# New names with their keys: integer ids after the stored ones; a simplified name or pinyin
# already known keeps its id.
_NEW_NAMES = """
WITH top AS (SELECT max(name_id) AS name_id, max(s_id) AS s_id, max(p_id) AS p_id FROM {prev}),
s_known AS (SELECT name_s, min(s_id) AS s_id FROM {prev} WHERE name_s IN (SELECT name_s FROM {keys}) GROUP BY name_s),
p_known AS (SELECT pinyin, min(p_id) AS p_id FROM {prev} WHERE pinyin IN (SELECT pinyin FROM {keys}) GROUP BY pinyin),
s_new AS (SELECT name_s, CAST(dense_rank() OVER (ORDER BY name_s) AS INTEGER) AS k
          FROM (SELECT DISTINCT name_s FROM {keys}) ANTI JOIN s_known USING (name_s)),
p_new AS (SELECT pinyin, CAST(dense_rank() OVER (ORDER BY pinyin) AS INTEGER) AS k
          FROM (SELECT DISTINCT pinyin FROM {keys}) ANTI JOIN p_known USING (pinyin))
SELECT k.name, k.name_s, k.pinyin,
       CAST(coalesce(top.name_id, 0) + row_number() OVER (ORDER BY k.name) AS INTEGER) AS name_id,
       CAST(coalesce(sk.s_id, coalesce(top.s_id, 0) + sn.k) AS INTEGER) AS s_id,
       CAST(coalesce(pk.p_id, coalesce(top.p_id, 0) + pn.k) AS INTEGER) AS p_id,
       CAST(length(k.name_s) AS INTEGER) AS s_len,
       CAST(coalesce(unicode(k.name_s), 0) AS INTEGER) AS s_first,
       CAST(coalesce(unicode(right(k.name_s, 1)), 0) AS INTEGER) AS s_last
FROM {keys} AS k CROSS JOIN top
LEFT JOIN s_known AS sk USING (name_s) LEFT JOIN s_new AS sn USING (name_s)
LEFT JOIN p_known AS pk USING (pinyin) LEFT JOIN p_new AS pn USING (pinyin)
"""

_POWERS = ", ".join(str(10 ** (16 - i)) for i in range(17))

# IDs one digit, a check character or an adjacent swap away from a changed node's ID.
_ID_RELATIVES = f"""
WITH t AS (SELECT person_id, body, id18 FROM {{changed}}),
variants AS (
    SELECT DISTINCT t.body - ((t.body // p.p) % 10) * p.p + d.d * p.p AS body
    FROM t, (SELECT unnest([{_POWERS}]) AS p) AS p, (SELECT unnest(range(10)) AS d) AS d
    WHERE t.body IS NOT NULL
),
swaps AS (
    SELECT DISTINCT substr(person_id, 1, i) || substr(person_id, i + 2, 1) || substr(person_id, i + 1, 1)
               || substr(person_id, i + 3) AS other
    FROM t, range(17) AS r(i)
    WHERE t.id18 AND substr(person_id, i + 1, 1) <> substr(person_id, i + 2, 1)
)
SELECT person_id FROM {{nodes}} WHERE body IN (SELECT body FROM variants)
UNION SELECT person_id FROM {{nodes}} WHERE person_id IN (SELECT other FROM swaps)
"""


def link_incremental(con: Engine, prev: link_state.LinkState, added: dict[str, str], *, registry: bool,
                     threshold: float = THRESHOLD, max_block_size: int = 1000, batch_rows: int = 1_000_000,
                     max_changed: int = 200_000, state_dir: Path | None = None) -> LinkResult:
    """Update the link state ``prev`` with the rows of ``added`` (extract -> SELECT of the rows of
    its added files) and create the four link tables, as :func:`~pipelines.linking.link_persons`
    would over the whole snapshot. Raises :class:`TooManyChanges` (before creating any output)
    when more than ``max_changed`` IDs changed. With ``state_dir``, writes the updated state there."""
    work = LinkRelations()
    q = con.dialect.quote_identifier
    w = {k: f"_lki_{k}" for k in ("prev_nodes", "prev_t", "prev_names", "prev_multi", "prev_cand", "dobs", "dagg", "tagg",
                                  "tcounts", "tmulti", "newkeys", "newnames", "tnodes0", "tnodes", "changed",
                                  "K", "M", "S", "sub", "sub_keys", "sub_cand", "cand", "rescored", "link_nodes")}
    w |= {f"delta_{e}": f"_lki_delta_{e}" for e in added}
    result = LinkResult(mode="incremental")
    lap = Laps(result)
    info: dict[str, int | str] = {"from_run": prev.run_dir.name}
    result.incremental = info
    try:
        for table in link_state.TABLES:
            con.register_query(w[f"prev_{table}"], prev.relation_sql(con, table))
        con.register(w["prev_cand"], [prev.candidates])
        for e, sql in added.items():
            con.register_query(w[f"delta_{e}"], sql)
        deltas = {e: w[f"delta_{e}"] for e in added}

        # 1. touched IDs: the added rows' aggregates merged into the stored ones
        con.materialize(w["dobs"], obs_sql(deltas))
        con.materialize(w["dagg"], AGG_SQL.format(obs=q(w["dobs"])))
        # the stored rows of the touched IDs (the stored nodes are read whole once more, below)
        con.materialize(w["prev_t"], f"SELECT p.* FROM {q(w['prev_nodes'])} AS p SEMI JOIN {q(w['dagg'])} USING (person_id)")
        info["touched_ids"] = con.materialize(w["tagg"], _MERGE.format(dagg=q(w["dagg"]), prev=q(w["prev_t"])))
        con.materialize(w["tcounts"], _COUNTS.format(touched=q(w["tagg"]), prev_multi=q(w["prev_multi"]),
                                                     prev=q(w["prev_t"]),
                                                     named=named_sql(deltas, "ids")))
        con.materialize(w["tmulti"], MULTI_SQL.format(counts=q(w["tcounts"])))
        # names to look up: the added rows' (death records included) and the touched IDs' representative
        # names (a name counted before but never the min, max or representative of an ID has no keys yet)
        names_added = " UNION ".join([f"SELECT name FROM {q(r)} WHERE name IS NOT NULL" for r in deltas.values()]
                                     + [f"SELECT name FROM {q(w['tmulti'])} WHERE name IS NOT NULL"])
        con.map_batches(w["newkeys"], f"SELECT name FROM ({names_added}) AS n ANTI JOIN {q(w['prev_names'])} USING (name)",
                        keys_batch, KEYS_SCHEMA)
        info["new_names"] = con.materialize(w["newnames"], _NEW_NAMES.format(keys=q(w["newkeys"]), prev=q(w["prev_names"])))
        con.register_query(work.names, f"SELECT * FROM {q(w['prev_names'])} UNION ALL BY NAME SELECT * FROM {q(w['newnames'])}")
        con.materialize(w["tnodes0"], NODES_SQL.format(agg=q(w["tagg"]), multi=q(w["tmulti"]), names=q(work.names)))
        changed = " OR ".join(f"t.{c} IS DISTINCT FROM p.{c}" for c in PAIR_COLUMNS)
        con.materialize(w["tnodes"], f"""
            SELECT CAST(coalesce(p.node, top.node + row_number() OVER (PARTITION BY p.node IS NULL ORDER BY t.person_id))
                        AS BIGINT) AS node,
                   t.* EXCLUDE (node), p.person_id IS NULL AS is_new, p.person_id IS NULL OR {changed} AS changed
            FROM {q(w['tnodes0'])} AS t LEFT JOIN {q(w['prev_t'])} AS p ON p.person_id = t.person_id
            CROSS JOIN (SELECT CAST($top AS BIGINT) AS node) AS top""", {"top": prev.max_node(con)})
        info["new_ids"] = int(con.scalar(f"SELECT count(*) FROM {q(w['tnodes'])} WHERE is_new"))
        info["changed_ids"] = n_changed = int(con.scalar(f"SELECT count(*) FROM {q(w['tnodes'])} WHERE changed"))
        if n_changed > max_changed:
            raise TooManyChanges(f"{n_changed:,} IDs changed (more than {max_changed:,})")
        # every node, in memory: what blocking, clusters and death matching read (without the aggregates)
        result.person_ids = con.materialize(work.nodes, f"""
            SELECT * EXCLUDE ({', '.join(STATE_ONLY)}) FROM (
                SELECT p.* FROM {q(w['prev_nodes'])} AS p ANTI JOIN {q(w['tnodes'])} AS t USING (person_id)
                UNION ALL BY NAME SELECT * EXCLUDE (is_new, changed) FROM {q(w['tnodes'])})""")
        top_node = int(con.scalar(f"SELECT max(node) FROM {q(w['tnodes'])}") or 0)
        result.extracts = present_person_extracts(con)
        lap("nodes")

        # 2-4. blocks of the changed nodes recomputed whole, their pairs rescored; the rest kept
        if n_changed:
            _rescore(con, w, work, info, registry=registry, threshold=threshold, max_block_size=max_block_size,
                     batch_rows=batch_rows)
            lap("block")
            flags = q(w["S"])
            con.materialize(work.scored, f"""
                SELECT c.* FROM {q(w['prev_cand'])} AS c
                LEFT JOIN {flags} AS x ON x.person_id = c.person_id_a LEFT JOIN {flags} AS y ON y.person_id = c.person_id_b
                WHERE NOT (coalesce(x.in_t, false) OR coalesce(y.in_t, false)
                           OR (coalesce(x.in_m, false) AND coalesce(y.in_m, false)))
                UNION ALL BY NAME SELECT * FROM {q(w['rescored'])}""")
        else:
            info.update(blocks_recomputed=0, ids_reblocked=0, pairs_rescored=0)
            con.materialize(work.scored, f"SELECT * FROM {q(w['prev_cand'])}")
            lap("block")
        result.pairs_scored = int(info["pairs_rescored"])
        result.pairs_stored = int(con.scalar(f"SELECT count(*) FROM {q(work.scored)}"))
        lap("score")

        # 5. clusters (over the linked IDs, node ids in ID order) and death matches, over everything
        con.materialize(w["link_nodes"], f"""
            SELECT CAST(row_number() OVER (ORDER BY n.person_id) AS BIGINT) AS node, n.* EXCLUDE (node)
            FROM {q(work.nodes)} AS n
            WHERE n.person_id IN (SELECT person_id_a FROM {q(work.scored)} WHERE linked
                                  UNION SELECT person_id_b FROM {q(work.scored)} WHERE linked)""")
        finish_link(con, result, lap, work=work, nodes=w["link_nodes"], registry=registry)
        if state_dir is not None:
            _write_state(con, prev, Path(state_dir), w, work, registry=registry, threshold=threshold,
                         max_block_size=max_block_size, info_max_node=top_node)
            lap("state")
    finally:
        for name in list(w.values()) + list(work.all()):
            con.drop(name)
    return result


def _rescore(con: Engine, w: dict[str, str], work: LinkRelations, info: dict, *, registry: bool, threshold: float,
             max_block_size: int, batch_rows: int) -> None:
    """Blocking over the changed nodes, the members of their name/birth blocks and their ID
    relatives; scoring of the pairs touching a changed node or inside those blocks (``w['rescored']``)."""
    q = con.dialect.quote_identifier
    nodes = q(work.nodes)
    con.materialize(w["changed"], f"SELECT * FROM {q(w['tnodes'])} WHERE changed")
    old = f"(SELECT p.* FROM {q(w['prev_t'])} AS p SEMI JOIN {q(w['changed'])} USING (person_id))"
    con.materialize(w["K"], f"""SELECT DISTINCT p_id, birth FROM (
        {NAME_BIRTH_KEY_ROWS.format(id='person_id', nodes=q(w['changed']))} UNION ALL {NAME_BIRTH_KEY_ROWS.format(id='person_id', nodes=old)})""")
    info["blocks_recomputed"] = int(con.scalar(f"SELECT count(*) FROM {q(w['K'])}"))
    con.materialize(w["M"], f"""
        SELECT DISTINCT person_id FROM ({NAME_BIRTH_KEY_ROWS.format(id='person_id', nodes=nodes)}) SEMI JOIN {q(w['K'])} USING (p_id, birth)
        UNION SELECT person_id FROM {q(w['changed'])}""")
    relatives = _ID_RELATIVES.format(changed=q(w["changed"]), nodes=nodes)
    con.materialize(w["S"], f"""
        WITH s AS (SELECT person_id FROM {q(w['M'])} UNION SELECT person_id FROM ({relatives}))
        SELECT s.person_id, s.person_id IN (SELECT person_id FROM {q(w['changed'])}) AS in_t,
               s.person_id IN (SELECT person_id FROM {q(w['M'])}) AS in_m
        FROM s""")
    info["ids_reblocked"] = int(con.scalar(f"SELECT count(*) FROM {q(w['S'])}"))
    # the subset, node ids in ID order (pairs come out as a full link orients them)
    con.materialize(w["sub"], f"""
        SELECT CAST(row_number() OVER (ORDER BY n.person_id) AS BIGINT) AS node, n.* EXCLUDE (node), s.in_t, s.in_m
        FROM {nodes} AS n JOIN {q(w['S'])} AS s USING (person_id)""")
    sub_keys = NAME_BIRTH_KEY_ROWS.format(id="node", nodes=q(w["sub"]))
    con.materialize(w["sub_keys"], f"""
        WITH k AS ({sub_keys}),
        sizes AS (SELECT p_id, birth, count(*) AS n
                  FROM ({NAME_BIRTH_KEY_ROWS.format(id='person_id', nodes=nodes)}) SEMI JOIN (SELECT DISTINCT p_id, birth FROM k) USING (p_id, birth)
                  GROUP BY p_id, birth)
        SELECT k.node, k.p_id, k.birth, sizes.n FROM k JOIN sizes USING (p_id, birth)""")
    generate_candidates(con, nodes=w["sub"], out=w["sub_cand"], max_block_size=max_block_size, keys=w["sub_keys"])
    info["pairs_rescored"] = con.materialize(w["cand"], f"""
        SELECT c.* FROM {q(w['sub_cand'])} AS c
        JOIN {q(w['sub'])} AS x ON x.node = c.a JOIN {q(w['sub'])} AS y ON y.node = c.b
        WHERE x.in_t OR y.in_t OR (x.in_m AND y.in_m)""")
    score_candidates(con, nodes=w["sub"], names=work.names, candidates=w["cand"], out=w["rescored"],
                     registry=registry, threshold=threshold, batch_rows=batch_rows)


def _write_state(con: Engine, prev: link_state.LinkState, state_dir: Path, w: dict[str, str], work: LinkRelations, *,
                 registry: bool, threshold: float, max_block_size: int, info_max_node: int) -> None:
    """The updated state: the predecessor's bases hard-linked, its deltas plus this update's rows."""
    q, read = con.dialect.quote_identifier, con.dialect.read_parquet
    state_dir.mkdir(parents=True, exist_ok=True)
    for table in link_state.TABLES:
        link_state.link_file(prev.base(table), state_dir / f"{table}.parquet")
    old = {t: read([prev.delta(t)]) for t in link_state.TABLES}
    con.write_parquet(f"""SELECT d.* FROM {old['nodes']} AS d ANTI JOIN {q(w['tnodes'])} USING (person_id)
                          UNION ALL BY NAME SELECT * EXCLUDE (is_new, changed) FROM {q(w['tnodes'])} ORDER BY person_id""",
                      state_dir / "nodes_delta.parquet")
    con.write_parquet(f"SELECT * FROM {old['names']} UNION ALL BY NAME SELECT * FROM {q(w['newnames'])} ORDER BY name",
                      state_dir / "names_delta.parquet")
    con.write_parquet(f"""SELECT d.* FROM {old['multi']} AS d ANTI JOIN (SELECT DISTINCT person_id FROM {q(w['tcounts'])}) USING (person_id)
                          UNION ALL BY NAME SELECT * FROM {q(w['tcounts'])} ORDER BY person_id, name""",
                      state_dir / "multi_delta.parquet")
    link_state.write_meta(state_dir, link_state.meta(registry=registry, threshold=threshold, max_block_size=max_block_size,
                                                     base_run=prev.meta.get("base_run") or prev.run_dir.name,
                                                     max_node=max(prev.max_node(con), int(info_max_node))))
