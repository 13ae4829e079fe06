"""Tiny run folders and warehouses for the export / outcomes / person-view tests."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa

from benchmarks import legacy_warehouse as warehouse
from pipelines import publish

PERSON_A = "110101195003150013"   # 张三, died 2024-02-10
PERSON_B = "440300194511110049"   # 欧阳娜娜 (compound surname)
PERSON_A_15 = "110101500315001"   # the legacy 15-digit form of PERSON_A
FIRM = "91110105MA01ABCD2X"


def hit(rule_id: str, subject_id: str, amount: str | None, *, category: str | None = None,
        subject_type: str = "person", name: str = "张三", region: str = "110101",
        first: str | None = "2024-03", last: str | None = "2024-05", reason: str | None = None,
        evidence: str | None = None) -> dict:
    """One engine hit (HITS_SCHEMA columns)."""
    return {
        "rule_id": rule_id, "rule_version": 1, "category": category or rule_id, "severity": "high",
        "subject_type": subject_type, "subject_id": subject_id, "subject_name": name, "region_code": region,
        "first_period": first, "last_period": last,
        "amount_at_risk": None if amount is None else Decimal(amount),
        "evidence": evidence or f'{{"subject":"{subject_id}","name":"{name}"}}',
        "reason": reason or f"{name}（身份证号{subject_id}）有疑点，合计{amount}元。",
    }


def hits_table(rows: list[dict]) -> pa.Table:
    """Engine output as a pyarrow table (same types as the rule engine gives)."""
    from pipelines.rules.engine import HITS_SCHEMA

    return pa.Table.from_pylist(rows, schema=HITS_SCHEMA)


def publish_run(output: Path, run_id: str, rows: list[dict], manifest: dict | None = None) -> Path:
    """Publish a complete run folder (suspects.parquet with status, optional manifest) and move latest."""
    previous_id = publish.latest_run_id(output)
    previous = publish.runs_dir(output) / previous_id if previous_id else None
    partial = publish.start_run(output, run_id)
    publish.write_parquet_atomic(publish.with_status(hits_table(rows), run_id, previous), partial / publish.SUSPECTS_FILE)
    if manifest is not None:
        publish.write_json_atomic(manifest, partial / publish.MANIFEST_FILE)
    return publish.commit_run(output, partial, run_id)


def tiny_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """A warehouse with the architecture.md columns and a few rows about PERSON_A, plus the views."""
    con = warehouse.connect(path)
    pid = ("person_id VARCHAR, person_id_valid BOOLEAN, person_id_birth_date DATE, person_id_gender VARCHAR, "
           "name VARCHAR, name_raw VARCHAR")
    book = "_source_file VARCHAR, _source_row BIGINT, _file_sha256 VARCHAR"
    con.execute(f"CREATE TABLE pension_payments (payment_id VARCHAR, {pid}, scheme VARCHAR, region_code VARCHAR, "
                f"period DATE, amount DECIMAL(18,2), pay_date DATE, bank_account VARCHAR, {book})")
    con.execute(f"CREATE TABLE subsidy_payments (payment_id VARCHAR, {pid}, program VARCHAR, region_code VARCHAR, "
                f"period DATE, amount DECIMAL(18,2), {book})")
    con.execute(f"CREATE TABLE deaths ({pid}, death_date DATE, source VARCHAR, record_id VARCHAR, {book})")
    con.execute(f"CREATE TABLE household ({pid}, gender VARCHAR, birth_date DATE, household_id VARCHAR, "
                f"region_code VARCHAR, status VARCHAR, cancel_date DATE, cancel_reason VARCHAR, {book})")
    con.execute(f"CREATE TABLE prisoners ({pid}, admission_date DATE, release_date DATE, sentence_type VARCHAR, {book})")
    a = f"'{PERSON_A}', true, DATE '1950-03-15', '男', '张三', '张三'"
    for i, (period, region, amount) in enumerate([("2024-01-01", "110101", "2500.00"), ("2024-02-01", "110101", "2500.00"),
                                                  ("2024-03-01", "110101", "2500.00"), ("2024-03-01", "310101", "2600.50"),
                                                  ("2024-04-01", "110101", "2500.00")]):
        con.execute(f"INSERT INTO pension_payments VALUES ('P{i}', {a}, '110', '{region}', DATE '{period}', {amount}, "
                    f"DATE '{period}', '6222000011112222', 'pension_payments.csv', {i + 2}, 'x')")
    con.execute(f"INSERT INTO subsidy_payments VALUES ('S1', {a}, '高龄补贴', '110101', DATE '2024-03-01', 100.00, "
                "'subsidy_payments.csv', 2, 'x')")
    con.execute(f"INSERT INTO deaths VALUES ({a}, DATE '2024-02-10', '民政', 'MZ1', 'deaths.csv', 2, 'x')")
    con.execute(f"INSERT INTO household VALUES ({a}, '男', DATE '1950-03-15', 'H1', '110101', '正常', NULL, NULL, "
                "'household.csv', 2, 'x')")
    con.execute(f"INSERT INTO prisoners VALUES ({a}, DATE '2023-12-05', DATE '2024-03-20', '有期徒刑', 'prisoners.csv', 2, 'x')")
    warehouse.create_views(con)
    return con
