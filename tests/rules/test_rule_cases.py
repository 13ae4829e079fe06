"""Every embedded case of every shipped rule passes on every engine, and the case runner really compares."""

from __future__ import annotations

import pytest
from engines import SPARK_MARKS
from rulehelpers import SHIPPED

from pipelines.engine import connect
from pipelines.errors import RuleTestFailure
from pipelines.rules import assert_rule_cases, load_rule, run_rule_cases
from pipelines.rules.casetest import run_case
from pipelines.rules.sqlcheck import DERIVED_TABLES

CASES = [(path, i, case.name) for path in SHIPPED for i, case in enumerate(load_rule(path).tests)]
ENGINE_CASES = [
    pytest.param(path, i, name, engine, id=f"{path.stem}::{name}-{engine}", marks=SPARK_MARKS if engine == "spark" else ())
    for path, i, name in CASES
    for engine in ("duckdb", "spark")
]
# Rules reading the link stage's tables: on Spark their cases get the link tables computed on
# DuckDB from the same rows (run_case's link_engine) and run the rule's SQL on Spark. Linking every
# case on Spark is some forty Spark jobs, minutes per case on a busy 2-core machine; Spark linking
# is verified end to end instead (tests/e2e/test_engines_agree.py: link tables and suspects equal
# DuckDB's on sample_data/), and `fraudwatch rules test --engine spark` links on Spark.
LINK_ON_DUCKDB = {p.stem for p in SHIPPED if set(load_rule(p).requires) & set(DERIVED_TABLES)}


# Near misses the brief requires, by rule: each must be a must-not-fire case of that rule.
REQUIRED_NEAR_MISSES = {
    "paid_after_death": ["death_month_itself_is_payable", "arrears_paid_after_death_are_fine", "namesake_with_another_id_died"],
    "paid_during_imprisonment": ["probation_does_not_stop_pension", "admission_and_release_months_are_payable"],
    "refund_retained": ["passed_on_on_day_60_is_in_time", "as_of_on_the_deadline_is_not_yet_retained"],
    "duplicate_cross_region": ["moved_between_regions_without_overlap"],
}


@pytest.mark.parametrize("path, index, name, engine_name", ENGINE_CASES)
def test_embedded_case_passes(path, index, name, engine_name, engine_factory):
    rule = load_rule(path)
    link_engine = connect if engine_name == "spark" and path.stem in LINK_ON_DUCKDB else None
    result = run_case(rule, index, engine_factory, link_engine=link_engine)
    assert result.passed, f"{engine_name}: {path}:{result.line} case {name}: " + "; ".join(result.problems)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_rule_has_positive_and_negative_cases(path):
    rule = load_rule(path)
    assert any(c.expect for c in rule.tests), "needs a case that fires"
    assert any(not c.expect for c in rule.tests), "needs a must-not-fire case"
    for name in REQUIRED_NEAR_MISSES.get(rule.id, []):
        case = next(c for c in rule.tests if c.name == name)
        assert case.expect == [] and case.tables, name


def _rule_with(path_name: str):
    return load_rule(next(p for p in SHIPPED if p.stem == path_name))


def test_runner_detects_a_wrong_amount():
    rule = _rule_with("paid_after_death")
    rule.tests[0].expect[0].amount_at_risk = "8123.41"
    result = run_case(rule, 0)
    assert not result.passed
    assert result.problems == ["110101195003150013: amount_at_risk 8123.40, expected 8123.41"]


def test_runner_detects_unexpected_and_missing_hits():
    rule = _rule_with("paid_after_death")
    rule.tests[0].expect = []
    assert run_case(rule, 0).problems[0].startswith("unexpected hit for 110101195003150013")
    rule = _rule_with("paid_after_death")
    rule.tests[1].expect = rule.tests[0].expect  # a must-not-fire case told to expect a hit
    assert run_case(rule, 1).problems == ["expected a hit for 110101195003150013, got none"]


def test_runner_detects_wrong_period_region_and_reason():
    rule = _rule_with("paid_after_death")
    hit = rule.tests[0].expect[0]
    hit.first_period, hit.region_code, hit.reason_contains = "2024-03", "310101", ["活着"]
    problems = run_case(rule, 0).problems
    assert any("first_period '2024-04', expected '2024-03'" in p for p in problems)
    assert any("region_code '110101', expected '310101'" in p for p in problems)
    assert any("reason lacks '活着'" in p for p in problems)
    rule = _rule_with("paid_after_death")
    rule.tests[0].expect[0].reason_lacks = ["冒领"]
    assert any("reason has '冒领'" in p for p in run_case(rule, 0).problems)


def test_a_certification_on_the_death_day_does_not_fire():
    """Mutating the certifications join (after -> on or after the death) makes the near miss show it."""
    rule = _rule_with("certified_after_death")
    rule.query = rule.query.replace("c.cert_date > d.death_date", "c.cert_date >= d.death_date")
    results = {r.case: r for r in run_rule_cases(rule)}
    assert not results["certification_before_or_on_the_death_date"].passed
    assert results["face_recognition_after_death"].passed


def test_runner_reports_bad_case_data():
    rule = _rule_with("paid_after_death")
    rule.tests[0].tables["pension_payments"][0]["amout"] = "1.00"
    result = run_case(rule, 0)
    assert not result.passed and "unknown column(s) ['amout']" in result.problems[0]


def test_a_broken_rule_fails_its_cases():
    """Mutating the rule's logic (death month payable -> not payable) makes a near miss fire."""
    rule = _rule_with("paid_after_death")
    rule.query = rule.query.replace("k.period > d.death_month", "k.period >= d.death_month")
    results = {r.case: r for r in run_rule_cases(rule)}
    assert not results["death_month_itself_is_payable"].passed
    assert not results["paid_three_months_after_death"].passed


def test_assert_rule_cases_names_file_and_case_line():
    rule = _rule_with("refund_retained")
    rule.query = rule.query.replace("t.transfer_date <= f.deadline", "t.transfer_date < f.deadline")
    with pytest.raises(RuleTestFailure) as err:
        assert_rule_cases(rule)
    assert err.value.rule == "refund_retained"
    assert err.value.file == str(rule.path)
    assert err.value.line == rule.line_of("tests", 1)  # passed_on_on_day_60_is_in_time
    assert "passed_on_on_day_60_is_in_time" in err.value.message


def test_link_tables_made_in_another_session_give_the_same_hits():
    """What the Spark cases rely on: the link tables computed in a separate session and handed over
    as Arrow give the hits of linking in the case's own session (and the cluster case needs them)."""
    rule = _rule_with("paid_after_death")
    index = next(i for i, c in enumerate(rule.tests) if c.name == "paid_after_death_under_a_typo_second_id")
    own, handed = run_case(rule, index), run_case(rule, index, link_engine=connect)
    assert own.passed and handed.passed and own.hits == handed.hits
    assert "paid_after_death" in LINK_ON_DUCKDB and "refund_retained" not in LINK_ON_DUCKDB
