"""Identity clusters: connected components of the high-confidence links, and the canonical ID.

The canonical ID of a cluster is its first member by, in order:

1. a valid checksum (an ID that fails GB 11643 is never canonical if a valid one exists);
2. presence in the household register (the police register is the authority on who exists);
3. the earliest first pension period (the ID the pension was established under);
4. the most pension payments;
5. the smaller ID text (deterministic tie-break).

``rank`` orders all members this way (1 = canonical); rules keep the best-ranked ID paying in a
period and treat the others as duplicates. Only IDs linked to at least one other ID are listed:
an ID absent from ``identity_clusters`` is its own canonical ID.

Links are transitive only up to the household register: two valid IDs the register lists as two
people are never put in one cluster, even when a broken ID sits one typo away from both (a twin's
ID with a wrong check character can be an adjacent transposition of the other twin's ID). Such a
component is split, each other ID joining the registered ID it is linked to best.

Components are found in SQL by iterative minimum-label propagation (as Splink does): every node
of a link starts with its own node id as label and takes the smallest label among itself and its
neighbours, one materialised relation per round, until no label changes (rounds ≈ the longest
path in a cluster, two or three here). It runs on any engine. Only components holding two
registered IDs (rare) are split in Python, over their own few links.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.engine import Engine

_CLUSTERS = """
WITH members AS (
    SELECT m.node, m.component, n.person_id, n.valid, n.registered, n.first_paid, n.payments, n.name,
           row_number() OVER (PARTITION BY m.component
                              ORDER BY n.valid DESC, n.registered DESC, n.first_paid ASC NULLS LAST,
                                       n.payments DESC, n.person_id) AS rank,
           count(*) OVER (PARTITION BY m.component) AS cluster_size
    FROM {components} AS m JOIN {nodes} AS n USING (node)
),
canon AS (SELECT component, person_id AS canonical_id FROM members WHERE rank = 1),
link_ends AS (
    SELECT person_id_a AS person_id, person_id_b AS other, score, agreed_fields, id_level, name_level FROM {links}
    UNION ALL
    SELECT person_id_b, person_id_a, score, agreed_fields, id_level, name_level FROM {links}
),
best AS (
    SELECT person_id, first(other ORDER BY score DESC, other) AS linked_to, max(score) AS link_score,
           first(agreed_fields ORDER BY score DESC, other) AS agreed_fields,
           first(id_level ORDER BY score DESC, other) AS id_level,
           first(name_level ORDER BY score DESC, other) AS name_level
    FROM link_ends GROUP BY person_id
)
SELECT m.person_id, c.canonical_id, CAST(m.rank AS INTEGER) AS rank, m.rank = 1 AS is_canonical,
       CAST(m.cluster_size AS INTEGER) AS cluster_size, m.name, m.valid, m.registered,
       m.first_paid AS first_paid_period, m.payments AS payment_count,
       concat_ws('; ',
           CASE WHEN m.valid THEN 'valid checksum' ELSE 'invalid checksum' END,
           CASE WHEN m.registered THEN 'in household register' ELSE 'not in household register' END,
           CASE WHEN m.first_paid IS NOT NULL THEN 'first paid ' || strftime(m.first_paid, '%Y-%m') ELSE 'never paid' END,
           CAST(m.payments AS VARCHAR) || ' payments') AS rank_basis,
       b.linked_to, b.link_score, b.agreed_fields AS link_agreed_fields, b.id_level AS link_id_level,
       b.name_level AS link_name_level
FROM members AS m JOIN canon AS c USING (component) LEFT JOIN best AS b USING (person_id)
ORDER BY c.canonical_id, m.rank
"""


_EDGES = """
SELECT x.node AS a, y.node AS b, l.score FROM {links} AS l
JOIN {nodes} AS x ON x.person_id = l.person_id_a JOIN {nodes} AS y ON y.person_id = l.person_id_b
"""

_START = "SELECT a AS node, a AS label FROM {edges} UNION SELECT b, b FROM {edges}"

# One round: each node's smallest label among itself and its neighbours.
_ROUND = """
WITH ends AS (SELECT a AS node, b AS other FROM {edges} UNION ALL SELECT b, a FROM {edges}),
seen AS (SELECT e.node, min(l.label) AS label FROM ends AS e JOIN {labels} AS l ON l.node = e.other GROUP BY e.node)
SELECT l.node, least(l.label, coalesce(s.label, l.label)) AS label, coalesce(s.label < l.label, false) AS changed
FROM {labels} AS l LEFT JOIN seen AS s USING (node)
"""

MAX_ROUNDS = 64


def components_sql(con: Engine, edges: str, out: str) -> int:
    """Materialise ``out`` (node, label): the connected components of the undirected edges
    (a, b) of relation ``edges``, each node labelled with the smallest node id of its component;
    return the rounds it took."""
    q = con.dialect.quote_identifier
    con.materialize(out, _START.format(edges=q(edges)))
    rounds = 0
    while True:
        rounds += 1
        step = f"{out}_round"
        con.materialize(step, _ROUND.format(edges=q(edges), labels=q(out)))
        changed = con.scalar(f"SELECT count(*) FROM {q(step)} WHERE changed")
        con.materialize(out, f"SELECT node, label FROM {q(step)}")
        con.drop(step)
        if not changed:
            return rounds
        if rounds >= MAX_ROUNDS:  # pragma: no cover - clusters of a few IDs converge in a few rounds
            raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")


def split_at_anchors(nodes: np.ndarray, comp: np.ndarray, anchor: np.ndarray, edges: pl.DataFrame) -> np.ndarray:
    """Component labels where no component holds two anchors (IDs the household register knows as
    two different people). In a component with several anchors every other ID joins the anchor
    reached over its best-scored link, hop by hop (greedy, highest score first; ties: smaller
    anchor); ``edges`` has columns a, b (node ids) and score. Returns the new label per node."""
    frame = pl.DataFrame({"node": nodes, "comp": comp, "anchor": anchor})
    counts = frame.group_by("comp").agg(pl.col("anchor").sum().alias("anchors"))
    conflict = counts.filter(pl.col("anchors") >= 2)["comp"]
    if conflict.is_empty():
        return comp
    inside = frame.filter(pl.col("comp").is_in(conflict.implode()))
    label = dict(zip(inside.filter("anchor")["node"].to_list(), inside.filter("anchor")["node"].to_list()))
    both = pl.concat([edges.select("a", "b", "score"), edges.select(a="b", b="a", score="score")])
    both = both.filter(pl.col("a").is_in(inside["node"].implode()))
    todo = set(inside.filter(~pl.col("anchor"))["node"].to_list())
    while todo:
        known = pl.DataFrame({"b": list(label), "to": list(label.values())}, schema={"b": pl.Int64, "to": pl.Int64})
        step = (both.filter(pl.col("a").is_in(list(todo))).join(known, on="b")
                .sort(["a", "score", "to"], descending=[False, True, False]).group_by("a", maintain_order=True).first())
        if step.is_empty():
            break
        label.update(dict(zip(step["a"].to_list(), step["to"].to_list())))
        todo -= set(step["a"].to_list())
    out = comp.copy()
    index = {n: i for i, n in enumerate(nodes.tolist())}
    for n, to in label.items():
        out[index[n]] = to
    return out


def build_clusters(con: Engine, *, nodes: str, links: str, out: str, registry: bool = True) -> int:
    """Materialise ``out`` (the identity_clusters columns) from the relations ``links``
    (person_links columns) and ``nodes``; return the number of clusters (of two or more IDs). With
    a household register, valid registered IDs are anchors: a cluster never holds two of them
    (:func:`split_at_anchors`, over the few components holding two)."""
    q = con.dialect.quote_identifier
    edges, labels, components = f"{out}_edges", f"{out}_labels", f"{out}_components"
    try:
        con.materialize(edges, _EDGES.format(links=q(links), nodes=q(nodes)))
        components_sql(con, edges, labels)
        label = "l.label"
        if registry:
            conflict = con.query(f"""
                SELECT l.node, l.label AS comp, coalesce(n.valid AND n.registered, false) AS anchor
                FROM {q(labels)} AS l JOIN {q(nodes)} AS n USING (node)
                WHERE l.label IN (SELECT l2.label FROM {q(labels)} AS l2 JOIN {q(nodes)} AS n2 USING (node)
                                  WHERE n2.valid AND n2.registered GROUP BY l2.label HAVING count(*) >= 2)
                ORDER BY l.node""")
            if conflict.num_rows:
                frame = pl.from_arrow(conflict)
                inside = con.query(f"SELECT a, b, score FROM {q(edges)} WHERE a IN (SELECT node FROM {q(labels)} "
                                   f"WHERE label IN (SELECT unnest($c)))", {"c": frame["comp"].unique().to_list()})
                split = split_at_anchors(frame["node"].to_numpy(), frame["comp"].to_numpy(),
                                         frame["anchor"].to_numpy(), pl.from_arrow(inside))
                con.register(f"{out}_split", pl.DataFrame({"node": frame["node"], "split": split}).to_arrow())
                label = "coalesce(s.split, l.label)"
        split_join = f"LEFT JOIN {q(out + '_split')} AS s USING (node)" if label != "l.label" else ""
        con.materialize(components, f"""
            SELECT node, component FROM (
                SELECT l.node, {label} AS component, count(*) OVER (PARTITION BY {label}) AS size
                FROM {q(labels)} AS l {split_join}) WHERE size >= 2""")
        con.materialize(out, _CLUSTERS.format(components=q(components), nodes=q(nodes), links=q(links)))
        return int(con.scalar(f"SELECT count(DISTINCT component) FROM {q(components)}"))
    finally:
        for name in (edges, labels, components, f"{out}_split"):
            con.drop(name)
