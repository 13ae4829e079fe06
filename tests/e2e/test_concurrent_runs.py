"""Two real `fraudwatch run` processes on one output folder: the second waits or fails clearly, never mixed data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.publish import latest_run_id, runs_dir
from pipelines.runlock import current_holder
from fraudwatch_synth import generate

pytestmark = pytest.mark.slow


def fraudwatch(*args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "--no-prefect", "--as-of", "2026-01-31", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd(), "COLUMNS": "200"})


def test_two_runs_on_one_output_never_mix(tmp_path):
    generate(persons=300, months=6, seed=5, out=tmp_path / "a")
    generate(persons=200, months=4, seed=9, out=tmp_path / "b")
    out = tmp_path / "out"
    first = fraudwatch("-i", str(tmp_path / "a"), "-o", str(out), "--job", "job-a")
    try:
        deadline = time.monotonic() + 60
        while current_holder(out) is None:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        refused = fraudwatch("-i", str(tmp_path / "b"), "-o", str(out), "--no-wait")
        waiter = fraudwatch("-i", str(tmp_path / "b"), "-o", str(out), "--job", "job-b")
        _, refused_err = refused.communicate(timeout=60)
        assert refused.returncode == 2
        assert "another run holds this output folder" in refused_err and f"PID {first.pid}" in refused_err
        assert "job-a" in refused_err
        waiter_out, waiter_err = waiter.communicate(timeout=300)
        first_out, first_err = first.communicate(timeout=300)
    finally:
        for proc in (first,):
            proc.kill()
    assert first.returncode == 0, first_err
    assert waiter.returncode == 0, waiter_err
    assert "waiting up to" in waiter_err and f"PID {first.pid}" in waiter_err
    runs = sorted(p.name for p in runs_dir(out).iterdir() if not p.name.startswith("."))
    assert len(runs) == 2 and latest_run_id(out) == runs[1]
    for run, landing in zip(runs, ("a", "b")):
        manifest = json.loads((runs_dir(out) / run / "manifest.json").read_text())
        assert manifest["parameters"]["input"] == str(tmp_path / landing)
        files = {i["file"] for i in manifest["inputs"]}
        assert files == {p.name for p in (tmp_path / landing).iterdir()} & files  # only its own landing folder's files
    # run A's counts are its own data's (B has fewer persons and months)
    counts = [json.loads((runs_dir(out) / r / "manifest.json").read_text())["rows_per_extract"] for r in runs]
    assert counts[0]["pension_payments"] > counts[1]["pension_payments"]
