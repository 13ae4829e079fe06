"""Fixtures for the rule-engine tests (helpers live in rulehelpers.py)."""

from __future__ import annotations

import pytest
from rulehelpers import sample_rows


@pytest.fixture
def sample_tables():
    """Payments for three people (fresh copy per test)."""
    return sample_rows()
