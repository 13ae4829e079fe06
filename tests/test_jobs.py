"""Jobs keep their own history and latest; readers default to the full audit's latest and say which run."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pyarrow.parquet as pq
import pytest
from audit_helpers import hit, hits_table

from pipelines import publish
from pipelines.errors import RunError
from pipelines.jobs import DEATH_CHECK, FULL_AUDIT, default_job, reference_date


def publish_job_run(output, run_id, job, subjects):
    previous_id = publish.latest_run_id(output, job)
    previous = publish.runs_dir(output) / previous_id if previous_id else None
    partial = publish.start_run(output, run_id)
    rows = [hit("paid_after_death", s, "1.00") for s in subjects]
    publish.write_parquet_atomic(publish.with_status(hits_table(rows), run_id, previous), partial / publish.SUSPECTS_FILE)
    publish.write_json_atomic({"run_id": run_id, "job": job, "parameters": {"as_of": "2026-01-05"}},
                              partial / publish.MANIFEST_FILE)
    return publish.commit_run(output, partial, run_id, job)


def statuses(run_dir):
    t = pq.read_table(run_dir / publish.SUSPECTS_FILE)
    return dict(zip(t.column("subject_id").to_pylist(), t.column("status").to_pylist()))


def test_a_daily_check_between_two_monthly_audits_changes_nothing_for_the_monthly_job(tmp_path):
    publish_job_run(tmp_path, "20260105T000000.000Z", FULL_AUDIT, ["A", "B", "C"])
    publish_job_run(tmp_path, "20260106T000000.000Z", DEATH_CHECK, ["A"])
    monthly = publish_job_run(tmp_path, "20260205T000000.000Z", FULL_AUDIT, ["A", "B", "C", "D"])
    assert statuses(monthly) == {"A": "recurring", "B": "recurring", "C": "recurring", "D": "new"}
    daily = publish_job_run(tmp_path, "20260206T000000.000Z", DEATH_CHECK, ["A", "D"])
    assert statuses(daily) == {"A": "recurring", "D": "new"}  # vs the previous death check, not the audit
    assert publish.latest_run_id(tmp_path) == "20260206T000000.000Z"  # the spec's latest: newest of any job
    assert publish.latest_run_id(tmp_path, FULL_AUDIT) == "20260205T000000.000Z"
    assert (tmp_path / "jobs" / DEATH_CHECK / "latest" / "suspects.parquet").exists()


def test_readers_default_to_the_full_audit_and_fall_back_to_the_newest_run(tmp_path):
    with pytest.raises(RunError, match="no complete run yet"):
        publish.resolve_run(tmp_path)
    publish_job_run(tmp_path, "20260106T000000.000Z", DEATH_CHECK, ["A"])
    assert publish.resolve_run(tmp_path).name == "20260106T000000.000Z"  # no full audit yet: the newest run
    publish_job_run(tmp_path, "20260205T000000.000Z", FULL_AUDIT, ["A"])
    publish_job_run(tmp_path, "20260206T000000.000Z", DEATH_CHECK, ["A"])
    assert publish.resolve_run(tmp_path).name == "20260205T000000.000Z"
    assert publish.resolve_run(tmp_path, DEATH_CHECK).name == "20260206T000000.000Z"
    assert publish.resolve_run(tmp_path, "20260106T000000.000Z").name == "20260106T000000.000Z"
    with pytest.raises(RunError, match="neither a run id nor a job with a complete run"):
        publish.resolve_run(tmp_path, "screen")
    said = publish.describe_run(publish.resolve_run(tmp_path))
    assert "run 20260205T000000.000Z (job full-audit, as of 2026-01-05)" in said


def test_the_cli_says_which_run_it_reads_and_refuses_an_empty_output(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    for args in (["person", "110101195003150011"], ["outcomes", "report"],
                 ["export", "--format", "csv", "--out", str(tmp_path / "x.csv")]):
        result = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "empty")])
        assert result.exit_code == 2, (args, result.output)
        assert "no complete run yet in this output folder" in result.output
    assert not (tmp_path / "empty" / "warehouse.duckdb").exists()
    publish_job_run(tmp_path, "20260205T000000.000Z", FULL_AUDIT, ["A"])
    publish_job_run(tmp_path, "20260206T000000.000Z", DEATH_CHECK, ["A"])
    result = CliRunner().invoke(app, ["export", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "reading run 20260205T000000.000Z (job full-audit" in result.output


def test_default_job_and_the_schedule_date_in_shanghai():
    assert default_job((), ()) == FULL_AUDIT
    assert default_job((), ("paid_after_death",)) == "adhoc"
    # 06:00 on the 5th in Shanghai is 22:00 on the 4th in UTC: the reference date is the 5th
    assert reference_date("Asia/Shanghai", datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)) == date(2026, 12, 5)
    assert reference_date("UTC", datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc)) == date(2026, 12, 4)
