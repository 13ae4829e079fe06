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

Set-based and vectorised: the attributes of both nodes of each candidate pair are joined in SQL
(names as integer ids of their keys), each Arrow batch of pairs is compared with numpy where the
engine runs Python (this process on DuckDB, Spark's Python workers on Spark: ``map_batches``),
and only name similarity calls rapidfuzz (``cpdist``, for pairs whose names differ in characters
and sound and could be similar). Text columns are attached in SQL to the few pairs that are stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

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

# Per node, what scoring compares, as numbers (name keys as integer ids; NULL as a sentinel).
ATTRIBUTES_SQL = """
SELECT n.node, coalesce(n.name_id, 0) AS name_id, coalesce(n.s_id, 0) AS s_id, coalesce(n.p_id, 0) AS p_id,
       coalesce(k.s_len, 0) AS s_len, coalesce(k.s_first, 0) AS s_first, coalesce(k.s_last, 0) AS s_last,
       k.name_s,
       coalesce(CAST(n.id_birth - DATE '1970-01-01' AS INTEGER), {null}) AS id_birth,
       coalesce(CAST(n.birth_decl - DATE '1970-01-01' AS INTEGER), {null} + 1) AS birth_decl,
       coalesce(CAST(n.gender AS TINYINT), -1) AS gender, coalesce(n.registered, false) AS registered,
       coalesce(CAST(n.body // 100000000000 AS INTEGER), -1) AS region,
       -- compared for equality only (hash values differ between engines; equality does not)
       coalesce(CAST(hash(n.household_id) % 9223372036854775807 AS BIGINT), 0) AS household
FROM {nodes} AS n LEFT JOIN {names} AS k ON k.name = n.name
"""
SIDE_COLUMNS = ("name_id", "s_id", "p_id", "s_len", "s_first", "s_last", "name_s", "id_birth", "birth_decl",
                "gender", "registered", "region", "household")
PAIRS_SQL = """
SELECT c.a, c.b, c.relation, c.pos, c.blocks, {sides}
FROM {candidates} AS c JOIN {attributes} AS x ON x.node = c.a JOIN {attributes} AS y ON y.node = c.b
"""


def _sides(batch: pa.RecordBatch) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The a-side and b-side attribute arrays of a batch of pairs (columns ``x_*``, ``y_*``)."""
    def side(prefix: str) -> dict[str, np.ndarray]:
        out = {}
        for c in SIDE_COLUMNS:
            column = batch.column(f"{prefix}{c}")
            out[c] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object if c == "name_s" else None)
        return out
    return side("x_"), side("y_")


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


def compare(x: dict[str, np.ndarray], y: dict[str, np.ndarray], registry: bool) -> dict[str, np.ndarray]:
    """Level codes of the name, birth, gender and registry fields for pairs whose attributes are
    ``x`` (a side) and ``y`` (b side), arrays of :data:`SIDE_COLUMNS`; plus the name similarity
    and the region / household agreement flags."""
    na, nb = x["name_id"], y["name_id"]
    sa, sb = x["s_id"], y["s_id"]
    name = np.full(len(na), 4, dtype=np.int8)  # different, unless ...
    undecided = (na != 0) & (nb != 0) & (na != nb) & (sa != sb) & (x["p_id"] != y["p_id"])
    name[(na != 0) & (nb != 0) & (x["p_id"] == y["p_id"])] = 2
    name[(na != 0) & (nb != 0) & (sa == sb)] = 1
    name[(na != 0) & (nb != 0) & (na == nb)] = 0
    name[(na == 0) | (nb == 0)] = 5
    similarity = np.zeros(len(na), dtype=np.float32)
    # A similarity above 0.5 (edit distance below half the longer length) needs three or more
    # characters, and below five characters (one edit at most) the same first or last character:
    # only those pairs go to rapidfuzz.
    longest = np.maximum(x["s_len"], y["s_len"])
    check = undecided & (longest >= 3) & ((longest >= 5) | (x["s_first"] == y["s_first"])
                                          | (x["s_last"] == y["s_last"]))
    if check.any():
        similarity[check] = name_similarity(x["name_s"][check], y["name_s"][check])
    name[check & (similarity > SIMILAR_NAME)] = 3

    ia, ib, da, db = x["id_birth"], y["id_birth"], x["birth_decl"], y["birth_decl"]
    known_a = (ia != NULL_DAY) | (da != NULL_DAY + 1)
    known_b = (ib != NULL_DAY) | (db != NULL_DAY + 1)
    same = (ia == ib) & (ia != NULL_DAY) | (ia == db) | (da == ib) | (da == db) & (da != NULL_DAY + 1)
    birth = np.where(~known_a | ~known_b, 2, np.where(same, 0, 1)).astype(np.int8)

    ga, gb = x["gender"], y["gender"]
    gender = np.where((ga < 0) | (gb < 0), 2, np.where(ga == gb, 0, 1)).astype(np.int8)
    ra, rb = x["registered"].astype(bool), y["registered"].astype(bool)
    reg = np.where(ra & rb, 0, np.where(ra | rb, 1, 2)).astype(np.int8) if registry else np.full(len(na), 3, np.int8)
    same_region = (x["region"] == y["region"]) & (x["region"] >= 0)
    same_household = (x["household"] == y["household"]) & (x["household"] != 0)
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


STORED_SCHEMA = pa.schema([
    ("a", pa.int64()), ("b", pa.int64()), ("blocks", pa.int8()), ("id_code", pa.int8()), ("pos", pa.int8()),
    ("name_code", pa.int8()), ("similarity", pa.float32()), ("birth_code", pa.int8()), ("gender_code", pa.int8()),
    ("registry_code", pa.int8()), ("w_id", pa.float64()), ("w_name", pa.float64()), ("w_birth", pa.float64()),
    ("w_gender", pa.float64()), ("w_registry", pa.float64()), ("match_weight", pa.float64()), ("score", pa.float64()),
    ("linked", pa.bool_()), ("agreed_bits", pa.int8()),
])


def _sql_list(items) -> str:
    return "[" + ", ".join("'" + i + "'" for i in items) + "]"


STORED_SQL = f"""
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
       {{{{'id': s.w_id, 'name': s.w_name, 'birth': s.w_birth, 'gender': s.w_gender, 'registry': s.w_registry}}}} AS weights
FROM {{stored}} AS s
JOIN {{nodes}} AS x ON x.node = s.a JOIN {{nodes}} AS y ON y.node = s.b
ORDER BY person_id_a, person_id_b
"""


def score_batch(batch: pa.RecordBatch, registry: bool, threshold: float = THRESHOLD) -> pa.RecordBatch:
    """Score one batch of candidate pairs (columns of :data:`PAIRS_SQL`); return the pairs worth
    keeping (linked, names not different, or score ≥ KEEP_SCORE) as :data:`STORED_SCHEMA` rows.
    Runs wherever the engine runs Python (this process on DuckDB, the Spark workers on Spark)."""
    if batch.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=STORED_SCHEMA)
    cols = {n: batch.column(n).to_numpy(zero_copy_only=False) for n in ("a", "b", "relation", "pos", "blocks")}
    a, b = cols["a"].astype(np.int64), cols["b"].astype(np.int64)
    x, y = _sides(batch)
    levels = compare(x, y, registry)
    levels["id"] = id_codes(cols["relation"], cols["pos"])
    scored = score_levels(levels, threshold)
    keep = scored["linked"] | (levels["name"] != 4) | (scored["score"] >= KEEP_SCORE)
    pos = np.nan_to_num(np.asarray(cols["pos"], dtype=np.float64), nan=0).astype(np.int8)
    if keep.any():  # the stored pairs get their similarity whatever their name level (few pairs)
        levels["similarity"][keep] = name_similarity(x["name_s"][keep], y["name_s"][keep])
    return pa.RecordBatch.from_pydict({
        "a": a[keep], "b": b[keep], "blocks": np.asarray(cols["blocks"], dtype=np.int8)[keep],
        "id_code": levels["id"][keep], "pos": pos[keep], "name_code": levels["name"][keep],
        "similarity": levels["similarity"][keep], "birth_code": levels["birth"][keep],
        "gender_code": levels["gender"][keep], "registry_code": levels["registry"][keep],
        **{k: scored[k][keep] for k in ("w_id", "w_name", "w_birth", "w_gender", "w_registry",
                                        "match_weight", "score", "linked", "agreed_bits")},
    }, schema=STORED_SCHEMA)


def score_candidates(con: Engine, *, nodes: str, names: str, candidates: str, out: str, registry: bool,
                     threshold: float = THRESHOLD, batch_rows: int = 1_000_000) -> ScoreStats:
    """Score every pair of the relation ``candidates`` (a, b, relation, pos, blocks) against the
    relations ``nodes`` and ``names``, and materialise ``out``: the pairs worth keeping (linked,
    names not different, or score ≥ KEEP_SCORE) with their levels, weights and score.

    Set-based: the attributes of both nodes are joined to each pair in SQL, and
    :func:`score_batch` (numpy, rapidfuzz) scores Arrow batches of pairs where the engine runs
    Python (:meth:`~pipelines.engine.base.Engine.map_batches`: Spark's workers on Spark)."""
    stats = ScoreStats()
    started = time.perf_counter()
    attributes, stored = f"{out}_attributes", f"{out}_stored"
    q = con.dialect.quote_identifier
    con.materialize(attributes, ATTRIBUTES_SQL.format(null=NULL_DAY, nodes=q(nodes), names=q(names)))
    sides = ", ".join(f"{s}.{c} AS {s}_{c}" for s in ("x", "y") for c in SIDE_COLUMNS)
    try:
        pairs = PAIRS_SQL.format(sides=sides, candidates=q(candidates), attributes=q(attributes))
        stats.pairs_stored = con.map_batches(stored, pairs, partial(score_batch, registry=registry, threshold=threshold),
                                             STORED_SCHEMA, batch_rows=batch_rows)
        con.materialize(out, STORED_SQL.format(stored=q(stored), nodes=q(nodes)))
        stats.pairs_scored = int(con.scalar(f"SELECT count(*) FROM {q(candidates)}"))
        stats.links = int(con.scalar(f"SELECT count(*) FROM {q(out)} WHERE linked"))
    finally:
        con.drop(attributes)
        con.drop(stored)
    stats.seconds = time.perf_counter() - started
    return stats
