"""The suspect record, defined once: the columns of ``suspects.parquet`` (docs/spec/suspects.md)
and the hit a rule produces before publishing (:data:`HITS_SCHEMA`, derived from them).

A run's hits carry every suspect column except the two publish adds (``run_id``, and ``status``:
new or recurring against the job's previous run), plus ``rule_version`` after ``rule_id``.
"""

from __future__ import annotations

import pyarrow as pa

SUSPECT_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("run_id", pa.string()),
    ("rule_id", pa.string()),
    ("category", pa.string()),
    ("severity", pa.string()),
    ("subject_type", pa.string()),
    ("subject_id", pa.string()),
    ("subject_name", pa.string()),
    ("region_code", pa.string()),
    ("first_period", pa.string()),
    ("last_period", pa.string()),
    ("amount_at_risk", pa.decimal128(18, 2)),
    ("evidence", pa.string()),
    ("reason", pa.string()),
    ("status", pa.string()),
]
SUSPECT_SCHEMA = pa.schema(SUSPECT_COLUMNS)
ADDED_AT_PUBLISH = ("run_id", "status")

HITS_SCHEMA = pa.schema(
    [SUSPECT_SCHEMA.field("rule_id"), pa.field("rule_version", pa.int32())]
    + [pa.field(n, t) for n, t in SUSPECT_COLUMNS if n not in ADDED_AT_PUBLISH and n != "rule_id"]
)
