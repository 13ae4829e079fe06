"""IDs and row builders shared by the linking tests."""

from __future__ import annotations

from typing import Any

from pipelines.linking import link_persons
from pipelines.rules.scratch import make_scratch_db, person_id_check_char


def valid(body17: str) -> str:
    """A valid 18-char ID from its first 17 digits."""
    return body17 + person_id_check_char(body17)


ZHANG = "110101195003150013"          # valid, born 1950-03-15, male (sequence 001)
ZHANG_SUB_SEQ = "110101195003150213"  # sequence digit 15 wrong, checksum fails
ZHANG_SUB_REGION = "110201195003150013"  # region digit 3 wrong
ZHANG_BAD_CHECK = "110101195003150014"   # right body, wrong check character
ZHANG_SWAP = "110101195003150031"        # last sequence digit and check character swapped
ZHANG_BIRTH_TYPO = "110101195003160013"  # day digit wrong: born 1950-03-16 by this ID
ZHANG_FORGED = valid("11010119500315007")  # valid, sequence 007, unknown to the register
WANG = "440300194511110049"          # valid, born 1945-11-11, female (sequence 004)
WANG_TWIN = valid("44030019451111006")  # valid, sequence 006, same household in the twin tests
WANG_SWAP = "440300194511110409"     # sequence digits 15/16 swapped
NS1 = valid("11010119480620002")     # 王伟 in 110101, born 1948-06-20
NS2 = valid("11010219480620002")     # 王伟 in 110102, same birth and sequence


def house(pid: str, name: str, birth: str, hh: str = "H1", region: str | None = None, **kw: Any) -> dict:
    """A household row."""
    return {"person_id": pid, "name": name, "birth_date": birth, "household_id": hh,
            "region_code": region or pid[:6], "status": "正常", **kw}


def pay(pid: str, name: str, period: str = "2024-01", amount: str = "100.00", region: str = "110101",
        scheme: str = "110", pid_no: list[int] = [0]) -> dict:  # noqa: B006 - a counter on purpose
    """A pension payment row with a fresh payment id."""
    pid_no[0] += 1
    return {"payment_id": f"P{pid_no[0]}", "person_id": pid, "name": name, "scheme": scheme,
            "region_code": region, "period": period, "amount": amount}


def death(pid: str, name: str, when: str = "2024-01-10", source: str = "公安", record: str | None = None) -> dict:
    """A deaths row."""
    return {"person_id": pid, "name": name, "death_date": when, "source": source, "record_id": record}


def linked_db(tables: dict[str, list[dict[str, Any]]], **kw: Any):
    """A scratch warehouse holding ``tables`` after the link stage; returns (con, LinkResult)."""
    con = make_scratch_db(tables)
    return con, link_persons(con, **kw)


def rows(con, sql: str) -> list[dict]:
    """Query result as a list of dicts."""
    rel = con.connection.sql(sql)
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def link_of(con, a: str, b: str, table: str = "person_link_candidates") -> dict | None:
    """The scored pair (a, b) in ``table``, or None."""
    lo, hi = sorted((a, b))
    found = rows(con, f"SELECT * FROM {table} WHERE person_id_a = '{lo}' AND person_id_b = '{hi}'")
    return found[0] if found else None
