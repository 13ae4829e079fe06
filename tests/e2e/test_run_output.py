"""`fraudwatch run` is quiet and informative: no telemetry error offline, one line per stage with counts, no personal data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date

import pytest

from pipelines.pipeline import RunConfig
from pipelines.stages import run_pipeline
from fraudwatch_synth import generate

ID = re.compile(r"\d{17}[\dXx]|\d{15}")
STAGES = ("ingest", "validate", "load", "link", "detect", "publish")


def test_each_stage_reports_what_it_did_without_personal_data(tmp_path):
    generate(persons=300, months=4, seed=4, out=tmp_path / "in")
    lines: list[str] = []
    run_pipeline(RunConfig(input=tmp_path / "in", output=tmp_path / "out", as_of=date(2026, 1, 31)), report=lines.append)
    assert [line.split(":")[0] for line in lines] == list(STAGES)
    assert re.search(r"ingest: \d+ extracts, \d+ files, [\d,]+ rows read, [\d,]+ quarantined", lines[0])
    assert re.search(r"detect: \d+ rules ran, \d+ skipped, [\d,]+ hits", lines[4])
    assert not any(ID.search(line) for line in lines)


@pytest.mark.slow
def test_the_prefect_run_prints_no_telemetry_error_and_logs_each_stage(tmp_path):
    generate(persons=300, months=4, seed=4, out=tmp_path / "in")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=os.getcwd(), PREFECT_HOME=str(tmp_path / "prefect_home"), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "-i", str(tmp_path / "in"), "-o",
                           str(tmp_path / "out"), "--as-of", "2026-01-31"], capture_output=True, text=True, env=env,
                          timeout=900)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "telemetry" not in text.lower()
    for stage in STAGES:
        assert re.search(rf"\b{stage}: ", text), stage
    assert not ID.search(proc.stderr)
