"""The local Spark session the Spark engine and its tests run on."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from engines import spark_test

from pipelines.engine.spark_session import local_cores, session_config


def test_local_cores_and_partitions():
    assert local_cores("local[2]") == 2 and local_cores("local") == 1
    assert local_cores("spark://host:7077") is None
    assert session_config("local[2]")["spark.sql.shuffle.partitions"] == "4"
    assert session_config("spark://host:7077")["spark.sql.shuffle.partitions"] == "400"
    assert session_config("local[2]", shuffle_partitions=2)["spark.ui.enabled"] == "false"


@spark_test
def test_session_runs_sql_with_bound_parameters_exact_decimals_and_utc_dates(spark):
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    row = spark.sql(
        "SELECT CAST(:amount AS DECIMAL(18,2)) * 3 AS total, :day AS day, :name AS name",
        args={"amount": Decimal("2707.80"), "day": date(2024, 3, 31), "name": "张三'; DROP TABLE x; --"},
    ).collect()[0]
    assert row.total == Decimal("8123.40") and row.day == date(2024, 3, 31)
    assert row.name == "张三'; DROP TABLE x; --"
