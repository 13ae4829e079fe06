"""The case store: outcomes outlive the warehouse, legacy outcomes migrate once, backup and restore.
Every test runs against the default SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest
from audit_helpers import FIRM, PERSON_A, PERSON_B, hit, publish_run
from case_store_helpers import postgres_server, store_url  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from pipelines import case_store, outcomes
from pipelines.case_store import open_store
from pipelines.errors import RunError

RUN1 = "20240701T000000.000Z"
TODAY = dt.date(2024, 8, 15)

LEGACY_DDL = """CREATE TABLE _outcomes (entry_id BIGINT NOT NULL, rule_id VARCHAR NOT NULL, subject_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL, outcome VARCHAR NOT NULL, recovered_amount DECIMAL(18,2), note VARCHAR, reviewer VARCHAR NOT NULL,
    review_date DATE NOT NULL, category VARCHAR, subject_type VARCHAR, amount_at_risk DECIMAL(18,2), first_period VARCHAR,
    last_period VARCHAR, source VARCHAR NOT NULL, source_file VARCHAR, source_sheet VARCHAR, source_row BIGINT,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL)"""


@pytest.fixture()
def out(tmp_path):
    publish_run(tmp_path, RUN1, [
        hit("paid_after_death", PERSON_A, "7500.00", last="2024-05"),
        hit("paid_after_death", PERSON_B, "300.00", name="王五", region="310101"),
        hit("refund_retained", FIRM, "5000.00", subject_type="firm", name="某公司", first=None, last=None),
    ])
    return tmp_path


def legacy_warehouse(path):
    """A warehouse written by the version that kept outcomes in it: two entries for PERSON_A, one for FIRM."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE pension_payments (payment_id VARCHAR)")
    con.execute(LEGACY_DDL)
    con.execute(f"""INSERT INTO _outcomes VALUES
        (1, 'paid_after_death', '{PERSON_A}', '{RUN1}', 'under_review', NULL, NULL, '李', DATE '2024-07-02', 'paid_after_death',
         'person', 7500.00, '2024-03', '2024-05', 'cli', NULL, NULL, NULL, TIMESTAMPTZ '2024-07-02 09:00:00+00'),
        (2, 'paid_after_death', '{PERSON_A}', '{RUN1}', 'no_issue', NULL, '死亡登记错误', '李', DATE '2024-07-05',
         'paid_after_death', 'person', 7500.00, '2024-03', '2024-05', 'import', 'a.xlsx', '死亡冒领养老金', 2,
         TIMESTAMPTZ '2024-07-05 10:30:00+00'),
        (3, 'refund_retained', '{FIRM}', '{RUN1}', 'confirmed_fraud', 4999.99, NULL, '王', DATE '2024-07-06',
         'refund_retained', 'firm', 5000.00, NULL, NULL, 'cli', NULL, NULL, NULL, TIMESTAMPTZ '2024-07-06 08:00:00+00')""")
    con.close()


def test_legacy_outcomes_migrate_once_with_a_note_and_keep_their_history(out, store_url):
    legacy_warehouse(out / "warehouse.duckdb")
    with open_store(out, store_url) as store:
        assert len(store.notes) == 1 and "copied 3 outcome entries" in store.notes[0]
        rows = store.history().to_pylist()
        assert [(r["legacy_entry_id"], r["outcome"], r["scope"]) for r in rows] == [
            (1, "under_review", "*"), (2, "no_issue", "*"), (3, "confirmed_fraud", "*")]
        assert rows[1]["recorded_at"] == dt.datetime(2024, 7, 5, 10, 30, tzinfo=dt.timezone.utc)
        assert rows[1]["source_file"] == "a.xlsx" and rows[2]["recovered_amount"] == Decimal("4999.99")
        current = {r["subject_id"]: r["outcome"] for r in store.current_outcomes().to_pylist()}
        assert current == {PERSON_A: "no_issue", FIRM: "confirmed_fraud"}
    with open_store(out, store_url) as store:  # unchanged warehouse: not even read again
        assert store.notes == [] and store.history().num_rows == 3
    con = duckdb.connect(str(out / "warehouse.duckdb"))  # the warehouse changes (a run): read again, nothing copied twice
    con.execute("CREATE TABLE other (x INTEGER)")
    con.close()
    with open_store(out, store_url) as store:
        assert store.notes == [] and store.history().num_rows == 3
        # the migrated verdict still holds the suspect back
        from audit_helpers import hits_table

        kept, held = outcomes.apply_outcomes(store, hits_table([hit("paid_after_death", PERSON_A, "7500.00", last="2024-05")]))
        assert held.count == 1 and kept.num_rows == 0


def test_deleting_or_corrupting_the_warehouse_loses_no_verdict(out, store_url, monkeypatch):
    from pipelines.cli import app

    if store_url:
        monkeypatch.setenv("FRAUDWATCH_CASE_STORE", store_url)
    runner = CliRunner()
    wh = out / "warehouse.duckdb"
    legacy_warehouse(wh)
    result = runner.invoke(app, ["outcomes", "set", "paid_after_death", PERSON_B, "--outcome", "确认违规", "--reviewer", "张",
                                 "--recovered", "300", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "copied 3 outcome entries" in result.output  # the migration note, once
    # a truncated warehouse: the outcome commands do not need it
    wh.write_bytes(wh.read_bytes()[:5000])
    for args in (["outcomes", "report"], ["export", "--format", "xlsx", "--out", str(out / "e.xlsx")]):
        result = runner.invoke(app, [*args, "--output", str(out)])
        assert result.exit_code == 0 and result.exception is None, result.output
    text = " ".join(result.output.split())
    assert "legacy outcomes not checked: cannot read" in text and "3 suspects pre-filled" in text  # said, not fatal
    # the person view reads the published run (views.sql), never the warehouse: a damaged one does not matter
    result = runner.invoke(app, ["person", PERSON_A, "--output", str(out)])
    assert result.exit_code == 0 and result.exception is None, result.output
    assert PERSON_A in result.output
    # deleted: every verdict is still there
    wh.unlink()
    with open_store(out, store_url) as store:
        current = {r["subject_id"]: (r["outcome"], r["recovered_amount"]) for r in store.current_outcomes().to_pylist()}
    assert current == {PERSON_A: ("no_issue", None), PERSON_B: ("confirmed_fraud", Decimal("300.00")),
                       FIRM: ("confirmed_fraud", Decimal("4999.99"))}


def test_backup_and_restore_round_trip_across_stores(out, store_url, tmp_path, postgres_server):
    with open_store(out, store_url) as store:
        outcomes.set_outcome(store, out, "paid_after_death", PERSON_A, "核查中", "李", today=TODAY)
        outcomes.set_outcome(store, out, "paid_after_death", PERSON_A, "确认违规", "李", recovered="0.10", today=TODAY)
        store.add_dispatches([{"dispatch_id": "D1", "run_id": RUN1, "region_code": "110101", "region_name": "东城区",
                               "file": "x.xlsx", "sent_at": dt.datetime(2024, 8, 1, tzinfo=dt.timezone.utc),
                               "due_date": dt.date(2024, 8, 31), "sent_by": "me", "suspects": 1}],
                             [{"dispatch_id": "D1", "rule_id": "paid_after_death", "subject_id": PERSON_A,
                               "region_code": "110101", "amount_at_risk": Decimal("7500.00")}])
        before = store.history()
        counts = case_store.backup(store, tmp_path / "b.sqlite")
        assert counts["outcomes"] == 2 and counts["dispatches"] == 1 and counts["dispatch_items"] == 1
        with pytest.raises(RunError, match="file exists"):
            case_store.backup(store, tmp_path / "b.sqlite")
        case_store.backup(store, tmp_path / "b.sqlite", force=True)
        with pytest.raises(RunError, match="is not empty"):
            case_store.restore(store, tmp_path / "b.sqlite")
    # into the other kind of store (SQLite → PostgreSQL, PostgreSQL → SQLite)
    other = postgres_server.url(postgres_server.create_database()) if store_url is None else None
    target = tmp_path / "elsewhere"
    with open_store(target, other) as fresh:
        case_store.restore(fresh, tmp_path / "b.sqlite")
        after = fresh.history()
        assert after.equals(before)
        assert fresh.dispatch("D1")["due_date"] == dt.date(2024, 8, 31)
        # new entries continue after the restored ones
        outcomes.set_outcome(fresh, out, "refund_retained", FIRM, "无问题", "王", today=TODAY)
        assert fresh.history().column("entry_id").to_pylist() == [1, 2, 3]
        case_store.restore(fresh, tmp_path / "b.sqlite", replace=True)
        assert fresh.history().num_rows == 2
    with pytest.raises(RunError, match="not a case store backup"):
        bad = tmp_path / "bad.sqlite"
        duckdb.connect().close()
        import sqlite3

        sqlite3.connect(bad).execute("CREATE TABLE x (a)").connection.close()
        with open_store(tmp_path / "third") as third:
            case_store.restore(third, bad)


def test_cli_backup_restore(out, tmp_path):
    from pipelines.cli import app

    runner = CliRunner()
    with open_store(out) as store:
        outcomes.set_outcome(store, out, "paid_after_death", PERSON_A, "无问题", "李", today=TODAY)
    result = runner.invoke(app, ["outcomes", "backup", str(tmp_path / "b.sqlite"), "--output", str(out)])
    assert result.exit_code == 0 and "1 outcome entries" in " ".join(result.output.split()), result.output
    result = runner.invoke(app, ["outcomes", "backup", str(tmp_path / "b.sqlite"), "--output", str(out)])
    assert result.exit_code == 2 and "--force" in result.output
    (out / "cases.sqlite").unlink()
    result = runner.invoke(app, ["outcomes", "restore", str(tmp_path / "b.sqlite"), "--output", str(out)])
    assert result.exit_code == 0 and "restored 1 outcome entries" in " ".join(result.output.split()), result.output
    with open_store(out) as store:
        assert store.current_outcomes().column("outcome").to_pylist() == ["no_issue"]


def test_unusable_store_urls_give_clear_errors(tmp_path):
    with pytest.raises(RunError, match="not a database URL"):
        open_store(tmp_path, "::nonsense::")
    (tmp_path / "cases.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RunError, match="cannot open the case store") as info:
        open_store(tmp_path)
    assert "outcomes restore" in str(info.value)
