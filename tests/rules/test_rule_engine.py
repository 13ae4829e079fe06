"""The engine: output schema and types, skipping, binding, one row per subject, order, lint, Spark."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from rulehelpers import LI, SHIPPED, SIMPLE_QUERY, WANG, ZHANG, make_rule, payment

from pipelines.errors import RuleError
from pipelines.rules import HITS_SCHEMA, lint_rules, load_rule, load_rules, make_scratch_db, run_rules, to_spark_sql
from pipelines.rules.reason import compile_reason, parse_template

AS_OF = date(2024, 7, 1)


def test_output_schema_and_values(sample_tables):
    con = make_scratch_db(sample_tables)
    hits = run_rules(con, [make_rule()], AS_OF)
    table = hits.table
    assert table.schema == HITS_SCHEMA
    assert table.schema.field("amount_at_risk").type == pa.decimal128(18, 2)
    assert table.column_names == [
        "rule_id", "rule_version", "category", "severity", "subject_type", "subject_id", "subject_name",
        "region_code", "first_period", "last_period", "amount_at_risk", "evidence", "reason",
    ]
    rows = table.to_pylist()
    assert [r["subject_id"] for r in rows] == sorted([ZHANG, LI, WANG])
    zhang = next(r for r in rows if r["subject_id"] == ZHANG)
    assert zhang == {
        "rule_id": "simple_sum", "rule_version": 3, "category": "test_category", "severity": "low",
        "subject_type": "person", "subject_id": ZHANG, "subject_name": "张三", "region_code": "110101",
        "first_period": "2024-01", "last_period": "2024-02", "amount_at_risk": Decimal("5000.50"),
        "evidence": zhang["evidence"], "reason": f"张三（{ZHANG}）在2024-01至2024-02共领取5,000.50元。",
    }
    assert json.loads(zhang["evidence"]) == {"payments": 2, "ids": ["P1", "P2"]}
    assert hits.counts() == {"simple_sum": 3}
    run = hits.runs[0]
    assert run.status == "ran" and run.rows == 3 and run.seconds > 0


def test_empty_result_has_the_schema():
    con = make_scratch_db({})
    hits = run_rules(con, [make_rule()], AS_OF)
    assert hits.table.num_rows == 0 and hits.table.schema == HITS_SCHEMA


def test_rules_needing_absent_tables_are_skipped(sample_tables):
    from pipelines.linking import link_persons

    con = make_scratch_db(sample_tables)
    link_persons(con)
    con.connection.execute("DROP TABLE prisoners")
    con.connection.execute("DROP VIEW person_deaths")
    rules = [r for r in load_rules() if r.id in ("paid_during_imprisonment", "paid_after_death", "duplicate_cross_region")]
    hits = run_rules(con, rules, AS_OF)
    skipped = {r.rule_id: r.missing for r in hits.skipped}
    assert skipped == {"paid_during_imprisonment": ("prisoners",), "paid_after_death": ("person_deaths",)}
    assert [r.status for r in hits.runs] == ["ran", "skipped", "skipped"]
    assert hits.counts()["paid_after_death"] == 0


def test_one_row_per_subject_is_enforced(sample_tables):
    con = make_scratch_db(sample_tables)
    per_payment = make_rule(id="per_payment", query=SIMPLE_QUERY.replace("GROUP BY person_id", "GROUP BY person_id, payment_id"))
    with pytest.raises(RuleError) as err:
        run_rules(con, [per_payment], AS_OF)
    assert err.value.rule == "per_payment"
    assert "more than one row for 1 subject(s)" in err.value.message
    assert ZHANG not in str(err.value) and LI not in str(err.value)  # ids are personal data: counted, not listed


def test_null_subject_is_refused(sample_tables):
    con = make_scratch_db(sample_tables)
    rule = make_rule(id="null_subject", query=SIMPLE_QUERY.replace("person_id AS subject_id", "CAST(NULL AS VARCHAR) AS subject_id")
                     .replace("GROUP BY person_id", "GROUP BY ALL"))
    with pytest.raises(RuleError, match="no subject_id"):
        run_rules(con, [rule], AS_OF)


def test_order_is_deterministic(sample_tables):
    con = make_scratch_db(sample_tables)
    a = make_rule(id="a_rule")
    b = make_rule(id="b_rule", query=SIMPLE_QUERY.replace("FROM pension_payments", "FROM pension_payments WHERE scheme = '110'"))
    first = run_rules(con, [b, a], AS_OF).table
    second = run_rules(con, [a, b], AS_OF).table
    assert first.equals(second)
    keys = list(zip(first.column("rule_id").to_pylist(), first.column("subject_id").to_pylist()))
    assert keys == sorted(keys) and len(keys) == 5


def test_text_parameter_is_bound_not_pasted(sample_tables):
    hostile = "O'Brien';DROP/**/TABLE/**/pension_payments;--"  # names are stored without whitespace
    sample_tables["pension_payments"].append(payment("P9", "110101194806200024", "2024-05", "10.00", name=hostile))
    con = make_scratch_db(sample_tables)
    rule = make_rule(
        id="by_name",
        parameters={"who": {"type": "text", "default": "nobody", "description": "name to report"}},
        query=SIMPLE_QUERY.replace("FROM pension_payments", "FROM pension_payments WHERE name = $who"),
    )
    assert run_rules(con, [rule], AS_OF).table.num_rows == 0
    hits = run_rules(con, [rule], AS_OF, {"by_name": {"who": hostile}}).table
    assert hits.column("subject_name").to_pylist() == [hostile]
    drop = run_rules(con, [rule], AS_OF, {"by_name": {"who": "'; DROP TABLE pension_payments; --"}}).table
    assert drop.num_rows == 0
    assert con.connection.execute("SELECT count(*) FROM pension_payments").fetchone()[0] == 5


def test_shipped_text_parameter_with_sql_injection_is_harmless():
    rule = load_rule(SHIPPED[0].parent / "subsidy_after_death.yaml")
    case = rule.tests[0]
    con = make_scratch_db(case.tables)
    plain = run_rules(con, [rule], case.as_of).table
    hostile = run_rules(con, [rule], case.as_of, {rule.id: {"exempt_programs": "x'; DROP TABLE subsidy_payments; --"}}).table
    assert plain.num_rows == 1 and hostile.equals(plain)
    assert con.connection.execute("SELECT count(*) FROM subsidy_payments").fetchone()[0] == 4


def test_int_parameter_override_is_coerced_and_checked():
    rule = load_rule(SHIPPED[0].parent / "refund_retained.yaml")
    case = next(c for c in rule.tests if c.name == "passed_on_on_day_61_is_late")
    con = make_scratch_db(case.tables)
    assert run_rules(con, [rule], case.as_of).table.num_rows == 1
    assert run_rules(con, [rule], case.as_of, {rule.id: {"deadline_days": "61"}}).table.num_rows == 0
    with pytest.raises(RuleError, match="bad parameter override"):
        run_rules(con, [rule], case.as_of, {rule.id: {"deadline_days": "61; DROP TABLE x"}})
    with pytest.raises(RuleError, match="unknown parameter 'deadline'"):
        run_rules(con, [rule], case.as_of, {rule.id: {"deadline": 5}})
    with pytest.raises(RuleError, match="unknown rule"):
        run_rules(con, [rule], case.as_of, {"no_such_rule": {"deadline_days": 5}})


def test_float_money_is_refused(sample_tables):
    con = make_scratch_db(sample_tables)
    rule = make_rule(id="floaty", query=SIMPLE_QUERY.replace("CAST(sum(amount) AS DECIMAL(18,2))", "CAST(sum(amount) AS DOUBLE)"))
    with pytest.raises(RuleError, match="money must be DECIMAL"):
        run_rules(con, [rule], AS_OF)


def test_missing_output_column_is_refused(sample_tables):
    con = make_scratch_db(sample_tables)
    rule = make_rule(id="no_evidence", query=SIMPLE_QUERY.replace(" AS evidence", " AS proof"))
    with pytest.raises(RuleError, match="lacks output column.*evidence"):
        run_rules(con, [rule], AS_OF)


def test_reason_naming_unknown_column_is_refused(sample_tables):
    con = make_scratch_db(sample_tables)
    rule = make_rule(id="bad_reason", reason="{subject_name}死亡于{death_date}")
    with pytest.raises(RuleError, match=r"reason names column \{death_date\}"):
        run_rules(con, [rule], AS_OF)


@pytest.mark.parametrize(
    "value, text",
    [("0", "0.00"), ("0.05", "0.05"), ("8123.4", "8,123.40"), ("-1234567.89", "-1,234,567.89"),
     ("-0.50", "-0.50"), ("9999999999999999.99", "9,999,999,999,999,999.99"), (None, "不详")],
)
def test_money_rendering_is_exact(value, text):
    expr = compile_reason("合计{amount}元", {"amount": "DECIMAL(18,2)"})
    con = duckdb.connect()
    got = con.execute(f"SELECT {expr} FROM (SELECT CAST(? AS DECIMAL(18,2)) AS amount)", [value]).fetchone()[0]
    assert got == f"合计{text}元"


def test_reason_formats_by_type():
    con = duckdb.connect()
    types = {"first_period": "DATE", "death_date": "DATE", "sources": "VARCHAR[]", "n": "BIGINT", "d": "DATE"}
    expr = compile_reason("{first_period}|{death_date}|{sources}|{n}|{d:month}|{{literal}}", types)
    row = con.execute(
        f"SELECT {expr} FROM (SELECT DATE '2024-04-01' AS first_period, DATE '2024-03-15' AS death_date, "
        "['公安', '民政'] AS sources, 3 AS n, DATE '2024-05-20' AS d)"
    ).fetchone()[0]
    assert row == "2024-04|2024-03-15|公安、民政|3|2024-05|{literal}"


@pytest.mark.parametrize("template", ["{a", "a}", "{a b}", "{a:euro}", "{}"])
def test_bad_templates(template):
    with pytest.raises(ValueError):
        parse_template(template)


def test_lint_finds_problems():
    good = make_rule()
    assert lint_rules([good]) == []
    problems = lint_rules([
        make_rule(id="reads_more", query=SIMPLE_QUERY.replace("FROM pension_payments", "FROM pension_payments, prisoners")),
        make_rule(id="requires_more", requires=["pension_payments", "prisoners"]),
        make_rule(id="unknown_table", requires=["pension_payments", "nowhere"]),
        make_rule(id="reason_col", reason="{who}"),
        make_rule(id="star", query="SELECT * FROM pension_payments"),
        make_rule(id="only_positive", tests=[{"name": "x", "as_of": "2024-01-01", "expect": [{"subject_id": ZHANG, "amount_at_risk": "1.00"}]}]),
        make_rule(id="only_negative", tests=[{"name": "x", "as_of": "2024-01-01", "expect": []}]),
        make_rule(id="view_rows", tests=[
            {"name": "x", "as_of": "2024-01-01", "tables": {"person_deaths": []}, "expect": []},
            {"name": "y", "as_of": "2024-01-01", "expect": [{"subject_id": ZHANG, "amount_at_risk": "1.00"}]}]),
    ])
    text = "\n".join(str(p) for p in problems)
    assert "rule reads_more: table 'prisoners' is not a warehouse table or view this rule may read" in text
    assert "rule requires_more: requires lists prisoners but the query never reads it" in text
    assert "rule unknown_table: requires names unknown table(s): nowhere" in text
    assert "rule reason_col: reason names {who}" in text
    assert "rule star: the outermost SELECT must name its columns" in text
    assert "rule only_positive: no must-not-fire test case" in text
    assert "rule only_negative: no test case expects a hit" in text
    assert "rule view_rows: case 'x' fills unknown or non-extract table(s) person_deaths" in text
    assert len(problems) == 8


def test_lint_shipped_rules_clean():
    assert lint_rules(load_rules()) == []


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_rule_transpiles_to_spark(path):
    rule = load_rule(path)
    # the house rule, literally: the rule's SQL transpiles from DuckDB to Spark without error
    assert sqlglot.transpile(rule.query, read="duckdb", write="spark")
    spark = to_spark_sql(rule)
    assert "$" not in spark
    assert ("$as_of" in rule.query) == (":as_of" in spark)
    for name in rule.parameters:
        assert f":{name}" in spark
    sqlglot.parse_one(spark, read="spark")  # and Spark SQL parses back
