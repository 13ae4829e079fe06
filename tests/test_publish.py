"""Publishing: atomic run folders, the `latest` link, new/recurring status."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import publish
from pipelines.errors import RunError


def hits(rows: list[tuple[str, str, str]]) -> pa.Table:
    """Minimal engine output: (rule_id, subject_id, amount)."""
    n = len(rows)
    return pa.table({
        "rule_id": [r[0] for r in rows],
        "category": ["paid_after_death"] * n,
        "severity": ["high"] * n,
        "subject_type": ["person"] * n,
        "subject_id": [r[1] for r in rows],
        "subject_name": ["张三"] * n,
        "region_code": ["110105"] * n,
        "first_period": ["2024-04"] * n,
        "last_period": ["2024-06"] * n,
        "amount_at_risk": pa.array([Decimal(r[2]) for r in rows], pa.decimal128(18, 2)),
        "evidence": ["{}"] * n,
        "reason": ["理由"] * n,
        "rule_version": [1] * n,
    })


def publish_run(output, run_id, table, previous=None):
    partial = publish.start_run(output, run_id)
    publish.write_parquet_atomic(publish.with_status(table, run_id, previous), partial / publish.SUSPECTS_FILE)
    return publish.commit_run(output, partial, run_id)


def test_columns_follow_the_spec_in_order_with_extras_after(tmp_path):
    out = publish.with_status(hits([("r1", "A", "1.10")]), "run1", None)
    assert out.column_names[:14] == [name for name, _ in publish.SUSPECT_COLUMNS]
    assert out.column_names[14:] == ["rule_version"]
    assert out.schema.field("amount_at_risk").type == pa.decimal128(18, 2)
    assert out.column("run_id").to_pylist() == ["run1"]


def test_status_is_recurring_only_for_same_rule_and_subject_as_previous_run(tmp_path):
    first = publish_run(tmp_path, "20240101T000000.000Z", hits([("r1", "A", "1.00"), ("r1", "B", "2.00")]))
    second = publish.with_status(
        hits([("r1", "A", "1.00"), ("r2", "B", "2.00"), ("r1", "C", "3.00")]), "run2", first
    )
    status = dict(zip(zip(second.column("rule_id").to_pylist(), second.column("subject_id").to_pylist()),
                      second.column("status").to_pylist()))
    assert status == {("r1", "A"): "recurring", ("r2", "B"): "new", ("r1", "C"): "new"}


def test_rows_are_sorted_by_rule_then_subject(tmp_path):
    out = publish.with_status(hits([("r2", "A", "1"), ("r1", "B", "1"), ("r1", "A", "1")]), "x", None)
    assert list(zip(out.column("rule_id").to_pylist(), out.column("subject_id").to_pylist())) == [
        ("r1", "A"), ("r1", "B"), ("r2", "A")]


def test_commit_moves_latest_and_resolve_finds_it(tmp_path):
    assert publish.latest_run_id(tmp_path) is None
    with pytest.raises(RunError, match="no complete run"):
        publish.resolve_run(tmp_path)
    publish_run(tmp_path, "run-a", hits([("r1", "A", "1")]))
    publish_run(tmp_path, "run-b", hits([("r1", "A", "1")]))
    assert publish.latest_run_id(tmp_path) == "run-b"
    assert publish.resolve_run(tmp_path) == tmp_path / "runs" / "run-b"
    assert (tmp_path / "latest" / "suspects.parquet").exists()


def test_aborted_run_leaves_nothing_and_latest_unchanged(tmp_path):
    publish_run(tmp_path, "run-a", hits([("r1", "A", "1")]))
    partial = publish.start_run(tmp_path, "run-b")
    pq.write_table(hits([("r1", "Z", "9")]), partial / publish.SUSPECTS_FILE)
    publish.abort_run(partial)
    assert not partial.exists()
    assert not (tmp_path / "runs" / "run-b").exists()
    assert publish.latest_run_id(tmp_path) == "run-a"


def test_a_run_id_cannot_be_reused(tmp_path):
    publish_run(tmp_path, "run-a", hits([]))
    with pytest.raises(RunError, match="already exists"):
        publish.start_run(tmp_path, "run-a")


def test_atomic_parquet_write_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "suspects.parquet"
    publish.write_parquet_atomic(hits([("r1", "A", "1")]), target)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(publish.pq, "write_table", boom)
    with pytest.raises(OSError):
        publish.write_parquet_atomic(hits([("r1", "B", "2")]), target)
    assert pq.read_table(target).column("subject_id").to_pylist() == ["A"]
