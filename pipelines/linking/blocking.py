"""Candidate generation (blocking), set-based SQL on any engine; cost stays close to linear in the number
of person IDs because every block is an equi-join on a key.

Blocks (a pair may come from several; each pair is kept once, ``a < b`` by node number):

* ``substitution@i`` — for each of the 17 body positions ``i``, the ID body with digit ``i``
  masked (``body - digit_i * 10^(16-i)``, an integer): IDs sharing the key differ in exactly
  that one digit. One equi-join per position keeps memory bounded.
* ``check_char`` — the same 17-digit body with a different check character.
* ``transposition@i`` — for 18-character IDs (digits and X) whose checksum is wrong, the 17
  adjacent swaps of the 18 characters (an X swapped into the body included), joined on the whole ID (a valid ID never equals an adjacent transposition of
  another valid ID with the same check character: GB 11643 detects those).
* ``name_birth`` — the same birth date (from the ID or declared) and the same homophone key
  (pinyin of the simplified name, as an integer id), which covers identical and
  traditional-character names. A (pinyin, birth date) group larger than ``max_block_size`` is
  skipped (counted).

The ID relation of a pair is classified here: ``check_char``, ``substitution`` (one digit, the
same check character, so one ID is invalid), ``revalidated`` (one digit and a different check
character, both valid: e.g. a forged ID, twins, namesakes in neighbouring regions),
``two_edits`` (one digit and a different check character, one invalid), ``transposition``,
or NULL (related by name and birth date only).
"""

from __future__ import annotations

from pipelines.engine import Engine

# ID relation codes (column ``relation``; NULL = related by name and birth date only) and block bits.
CHECK_CHAR, SUBSTITUTION, TRANSPOSITION, REVALIDATED, TWO_EDITS = 1, 2, 3, 4, 7
BLOCKS = {"substitution": 1, "check_char": 2, "transposition": 4, "name_birth": 8}


def _substitution_sql(i: int) -> str:
    p = 10 ** (16 - i)
    return f"""
    WITH k AS (
        SELECT node, valid, chk, body - ((body // {p}) % 10) * {p} AS key, (body // {p}) % 10 AS digit
        FROM {{nodes}} WHERE body IS NOT NULL
    )
    SELECT x.node, y.node,
           CASE WHEN x.chk = y.chk THEN {SUBSTITUTION} WHEN x.valid AND y.valid THEN {REVALIDATED}
                ELSE {TWO_EDITS} END,
           {i + 1}, {BLOCKS["substitution"]}
    FROM k AS x JOIN k AS y ON x.key = y.key AND x.node < y.node AND x.digit <> y.digit
    """


_CHECK_CHAR = """
SELECT x.node, y.node, 1, 18, 2
FROM {nodes} AS x JOIN {nodes} AS y ON x.body = y.body AND x.node < y.node AND x.chk <> y.chk
WHERE x.body IS NOT NULL AND y.body IS NOT NULL
"""

_TRANSPOSITION = """
WITH bad AS (SELECT node, person_id FROM {nodes} WHERE id18 AND NOT valid),
swapped AS (
    SELECT node, i,
           substr(person_id, 1, i) || substr(person_id, i + 2, 1) || substr(person_id, i + 1, 1)
               || substr(person_id, i + 3) AS other
    FROM bad, range(17) AS t(i)
    WHERE substr(person_id, i + 1, 1) <> substr(person_id, i + 2, 1)
)
SELECT least(s.node, n.node), greatest(s.node, n.node), 3, s.i + 1, 4
FROM swapped AS s JOIN {nodes} AS n ON n.person_id = s.other
"""

# The name/birth keys of a node relation ``{nodes}``, one row per (``{id}``, p_id, birth): the birth
# date from the ID, and the declared one where it differs (incremental linking reads it too).
NAME_BIRTH_KEY_ROWS = """
SELECT {id}, p_id, id_birth AS birth FROM {nodes} WHERE p_id IS NOT NULL AND id_birth IS NOT NULL
UNION ALL
SELECT {id}, p_id, birth_decl FROM {nodes}
WHERE p_id IS NOT NULL AND birth_decl IS NOT NULL AND birth_decl IS DISTINCT FROM id_birth
"""

_NAME_BIRTH_KEYS = ("WITH nb AS (" + NAME_BIRTH_KEY_ROWS.replace("{id}", "node") + ")\n"
                    "SELECT nb.*, count(*) OVER (PARTITION BY p_id, birth) AS n FROM nb\n")

_NAME_BIRTH = """
WITH ok AS (SELECT node, p_id, birth FROM {keys} WHERE n BETWEEN 2 AND $max_block)
SELECT DISTINCT x.node, y.node, NULL, NULL, 8
FROM ok AS x JOIN ok AS y ON x.p_id = y.p_id AND x.birth = y.birth AND x.node < y.node
"""

_CANDIDATES = """
SELECT a, b, min(relation) AS relation, arg_min(pos, relation) AS pos, bit_or(block) AS blocks
FROM ({pairs})
GROUP BY a, b
"""
_PAIR_COLUMNS = "CAST(a AS BIGINT) AS a, CAST(b AS BIGINT) AS b, CAST(relation AS TINYINT) AS relation, " \
    "CAST(pos AS TINYINT) AS pos, CAST(block AS TINYINT) AS block"


def generate_candidates(con: Engine, *, nodes: str, out: str, max_block_size: int = 1000,
                        keys: str | None = None) -> dict[str, int]:
    """Materialise ``out`` (a, b, relation, pos, blocks) from the relation ``nodes`` (relation
    codes and block bits as in this module's constants); return counts: raw pairs per block,
    distinct candidate pairs and skipped oversized name/birth groups. Each blocking pass is
    materialised on its own (one equi-join at a time keeps memory bounded), then the passes are
    combined in one GROUP BY. ``keys`` names a relation (node, p_id, birth, n) to use instead of
    the name/birth keys of ``nodes`` (incremental linking: the nodes are a subset, ``n`` the size
    of the whole block)."""
    q = con.dialect.quote_identifier
    own_keys = keys is None
    keys = keys or f"{out}_name_birth_keys"
    passes = [_substitution_sql(i) for i in range(17)] + [_CHECK_CHAR, _TRANSPOSITION, _NAME_BIRTH]
    parts = [f"{out}_pass{i}" for i in range(len(passes))]
    try:
        if own_keys:
            con.materialize(keys, _NAME_BIRTH_KEYS.format(nodes=q(nodes)))
        for part, sql in zip(parts, passes):
            body = sql.format(nodes=q(nodes), keys=q(keys))
            con.materialize(part, f"SELECT {_PAIR_COLUMNS} FROM ({body}) AS p(a, b, relation, pos, block)",
                            {"max_block": max_block_size} if "$max_block" in body else None)
        skipped = con.scalar(f"SELECT count(*) FROM (SELECT DISTINCT p_id, birth FROM {q(keys)} WHERE n > $m)",
                             {"m": max_block_size})
        pairs = " UNION ALL ".join(f"SELECT * FROM {q(p)}" for p in parts)
        names = {bit: name for name, bit in BLOCKS.items()}
        counts = {names[r["block"]]: r["n"] for r in con.query(
            f"SELECT block, count(*) AS n FROM ({pairs}) GROUP BY block").to_pylist()}
        rows = con.materialize(out, _CANDIDATES.format(pairs=pairs))
    finally:
        for name in ([keys] if own_keys else []) + parts:
            con.drop(name)
    result = {f"pairs_{k}": int(v) for k, v in sorted(counts.items())}
    result["candidate_pairs"] = int(rows)
    result["skipped_name_birth_groups"] = int(skipped)
    return result
