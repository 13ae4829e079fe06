"""The whole pipeline on both engines over sample_data/ (Splink's both-backends pattern): every
planted case found, and Spark's suspects equal DuckDB's to the byte (category, subject, amount to
the fen, periods, evidence and reason text). Spark runs in local mode on the test session's JVM."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from engines import engine_params

from pipelines import stages
from pipelines.pipeline import RunConfig

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
AS_OF = date(2026, 1, 31)
TRUTH = ("category", "subject_id", "amount_at_risk", "first_period", "last_period")


def _run(engine: str, output: Path, landing: Path = SAMPLE) -> stages.RunSummary:
    return stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF, engine=engine))


@pytest.fixture(scope="module", params=engine_params())
def engine_run(request, tmp_path_factory):
    if request.param == "spark":
        request.getfixturevalue("spark")  # the test session's SparkSession: the run reuses it
    output = tmp_path_factory.mktemp(f"run-{request.param}")
    return request.param, _run(request.param, output)


def _rows(path: Path, columns=None) -> list[dict]:
    table = pq.read_table(path)
    if columns:
        return table.select(list(columns)).to_pylist()
    return table.drop([c for c in ("run_id",) if c in table.column_names]).to_pylist()


def _key(row: dict) -> tuple:
    return tuple(str(row[c]) for c in TRUTH)


@pytest.mark.slow
def test_every_planted_case_is_found_on_each_engine(engine_run):
    engine, summary = engine_run
    truth = [r for f in ("ground_truth.parquet", "ground_truth_identity.parquet") for r in _rows(SAMPLE / f, TRUTH)]
    found = _rows(summary.suspects, TRUTH)
    missing = sorted(set(map(_key, truth)) - set(map(_key, found)))
    assert missing == [], f"{engine}: {len(missing)} planted case(s) not found"
    manifest = json.loads((summary.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["parameters"]["engine"] == engine
    assert manifest["identity_linking"]["links"] > 0
    assert {r["status"] for r in manifest["rules"]} == {"ran"}


@pytest.mark.slow
@pytest.mark.parametrize("engine_run", engine_params("spark"), indirect=True)
def test_spark_suspects_equal_duckdbs(engine_run, tmp_path):
    _, spark = engine_run
    duck = _run("duckdb", tmp_path / "duckdb")
    expected, got = _rows(duck.suspects), _rows(spark.suspects)
    assert len(got) == len(expected) > 50
    assert [_key(r) for r in got] == [_key(r) for r in expected]  # category, subject, amount, periods
    for column in expected[0]:
        differ = [i for i, (e, g) in enumerate(zip(expected, got)) if e[column] != g[column]]
        assert differ == [], f"{column} differs in {len(differ)} row(s), e.g. {got[differ[0]]['rule_id']}"
    for table in ("person_links", "identity_clusters", "death_matches"):
        assert _rows(spark.run_dir / "derived" / f"{table}.parquet") == _rows(duck.run_dir / "derived" / f"{table}.parquet")
    assert _rows(spark.run_dir / "quarantine" / "pension_payments.parquet") == \
        _rows(duck.run_dir / "quarantine" / "pension_payments.parquet")
