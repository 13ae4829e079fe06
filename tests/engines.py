"""Running a test on both engines (the pattern of Splink's ``tests/decorator.py``).

``@on_engines()`` parametrises a test over ``engine_name`` ("duckdb", "spark"); the Spark
parametrisation carries the ``spark`` marker and the ``xdist_group("spark")`` that keeps every
Spark test in one xdist worker (one JVM). ``spark_test`` marks a Spark-only test the same way.
"""

from __future__ import annotations

import pytest

SPARK_MASTER = "local[2]"
ENGINES = ("duckdb", "spark")
SPARK_MARKS = (pytest.mark.spark, pytest.mark.xdist_group("spark"))


def spark_test(obj):
    """Mark a Spark-only test: the ``spark`` marker and the shared xdist group."""
    for mark in SPARK_MARKS:
        obj = mark(obj)
    return obj


def engine_params(*engines: str) -> list:
    """``pytest.param`` per engine, Spark ones marked (for combining with other parameters)."""
    return [pytest.param(e, id=e, marks=SPARK_MARKS if e == "spark" else ()) for e in engines or ENGINES]


def on_engines(*engines: str):
    """Parametrise a test over ``engine_name`` (default: every engine)."""
    return pytest.mark.parametrize("engine_name", engine_params(*engines))
