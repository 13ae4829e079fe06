"""A scratch in-memory warehouse for rule test cases.

:func:`make_scratch_db` creates every extract table exactly as the warehouse does (names and
types from ``data_contracts/*.yaml`` via the type map of docs/architecture.md, derived columns
included), inserts the hand-made case rows, fills derived values the rows leave out (ID
validity, birth date and gender from the ID, ``name_raw``, bookkeeping columns, unique ids) and
creates the rule views with :func:`pipelines.lake.create_views` from
``pipelines/warehouse_views.sql``. Case rows are tiny, so plain Python is fine here.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import pyarrow as pa

from pipelines.contracts import Contract, ValueType, load_contracts
from pipelines.engine import Engine, connect

# contract type → warehouse SQL type (docs/architecture.md, "Warehouse schema")
SQL_TYPES = {
    ValueType.text: "VARCHAR",
    ValueType.person_id: "VARCHAR",
    ValueType.firm_id: "VARCHAR",
    ValueType.name: "VARCHAR",
    ValueType.date: "DATE",
    ValueType.period: "DATE",
    ValueType.money: "DECIMAL(18,2)",
    ValueType.scheme: "VARCHAR",
    ValueType.region_code: "VARCHAR",
    ValueType.boolean: "BOOLEAN",
    ValueType.enum: "VARCHAR",
}
BOOKKEEPING = {"_source_file": "VARCHAR", "_source_row": "BIGINT", "_file_sha256": "VARCHAR"}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


class CaseDataError(ValueError):
    """A case row names an unknown table or column, or holds a value of the wrong kind."""


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip()
    return text or None


def person_id_check_char(body17: str) -> str:
    """GB 11643 check character of the first 17 digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(body17, _ID_WEIGHTS)) % 11]


def person_id_facts(raw: Any) -> dict[str, Any]:
    """Canonical ID (15 digits upgraded to 18), validity, birth date and gender of one ID,
    following pipelines/normalize/ids.py (valid = right check char and a real birth date ≥ 1800)."""
    given = _clean(raw)
    if given is None:
        return {"value": None, "valid": None, "birth_date": None, "gender": None}
    given = given.upper()
    if re.fullmatch(r"\d{17}[\dX]", given):
        body, check_ok = given[:17], given[17] == person_id_check_char(given[:17])
    elif re.fullmatch(r"\d{15}", given):
        body, check_ok = given[:6] + "19" + given[6:], True
    else:
        return {"value": given, "valid": False, "birth_date": None, "gender": None}
    try:
        birth = datetime.strptime(body[6:14], "%Y%m%d").date()
    except ValueError:
        birth = None
    valid = bool(check_ok and birth is not None and birth.year >= 1800)
    value = body + person_id_check_char(body) if len(given) == 15 and valid else given
    return {
        "value": value,
        "valid": valid,
        "birth_date": birth if valid else None,
        "gender": ("男" if int(body[16]) % 2 == 1 else "女") if valid else None,
    }


def firm_id_valid(value: str | None) -> bool | None:
    """GB 32100-2015 check of an (upper-cased) USCC; None when blank."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9A-HJ-NPQRTUWXY]{18}", value):
        return False
    total = sum(_USCC_CHARSET.index(c) * w for c, w in zip(value, _USCC_WEIGHTS))
    return _USCC_CHARSET[(31 - total % 31) % 31] == value[17]


def uscc_with_check(body17: str) -> str:
    """A valid USCC from its first 17 characters (handy for writing test cases)."""
    total = sum(_USCC_CHARSET.index(c) * w for c, w in zip(body17.upper(), _USCC_WEIGHTS))
    return body17.upper() + _USCC_CHARSET[(31 - total % 31) % 31]


def table_columns(contract: Contract) -> dict[str, str]:
    """Warehouse column → SQL type of one extract table, derived and bookkeeping columns included."""
    columns: dict[str, str] = {}
    for col in contract.columns:
        columns[col.name] = SQL_TYPES[col.type]
        if col.type is ValueType.person_id:
            columns |= {f"{col.name}_valid": "BOOLEAN", f"{col.name}_birth_date": "DATE", f"{col.name}_gender": "VARCHAR"}
        elif col.type is ValueType.firm_id:
            columns[f"{col.name}_valid"] = "BOOLEAN"
        elif col.type is ValueType.name:
            columns[f"{col.name}_raw"] = "VARCHAR"
    return columns | BOOKKEEPING


def _to_date(value: Any, what: str) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise CaseDataError(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


def _to_period(value: Any, what: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.replace(day=1)
    m = re.fullmatch(r"(\d{4})-?(\d{2})(?:-01)?", str(value).strip())
    if not m or not 1 <= int(m[2]) <= 12:
        raise CaseDataError(f"{what}: {value!r} is not a period (YYYY-MM)")
    return date(int(m[1]), int(m[2]), 1)


def _to_money(value: Any, what: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CaseDataError(f"{what}: {value!r} is not an amount")
    try:
        amount = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation:
        raise CaseDataError(f"{what}: {value!r} is not an amount") from None
    if amount != amount.quantize(Decimal("0.01")):
        raise CaseDataError(f"{what}: {value!r} has more than two decimals")
    return amount


def _to_bool(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("是", "y", "yes", "true", "1"):
        return True
    if text in ("否", "n", "no", "false", "0"):
        return False
    raise CaseDataError(f"{what}: {value!r} is not a boolean")


def _typed(kind: str, value: Any) -> Any:
    """Python value for a derived/bookkeeping column of SQL type ``kind``."""
    if value is None:
        return None
    return {"BOOLEAN": lambda v: _to_bool(v, "value"), "DATE": lambda v: _to_date(v, "value"),
            "BIGINT": int}.get(kind, str)(value)


def _row_values(contract: Contract, columns: dict[str, str], row: dict[str, Any], row_no: int) -> dict[str, Any]:
    table = contract.extract
    unknown = sorted(set(row) - set(columns))
    if unknown:
        raise CaseDataError(f"{table} row {row_no}: unknown column(s) {unknown}; columns are {sorted(columns)}")
    out: dict[str, Any] = {}
    for col in contract.columns:
        what = f"{table} row {row_no} column {col.name}"
        value = row.get(col.name)
        kind = col.type
        if kind is ValueType.person_id:
            facts = person_id_facts(value)
            out[col.name] = facts["value"]
            for part in ("valid", "birth_date", "gender"):
                out[f"{col.name}_{part}"] = facts[part]
        elif kind is ValueType.firm_id:
            out[col.name] = (_clean(value) or "").upper() or None
            out[f"{col.name}_valid"] = firm_id_valid(out[col.name])
        elif kind is ValueType.name:
            cleaned = _clean(value)
            out[col.name] = re.sub(r"\s+", "", cleaned) if cleaned else None
            out[f"{col.name}_raw"] = None if value is None else str(value)
        elif kind is ValueType.date:
            out[col.name] = _to_date(value, what)
        elif kind is ValueType.period:
            out[col.name] = _to_period(value, what)
        elif kind is ValueType.money:
            out[col.name] = _to_money(value, what)
        elif kind is ValueType.boolean:
            out[col.name] = _to_bool(value, what)
        else:
            out[col.name] = _clean(value)
        if col.unique and out[col.name] is None:
            out[col.name] = f"{table}-{row_no}"
    out |= {"_source_file": f"{table}.csv", "_source_row": row_no + 1, "_file_sha256": "scratch"}
    # Values the case gives for derived or bookkeeping columns win over computed ones.
    for key, value in row.items():
        if key not in {c.name for c in contract.columns}:
            out[key] = _typed(columns[key], value)
    return out


@lru_cache(maxsize=1)
def _contracts() -> dict[str, Contract]:
    return load_contracts()


def make_scratch_db(cases_tables: dict[str, list[dict[str, Any]]], engine: Engine | None = None) -> Engine:
    """An in-memory engine session (DuckDB unless ``engine`` is given) holding ``cases_tables`` (table → rows as column → value).

    Every extract table of the data contracts is created (empty when the case gives no rows), so
    a rule never gets skipped in a test; then the rule views are created. Raises
    :class:`CaseDataError` for an unknown table or column or a value of the wrong kind.
    """
    contracts = _contracts()
    unknown = sorted(set(cases_tables) - set(contracts))
    if unknown:
        raise CaseDataError(f"unknown table(s) {unknown}; case rows go into extract tables: {sorted(contracts)}")
    con = engine if engine is not None else connect()
    for name, contract in contracts.items():
        columns = table_columns(contract)
        q = con.dialect.quote_identifier
        rows = [_row_values(contract, columns, dict(row), i) for i, row in enumerate(cases_tables.get(name) or [], 1)]
        typed = ", ".join(f"CAST(NULL AS {t}) AS {q(c)}" for c, t in columns.items())
        con.execute(f"CREATE OR REPLACE TABLE {q(name)} AS SELECT {typed} WHERE false")
        if rows:
            con.register("_case_rows", pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]))
            casts = ", ".join(f"CAST({q(c)} AS {t}) AS {q(c)}" for c, t in columns.items())
            con.execute(f"INSERT INTO {q(name)} SELECT {casts} FROM _case_rows")
            con.drop("_case_rows")
    from pipelines.lake import create_views

    create_views(con)
    return con
