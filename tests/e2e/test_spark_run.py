"""`fraudwatch run --engine spark` on sample_data/: the same suspects as the DuckDB run, to the fen,
with the same reason text, on a real local Spark session."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from engines import SPARK_MARKS

from pipelines import stages
from pipelines.pipeline import RunConfig

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
AS_OF = date(2025, 1, 31)
KEY = ["rule_id", "subject_id"]
COMPARED = ["category", "severity", "subject_name", "region_code", "amount_at_risk", "first_period", "last_period", "reason"]

pytestmark = [pytest.mark.slow, *SPARK_MARKS]


def _run(engine: str, output: Path, spark) -> list[dict]:
    summary = stages.run_pipeline(RunConfig(input=SAMPLE, output=output, as_of=AS_OF, engine=engine))
    rows = pq.read_table(summary.suspects).select(KEY + COMPARED).to_pylist()
    return sorted(rows, key=lambda r: (r["rule_id"], r["subject_id"]))


@pytest.fixture(scope="module")
def both(spark, tmp_path_factory):
    """(DuckDB suspects, Spark suspects, Spark run folder) on sample_data/. ``spark`` is the test
    session's SparkSession, which the Spark stages reuse (one SparkContext per process)."""
    duck = _run("duckdb", tmp_path_factory.mktemp("duckdb"), spark)
    out = tmp_path_factory.mktemp("spark")
    return duck, _run("spark", out, spark), out


def test_spark_run_finds_the_same_suspects_to_the_fen(both):
    duck, spark_rows, _ = both
    assert len(duck) > 20 and {r["rule_id"] for r in duck} >= {"paid_after_death", "duplicate_identity", "refund_retained"}
    assert [(r["rule_id"], r["subject_id"]) for r in spark_rows] == [(r["rule_id"], r["subject_id"]) for r in duck]
    for d, s in zip(duck, spark_rows):
        for column in COMPARED:
            assert s[column] == d[column], f"{d['rule_id']} {d['subject_id']}: {column} {s[column]!r} != {d[column]!r}"


def test_spark_run_records_its_engine_and_cleans_up(both):
    import json

    _, _, out = both
    manifest = json.loads((out / "latest" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["engine"] == "spark"
    assert not any((out / "tmp" / "spark").glob("*")) if (out / "tmp" / "spark").exists() else True
