"""Raw text → canonical values, as vectorised polars expressions (no per-row Python).

``normalize_column`` dispatches on a contract column's ``ValueType`` and returns one struct
expression holding the warehouse columns it produces plus ``_present``/``_failed`` flags, so ingest can
tell "blank" (NULL, fine unless required) from "present but unparseable" (quarantined with a reason
code). ``output_schema`` gives the warehouse columns and types of a contract (docs/architecture.md,
"Warehouse schema").
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.contracts import Column, Contract, ValueType
from pipelines.normalize import ids, values
from pipelines.normalize.ids import (
    firm_id, firm_id_from_clean, firm_id_parts, firm_id_valid,
    person_id, person_id_from_clean, person_id_parts, person_id_valid,
)
from pipelines.normalize.values import (
    MONEY_DTYPE, clean, is_present, name, parse_boolean, parse_date, parse_enum, parse_money,
    parse_period, parse_region_code, parse_scheme, raw_text, stepwise, text,
)

__all__ = [
    "Normalised", "normalize_column", "output_schema", "REASON_CODES", "MONEY_DTYPE", "stepwise",
    "clean", "is_present", "text", "name", "raw_text", "parse_date", "parse_period", "parse_money",
    "parse_scheme", "parse_region_code", "parse_boolean", "parse_enum",
    "person_id", "person_id_valid", "person_id_parts", "firm_id", "firm_id_valid", "firm_id_parts",
    "ids", "values",
]

# Quarantine reason code for a present value of each type that does not parse.
ID_DAMAGED = "id_damaged_by_number"
REASON_CODES: dict[ValueType, str] = {
    ValueType.person_id: ID_DAMAGED,
    ValueType.firm_id: ID_DAMAGED,
    ValueType.date: "unparseable_date",
    ValueType.period: "unparseable_period",
    ValueType.money: "unparseable_money",
    ValueType.scheme: "unknown_scheme",
    ValueType.region_code: "bad_region_code",
    ValueType.boolean: "bad_boolean",
    ValueType.enum: "unknown_value",
}

f = pl.field


@dataclass(frozen=True)
class Normalised:
    """What one contract column becomes.

    ``expr`` is one struct expression with a field per warehouse column (named as in the warehouse)
    plus ``_present`` (the raw value is not blank) and ``_failed`` (present but unparseable; for IDs
    only when damaged by a number — an ID with a wrong checksum is kept and marked invalid). ``outputs`` lists the warehouse columns in
    order. ``reason_code`` is the quarantine code used when ``failed``.
    """

    column: str
    expr: pl.Expr
    outputs: list[str]
    reason_code: str | None


def _value(col: Column, text_: pl.Expr, excel_serial: bool) -> pl.Expr:
    kind = col.type
    if kind is ValueType.date:
        return values.date_from_clean(text_, excel_serial)
    if kind is ValueType.period:
        return values.period_from_clean(text_, excel_serial)
    if kind is ValueType.money:
        return values.money_from_clean(text_)
    if kind is ValueType.scheme:
        return values.scheme_from_clean(text_)
    if kind is ValueType.region_code:
        return values.region_code_from_clean(text_)
    if kind is ValueType.boolean:
        return values.boolean_from_clean(text_)
    if kind is ValueType.enum:
        return values.enum_from_clean(text_, col.values or {})
    if kind is ValueType.name:
        return values.name_from_clean(text_)
    return text_


def normalize_column(col: Column, raw: pl.Expr, excel_serial: bool = False,
                     number: pl.Expr | None = None) -> Normalised:
    """The warehouse columns for contract column ``col`` computed from its raw text ``raw``.

    ``excel_serial`` lets date/period columns accept Excel serial day numbers (XLSX sources only).
    ``number`` (ID columns) is True where the reader saw the cell as a number (a numeric XLSX cell,
    a Parquet float): such an ID, like one whose text shows a number's marks (``4.20113E+17``,
    ``…000.0``), fails with ``id_damaged_by_number``.
    """
    name = col.name
    first = {"_c": clean(raw)}
    if col.type is ValueType.name:
        first["_raw"] = raw.cast(pl.String)
    is_id = col.type in (ValueType.person_id, ValueType.firm_id)
    if is_id:  # the ID text is computed once, for its parts and for the damage check
        text_steps = [{"_g": ids.id_text_from_clean(f("_c"))}]
        parts = ids.person_id_from_id_text if col.type is ValueType.person_id else ids.firm_id_from_id_text
        damaged = ids.damaged_by_number_from_id_text(f("_g"))
        if number is not None:
            damaged = damaged | (number.fill_null(False) & f("_c").is_not_null())
        derived = {"_p": parts(f("_g")), "_dmg": damaged.fill_null(False)}
        fields = {name: f("_p").struct.field("value"), f"{name}_valid": f("_p").struct.field("valid")}
        if col.type is ValueType.person_id:
            fields |= {f"{name}_birth_date": f("_p").struct.field("birth_date"),
                       f"{name}_gender": f("_p").struct.field("gender")}
    else:
        text_steps = []
        derived = {"_v": _value(col, f("_c"), excel_serial)}
        fields = {name: f("_v")}
        if col.type is ValueType.name:
            fields[f"{name}_raw"] = pl.when(f("_c").is_not_null()).then(f("_raw"))
    code = REASON_CODES.get(col.type)
    if is_id:  # present: an ID is left once the spreadsheet marks are off (a lone "'" is blank)
        present = f(name).is_not_null() | f("_dmg")
        failed = f("_dmg")
    else:
        present = f("_c").is_not_null()
        failed = (present & f(name).is_null()) if code else pl.lit(False)
    expr = stepwise(first, *text_steps, derived, fields, {"_present": present, "_failed": failed})
    return Normalised(name, expr, list(fields), code)


_DTYPES: dict[ValueType, pl.DataType] = {
    ValueType.date: pl.Date(),
    ValueType.period: pl.Date(),
    ValueType.money: MONEY_DTYPE,
    ValueType.boolean: pl.Boolean(),
}


def output_schema(contract: Contract) -> dict[str, pl.DataType]:
    """Warehouse columns of a contract's extract, in order, with their polars types
    (without the bookkeeping columns ``_source_file``, ``_source_row``, ``_file_sha256``)."""
    schema: dict[str, pl.DataType] = {}
    for col in contract.columns:
        schema[col.name] = _DTYPES.get(col.type, pl.String())
        if col.type is ValueType.person_id:
            schema[f"{col.name}_valid"] = pl.Boolean()
            schema[f"{col.name}_birth_date"] = pl.Date()
            schema[f"{col.name}_gender"] = pl.String()
        elif col.type is ValueType.firm_id:
            schema[f"{col.name}_valid"] = pl.Boolean()
        elif col.type is ValueType.name:
            schema[f"{col.name}_raw"] = pl.String()
    return schema
