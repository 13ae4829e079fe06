"""views.sql, what an analyst opens, works wherever the output folder is: its paths are relative
to the output folder (read it from there), and `fraudwatch views` writes it with this machine's
paths for a client started anywhere. Checked with the installed DuckDB and with a DuckDB 1.x client
(1.1.3, installed into a throwaway virtualenv: analysts' tools lag behind)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fraudwatch_synth import generate
from pipelines.cli import app
from pipelines.pipeline import RunConfig
from pipelines.stages import run_pipeline

COUNTS = ("SELECT (SELECT count(*) FROM pension_payments) AS payments, (SELECT count(*) FROM suspects) AS suspects, "
          "(SELECT count(*) FROM person_deaths) AS deaths, (SELECT count(*) FROM identity_clusters) AS clusters, "
          "(SELECT count(*) FROM quarantine_pension_payments) AS quarantined")
OLD_DUCKDB = "1.1.3"


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> tuple[Path, dict]:
    """An output folder written in one place and moved to another; the counts seen before the move."""
    root = tmp_path_factory.mktemp("views")
    generate(persons=400, months=4, seed=5, out=root / "in", messy=True)
    run_pipeline(RunConfig(input=root / "in", output=root / "written", as_of=date(2024, 8, 31)))
    before = _counts(root / "written", root / "written" / "latest" / "views.sql")
    target = root / "elsewhere" / "fraudwatch-out"
    target.parent.mkdir()
    shutil.move(root / "written", target)
    return target, before


def _counts(cwd: Path, views: Path) -> dict:
    here = os.getcwd()
    os.chdir(cwd)
    try:
        con = duckdb.connect()
        con.execute(views.read_text(encoding="utf-8"))
        row = con.execute(COUNTS).fetchone()
        con.close()
    finally:
        os.chdir(here)
    return dict(zip(("payments", "suspects", "deaths", "clusters", "quarantined"), row))


def test_the_views_name_no_absolute_path(moved):
    output, before = moved
    text = (output / "latest" / "views.sql").read_text(encoding="utf-8")
    assert "read_parquet(['lake/" in text and "'runs/" in text and "'/" not in text
    assert before["payments"] > 0 and before["suspects"] > 0 and before["quarantined"] > 0


def test_read_from_the_moved_output_folder(moved):
    output, before = moved
    assert _counts(output, output / "latest" / "views.sql") == before


def test_fraudwatch_views_gives_this_machines_paths_for_a_client_anywhere(moved, tmp_path):
    output, before = moved
    result = CliRunner().invoke(app, ["views", "--output", str(output), "--out", str(tmp_path / "here.sql")])
    assert result.exit_code == 0, result.output
    assert _counts(tmp_path, tmp_path / "here.sql") == before
    missing = CliRunner().invoke(app, ["views", "--output", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no complete run" in missing.output


@pytest.fixture(scope="session")
def old_duckdb(tmp_path_factory) -> Path:
    """A Python with DuckDB 1.x (a throwaway virtualenv; pip reads the configured package index)."""
    home = tmp_path_factory.mktemp("duckdb1")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", f"duckdb=={OLD_DUCKDB}"],
                          capture_output=True, text=True, timeout=600)
    if done.returncode and os.environ.get("FRAUDWATCH_OFFLINE"):
        pytest.skip(f"FRAUDWATCH_OFFLINE is set and duckdb=={OLD_DUCKDB} is not installable: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return python


@pytest.mark.slow
def test_a_duckdb_1x_client_reads_the_moved_run(moved, old_duckdb, tmp_path):
    output, before = moved
    CliRunner().invoke(app, ["views", "--output", str(output), "--out", str(tmp_path / "here.sql")])
    script = ("import duckdb, json, sys; con = duckdb.connect(); con.execute(open(sys.argv[1], encoding='utf-8').read()); "
              f"print(json.dumps([duckdb.__version__, con.execute({COUNTS!r}).fetchone()]))")
    for cwd, views in ((output, "latest/views.sql"), (tmp_path, str(tmp_path / "here.sql"))):
        done = subprocess.run([str(old_duckdb), "-c", script, views], cwd=cwd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        version, row = json.loads(done.stdout)
        assert version == OLD_DUCKDB
        assert dict(zip(before, row)) == before
