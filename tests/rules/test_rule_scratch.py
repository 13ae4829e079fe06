"""The scratch warehouse for test cases follows the data contracts and the loader's canonical values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import polars as pl
import pytest
from rulehelpers import ZHANG

from pipelines.contracts import load_contracts
from pipelines.rules.scratch import (
    CaseDataError,
    firm_id_valid,
    make_scratch_db,
    person_id_facts,
    table_columns,
)


def describe(con, table):
    return {r[0]: r[1] for r in con.connection.execute(f'DESCRIBE "{table}"').fetchall()}


def test_every_extract_table_exists_with_contract_types():
    con = make_scratch_db({})
    contracts = load_contracts()
    for name, contract in contracts.items():
        assert describe(con, name) == table_columns(contract)
    pay = describe(con, "pension_payments")
    assert pay["amount"] == "DECIMAL(18,2)" and pay["period"] == "DATE" and pay["person_id_birth_date"] == "DATE"
    assert pay["_source_row"] == "BIGINT" and pay["name_raw"] == "VARCHAR"
    assert describe(con, "refund_transfers")["recipient_id_valid"] == "BOOLEAN"
    views = {r[0] for r in con.connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert {"death_records", "person_deaths"} <= views


def test_types_match_the_warehouse_loader():
    warehouse = pytest.importorskip("benchmarks.legacy_warehouse")
    for contract in load_contracts().values():
        assert table_columns(contract) == warehouse.table_columns(contract), contract.extract


def test_derived_values_are_computed():
    con = make_scratch_db({
        "pension_payments": [
            {"person_id": " 110101500315001 ", "name": "张 三", "period": "2024-03", "amount": "1,234.50"},
            {"person_id": "110101195003150014", "name": "李四", "period": "202404", "amount": 7},
        ],
        "refund_transfers": [{"firm_id": "91110000ma01abcd1m", "recipient_id": "91440300MA5F00003X"}],
    })
    rows = con.connection.execute(
        "SELECT payment_id, person_id, person_id_valid, person_id_birth_date, person_id_gender, name, name_raw, "
        "period, amount, _source_file, _source_row FROM pension_payments ORDER BY _source_row").fetchall()
    assert rows[0] == ("pension_payments-1", ZHANG, True, date(1950, 3, 15), "男", "张三", "张 三",
                       date(2024, 3, 1), Decimal("1234.50"), "pension_payments.csv", 2)
    assert rows[1][1:5] == ("110101195003150014", False, None, None)
    assert rows[1][7:9] == (date(2024, 4, 1), Decimal("7.00"))
    assert con.connection.execute("SELECT firm_id, firm_id_valid, recipient_id_valid FROM refund_transfers").fetchone() == (
        "91110000MA01ABCD1M", True, False)


def test_given_derived_values_win():
    con = make_scratch_db({"deaths": [{"person_id": ZHANG, "person_id_valid": False, "death_date": "2024-01-01", "source": "公安"}]})
    assert con.connection.execute("SELECT person_id_valid FROM deaths").fetchone() == (False,)
    # the views carry it (an invalid ID is still a person: person_deaths lists it)
    assert con.connection.execute("SELECT person_id_valid FROM death_records").fetchone() == (False,)
    assert con.connection.execute("SELECT count(*) FROM person_deaths").fetchone() == (1,)


@pytest.mark.parametrize(
    "tables, message",
    [
        ({"pensions": []}, "unknown table(s) ['pensions']"),
        ({"person_deaths": []}, "unknown table(s) ['person_deaths']"),
        ({"deaths": [{"person_id": ZHANG, "death_day": "2024-01-01"}]}, "unknown column(s) ['death_day']"),
        ({"deaths": [{"person_id": ZHANG, "death_date": "2024-02-30"}]}, "is not a date"),
        ({"pension_payments": [{"period": "2024-13"}]}, "is not a period"),
        ({"pension_payments": [{"amount": "12.345"}]}, "more than two decimals"),
        ({"stabilization_refunds": [{"is_labor_dispatch": "maybe"}]}, "is not a boolean"),
    ],
)
def test_bad_case_data(tables, message):
    with pytest.raises(CaseDataError) as err:
        make_scratch_db(tables)
    assert message in str(err.value)


IDS = ["110101195003150013", "110101195003150014", "110101500315001", "11010119500315001x", "110101190002300012",
       "11010117990101001X", "abc", "11010119500315"]
USCCS = ["91110000MA01ABCD1M", "91110000MA01ABCD1X", "91110000ma01abcd1m", "9111000", "91110108MA00XY0040"]


def test_id_helpers_agree_with_the_normalizer():
    ids = pytest.importorskip("pipelines.normalize.ids")
    frame = pl.DataFrame({"raw": IDS}).with_columns(p=ids.person_id_parts(pl.col("raw"))).unnest("p")
    for row in frame.iter_rows(named=True):
        facts = person_id_facts(row["raw"])
        assert (facts["value"], facts["valid"], facts["birth_date"], facts["gender"]) == (
            row["value"], row["valid"], row["birth_date"], row["gender"]), row["raw"]
    frame = pl.DataFrame({"raw": USCCS}).with_columns(p=ids.firm_id_parts(pl.col("raw"))).unnest("p")
    for row in frame.iter_rows(named=True):
        assert firm_id_valid(row["raw"].upper()) == row["valid"], row["raw"]
