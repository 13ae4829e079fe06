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
"""

from __future__ import annotations

import numpy as np
import polars as pl

_CLUSTERS = """
CREATE OR REPLACE TEMP TABLE _lk_clusters AS
WITH members AS (
    SELECT m.node, m.component, n.person_id, n.valid, n.registered, n.first_paid, n.payments, n.name,
           row_number() OVER (PARTITION BY m.component
                              ORDER BY n.valid DESC, n.registered DESC, n.first_paid ASC NULLS LAST,
                                       n.payments DESC, n.person_id) AS rank,
           count(*) OVER (PARTITION BY m.component) AS cluster_size
    FROM _lk_components AS m JOIN _lk_nodes AS n USING (node)
),
canon AS (SELECT component, person_id AS canonical_id FROM members WHERE rank = 1),
link_ends AS (
    SELECT person_id_a AS person_id, person_id_b AS other, score, agreed_fields, id_level, name_level FROM _lk_links
    UNION ALL
    SELECT person_id_b, person_id_a, score, agreed_fields, id_level, name_level FROM _lk_links
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


def components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of the undirected edges (a[i], b[i]) over integer node ids.

    Returns (nodes, component) where component is the smallest node id of each node's component.
    Vectorised min-label propagation with pointer jumping (no Python loop per edge)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if len(a) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inverse[: len(a)], inverse[len(a):]
    label = np.arange(len(nodes))
    while True:
        low = np.minimum(label[ia], label[ib])
        new = label.copy()
        np.minimum.at(new, ia, low)
        np.minimum.at(new, ib, low)
        new = new[new]
        while not np.array_equal(new, new[new]):
            new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    return nodes, nodes[label]


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


def build_clusters(con: Engine, registry: bool = True) -> int:
    """Create temp table ``_lk_clusters`` from the links in ``_lk_links`` and ``_lk_nodes``;
    return the number of clusters (of two or more IDs). With a household register, valid
    registered IDs are anchors: a cluster never holds two of them (:func:`split_at_anchors`)."""
    edges = pl.from_arrow(con.query("""
        SELECT x.node AS a, y.node AS b, l.score FROM _lk_links AS l
        JOIN _lk_nodes AS x ON x.person_id = l.person_id_a JOIN _lk_nodes AS y ON y.person_id = l.person_id_b
    """))
    nodes, comp = components(edges["a"].to_numpy(), edges["b"].to_numpy())
    if len(nodes) and registry:
        flags = pl.from_arrow(con.query("SELECT node, valid AND registered AS anchor FROM _lk_nodes "
                                      "WHERE node IN (SELECT unnest($n))", {"n": nodes.tolist()}))
        anchor = pl.DataFrame({"node": nodes}).join(flags, on="node", how="left")["anchor"].fill_null(False).to_numpy()
        comp = split_at_anchors(nodes, comp, anchor, edges)
    sizes = pl.DataFrame({"node": nodes, "component": comp}).filter(pl.len().over("component") >= 2)
    con.register("_lk_components_arrow", sizes.to_arrow())
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _lk_components AS SELECT * FROM _lk_components_arrow")
    finally:
        con.drop("_lk_components_arrow")
    con.execute(_CLUSTERS)
    return int(sizes["component"].n_unique())
