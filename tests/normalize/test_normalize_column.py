"""normalize_column: outputs per contract type and the blank / unparseable distinction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from pipelines.contracts import Column, ValueType, load_contracts
from pipelines.normalize import MONEY_DTYPE, REASON_CODES, normalize_column, output_schema


def evaluate(col: Column, values: list[str | None], **kwargs) -> list[dict]:
    n = normalize_column(col, pl.col("raw"), **kwargs)
    frame = pl.DataFrame({"raw": values}, schema={"raw": pl.String})
    return frame.select(n.expr.alias("n")).unnest("n").select(*n.outputs, "_present", "_failed").to_dicts()


def test_date_column_flags_blank_and_unparseable_apart():
    col = Column(name="death_date", type=ValueType.date)
    assert evaluate(col, ["2024-03-05", "", None, "2024-13-45"]) == [
        {"death_date": dt.date(2024, 3, 5), "_present": True, "_failed": False},
        {"death_date": None, "_present": False, "_failed": False},
        {"death_date": None, "_present": False, "_failed": False},
        {"death_date": None, "_present": True, "_failed": True},
    ]


def test_excel_serial_is_passed_through():
    col = Column(name="d", type=ValueType.date)
    assert evaluate(col, ["45356"], excel_serial=True)[0]["d"] == dt.date(2024, 3, 5)
    assert evaluate(col, ["45356"])[0]["_failed"] is True


def test_person_id_column_outputs_and_never_fails():
    col = Column(name="person_id", type=ValueType.person_id)
    rows = evaluate(col, ["110105491231002", "bad"])
    assert rows[0] == {"person_id": "11010519491231002X", "person_id_valid": True,
                       "person_id_birth_date": dt.date(1949, 12, 31), "person_id_gender": "女",
                       "_present": True, "_failed": False}
    assert rows[1]["person_id"] == "BAD" and rows[1]["person_id_valid"] is False and rows[1]["_failed"] is False


def test_firm_id_column_outputs():
    col = Column(name="firm_id", type=ValueType.firm_id)
    assert evaluate(col, ["91350100m000100y43"]) == [
        {"firm_id": "91350100M000100Y43", "firm_id_valid": True, "_present": True, "_failed": False}]


def test_name_column_keeps_raw():
    col = Column(name="name", type=ValueType.name)
    assert evaluate(col, [" 张 三 ", " "]) == [
        {"name": "张三", "name_raw": " 张 三 ", "_present": True, "_failed": False},
        {"name": None, "name_raw": None, "_present": False, "_failed": False},
    ]


@pytest.mark.parametrize("kind, bad", [
    (ValueType.period, "2024-13"), (ValueType.money, "1.234"), (ValueType.scheme, "999"),
    (ValueType.region_code, "11010"), (ValueType.boolean, "maybe"),
])
def test_every_parsing_type_fails_on_garbage(kind, bad):
    col = Column(name="c", type=kind)
    assert evaluate(col, [bad])[0]["_failed"] is True
    assert kind in REASON_CODES


def test_enum_column_fails_on_unknown_value():
    col = Column(name="source", type=ValueType.enum, values={"公安": ["police"]})
    assert evaluate(col, ["police", "医院"]) == [
        {"source": "公安", "_present": True, "_failed": False},
        {"source": None, "_present": True, "_failed": True},
    ]


def test_text_column_never_fails():
    col = Column(name="t", type=ValueType.text)
    assert evaluate(col, ["anything", ""]) == [
        {"t": "anything", "_present": True, "_failed": False}, {"t": None, "_present": False, "_failed": False}]


def test_output_schema_matches_architecture():
    contracts = load_contracts()
    schema = output_schema(contracts["pension_payments"])
    assert list(schema) == [
        "payment_id", "person_id", "person_id_valid", "person_id_birth_date", "person_id_gender",
        "name", "name_raw", "scheme", "region_code", "period", "amount", "pay_date", "bank_account"]
    assert schema["amount"] == MONEY_DTYPE and schema["period"] == pl.Date and schema["person_id_valid"] == pl.Boolean
    refunds = output_schema(contracts["stabilization_refunds"])
    assert refunds["firm_id_valid"] == pl.Boolean and refunds["is_labor_dispatch"] == pl.Boolean
    assert refunds["dispatched_amount"] == MONEY_DTYPE


def test_normalised_money_column_is_decimal():
    col = Column(name="amount", type=ValueType.money)
    n = normalize_column(col, pl.col("raw"))
    frame = pl.DataFrame({"raw": ["1"]}).select(n.expr.alias("n")).unnest("n")
    assert frame.schema["amount"] == MONEY_DTYPE and frame["amount"][0] == Decimal("1.00")
