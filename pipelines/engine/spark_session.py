"""Starting a Spark session for fraudwatch (local mode on one machine, or a cluster master).

One place says how a session is configured, for the CLI, the Prefect flow, the tests and the
benchmarks: session time zone UTC (dates never shift), Arrow transfers on, the python workers run
this interpreter, and the shuffle partitions scale with the cores of a local master (the default
200 partitions make every small stage cost seconds on 2 cores).

``small_data`` (rule cases, tests) turns adaptive query execution off: AQE runs every query stage
as its own job, and on a few rows the per-job cost is all there is (measured on this machine: a
rule case's query 15-25 s with AQE, 7.5-11 s without, under a load of ~20 on 2 cores).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_MASTER = "local[2]"


def local_cores(master: str) -> int | None:
    """The cores of a ``local[N]`` master (``local[*]`` → this machine's); None for a cluster."""
    if master == "local":
        return 1
    m = re.fullmatch(r"local\[(\d+|\*)(?:,\s*\d+)?\]", master)
    if not m:
        return None
    return os.cpu_count() or 1 if m.group(1) == "*" else int(m.group(1))


def session_config(master: str = DEFAULT_MASTER, *, driver_memory: str | None = None,
                   shuffle_partitions: int | None = None, local_dir: Path | None = None,
                   small_data: bool = False) -> dict[str, str]:
    """The Spark settings fraudwatch runs with (see the module docstring)."""
    cores = local_cores(master)
    partitions = shuffle_partitions or (max(2, cores or 2) if small_data else max(2, 2 * cores) if cores else 400)
    config = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.default.parallelism": str(partitions),
        "spark.sql.adaptive.enabled": "false" if small_data else "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }
    if driver_memory:
        config["spark.driver.memory"] = driver_memory
    if local_dir is not None:
        config["spark.local.dir"] = str(local_dir)
    return config


def start_session(master: str = DEFAULT_MASTER, app_name: str = "fraudwatch", **options: Any):
    """A SparkSession on ``master`` configured by :func:`session_config` (``options`` are its
    keyword arguments). Reuses the process's active session if there is one (Spark allows one
    SparkContext per process)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - depends on the installation
        from pipelines.errors import ConfigError

        raise ConfigError("the Spark engine needs pyspark", hint="pip install 'fraudwatch[spark]' (and Java 17)") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in session_config(master, **options).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


DEFAULT_DRIVER_MEMORY = "4g"


def driver_memory(memory_limit: str | None) -> str:
    """Spark's driver memory for a run's ``memory_limit`` (DuckDB's spelling, e.g. '8GB' or
    '512MB'); in local mode the executors live in the driver JVM, so this bounds the whole job."""
    if not memory_limit:
        return DEFAULT_DRIVER_MEMORY
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT])I?B?\s*", memory_limit.upper())
    if not m:
        from pipelines.errors import ConfigError

        raise ConfigError(f"memory limit {memory_limit!r} is not a size like 8GB", hint="e.g. --memory-limit 8GB")
    return f"{m.group(1)}{m.group(2).lower()}"


def run_session(master: str, local_dir: Path, memory_limit: str | None = None):
    """The SparkSession of a run (started once per process, reused by every stage). A local
    master runs without adaptive query execution: with a handful of shuffle partitions AQE has
    nothing to coalesce and costs a job per query stage (the relations are Parquet files, so the
    planner knows their sizes for broadcast joins anyway)."""
    Path(local_dir).mkdir(parents=True, exist_ok=True)
    return start_session(master, driver_memory=driver_memory(memory_limit), local_dir=Path(local_dir),
                         small_data=local_cores(master) is not None)
