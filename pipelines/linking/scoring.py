"""Scoring candidate pairs: comparison levels per field, match weights, score, agreed fields.

A Fellegi–Sunter style score with fixed, documented weights (bits = log2 of a likelihood
ratio): ``match_weight = PRIOR + Σ weight(field level)`` and ``score = 1 / (1 + 2^-match_weight)``.
A pair is a high-confidence link when ``score >= THRESHOLD`` (0.99, i.e. weight ≥ 6.63).

Field levels (the first that applies):

=========  ====================================================================================
id         ``check_char`` (same 17-digit body, other check character) +8; ``substitution``
           (one digit, same check character: one ID fails its checksum) +8; ``transposition``
           (adjacent swap) +8; ``revalidated_seq`` / ``_birth`` / ``_region`` (one digit and a
           recomputed check character, both IDs valid) +2 / 0 / −2; ``two_edits`` +1;
           ``none`` (same name key and birth date only) −6
name       ``exact`` +8; ``t2s`` (equal once simplified: 張偉 = 张伟) +8; ``homophone`` (same
           toneless pinyin: 张伟 ~ 张玮) +5; ``similar`` (character-level Levenshtein
           similarity > 0.5, e.g. 张建国 ~ 张建军; two-character names sharing only the
           surname are ``different``) −6; ``different`` −10; ``unknown`` −1
birth      ``equal`` (a declared or ID birth date in common) +3; ``differs`` −12 (the spec asks
           for the same name *and* birth date: a typo inside the birth digits is not a
           confident match); ``unknown`` −8
gender     (17th ID digit) ``equal`` +1; ``differs`` −3; ``unknown`` 0
registry   ``both_registered`` (both IDs in the household register: the register says these
           are two people) −20; ``one_registered`` (the other ID is unknown to the register) +2;
           ``neither`` / ``unknown`` (no household extract) 0
=========  ====================================================================================

PRIOR is −6. With these weights a typo'd or checksum-broken ID with the same (or simplified, or
homophone) name and birth date links; twins (similar names, both registered), namesakes born the
same day in neighbouring regions (both registered) and a typo inside the birth digits do not.

Vectorised: the node attributes are loaded once as numpy arrays indexed by node id (names as
integer ids of their keys), each batch of candidate pairs is compared by array gathers, and only
name similarity calls rapidfuzz (``cpdist``, over the distinct simplified names, for pairs whose
names differ in characters and sound and could be similar). Text columns are attached in SQL to
the few pairs that are stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.engine import Engine
from pipelines.linking.blocking import BLOCKS, CHECK_CHAR, REVALIDATED, SUBSTITUTION, TRANSPOSITION, TWO_EDITS
from pipelines.linking.names import name_similarity
from pipelines.linking.records import births_sql

PRIOR = -6.0
THRESHOLD = 0.99
SIMILAR_NAME = 0.5
KEEP_SCORE = 0.01  # pairs below this whose names differ are scored and counted, not stored

ID_LEVELS = ("none", "check_char", "substitution", "transposition", "revalidated_seq", "revalidated_birth",
             "revalidated_region", "two_edits")
NAME_LEVELS = ("exact", "t2s", "homophone", "similar", "different", "unknown")
BIRTH_LEVELS = ("equal", "differs", "unknown")
GENDER_LEVELS = ("equal", "differs", "unknown")
REGISTRY_LEVELS = ("both_registered", "one_registered", "neither", "unknown")
FIELDS = {"id": ID_LEVELS, "name": NAME_LEVELS, "birth": BIRTH_LEVELS, "gender": GENDER_LEVELS,
          "registry": REGISTRY_LEVELS}

WEIGHTS: dict[str, dict[str, float]] = {
    "id": {"check_char": 8.0, "substitution": 8.0, "transposition": 8.0, "revalidated_seq": 2.0,
           "revalidated_birth": 0.0, "revalidated_region": -2.0, "two_edits": 1.0, "none": -6.0},
    "name": {"exact": 8.0, "t2s": 8.0, "homophone": 5.0, "similar": -6.0, "different": -10.0, "unknown": -1.0},
    "birth": {"equal": 3.0, "differs": -12.0, "unknown": -8.0},
    "gender": {"equal": 1.0, "differs": -3.0, "unknown": 0.0},
    "registry": {"both_registered": -20.0, "one_registered": 2.0, "neither": 0.0, "unknown": 0.0},
}
_TABLES = {f: np.array([WEIGHTS[f][lvl] for lvl in levels], dtype=np.float64) for f, levels in FIELDS.items()}
# Fields that agreed, as bits (listed by name for stored pairs).
AGREED_BITS = (("id", 1), ("name", 2), ("birth_date", 4), ("gender", 8), ("region", 16), ("household", 32))
NULL_DAY = np.iinfo(np.int32).min

_NODE_SQL = """
SELECT node, coalesce(name_id, 0) AS name_id, coalesce(s_id, 0) AS s_id, coalesce(p_id, 0) AS p_id,
       coalesce(CAST(id_birth - DATE '1970-01-01' AS INTEGER), {null}) AS id_birth,
       coalesce(CAST(birth_decl - DATE '1970-01-01' AS INTEGER), {null} + 1) AS birth_decl,
       coalesce(CAST(gender AS TINYINT), -1) AS gender, registered,
       coalesce(CAST(body // 100000000000 AS INTEGER), -1) AS region,
       coalesce(hash(household_id), 0) AS household
FROM _lk_nodes ORDER BY node
"""


def _numpy(table: pa.Table) -> dict[str, np.ndarray]:
    """Columns of an Arrow table as numpy arrays (strings as object arrays)."""
    return {name: table.column(name).to_numpy() for name in table.column_names}


@dataclass
class NodeArrays:
    """Per-node attributes as arrays indexed by node id (index 0 is a blank node), plus the
    distinct simplified names indexed by ``s_id`` (object array, index 0 = None) and their lengths."""

    name_id: np.ndarray
    s_id: np.ndarray
    p_id: np.ndarray
    id_birth: np.ndarray
    birth_decl: np.ndarray
    gender: np.ndarray
    registered: np.ndarray
    region: np.ndarray
    household: np.ndarray
    names_s: np.ndarray
    s_len: np.ndarray
    s_first: np.ndarray
    s_last: np.ndarray

    @classmethod
    def load(cls, con: Engine) -> "NodeArrays":
        """Read ``_lk_nodes`` and ``_lk_names`` (node ids must be 1..n)."""
        cols = _numpy(con.query(_NODE_SQL.format(null=NULL_DAY)))
        blank = {"name_id": 0, "s_id": 0, "p_id": 0, "id_birth": NULL_DAY, "birth_decl": NULL_DAY + 1, "gender": -1,
                 "registered": False, "region": -1, "household": 0}
        arrays = {k: np.concatenate([np.array([v], dtype=np.asarray(cols[k]).dtype), np.asarray(cols[k])])
                  for k, v in blank.items()}
        names = _numpy(con.query("SELECT DISTINCT s_id, name_s, s_len, s_first, s_last FROM _lk_names ORDER BY s_id"))
        names_s = np.concatenate([np.array([None], dtype=object), np.asarray(names["name_s"], dtype=object)])
        extra = {k: np.concatenate([[0], np.asarray(names[k], dtype=np.int32)]) for k in ("s_len", "s_first", "s_last")}
        return cls(**arrays, names_s=names_s, **extra)


@dataclass
class ScoreStats:
    """What scoring did: pairs scored, stored and linked, and the seconds it took."""

    pairs_scored: int = 0
    pairs_stored: int = 0
    links: int = 0
    seconds: float = 0.0

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_scored / self.seconds if self.seconds else 0.0


def id_codes(relation: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """ID level code (index into ID_LEVELS) from the blocking relation code and the 1-based position."""
    relation = np.nan_to_num(np.asarray(relation, dtype=np.float64), nan=0).astype(np.int8)
    pos = np.nan_to_num(np.asarray(pos, dtype=np.float64), nan=0).astype(np.int16)
    out = np.zeros(len(relation), dtype=np.int8)
    out[relation == CHECK_CHAR] = 1
    out[relation == SUBSTITUTION] = 2
    out[relation == TRANSPOSITION] = 3
    reval = relation == REVALIDATED
    out[reval & (pos >= 15)] = 4
    out[reval & (pos >= 7) & (pos <= 14)] = 5
    out[reval & (pos <= 6)] = 6
    out[relation == TWO_EDITS] = 7
    return out


def compare(nodes: NodeArrays, a: np.ndarray, b: np.ndarray, registry: bool) -> dict[str, np.ndarray]:
    """Level codes of the name, birth, gender and registry fields for pairs of node ids (a, b),
    the name similarity, and the region / household agreement flags."""
    na, nb = nodes.name_id[a], nodes.name_id[b]
    sa, sb = nodes.s_id[a], nodes.s_id[b]
    name = np.full(len(a), 4, dtype=np.int8)  # different, unless ...
    undecided = (na != 0) & (nb != 0) & (na != nb) & (sa != sb) & (nodes.p_id[a] != nodes.p_id[b])
    name[(na != 0) & (nb != 0) & (nodes.p_id[a] == nodes.p_id[b])] = 2
    name[(na != 0) & (nb != 0) & (sa == sb)] = 1
    name[(na != 0) & (nb != 0) & (na == nb)] = 0
    name[(na == 0) | (nb == 0)] = 5
    similarity = np.zeros(len(a), dtype=np.float32)
    # A similarity above 0.5 (edit distance below half the longer length) needs three or more
    # characters, and below five characters (one edit at most) the same first or last character:
    # only those pairs go to rapidfuzz.
    longest = np.maximum(nodes.s_len[sa], nodes.s_len[sb])
    check = undecided & (longest >= 3) & ((longest >= 5) | (nodes.s_first[sa] == nodes.s_first[sb])
                                          | (nodes.s_last[sa] == nodes.s_last[sb]))
    if check.any():
        similarity[check] = name_similarity(nodes.names_s[sa[check]], nodes.names_s[sb[check]])
    name[check & (similarity > SIMILAR_NAME)] = 3

    ia, ib, da, db = nodes.id_birth[a], nodes.id_birth[b], nodes.birth_decl[a], nodes.birth_decl[b]
    known_a = (ia != NULL_DAY) | (da != NULL_DAY + 1)
    known_b = (ib != NULL_DAY) | (db != NULL_DAY + 1)
    same = (ia == ib) & (ia != NULL_DAY) | (ia == db) | (da == ib) | (da == db) & (da != NULL_DAY + 1)
    birth = np.where(~known_a | ~known_b, 2, np.where(same, 0, 1)).astype(np.int8)

    ga, gb = nodes.gender[a], nodes.gender[b]
    gender = np.where((ga < 0) | (gb < 0), 2, np.where(ga == gb, 0, 1)).astype(np.int8)
    ra, rb = nodes.registered[a], nodes.registered[b]
    reg = np.where(ra & rb, 0, np.where(ra | rb, 1, 2)).astype(np.int8) if registry else np.full(len(a), 3, np.int8)
    same_region = (nodes.region[a] == nodes.region[b]) & (nodes.region[a] >= 0)
    same_household = (nodes.household[a] == nodes.household[b]) & (nodes.household[a] != 0)
    return {"name": name, "similarity": similarity, "birth": birth, "gender": gender, "registry": reg,
            "same_region": same_region, "same_household": same_household}


def score_levels(levels: dict[str, np.ndarray], threshold: float = THRESHOLD) -> dict[str, np.ndarray]:
    """Weights per field, match weight, score, ``linked`` and the agreed-field bits from level codes
    (keys id, name, birth, gender, registry as indexes into the *_LEVELS tuples, plus same_region
    and same_household)."""
    weights = {f: _TABLES[f][levels[f]] for f in FIELDS}
    total = PRIOR + sum(weights.values())
    score = 1.0 / (1.0 + np.exp2(-total))
    agreed = ((levels["id"] != 0) * 1 + (levels["name"] <= 2) * 2 + (levels["birth"] == 0) * 4
              + (levels["gender"] == 0) * 8 + levels["same_region"] * 16 + levels["same_household"] * 32)
    return {**{f"w_{f}": w for f, w in weights.items()}, "match_weight": total, "score": score,
            "linked": score >= threshold, "agreed_bits": agreed.astype(np.int8)}


def level_names(field: str, codes: np.ndarray) -> list[str]:
    """Level codes of a field as names (for tests and reports)."""
    return [FIELDS[field][c] for c in np.asarray(codes)]


def agreed_fields(bits: int) -> list[str]:
    """The agreed-field bit mask as field names."""
    return [name for name, bit in AGREED_BITS if bits & bit]


_STORED_SCHEMA = pa.schema([
    ("a", pa.int64()), ("b", pa.int64()), ("blocks", pa.int8()), ("id_code", pa.int8()), ("pos", pa.int8()),
    ("name_code", pa.int8()), ("similarity", pa.float32()), ("birth_code", pa.int8()), ("gender_code", pa.int8()),
    ("registry_code", pa.int8()), ("w_id", pa.float64()), ("w_name", pa.float64()), ("w_birth", pa.float64()),
    ("w_gender", pa.float64()), ("w_registry", pa.float64()), ("match_weight", pa.float64()), ("score", pa.float64()),
    ("linked", pa.bool_()), ("agreed_bits", pa.int8()),
])


def _sql_list(items) -> str:
    return "[" + ", ".join("'" + i + "'" for i in items) + "]"


STORED_SQL = f"""
CREATE OR REPLACE TEMP TABLE _lk_scored AS
SELECT x.person_id AS person_id_a, y.person_id AS person_id_b, s.score, s.match_weight, s.linked,
       list_filter({_sql_list(f for f, _ in AGREED_BITS)}, lambda f, i: (s.agreed_bits & (1 << (i - 1))) > 0)
           AS agreed_fields,
       {_sql_list(ID_LEVELS)}[s.id_code + 1] AS id_level, CAST(nullif(s.pos, 0) AS INTEGER) AS id_position,
       x.name AS name_a, y.name AS name_b, {_sql_list(NAME_LEVELS)}[s.name_code + 1] AS name_level,
       CAST(s.similarity AS DOUBLE) AS name_similarity,
       {_sql_list(BIRTH_LEVELS)}[s.birth_code + 1] AS birth_level, {births_sql("x")} AS births_a,
       {births_sql("y")} AS births_b,
       {_sql_list(GENDER_LEVELS)}[s.gender_code + 1] AS gender_level,
       {_sql_list(REGISTRY_LEVELS)}[s.registry_code + 1] AS registry_level,
       list_filter({_sql_list(BLOCKS)}, lambda k, i: (s.blocks & (1 << (i - 1))) > 0) AS blocks,
       {{'id': s.w_id, 'name': s.w_name, 'birth': s.w_birth, 'gender': s.w_gender, 'registry': s.w_registry}} AS weights
FROM _lk_stored_arrow AS s
JOIN _lk_nodes AS x ON x.node = s.a JOIN _lk_nodes AS y ON y.node = s.b
ORDER BY person_id_a, person_id_b
"""


def score_candidates(con: Engine, registry: bool, threshold: float = THRESHOLD,
                     batch_rows: int = 2_000_000) -> ScoreStats:
    """Score every pair of ``_lk_cand`` in batches of ``batch_rows`` (bounded memory) and create
    temp table ``_lk_scored`` holding the pairs worth keeping: linked, names not different, or
    score ≥ KEEP_SCORE."""
    stats = ScoreStats()
    started = time.perf_counter()
    nodes = NodeArrays.load(con)
    kept: list[pa.Table] = []
    reader = con.batches("SELECT a, b, relation, pos, blocks FROM _lk_cand", batch_rows=batch_rows)
    for batch in reader:
        if batch.num_rows == 0:
            continue
        cols = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in batch.schema.names}
        a, b = cols["a"].astype(np.int64), cols["b"].astype(np.int64)
        levels = compare(nodes, a, b, registry)
        levels["id"] = id_codes(cols["relation"], cols["pos"])
        scored = score_levels(levels, threshold)
        stats.pairs_scored += len(a)
        keep = scored["linked"] | (levels["name"] != 4) | (scored["score"] >= KEEP_SCORE)
        stats.links += int(scored["linked"].sum())
        if keep.any():
            pos = np.nan_to_num(np.asarray(cols["pos"], dtype=np.float64), nan=0).astype(np.int8)
            # the stored pairs get their similarity whatever their name level (few pairs)
            ka, kb = nodes.s_id[a[keep]], nodes.s_id[b[keep]]
            levels["similarity"][keep] = name_similarity(nodes.names_s[ka], nodes.names_s[kb])
            kept.append(pa.table({
                "a": a[keep], "b": b[keep], "blocks": np.asarray(cols["blocks"], dtype=np.int8)[keep],
                "id_code": levels["id"][keep], "pos": pos[keep], "name_code": levels["name"][keep],
                "similarity": levels["similarity"][keep], "birth_code": levels["birth"][keep],
                "gender_code": levels["gender"][keep], "registry_code": levels["registry"][keep],
                **{k: scored[k][keep] for k in ("w_id", "w_name", "w_birth", "w_gender", "w_registry",
                                                "match_weight", "score", "linked", "agreed_bits")},
            }, schema=_STORED_SCHEMA))
    stored = pa.concat_tables(kept) if kept else _STORED_SCHEMA.empty_table()
    stats.pairs_stored = stored.num_rows
    con.register("_lk_stored_arrow", stored)
    try:
        con.execute(STORED_SQL)
    finally:
        con.drop("_lk_stored_arrow")
    stats.seconds = time.perf_counter() - started
    return stats
