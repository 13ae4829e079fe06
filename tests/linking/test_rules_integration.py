"""The link tables are warehouse tables rules may read (when they list them), and the two new rules
are loaded, linted and skipped cleanly when the link stage has not run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from linkhelpers import ZHANG, ZHANG_BAD_CHECK, ZHANG_SUB_SEQ, death, pay

from pipelines.errors import RuleSQLRefused
from pipelines.linking import LINK_TABLES
from pipelines.rules import load_rule, load_rules, make_scratch_db, run_rules
from pipelines.rules.engine import lint_rules
from pipelines.rules.sqlcheck import check_query, default_table_names

RULES = Path(__file__).resolve().parents[2] / "rules"
NEW = ["duplicate_identity", "paid_after_death_weak_match"]


def test_link_tables_are_known_to_the_engine():
    assert set(LINK_TABLES) <= default_table_names()


def test_new_rules_load_and_lint_clean():
    rules = {r.id: r for r in load_rules(RULES)}
    assert set(NEW) <= set(rules)
    assert lint_rules([rules[i] for i in NEW]) == []
    assert rules["paid_after_death_weak_match"].category == "paid_after_death"
    assert rules["paid_after_death_weak_match"].severity.value == "medium"
    assert rules["duplicate_identity"].category == "duplicate_identity"


def test_a_rule_reads_link_tables_only_when_it_lists_them():
    sql = "SELECT person_id FROM identity_clusters"
    assert check_query(sql, ["identity_clusters"]).tables == {"identity_clusters"}
    with pytest.raises(RuleSQLRefused, match="identity_clusters"):
        check_query(sql, ["pension_payments"])


def test_cases_may_not_fill_link_tables():
    rule = load_rule(RULES / "duplicate_identity.yaml")
    rule.tests[0].tables["person_links"] = [{"person_id_a": ZHANG}]
    problems = lint_rules([rule])
    assert any("person_links" in str(p) for p in problems)


def test_rules_are_skipped_until_the_link_stage_runs():
    rules = [load_rule(RULES / f"{i}.yaml") for i in NEW]
    con = make_scratch_db({"pension_payments": [pay(ZHANG, "张三"), pay(ZHANG_SUB_SEQ, "张三")],
                           "deaths": [death(ZHANG_BAD_CHECK, "张三", "2023-12-01")]})
    hits = run_rules(con, rules, date(2024, 7, 1))
    assert [r.status for r in hits.runs] == ["skipped", "skipped"]
    assert set(hits.runs[0].missing) | set(hits.runs[1].missing) == {"identity_clusters", "death_matches"}
    from pipelines.linking import link_persons

    link_persons(con)
    hits = run_rules(con, rules, date(2024, 7, 1))
    assert hits.counts() == {"duplicate_identity": 1, "paid_after_death_weak_match": 1}
