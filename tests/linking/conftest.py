"""Helpers for the identity-resolution tests: valid/invalid IDs and scratch warehouses."""

from __future__ import annotations

from typing import Any

import pytest
from linkhelpers import linked_db


@pytest.fixture
def link():
    """Build a scratch warehouse from extract rows, run the link stage, return (con, result)."""
    cons = []

    def make(tables: dict[str, list[dict[str, Any]]], **kw):
        con, result = linked_db(tables, **kw)
        cons.append(con)
        return con, result

    yield make
    for con in cons:
        con.close()
