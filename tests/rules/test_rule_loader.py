"""Rule files: typed loading, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rulehelpers import BASE_RULE, RULES_DIR

from pipelines.errors import RuleError
from pipelines.rules import load_rule, load_rules
from pipelines.rules.model import ParamType, coerce_param

GOOD = """\
id: {id}
version: 1
title: 测试规则
description: A test rule.
category: test_category
severity: low
status: experimental
tags: [test]
references: []
falsepositives: []
author: tests
requires: [pension_payments]
parameters:
  min_amount:
    type: decimal
    default: '100.00'
    description: Smallest amount reported.
subject_type: person
query: |
  SELECT person_id AS subject_id, min(name) AS subject_name, min(region_code) AS region_code,
         min(period) AS first_period, max(period) AS last_period,
         CAST(sum(amount) AS DECIMAL(18,2)) AS amount_at_risk, {{'n': count(*)}} AS evidence
  FROM pension_payments
  GROUP BY person_id
  HAVING sum(amount) >= $min_amount
reason: "{{subject_name}}共{{amount_at_risk}}元"
tests:
  - name: fires
    as_of: 2024-07-01
    tables:
      pension_payments:
        - {{payment_id: P1, person_id: '110101195003150013', name: 张三, scheme: '110', region_code: '110101', period: 2024-01, amount: '150.00'}}
    expect:
      - {{subject_id: '110101195003150013', amount_at_risk: '150.00'}}
  - name: quiet
    as_of: 2024-07-01
    expect: []
"""


def write(tmp_path: Path, text: str, name: str = "test_rule.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def good(rule_id: str = "test_rule") -> str:
    return GOOD.format(id=rule_id)


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_good_rule_loads_typed(tmp_path):
    rule = load_rule(write(tmp_path, good()))
    assert rule.id == "test_rule"
    assert rule.severity.value == "low"
    assert rule.parameters["min_amount"].type is ParamType.decimal
    assert str(rule.parameters["min_amount"].default) == "100.00"
    assert rule.tests[1].expect == []
    assert rule.path == tmp_path / "test_rule.yaml"
    assert rule.line_of("query") == line_of(good(), "query:")


def test_unknown_key_names_file_and_line(tmp_path):
    text = good().replace("author: tests\n", "author: tests\nowner: someone\n")
    path = write(tmp_path, text)
    with pytest.raises(RuleError) as err:
        load_rule(path)
    assert "unknown key 'owner'" in err.value.message
    assert err.value.file == str(path)
    assert err.value.line == line_of(text, "owner:")
    assert f"{path}:{err.value.line}" in str(err.value)


def test_unknown_key_inside_a_case(tmp_path):
    text = good().replace("  - name: quiet\n", "  - name: quiet\n    expected: []\n")
    with pytest.raises(RuleError) as err:
        load_rule(write(tmp_path, text))
    assert "unknown key 'expected'" in err.value.message
    assert err.value.line == line_of(text, "expected: []")


def test_duplicate_key_names_both_lines(tmp_path):
    text = good().replace("severity: low\n", "severity: low\nseverity: high\n")
    with pytest.raises(RuleError) as err:
        load_rule(write(tmp_path, text))
    assert "duplicate key 'severity'" in err.value.message
    assert err.value.line == line_of(text, "severity: high")
    assert f"first at line {line_of(text, 'severity: low')}" in err.value.message


def test_missing_field_names_it(tmp_path):
    text = good().replace("title: 测试规则\n", "")
    path = write(tmp_path, text)
    with pytest.raises(RuleError) as err:
        load_rule(path)
    assert err.value.message.startswith("title: Field required")
    assert err.value.file == str(path) and err.value.line == 1


def test_bad_severity_names_line(tmp_path):
    text = good().replace("severity: low", "severity: critical")
    with pytest.raises(RuleError) as err:
        load_rule(write(tmp_path, text))
    assert err.value.message.startswith("severity:")
    assert "'high', 'medium' or 'low'" in err.value.message
    assert err.value.line == line_of(text, "severity: critical")


def test_float_amount_in_expectation_is_refused(tmp_path):
    text = good().replace("amount_at_risk: '150.00'", "amount_at_risk: 150.0")
    with pytest.raises(RuleError) as err:
        load_rule(write(tmp_path, text))
    assert "tests.0.expect.0.amount_at_risk" in err.value.message
    assert err.value.line == line_of(text, "amount_at_risk: 150.0")


def test_amount_needs_two_decimals(tmp_path):
    text = good().replace("amount_at_risk: '150.00'", "amount_at_risk: '150'")
    with pytest.raises(RuleError, match="exactly two decimals"):
        load_rule(write(tmp_path, text))


def test_undeclared_case_parameter(tmp_path):
    text = good().replace("  - name: quiet\n", "  - name: quiet\n    parameters: {max_amount: 5}\n")
    with pytest.raises(RuleError, match="parameter 'max_amount' is not declared"):
        load_rule(write(tmp_path, text))


def test_parameter_default_must_have_its_type(tmp_path):
    text = good().replace("default: '100.00'", "default: 100.5")
    with pytest.raises(RuleError, match="floats are not exact"):
        load_rule(write(tmp_path, text))


def test_file_name_must_match_id(tmp_path):
    with pytest.raises(RuleError) as err:
        load_rule(write(tmp_path, good("other_id")))
    assert "does not match rule id 'other_id'" in err.value.message
    assert err.value.hint == "one file per rule: rename the file to other_id.yaml"


def test_bad_reason_placeholder(tmp_path):
    text = good().replace('reason: "{subject_name}共', 'reason: "{subject name}共')
    assert text != good()
    with pytest.raises(RuleError) as err:
        load_rule(write(tmp_path, text))
    assert err.value.message.startswith("reason:") and err.value.line == line_of(text, "reason:")


def test_duplicate_ids_across_files_name_both(tmp_path):
    first = write(tmp_path, good(), "a/test_rule.yaml")
    second = write(tmp_path, good(), "b/test_rule.yaml")
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path)
    assert str(first) in err.value.message
    assert err.value.file == str(second)


def test_load_rules_sorted_and_sql_checked(tmp_path):
    write(tmp_path, good("zeta_rule"), "zeta_rule.yaml")
    write(tmp_path, good("alpha_rule"), "alpha_rule.yaml")
    assert [r.id for r in load_rules(tmp_path)] == ["alpha_rule", "zeta_rule"]
    write(tmp_path, good("bad_rule").replace("FROM pension_payments", "FROM read_csv('x.csv')"), "bad_rule.yaml")
    with pytest.raises(RuleError, match="read_csv"):
        load_rules(tmp_path)


def test_requires_unknown_table(tmp_path):
    write(tmp_path, good().replace("requires: [pension_payments]", "requires: [pension_payments, no_such]"))
    with pytest.raises(RuleError, match="unknown table.*no_such"):
        load_rules(tmp_path)


def test_shipped_rules_load():
    rules = load_rules(RULES_DIR)
    ids = [r.id for r in rules]
    assert ids == sorted(ids)
    for required in ("paid_after_death", "subsidy_after_death", "duplicate_cross_region",
                     "duplicate_cross_scheme", "paid_during_imprisonment", "refund_retained"):
        assert required in ids
    assert len(rules) >= 8


def test_base_rule_matches_yaml_shape():
    """The in-code test rule round-trips through YAML (keeps helpers honest)."""
    from pipelines.rules.model import Rule

    assert Rule.model_validate(yaml.safe_load(yaml.safe_dump(BASE_RULE, allow_unicode=True))).id == "simple_sum"


@pytest.mark.parametrize(
    "kind, value, expected",
    [
        (ParamType.int, "60", 60),
        (ParamType.int, 61, 61),
        (ParamType.decimal, "0.10", "0.10"),
        (ParamType.date, "2024-03-10", "2024-03-10"),
        (ParamType.text, 110101, "110101"),
    ],
)
def test_coerce_param(kind, value, expected):
    assert str(coerce_param(kind, value)) == str(expected)


@pytest.mark.parametrize("kind, value", [(ParamType.int, "6x"), (ParamType.int, True), (ParamType.decimal, 0.1),
                                         (ParamType.date, "2024-13-01"), (ParamType.text, None)])
def test_coerce_param_refuses(kind, value):
    with pytest.raises(ValueError):
        coerce_param(kind, value)
