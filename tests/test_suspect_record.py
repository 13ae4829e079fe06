"""The suspect record is defined once (pipelines/suspect_record.py) and matches the spec's table."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines import publish
from pipelines.rules import engine
from pipelines.suspect_record import ADDED_AT_PUBLISH, HITS_SCHEMA, SUSPECT_COLUMNS

SPEC = Path(__file__).resolve().parents[1] / "docs" / "spec" / "suspects.md"


def test_the_columns_are_the_specs_in_the_specs_order():
    text = SPEC.read_text(encoding="utf-8")
    table = text[text.index("## `suspects.parquet` columns"):text.index("## The categories")]
    spec = [m.group(1) for m in re.finditer(r"^\| (\w+) \|", table, re.M) if m.group(1) != "column"]
    assert [n for n, _ in SUSPECT_COLUMNS] == spec


def test_the_hits_are_the_suspect_record_without_what_publish_adds():
    suspect = dict(SUSPECT_COLUMNS)
    assert engine.HITS_SCHEMA is HITS_SCHEMA and publish.SUSPECT_COLUMNS is SUSPECT_COLUMNS
    assert [f.name for f in HITS_SCHEMA if f.name != "rule_version"] == \
        [n for n, _ in SUSPECT_COLUMNS if n not in ADDED_AT_PUBLISH]
    assert all(f.type == suspect[f.name] for f in HITS_SCHEMA if f.name != "rule_version")
