"""What every engine must do (parametrised over pipelines.engine.ENGINES; a new backend adds itself there)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engines import engine_params

from pipelines.engine import ENGINES, Engine, QueryError, connect, dialect_for


@pytest.fixture(params=engine_params(*sorted(ENGINES)))
def engine(request, tmp_path):
    if request.param == "spark":  # the test session's one SparkSession (a JVM per test would cost minutes)
        from pipelines.engine.spark_engine import SparkEngine

        eng = SparkEngine(session=request.getfixturevalue("spark"))
    else:
        eng = connect(request.param)
    yield eng
    eng.close()


def _write(path, table):
    pq.write_table(table, path)
    return path


def test_query_binds_named_parameters(engine: Engine):
    out = engine.query("SELECT CAST($a AS INTEGER) + 1 AS x, $name AS who", {"a": 41, "name": "O'Brien"})
    assert out.to_pylist() == [{"x": 42, "who": "O'Brien"}]
    assert engine.scalar("SELECT count(*) FROM (SELECT 1 WHERE false)") == 0


def test_register_arrow_and_parquet_list(engine: Engine, tmp_path):
    engine.register("t", pa.table({"id": ["a", "b"], "amount": pa.array([Decimal("1.50"), None], pa.decimal128(18, 2))}))
    assert engine.scalar("SELECT sum(amount) FROM t") == Decimal("1.50")
    one = _write(tmp_path / "1.parquet", pa.table({"id": ["x"], "n": [1]}))
    two = _write(tmp_path / "2.parquet", pa.table({"id": ["y"], "extra": ["e"]}))
    engine.register("files", [one, two])
    rows = engine.query("SELECT id, n, extra FROM files ORDER BY id").to_pylist()
    assert rows == [{"id": "x", "n": 1, "extra": None}, {"id": "y", "n": None, "extra": "e"}]
    assert {"t", "files"} <= engine.relations()
    engine.register("files", [one])  # replaces
    assert engine.scalar("SELECT count(*) FROM files") == 1
    engine.drop("files")
    engine.drop("files")  # no error when absent
    assert "files" not in engine.relations()


def test_materialize_and_views(engine: Engine):
    assert engine.materialize("m", "SELECT range AS i FROM range(5)") == 5
    engine.register_query("v", "SELECT i * 2 AS j FROM m")
    assert engine.scalar("SELECT max(j) FROM v") == 8
    assert engine.column_types("SELECT i, DATE '2024-01-01' AS d FROM m") == {"i": "BIGINT", "d": "DATE"}
    assert sum(b.num_rows for b in engine.batches("SELECT * FROM m", batch_rows=2)) == 5


def test_write_parquet_is_atomic(engine: Engine, tmp_path):
    target = tmp_path / "out" / "r.parquet"
    assert engine.write_parquet("SELECT $d AS d", target, {"d": date(2024, 3, 1)}) == 1
    assert pq.read_table(target).to_pylist() == [{"d": date(2024, 3, 1)}]
    with pytest.raises(QueryError):
        engine.write_parquet("SELECT * FROM no_such_relation", tmp_path / "bad.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no file, no temporary left behind
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["r.parquet"]


def test_errors_are_query_errors(engine: Engine):
    with pytest.raises(QueryError):
        engine.query("SELEC 1")


def test_dialect_renders_money_and_months_exactly(engine: Engine):
    d = engine.dialect
    assert d is dialect_for(engine.dialect.name)
    sql = (f"SELECT {d.money_text('a')} AS m, {d.month_text('p')} AS p, {d.list_text('l')} AS l "
           "FROM (SELECT CAST('-1234567.89' AS DECIMAL(18,2)) AS a, DATE '2024-03-01' AS p, ['公安', '民政'] AS l)")
    assert engine.query(sql).to_pylist() == [{"m": "-1,234,567.89", "p": "2024-03", "l": "公安、民政"}]


def test_repeated_hashes_are_the_values_seen_twice(engine: Engine):
    engine.register("ids", pa.table({"k": ["a", "b", "a", None, None, "c", "b", "a"]}))
    repeated = engine.query(f"SELECT h FROM ({engine.dialect.repeated_hashes('k', 'ids')}) AS r").column("h").to_pylist()
    expected = engine.query("SELECT hash(k) AS h FROM ids WHERE k IN ('a', 'b') GROUP BY 1").column("h").to_pylist()
    assert sorted(repeated) == sorted(expected) and len(repeated) == 2  # each once; NULL is never repeated


def test_hash_of_several_values_is_64_bit(engine: Engine):
    # pre-filters group on hash(a, b, ...): Spark's own HASH is 32-bit and would merge many more keys
    row = engine.query("SELECT hash('110101195003150013', '110', '110101') AS h1, hash('a', 'b') AS h2").to_pylist()[0]
    assert max(abs(row["h1"]), abs(row["h2"])) >= 2**32


def test_spark_dialect_transpiles_rule_sql():
    spark = dialect_for("spark")
    assert ":as_of" in spark.from_rule_sql("SELECT person_id FROM deaths WHERE death_date <= $as_of")
    with pytest.raises(ValueError):
        dialect_for("oracle")


def test_map_batches_runs_python_over_arrow_batches(engine: Engine):
    # nested, so Spark's workers get it by value (they cannot import a test module)
    def _double_and_drop_odd(batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow.compute as pc

        kept = batch.filter(pc.equal(pc.bit_wise_and(batch.column("i"), 1), 0))
        return pa.record_batch({"i": kept.column("i"), "twice": pc.multiply(kept.column("i"), 2)})

    schema = pa.schema([("i", pa.int64()), ("twice", pa.int64())])
    rows = engine.map_batches("mapped", "SELECT range AS i FROM range(10) WHERE range >= $low", _double_and_drop_odd,
                              schema, {"low": 3})
    assert rows == 3
    assert engine.query("SELECT i, twice FROM mapped ORDER BY i").to_pylist() == [
        {"i": 4, "twice": 8}, {"i": 6, "twice": 12}, {"i": 8, "twice": 16}]
    assert engine.map_batches("none", "SELECT range AS i FROM range(3) WHERE false", _double_and_drop_odd, schema) == 0
    assert engine.column_types("SELECT * FROM none") == {"i": "BIGINT", "twice": "BIGINT"}
