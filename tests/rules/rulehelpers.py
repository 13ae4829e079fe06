"""Helpers for the rule-engine tests: small hand-made rules and rows (imported by the test modules)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pipelines.rules.model import Rule

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
SHIPPED = sorted(RULES_DIR.glob("*.yaml"))

ZHANG = "110101195003150013"   # valid ID, born 1950-03-15
LI = "310101195201010035"      # valid ID
WANG = "440300194511110049"    # valid ID

SIMPLE_QUERY = """
SELECT person_id AS subject_id,
       min(name) AS subject_name,
       min(region_code) AS region_code,
       min(period) AS first_period,
       max(period) AS last_period,
       CAST(sum(amount) AS DECIMAL(18,2)) AS amount_at_risk,
       {'payments': count(*), 'ids': list_sort(list(payment_id))} AS evidence
FROM pension_payments
GROUP BY person_id
"""

BASE_RULE: dict[str, Any] = {
    "id": "simple_sum",
    "version": 3,
    "title": "测试规则",
    "description": "Sums every person's pension payments (test rule).",
    "category": "test_category",
    "severity": "low",
    "status": "experimental",
    "author": "tests",
    "requires": ["pension_payments"],
    "subject_type": "person",
    "query": SIMPLE_QUERY,
    "reason": "{subject_name}（{subject_id}）在{first_period}至{last_period}共领取{amount_at_risk}元。",
    "tests": [
        {"name": "fires", "as_of": "2024-07-01", "expect": [{"subject_id": ZHANG, "amount_at_risk": "1.00"}]},
        {"name": "quiet", "as_of": "2024-07-01", "expect": []},
    ],
}


def make_rule(**changes: Any) -> Rule:
    """A valid test rule with some fields replaced."""
    data = copy.deepcopy(BASE_RULE)
    data.update(changes)
    return Rule.model_validate(data)


def payment(pid: str, person: str, period: str, amount: str, **extra: Any) -> dict[str, Any]:
    """One pension_payments case row."""
    row = {"payment_id": pid, "person_id": person, "name": extra.pop("name", "张三"), "scheme": "110",
           "region_code": "110101", "period": period, "amount": amount}
    row.update(extra)
    return row


def sample_rows() -> dict[str, list[dict[str, Any]]]:
    """Payments for three people."""
    return {
        "pension_payments": [
            payment("P1", ZHANG, "2024-01", "2500.00"),
            payment("P2", ZHANG, "2024-02", "2500.50"),
            payment("P3", LI, "2024-03", "4000.00", name="李四", region_code="310101"),
            payment("P4", WANG, "2024-02", "180.00", name="王五", region_code="440300", scheme="170"),
        ]
    }
