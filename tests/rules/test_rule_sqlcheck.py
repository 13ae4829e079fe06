"""The SQL safety check: hostile queries are refused with a clear message, rules pass."""

from __future__ import annotations

import pytest
from rulehelpers import RULES_DIR, SHIPPED, SIMPLE_QUERY

from pipelines.errors import RuleSQLRefused
from pipelines.rules import check_query, check_rule_sql, load_rule
from pipelines.rules.sqlcheck import default_table_names

TABLES = {"pension_payments", "person_deaths"}

# (attack, fragment the refusal message must contain)
HOSTILE = [
    ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv()"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "read_parquet"),
    ("SELECT * FROM read_json('x.json')", "read_json"),
    ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan"),
    ("SELECT * FROM sniff_csv('x.csv')", "sniff_csv"),
    ("SELECT * FROM glob('/home/*')", "glob"),
    ("SELECT * FROM '/etc/passwd.csv'", "DuckDB reads a quoted path like this as a file"),
    ("SELECT * FROM pension_payments JOIN 'other.parquet' AS o ON true", "as a file"),
    ('SELECT * FROM "https://evil.example/x.csv"', "as a file"),
    ("SELECT getenv('HOME') AS h FROM pension_payments", "function getenv() refused: it reads files"),
    ("SELECT read_text('/etc/passwd') AS t", "function read_text()"),
    ("SELECT read_blob('/etc/shadow') AS t", "read_blob"),
    ("SELECT current_setting('home_directory') AS s", "current_setting"),
    ("SELECT * FROM query('SELECT 1')", "table function query()"),
    ("SELECT * FROM query_table('pension_payments')", "query_table"),
    ("SELECT * FROM duckdb_tables()", "duckdb_tables"),
    ("SELECT * FROM information_schema.tables", "schema 'information_schema' refused"),
    ("SELECT * FROM secret.pension_payments", "schema 'secret' refused"),
    ("SELECT * FROM other_db.main.pension_payments", "other databases"),
    ("SELECT * FROM my_dataframe", "not a warehouse table or view"),
    ("COPY pension_payments TO '/tmp/out.csv'", "COPY statement refused"),
    ("COPY (SELECT * FROM pension_payments) TO '/tmp/out.parquet' (FORMAT parquet)", "COPY"),
    ("ATTACH '/tmp/other.duckdb' AS other", "ATTACH"),
    ("DETACH other", "DETACH"),
    ("INSTALL httpfs", "INSTALL"),
    ("LOAD httpfs", "LOAD (a raw command) statement refused"),
    ("PRAGMA database_list", "PRAGMA"),
    ("SET memory_limit = '1TB'", "SET statement refused"),
    ("CALL pragma_version()", "CALL (a raw command)"),
    ("EXPORT DATABASE '/tmp/dump'", "does not parse"),
    ("IMPORT DATABASE '/tmp/dump'", "does not parse"),
    ("USE other", "USE"),
    ("CREATE TABLE x AS SELECT * FROM pension_payments", "CREATE statement refused"),
    ("CREATE MACRO m(x) AS x", "CREATE"),
    ("DROP TABLE pension_payments", "DROP statement refused"),
    ("ALTER TABLE pension_payments ADD COLUMN x INT", "ALTER"),
    ("INSERT INTO pension_payments SELECT * FROM pension_payments", "INSERT"),
    ("UPDATE pension_payments SET amount = 0", "UPDATE"),
    ("DELETE FROM pension_payments", "DELETE"),
    ("WITH gone AS (DELETE FROM pension_payments RETURNING *) SELECT * FROM gone", "refused"),
    ("SELECT 1 AS a; DROP TABLE pension_payments", "2 statements"),
    ("SELECT 1 AS a; SELECT 2 AS b", "2 statements"),
    ("EXPLAIN SELECT * FROM pension_payments", "EXPLAIN (a raw command)"),
    ("DESCRIBE pension_payments", "DESCRIBE"),
    ("SELECT * FROM pension_payments WHERE person_id = ?", "only named parameters"),
    ("SELECT * FROM pension_payments WHERE person_id = $1", "only named parameters"),
    ("SELECT $undeclared AS x FROM pension_payments", "$undeclared are used but not declared"),
    ("SELECT current_date AS today", "current_date"),
    ("SELECT random() AS r", "rand() refused: it reads files, the catalog, settings or the clock"),
    ("SELECT * FROM pension_payments AT (VERSION => 1)", "unsupported clause"),
    ("SELECT * FROM pension_payments POSITIONAL JOIN person_deaths", "POSITIONAL"),
    ("WITH \"x.csv\" AS (SELECT 1 AS a) SELECT * FROM \"x.csv\"", "CTE name"),
    ("SELECT some_udf(amount) AS a FROM pension_payments", "some_udf() refused: it is not on the allow-list"),
    ("SELECT FROM WHERE", "does not parse"),
]


@pytest.mark.parametrize("sql, fragment", HOSTILE, ids=[h[0][:40] for h in HOSTILE])
def test_hostile_sql_refused(sql, fragment):
    with pytest.raises(RuleSQLRefused) as err:
        check_query(sql, TABLES, file="rules/evil.yaml", line=7, rule="evil")
    assert fragment in err.value.message, err.value.message
    assert err.value.file == "rules/evil.yaml" and err.value.line == 7 and err.value.rule == "evil"
    assert err.value.hint
    assert "rules/evil.yaml:7, rule evil:" in str(err.value)


def test_enough_distinct_attacks():
    assert len({h[1] for h in HOSTILE}) >= 12


def test_legit_query_passes_and_is_regenerated():
    checked = check_query(SIMPLE_QUERY + " HAVING sum(amount) > $floor", TABLES, declared=["floor"])
    assert checked.tables == {"pension_payments"}
    assert checked.parameters == {"floor"}
    assert checked.output_columns[:2] == ("subject_id", "subject_name")
    assert "$floor" in checked.sql and "pension_payments" in checked.sql


def test_ctes_unions_windows_and_main_schema_pass():
    sql = """
    WITH a AS (SELECT person_id, amount, row_number() OVER (PARTITION BY person_id ORDER BY period) AS rn
               FROM main.pension_payments),
         b AS (SELECT person_id FROM person_deaths WHERE death_month < $as_of)
    SELECT person_id FROM a WHERE rn = 1
    UNION ALL
    SELECT person_id FROM b
    """
    checked = check_query(sql, TABLES)
    assert checked.tables == {"pension_payments", "person_deaths"}
    assert checked.parameters == {"as_of"}


def test_table_allowed_only_when_listed():
    with pytest.raises(RuleSQLRefused, match="'prisoners' is not a warehouse table"):
        check_query("SELECT * FROM prisoners", TABLES)


def test_declared_but_unused_parameter():
    with pytest.raises(RuleSQLRefused, match="never used"):
        check_query(SIMPLE_QUERY, TABLES, declared=["deadline_days"])


def test_as_of_needs_no_declaration():
    assert check_query("SELECT 1 AS x FROM pension_payments WHERE period <= $as_of", TABLES).parameters == {"as_of"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_rule_passes(path):
    rule = load_rule(path)
    checked = check_rule_sql(rule)
    assert checked.tables == set(rule.requires), "requires must be exactly what the query reads"
    assert set(rule.requires) <= default_table_names()
    # the regenerated SQL is itself accepted (what runs is what was checked)
    again = check_query(checked.sql, rule.requires, declared=rule.parameters)
    assert again.sql == checked.sql


def test_shipped_rules_exist():
    assert len(SHIPPED) >= 8 and RULES_DIR.is_dir()
