"""Failures keep their evidence; kills leave nothing that looks complete; leftovers are cleaned up with a note."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from pipelines import publish
from pipelines.errors import ExtractError, RunError, ValidationFailed
from pipelines.failures import clean_leftovers, is_transient
from pipelines.pipeline import RunConfig
from pipelines.runlock import RunLocked
from pipelines.stages import run_pipeline
from fraudwatch_synth import generate

KILL_BETWEEN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, "tests")
    from audit_helpers import hit, publish_run
    from pipelines import publish
    out, run_id, step = sys.argv[1:4]
    def die(s):
        if s == step:
            os.kill(os.getpid(), signal.SIGKILL)
    publish._between_steps = die
    publish_run(out, run_id, [hit("paid_after_death", "110101195003150011", "1.00")])
""")


def publish_and_kill(out, run_id, step):
    proc = subprocess.run([sys.executable, "-c", KILL_BETWEEN, str(out), run_id, step],
                          env={**os.environ, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True)
    assert proc.returncode == (0 if step == "never" else -signal.SIGKILL), proc.stderr


def test_killed_between_rename_and_marker_the_run_is_not_complete_and_the_next_run_moves_it(tmp_path):
    publish_and_kill(tmp_path, "20260101T000000.000Z", "never")  # a complete first run (no kill)
    publish_and_kill(tmp_path, "20260102T000000.000Z", "renamed")
    assert (tmp_path / "runs" / "20260102T000000.000Z" / "suspects.parquet").exists()  # renamed, then killed
    assert publish.latest_run_id(tmp_path) == "20260101T000000.000Z"
    assert publish.complete_runs(tmp_path) == ["20260101T000000.000Z"]
    with pytest.raises(RunError, match="not a complete run"):
        publish.resolve_run(tmp_path, "20260102T000000.000Z")
    notes = clean_leftovers(tmp_path, "20260103T000000.000Z")
    assert any("moved incomplete run 20260102T000000.000Z to failed/" in n for n in notes)
    assert not (tmp_path / "runs" / "20260102T000000.000Z").exists()
    assert (tmp_path / "failed" / "20260102T000000.000Z" / "error.txt").exists()


def test_killed_after_the_marker_the_run_is_complete_and_the_pointers_are_repaired(tmp_path):
    publish_and_kill(tmp_path, "20260101T000000.000Z", "never")
    publish_and_kill(tmp_path, "20260102T000000.000Z", "marked")
    assert publish.latest_run_id(tmp_path) == "20260101T000000.000Z"
    assert publish.resolve_run(tmp_path, "20260102T000000.000Z").exists()
    notes = clean_leftovers(tmp_path, "20260103T000000.000Z")
    assert publish.latest_run_id(tmp_path) == "20260102T000000.000Z"
    assert any("latest moved to run 20260102T000000.000Z" in n for n in notes)


def test_stale_partial_and_staging_folders_are_removed_with_a_note(tmp_path):
    (tmp_path / "runs" / ".partial-20250101T000000.000Z" / "validation").mkdir(parents=True)
    (tmp_path / "staging" / "20250101T000000.000Z").mkdir(parents=True)
    (tmp_path / "staging" / "20250101T000000.000Z" / "x.parquet").write_bytes(b"x" * 2_000_000)
    (tmp_path / "staging" / "20260101T000000.000Z").mkdir(parents=True)  # the current run's own
    notes = clean_leftovers(tmp_path, "20260101T000000.000Z")
    assert not (tmp_path / "runs" / ".partial-20250101T000000.000Z").exists()
    assert not (tmp_path / "staging" / "20250101T000000.000Z").exists()
    assert (tmp_path / "staging" / "20260101T000000.000Z").exists()
    assert "removed staging/20250101T000000.000Z (2.0 MB) left by a run that was stopped" in notes


def test_a_failed_run_keeps_its_evidence_and_its_message_names_paths_that_exist(tmp_path):
    landing = tmp_path / "in"
    generate(persons=300, months=4, seed=2, out=landing)
    (landing / "household.csv").write_text("nonsense\n1\n", encoding="utf-8")  # a household file without its columns
    out = tmp_path / "out"
    with pytest.raises(ExtractError) as caught:
        run_pipeline(RunConfig(input=landing, output=out, as_of=date(2026, 1, 31)))
    failed = list((out / "failed").iterdir())
    assert len(failed) == 1
    evidence = failed[0]
    assert (evidence / "error.txt").read_text().startswith(str(caught.value).splitlines()[0])
    assert (evidence / "manifest.json").exists() and '"status": "failed"' in (evidence / "manifest.json").read_text()
    assert str(evidence) in str(caught.value)
    assert ".partial-" not in str(caught.value)
    for token in str(caught.value).replace(",", " ").split():
        if token.startswith(str(out)):
            assert os.path.exists(token.rstrip(".:;")), token
    assert publish.latest_run_id(out) is None
    assert not any((out / "runs").iterdir())


def test_a_run_stopped_for_broken_rows_points_at_its_quarantine(tmp_path):
    landing = tmp_path / "in"
    generate(persons=300, months=4, seed=2, out=landing)
    lines = (landing / "deaths.csv").read_text(encoding="utf-8").splitlines()
    broken = [",".join(["not-a-date" if i == 2 else v for i, v in enumerate(line.split(","))]) for line in lines[1:]]
    (landing / "deaths.csv").write_text("\n".join([lines[0], *broken]) + "\n", encoding="utf-8")  # every date broken
    with pytest.raises(ExtractError) as caught:
        run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=date(2026, 1, 31)))
    quarantine = str(caught.value).split("quarantined rows: ")[1].split()[0]
    assert "/failed/" in quarantine and list(Path(quarantine).rglob("*.parquet"))


def test_a_failed_validation_keeps_the_report_the_message_points_at(tmp_path):
    landing = tmp_path / "in"
    generate(persons=300, months=4, seed=2, out=landing)
    lines = (landing / "deaths.csv").read_text(encoding="utf-8").splitlines()
    def bad_id(line: str) -> str:  # a well-formed ID with a wrong check digit: kept as evidence, fails the valid-ID rate
        pid, rest = line.split(",", 1)
        return pid[:17] + ("1" if pid[17] == "0" else "0") + "," + rest
    (landing / "deaths.csv").write_text("\n".join([lines[0], *map(bad_id, lines[1:])]) + "\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=date(2026, 1, 31)))
    message = str(caught.value)
    report = message.split("Full report: ")[1].split()[0].rstrip(".")
    assert "/failed/" in report and os.path.exists(report)


@pytest.mark.parametrize("exc, transient", [
    (OSError(errno.EIO, "I/O error"), True),
    (TimeoutError("share timed out"), True),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (PermissionError(errno.EACCES, "denied"), False),
    (ExtractError("bad header", file="deaths.csv"), False),
    (ValidationFailed("empty extract", file="deaths.csv"), False),
    (RunLocked("busy", file="x", holder=None), True),
    (ValueError("bug"), False),
])
def test_only_transient_errors_are_retried(exc, transient):
    assert is_transient(exc) is transient
