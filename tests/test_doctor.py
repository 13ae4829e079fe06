"""`fraudwatch doctor`: known-bad package combinations, output folder layout and format, run lock, last run
of each job, Prefect API reachable or not; non-zero exit when something is wrong."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import socket
import struct
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines import doctor, runlock
from pipelines.cli import app

GOOD = {"prefect": "3.8.8", "sqlalchemy": "2.0.58", "fastapi": "0.150.0", "duckdb": "2.0.0", "great-expectations": "1.24.1"}


def levels(findings, topic=None):
    return [f.level for f in findings if topic is None or f.topic == topic]


def test_known_bad_combinations_are_errors():
    assert "error" not in levels(doctor.check_versions(GOOD))
    bad_sqlalchemy = doctor.check_versions({**GOOD, "sqlalchemy": "2.1.0"})
    assert levels(bad_sqlalchemy).count("error") == 1
    assert any("scheduler" in f.message and "SQLAlchemy 2.1.0" in f.message for f in bad_sqlalchemy)
    bad_fastapi = doctor.check_versions({**GOOD, "fastapi": "0.151.0"})
    assert [f for f in bad_fastapi if f.level == "error" and "fastapi 0.151.0" in f.message]
    assert "error" not in levels(doctor.check_versions({**GOOD, "prefect": "3.9.0", "sqlalchemy": "2.1.3"}))
    assert "error" not in levels(doctor.check_versions({**GOOD, "sqlalchemy": "2.0.99", "fastapi": "0.150.9"}))
    assert levels(doctor.check_versions({**GOOD, "prefect": None})).count("error") == 1  # not installed


def make_output(tmp_path: Path, runs: dict[str, tuple[str, str]]) -> Path:
    """An output folder with complete/failed runs: run_id → (state, job)."""
    output = tmp_path / "out"
    for run_id, (state, job) in runs.items():
        folder = output / ("runs" if state == "complete" else "failed") / run_id
        folder.mkdir(parents=True)
        manifest = {"run_id": run_id, "job": job, "parameters": {"as_of": "2026-01-31", "job": job}, "rules": []}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        if state == "complete":
            (folder / "suspects.parquet").write_bytes(b"PAR1")
    complete = sorted(r for r, (s, _) in runs.items() if s == "complete")
    if complete:
        (output / "latest").symlink_to(Path("runs") / complete[-1])
    return output


def test_last_run_of_each_job_and_its_state(tmp_path):
    output = make_output(tmp_path, {
        "20260105T060000.000Z": ("complete", "monthly-full-audit"),
        "20260106T073000.000Z": ("complete", "daily-death-check"),
        "20260107T073000.000Z": ("failed", "daily-death-check"),
    })
    assert doctor.last_runs(output) == {
        "monthly-full-audit": ("20260105T060000.000Z", "complete", "2026-01-31"),
        "daily-death-check": ("20260107T073000.000Z", "failed", "2026-01-31"),
    }
    jobs = doctor.check_jobs(output)
    assert levels(jobs) == ["error", "ok"]  # sorted by job: the daily check's last run failed
    assert "daily-death-check: last run 20260107T073000.000Z failed" in jobs[0].message
    assert doctor.exit_code(jobs) == 1


def _db_with_header(path: Path, version: int, library: bytes) -> None:
    path.unlink(missing_ok=True)
    duckdb.connect(str(path)).close()
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, 12, version)
    data[52:84] = library.ljust(32, b"\0")
    path.write_bytes(bytes(data))


def test_warehouse_file_format(tmp_path):
    output = make_output(tmp_path, {"20260105T060000.000Z": ("complete", "adhoc")})
    db = output / "warehouse.duckdb"
    duckdb.connect(str(db)).close()
    current = doctor.duckdb_file_format(db)
    assert current is not None and current[1].startswith("v")
    assert [f.level for f in doctor._check_warehouse(db)] == ["ok"]
    _db_with_header(db, 64, b"v1.1.3")  # a legacy 1.x warehouse
    (legacy,) = doctor._check_warehouse(db)
    assert legacy.level == "warn" and "storage version 64, written by DuckDB v1.1.3" in legacy.message
    _db_with_header(db, current[0] + 1, b"v9.0.0")
    (newer,) = doctor._check_warehouse(db)
    assert newer.level == "error" and "cannot open it" in newer.message
    db.write_bytes(b"not a database" * 20)
    assert doctor._check_warehouse(db)[0].level == "error"


def _hold_lock(output: str, ready, release) -> None:
    with runlock.run_lock(Path(output), "daily-death-check", 0):
        ready.set()
        release.wait(30)


def test_run_lock_holder_from_another_process(tmp_path):
    output = make_output(tmp_path, {})
    output.mkdir(parents=True, exist_ok=True)
    assert [f.message for f in doctor.check_lock(output)] == ["free (no run in progress)"]
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(output), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        (finding,) = doctor.check_lock(output)
        assert finding.message.startswith("held by job 'daily-death-check', PID ") and str(holder.pid) in finding.message
    finally:
        release.set()
        holder.join(30)
    assert [f.message for f in doctor.check_lock(output)] == ["free (no run in progress)"]


def test_output_layout_problems(tmp_path):
    output = make_output(tmp_path, {"20260105T060000.000Z": ("complete", "adhoc")})
    assert "error" not in levels(doctor.check_output(output))
    (output / "runs" / ".partial-20260106T000000.000Z").mkdir()
    assert any(f.level == "warn" and "1 partial run folder" in f.message for f in doctor.check_output(output))
    (output / "fraudwatch.toml").write_text("[alerts]\nurls = ['nonsense://']\n", encoding="utf-8")
    assert levels(doctor.check_output(output), "alerts") == ["error"]
    shutil.rmtree(output / "runs" / "20260105T060000.000Z")
    assert any(f.level == "error" and f.message.startswith("latest points at") for f in doctor.check_output(output))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_prefect_api_is_an_error_and_the_cli_exits_non_zero(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/api"
    (finding,) = doctor.check_prefect(url, timeout=2)
    assert finding.level == "error" and "not reachable" in finding.message
    assert doctor.check_prefect(None)[0].level == "info"
    output = make_output(tmp_path, {"20260105T060000.000Z": ("complete", "adhoc")})
    monkeypatch.setenv("PREFECT_API_URL", url)
    result = CliRunner().invoke(app, ["doctor", "--output", str(output)], terminal_width=200)
    assert result.exit_code == 1, result.output
    assert "not reachable" in result.output and "adhoc: last run 20260105T060000.000Z complete" in result.output
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("PREFECT_API_URL", "")
    result = CliRunner().invoke(app, ["doctor", "--output", str(output)], terminal_width=200)
    assert result.exit_code == 0, result.output
