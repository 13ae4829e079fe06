"""Every rule runs under a time limit and a memory cap: runaway queries are stopped, named, and the run fails."""

from __future__ import annotations

import time
from datetime import date

import pytest
from rulehelpers import make_rule

from pipelines import limits
from pipelines.errors import RuleError
from pipelines.rules import make_scratch_db, run_rules

AS_OF = date(2024, 7, 1)

RECURSIVE = """
WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t)
SELECT person_id AS subject_id, min(name) AS subject_name, min(region_code) AS region_code,
       min(period) AS first_period, max(period) AS last_period,
       CAST(sum(amount) AS DECIMAL(18,2)) AS amount_at_risk, {'n': (SELECT max(n) FROM t)} AS evidence
FROM pension_payments GROUP BY person_id
"""

# A 3-way cross join of the payments with themselves: rows multiply; nothing bounds it but the limits.
CROSS_JOIN = """
SELECT a.person_id AS subject_id, min(a.name) AS subject_name, min(a.region_code) AS region_code,
       min(a.period) AS first_period, max(a.period) AS last_period,
       CAST(sum(a.amount) AS DECIMAL(18,2)) AS amount_at_risk,
       {'pairs': list(b.payment_id || c.payment_id || d.payment_id ORDER BY b.payment_id || c.payment_id || d.payment_id)} AS evidence
FROM pension_payments a, pension_payments b, pension_payments c, pension_payments d
GROUP BY a.person_id
"""


def payments(n: int) -> dict:
    return {"pension_payments": [
        {"payment_id": f"P{i:06d}", "person_id": "110101195003150013", "name": "张三", "scheme": "110",
         "region_code": "110101", "period": "2024-01", "amount": "1.00"} for i in range(n)]}


def test_runaway_recursive_cte_is_stopped_at_the_time_limit():
    con = make_scratch_db(payments(3))
    rule = make_rule(id="runaway", query=RECURSIVE)
    started = time.monotonic()
    with limits.using(limits.DEFAULT.with_overrides({"rule_time_limit_seconds": "2s"})):
        with pytest.raises(RuleError) as info:
            run_rules(con, [rule], AS_OF)
    assert time.monotonic() - started < 30
    assert info.value.rule == "runaway"
    text = str(info.value)
    assert ("time limit of 2 s" in text) or ("memory cap" in text), text


def test_three_way_cross_join_hits_the_memory_cap():
    con = make_scratch_db(payments(400))  # 400^4 = 2.56e10 rows before grouping
    rule = make_rule(id="cross_join", query=CROSS_JOIN)
    with limits.using(limits.DEFAULT.with_overrides({"rule_memory_limit_bytes": "200MB", "rule_spill_limit_bytes": "100MB",
                                                     "rule_time_limit_seconds": 60})):
        with pytest.raises(RuleError) as info:
            run_rules(con, [rule], AS_OF)
    assert info.value.rule == "cross_join"
    assert "memory cap of 190.7 MiB" in str(info.value) or "spill limit" in str(info.value), str(info.value)
    # the connection's own settings are restored for the next rule
    assert con.scalar("SELECT current_setting('max_temp_directory_size')") != "95.3 MiB"


def test_a_rule_sets_its_own_time_limit_and_the_run_can_override_it():
    con = make_scratch_db(payments(3))
    rule = make_rule(id="runaway", query=RECURSIVE, limits={"time_seconds": 1, "memory": "4GB"})
    with pytest.raises(RuleError, match=r"time limit of 1 s|memory cap"):
        run_rules(con, [rule], AS_OF)
    with limits.using(limits.DEFAULT.with_overrides({"rule_time_limit_seconds": 3})):
        with pytest.raises(RuleError, match=r"time limit of 3 s|memory cap") as info:
            run_rules(con, [rule], AS_OF)
    assert "limits.rule_time_limit_seconds" in str(info.value) or "memory cap" in str(info.value)


def test_limits_are_on_by_default():
    assert limits.DEFAULT.rule_time_limit_seconds > 0 and limits.DEFAULT.rule_memory_limit_bytes > 0
    with pytest.raises(Exception, match="greater than 0"):
        make_rule(limits={"time_seconds": 0})


def test_a_normal_rule_runs_within_the_limits():
    con = make_scratch_db(payments(3))
    hits = run_rules(con, [make_rule()], AS_OF)
    assert hits.table.num_rows == 1
    assert con.scalar("SELECT current_setting('memory_limit')") not in ("4.0 GiB",)
