"""Fixtures shared by every test package.

``spark``: one local Spark session for the whole test session (starting a JVM costs 5-30 s). Every
test using it is marked ``xdist_group("spark")`` (``tests/engines.py`` has the marks and the
both-engines parametrisation), so under ``pytest -n 2 --dist=loadgroup`` all Spark tests run in one
worker with one JVM.
"""

from __future__ import annotations

import pytest

from engines import SPARK_MASTER


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A local[2] SparkSession for small data (2 shuffle partitions, no AQE), UI off, UTC, 1 GB driver heap."""
    pytest.importorskip("pyspark", reason="pyspark is in the dev extra: pip install -e '.[dev]'")
    from pipelines.engine.spark_session import start_session

    session = start_session(SPARK_MASTER, app_name="fraudwatch-tests", driver_memory="1g", small_data=True,
                            local_dir=tmp_path_factory.mktemp("spark-local"))
    yield session
    session.stop()


@pytest.fixture
def engine_factory(request, engine_name):
    """Makes a fresh session of the engine a test is parametrised with (``@on_engines()``):
    None for DuckDB (the code's default), a SparkEngine over the shared session for Spark."""
    if engine_name == "duckdb":
        return None
    spark = request.getfixturevalue("spark")
    from pipelines.engine.spark_engine import SparkEngine

    return lambda: SparkEngine(session=spark)
