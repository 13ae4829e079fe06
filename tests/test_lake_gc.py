"""fraudwatch lake gc with real runs: the lake files only unkept runs read go, every kept run (the
newest N, the latest of every job) still reads whole, the next run works, and a running run holds
it off (run lock)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from fraudwatch_synth import generate
from pipelines import lake_gc, publish
from pipelines.cli import app
from pipelines.errors import RunError
from pipelines.lake import open_published
from pipelines.pipeline import RunConfig
from pipelines.runlock import RunLocked
from pipelines.stages import run_pipeline

AS_OF = date(2024, 8, 31)
VIEWS = ("pension_payments", "deaths", "household", "prisoners", "person_deaths", "identity_clusters", "suspects")


def _change_deaths(landing: Path, n: int) -> None:
    """A new deaths file content (one row fewer each time): a new lake entry."""
    path = landing / "deaths.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) - n]), encoding="utf-8")


def _reads_whole(output: Path, run_id: str) -> dict[str, int]:
    session = open_published(output, run_id)
    try:
        return {v: session.scalar(f"SELECT count(*) FROM {v}") for v in VIEWS}
    finally:
        session.close()


@pytest.fixture()
def history(tmp_path) -> tuple[Path, Path, list[str]]:
    """Three runs over changing deaths files: two full audits, then a death check."""
    landing, output = tmp_path / "in", tmp_path / "out"
    generate(persons=300, months=4, seed=2, out=landing)
    runs = [run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF)).run_id]
    _change_deaths(landing, 1)
    runs.append(run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF)).run_id)
    _change_deaths(landing, 1)
    runs.append(run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF, categories=("paid_after_death",),
                                       job="death-check")).run_id)
    return landing, output, runs


@pytest.mark.slow
def test_gc_keeps_what_kept_runs_read_and_removes_the_rest(history):
    landing, output, (first, second, third) = history
    before = {r: _reads_whole(output, r) for r in (second, third)}
    suspects = {r: pl.read_parquet(publish.runs_dir(output) / r / "suspects.parquet") for r in (second, third)}
    lake = output / "lake"
    deaths_entries = sorted(p.name for p in (lake / "deaths").glob("*.csv.parquet"))
    assert len(deaths_entries) == 3
    assert len(list((lake / "_validation").glob("deaths-*"))) == 3  # a cached validation per set of deaths files

    dry = lake_gc.collect(output, keep_runs=1, dry_run=True)
    assert dry.removed and all((lake / f).exists() for f in dry.removed)

    result = CliRunner().invoke(app, ["lake", "gc", "--output", str(output), "--keep-runs", "1"])
    assert result.exit_code == 0, result.output
    # kept: the newest run (the death check) and the full audit's latest; the first full audit is released
    assert f"kept runs: {second}, {third}" in result.output and f"no longer resolve: {first}" in result.output
    left = sorted(p.name for p in (lake / "deaths").glob("*.csv.parquet"))
    assert len(left) == 2 and set(left) < set(deaths_entries)
    gone = (set(deaths_entries) - set(left)).pop()
    assert not any((lake / "deaths").glob(gone.split("-")[0] + "*"))  # its quarantine and metadata too
    assert len(list((lake / "_validation").glob("deaths-*"))) == 2  # the released run's validation went too
    assert len(list((lake / "_validation").glob("household-*"))) == 1  # unchanged files: one, in use
    assert {r: _reads_whole(output, r) for r in (second, third)} == before
    for r in (second, third):
        assert pl.read_parquet(publish.runs_dir(output) / r / "suspects.parquet").equals(suspects[r])
    # nothing left to collect; the next run reads only what changed since
    assert lake_gc.collect(output, keep_runs=1).removed == []
    again = run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    assert again.run_id and (again.run_dir / "suspects.parquet").exists()


@pytest.mark.slow
def test_gc_waits_for_a_running_run_and_never_touches_its_snapshot(history):
    landing, output, _ = history
    _change_deaths(landing, 1)
    env = os.environ | {"FRAUDWATCH_TEST_PAUSE_AT": "detect"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--input", str(landing), "--output",
                             str(output), "--as-of", AS_OF.isoformat(), "--no-prefect"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        for line in proc.stderr:
            if "paused before detect" in line or time.monotonic() > deadline:
                break
        with pytest.raises(RunLocked, match="another run holds this output folder: job 'full-audit'"):
            lake_gc.collect(output, keep_runs=1, wait_timeout=0)
        result = CliRunner().invoke(app, ["lake", "gc", "--output", str(output), "--keep-runs", "1", "--no-wait"])
        assert result.exit_code == 2 and "another run holds this output folder" in result.output
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert len(list((output / "lake" / "deaths").glob("*.csv.parquet"))) == 4  # nothing removed meanwhile


def test_keep_at_least_one_run(tmp_path):
    (tmp_path / "lake").mkdir()
    with pytest.raises(RunError, match="keep at least one run"):
        lake_gc.collect(tmp_path, keep_runs=0)
