"""The DuckDB warehouse: schema, idempotent loads mirroring the landing folder, duplicate ids, views."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.contracts import load_contracts
from pipelines.errors import RunError
from pipelines.ingest import discover_extracts, ingest_extract
from benchmarks.legacy_warehouse import connect, create_views, load_extract, sync_extracts, table_counts

GOLDEN = Path(__file__).parents[1] / "data" / "ingest"
CONTRACTS = load_contracts()
HEADER = "payment_id,person_id,name,scheme,region_code,period,amount\n"


def payments(*rows: str) -> str:
    """CSV text; each row 'id,period,amount' expands to a full payment row."""
    lines = []
    for row in rows:
        pid, period, amount = row.split(",")
        lines.append(f"{pid},11010519491231002X,张三,110,110105,{period},{amount}\n")
    return HEADER + "".join(lines)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def run_load(con, landing: Path, staging: Path) -> dict:
    """What a run does: discover, sync, ingest + load every extract, views."""
    found = discover_extracts(landing, CONTRACTS)
    sync_extracts(con, {ex: [p.relative_to(landing).as_posix() for p in files] for ex, files in found.items()})
    results = {ex: load_extract(con, CONTRACTS[ex], ingest_extract(CONTRACTS[ex], files, landing, staging))
               for ex, files in found.items()}
    create_views(con)
    return results


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


@pytest.fixture
def con(tmp_path):
    connection = connect(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


# ----------------------------------------------------------------------------- connect and schema


def test_connect_applies_settings_and_creates_bookkeeping(tmp_path):
    con = connect(tmp_path / "w" / "wh.duckdb", memory_limit="1GB", temp_directory=tmp_path / "spill", threads=1)
    settings = rows(con, "SELECT current_setting('threads'), current_setting('temp_directory')")
    assert settings == [(1, str(tmp_path / "spill"))]
    assert rows(con, "SELECT current_setting('memory_limit')")[0][0].endswith("MiB")  # 1GB = 953.6 MiB
    assert [r[0] for r in rows(con, "DESCRIBE _loaded_files")] == [
        "extract", "source_file", "size_bytes", "sha256", "rows_read", "rows_loaded", "rows_quarantined", "loaded_at"]
    assert [r[0] for r in rows(con, "DESCRIBE _quarantine")] == ["extract", "source_file", "source_row", "reason", "raw_json"]
    assert table_counts(con) == {"_loaded_files": 0, "_quarantine": 0}
    con.close()


def test_connect_with_a_bad_setting_names_the_file(tmp_path):
    with pytest.raises(RunError) as err:
        connect(tmp_path / "wh.duckdb", memory_limit="lots")
    assert "wh.duckdb" in str(err.value) and "memory_limit" in str(err.value)


def test_table_columns_and_types_are_the_architecture_schema(con, tmp_path):
    run_load(con, GOLDEN / "formats", tmp_path / "staging")
    described = rows(con, "SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = 'pension_payments' ORDER BY ordinal_position")
    assert described == [
        ("payment_id", "VARCHAR"), ("person_id", "VARCHAR"), ("person_id_valid", "BOOLEAN"),
        ("person_id_birth_date", "DATE"), ("person_id_gender", "VARCHAR"), ("name", "VARCHAR"),
        ("name_raw", "VARCHAR"), ("scheme", "VARCHAR"), ("region_code", "VARCHAR"), ("period", "DATE"),
        ("amount", "DECIMAL(18,2)"), ("pay_date", "DATE"), ("bank_account", "VARCHAR"),
        ("_source_file", "VARCHAR"), ("_source_row", "BIGINT"), ("_file_sha256", "VARCHAR"), ("备注", "VARCHAR"),
    ]
    # absent extracts get no table (rules check presence)
    assert set(table_counts(con)) == {"_loaded_files", "_quarantine", "deaths", "household", "pension_payments"}


def test_ids_and_money_survive_exactly(con, tmp_path):
    run_load(con, GOLDEN / "formats", tmp_path / "staging")
    assert rows(con, "SELECT DISTINCT person_id FROM deaths ORDER BY 1") == [
        ("110105194912310021",), ("11010519491231002X",), ("440524188001010014",)]
    assert rows(con, "SELECT DISTINCT bank_account FROM pension_payments WHERE bank_account IS NOT NULL") == [
        ("6222020200112233445",)]
    # the four files repeat the same three payment ids: the first file's rows are loaded, the rest are duplicates
    assert rows(con, "SELECT sum(amount), count(*) FROM pension_payments") == [(Decimal("1346.50"), 3)]
    assert rows(con, "SELECT count(*) FROM _quarantine WHERE reason LIKE 'duplicate_id:%'") == [(9,)]


# ----------------------------------------------------------------------------- idempotence and mirroring


def test_loading_the_same_files_twice_doubles_nothing(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(GOLDEN / "quarantine", landing)
    first = run_load(con, landing, tmp_path / "s1")
    counts = table_counts(con)
    second = run_load(con, landing, tmp_path / "s2")
    assert table_counts(con) == counts
    assert counts["pension_payments"] == 10 and counts["_quarantine"] == 8 + 2 + 1
    assert first["pension_payments"].files_loaded == ["pension_payments.csv"]
    assert second["pension_payments"].files_loaded == [] and second["pension_payments"].files_skipped == ["pension_payments.csv"]


def test_loaded_files_registry(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(GOLDEN / "quarantine", landing)
    run_load(con, landing, tmp_path / "s")
    sha = hashlib.sha256((landing / "pension_payments.csv").read_bytes()).hexdigest()
    assert rows(con, "SELECT size_bytes, sha256, rows_read, rows_loaded, rows_quarantined FROM _loaded_files "
                     "WHERE extract = 'pension_payments'") == [
        ((landing / "pension_payments.csv").stat().st_size, sha, 18, 10, 8)]


def test_a_changed_file_replaces_its_rows(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments_01.csv", payments("A1,2024-01,10", "A2,2024-01,20"))
    write(landing / "pension_payments_02.csv", payments("B1,2024-02,30"))
    run_load(con, landing, tmp_path / "s1")
    write(landing / "pension_payments_01.csv", payments("A1,2024-01,11"))
    result = run_load(con, landing, tmp_path / "s2")["pension_payments"]
    assert result.files_loaded == ["pension_payments_01.csv"] and result.files_skipped == ["pension_payments_02.csv"]
    assert rows(con, "SELECT payment_id, amount FROM pension_payments ORDER BY 1") == [
        ("A1", Decimal("11.00")), ("B1", Decimal("30.00"))]
    assert rows(con, "SELECT count(*) FROM _loaded_files") == [(2,)]


def test_a_removed_file_takes_its_rows_and_quarantine_with_it(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments_01.csv", payments("A1,2024-01,10", "A2,2024-13,20"))
    write(landing / "pension_payments_02.csv", payments("B1,2024-02,30"))
    run_load(con, landing, tmp_path / "s1")
    assert rows(con, "SELECT source_file FROM _quarantine") == [("pension_payments_01.csv",)]
    (landing / "pension_payments_01.csv").unlink()
    run_load(con, landing, tmp_path / "s2")
    assert rows(con, "SELECT payment_id FROM pension_payments") == [("B1",)]
    assert rows(con, "SELECT count(*) FROM _quarantine") == [(0,)]
    assert rows(con, "SELECT source_file FROM _loaded_files") == [("pension_payments_02.csv",)]


def test_an_extract_gone_from_landing_loses_its_table_and_views(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(GOLDEN / "formats", landing)
    run_load(con, landing, tmp_path / "s1")
    assert "person_deaths" in {r[0] for r in rows(con, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    (landing / "deaths.xlsx").unlink()
    shutil.rmtree(landing / "household")
    removed = sync_extracts(con, {"pension_payments": [p.name for p in landing.glob("pension_payments*")]})
    assert removed == {"deaths": ["deaths.xlsx"], "household": ["household/part-0001.parquet"]}
    assert set(table_counts(con)) == {"_loaded_files", "_quarantine", "pension_payments"}
    # the death and household views are gone; benefit_payments needs pension_payments only
    assert rows(con, "SELECT view_name FROM duckdb_views() WHERE NOT internal") == [("benefit_payments",)]


def test_a_failed_load_leaves_the_warehouse_as_it_was(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments.csv", payments("A1,2024-01,10"))
    contract = CONTRACTS["pension_payments"]
    result = ingest_extract(contract, [landing / "pension_payments.csv"], landing, tmp_path / "s")
    result.files[0].quarantine_path.unlink()  # the load fails after inserting the rows
    with pytest.raises(duckdb.Error):
        load_extract(con, contract, result)
    assert table_counts(con) == {"_loaded_files": 0, "_quarantine": 0}


# ----------------------------------------------------------------------------- duplicate ids


def test_duplicate_ids_within_and_across_files_are_quarantined(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments_a.csv", payments("P1,2024-01,1", "P2,2024-01,2", "P1,2024-02,3"))
    write(landing / "pension_payments_b.csv", payments("P2,2024-02,4", "P3,2024-02,5"))
    result = run_load(con, landing, tmp_path / "s")["pension_payments"]
    assert result.duplicates == 2 and result.rows_loaded == 3
    assert rows(con, "SELECT payment_id, amount, _source_file FROM pension_payments ORDER BY 1") == [
        ("P1", Decimal("1.00"), "pension_payments_a.csv"), ("P2", Decimal("2.00"), "pension_payments_a.csv"),
        ("P3", Decimal("5.00"), "pension_payments_b.csv")]
    assert rows(con, "SELECT source_file, source_row, reason FROM _quarantine ORDER BY 1, 2") == [
        ("pension_payments_a.csv", 4, "duplicate_id: payment_id='P1' (first at pension_payments_a.csv row 2)"),
        ("pension_payments_b.csv", 2, "duplicate_id: payment_id='P2' (first at pension_payments_a.csv row 3)"),
    ]
    assert rows(con, "SELECT raw_json::JSON->>'amount' FROM _quarantine ORDER BY source_file") == [("3.00",), ("4.00",)]
    assert rows(con, "SELECT source_file, rows_loaded, rows_quarantined FROM _loaded_files ORDER BY 1") == [
        ("pension_payments_a.csv", 2, 1), ("pension_payments_b.csv", 1, 1)]


def test_a_new_file_repeating_loaded_ids_is_quarantined_without_rebuild(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments_a.csv", payments("P1,2024-01,1"))
    run_load(con, landing, tmp_path / "s1")
    write(landing / "pension_payments_b.csv", payments("P1,2024-02,9", "P2,2024-02,2"))
    result = run_load(con, landing, tmp_path / "s2")["pension_payments"]
    assert not result.rebuilt and result.files_loaded == ["pension_payments_b.csv"]
    assert rows(con, "SELECT payment_id, amount FROM pension_payments ORDER BY 1") == [
        ("P1", Decimal("1.00")), ("P2", Decimal("2.00"))]
    assert rows(con, "SELECT source_file, source_row FROM _quarantine") == [("pension_payments_b.csv", 2)]


def _snapshot(con):
    return (rows(con, "SELECT payment_id, amount, _source_file, _source_row FROM pension_payments ORDER BY ALL"),
            rows(con, "SELECT source_file, source_row, reason FROM _quarantine ORDER BY ALL"))


def test_the_outcome_never_depends_on_load_history(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments_b.csv", payments("P5,2024-02,9", "P6,2024-02,6"))
    run_load(con, landing, tmp_path / "s1")
    # a file sorting before b repeats P5: by (source_file, source_row), a's P5 is now the first
    write(landing / "pension_payments_a.csv", payments("P5,2024-01,1"))
    result = run_load(con, landing, tmp_path / "s2")["pension_payments"]
    assert result.rebuilt
    incremental = _snapshot(con)
    fresh = connect(tmp_path / "fresh.duckdb")
    run_load(fresh, landing, tmp_path / "s3")
    assert incremental == _snapshot(fresh)
    assert incremental[0][0] == ("P5", Decimal("1.00"), "pension_payments_a.csv", 2)
    fresh.close()


def test_removing_the_first_occurrence_revives_the_duplicate(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments_a.csv", payments("P5,2024-01,1"))
    write(landing / "pension_payments_b.csv", payments("P5,2024-02,9"))
    run_load(con, landing, tmp_path / "s1")
    assert rows(con, "SELECT count(*) FROM _quarantine") == [(1,)]
    (landing / "pension_payments_a.csv").unlink()
    run_load(con, landing, tmp_path / "s2")
    assert rows(con, "SELECT payment_id, amount, _source_file FROM pension_payments") == [
        ("P5", Decimal("9.00"), "pension_payments_b.csv")]
    assert rows(con, "SELECT count(*) FROM _quarantine") == [(0,)]


def test_changing_an_unrelated_file_keeps_duplicate_verdicts(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments_a.csv", payments("P5,2024-01,1"))
    write(landing / "pension_payments_b.csv", payments("P5,2024-02,9"))
    write(landing / "pension_payments_c.csv", payments("P7,2024-02,7"))
    run_load(con, landing, tmp_path / "s1")
    before = _snapshot(con)
    write(landing / "pension_payments_c.csv", payments("P7,2024-02,8"))
    run_load(con, landing, tmp_path / "s2")
    after = _snapshot(con)
    assert after[1] == before[1] and ("P7", Decimal("8.00"), "pension_payments_c.csv", 2) in after[0]


# ----------------------------------------------------------------------------- views


def test_death_views_union_household_and_take_the_earliest_death(con, tmp_path):
    run_load(con, GOLDEN / "formats", tmp_path / "s")
    assert rows(con, "SELECT person_id, death_date, source, record_id FROM death_records ORDER BY ALL") == [
        ("110105194912310021", dt.date(2024, 2, 29), "民政", None),
        ("11010519491231002X", dt.date(2024, 1, 10), "公安", "household:H1"),  # household cancelled for death
        ("11010519491231002X", dt.date(2024, 1, 15), "公安", "1001"),
        ("440524188001010014", dt.date(2024, 3, 5), "卫健", None),
    ]
    # the invalid ID is a person too (suspects.md: an invalid ID is an identifier); the earliest of two records wins
    assert rows(con, "SELECT * FROM person_deaths ORDER BY person_id") == [
        ("110105194912310021", dt.date(2024, 2, 29), dt.date(2024, 2, 1), ["民政"], []),
        ("11010519491231002X", dt.date(2024, 1, 10), dt.date(2024, 1, 1), ["公安"], ["1001", "household:H1"]),
        ("440524188001010014", dt.date(2024, 3, 5), dt.date(2024, 3, 1), ["卫健"], []),
    ]
    assert [r[0] for r in rows(con, "DESCRIBE death_records")] == [
        "person_id", "person_id_valid", "person_id_birth_date", "name", "death_date", "source", "record_id"]


def test_views_with_deaths_only(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(GOLDEN / "formats" / "deaths.xlsx", landing / "deaths.xlsx")
    run_load(con, landing, tmp_path / "s")
    assert rows(con, "SELECT count(*) FROM death_records") == [(3,)]
    assert rows(con, "SELECT person_id, death_date FROM person_deaths ORDER BY 1") == [
        ("110105194912310021", dt.date(2024, 2, 29)), ("11010519491231002X", dt.date(2024, 1, 15)),
        ("440524188001010014", dt.date(2024, 3, 5))]


def test_views_with_household_only(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(GOLDEN / "formats" / "household", landing / "household")
    run_load(con, landing, tmp_path / "s")
    assert rows(con, "SELECT person_id, death_month, sources FROM person_deaths") == [
        ("11010519491231002X", dt.date(2024, 1, 1), ["公安"])]


def test_no_death_sources_no_death_views(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments.csv", payments("A1,2024-01,10"))
    run_load(con, landing, tmp_path / "s")
    assert create_views(con) == ["benefit_payments"]  # no death view: it needs a death source
    assert rows(con, "SELECT view_name FROM duckdb_views() WHERE NOT internal") == [("benefit_payments",)]


def test_a_table_from_an_older_contract_is_rebuilt(con, tmp_path):
    landing = tmp_path / "landing"
    write(landing / "pension_payments.csv", payments("A1,2024-01,10"))
    # as if an older contract had typed amount as text
    con.execute("CREATE TABLE pension_payments (payment_id VARCHAR, amount VARCHAR, _source_file VARCHAR)")
    result = run_load(con, landing, tmp_path / "s")["pension_payments"]
    assert result.rebuilt
    assert rows(con, "SELECT data_type FROM information_schema.columns "
                     "WHERE table_name = 'pension_payments' AND column_name = 'amount'") == [("DECIMAL(18,2)",)]
    assert rows(con, "SELECT payment_id, amount FROM pension_payments") == [("A1", Decimal("10.00"))]
