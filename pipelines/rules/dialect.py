"""Everything that differs between the engines lives here: dialect names, parameter style,
and the few SQL snippets the engine writes itself (money and month text).

Rules are written in DuckDB dialect with ``$name`` parameters. DuckDB binds them by name
(``con.execute(sql, {"name": value})``); for Spark the same query is transpiled with sqlglot,
which writes ``:name`` (Spark 3.4+ named parameter markers, ``spark.sql(sql, args={...})``).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

RULE_DIALECT = "duckdb"     # the dialect rules are written in and the engine runs
SPARK_DIALECT = "spark"     # the other engine, reached through sqlglot


def parse(sql: str) -> list[exp.Expression | None]:
    """Parse rule SQL in the rule dialect (may raise sqlglot.errors.ParseError)."""
    return sqlglot.parse(sql, read=RULE_DIALECT)


def render(tree: exp.Expression, dialect: str = RULE_DIALECT) -> str:
    """SQL text of a parsed tree in ``dialect``; unsupported constructs raise instead of warning."""
    return tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE, pretty=True)


def transpile_to_spark(sql: str) -> str:
    """Transpile one DuckDB statement to Spark SQL (``$name`` becomes ``:name``); raises on anything unsupported."""
    return sqlglot.transpile(sql, read=RULE_DIALECT, write=SPARK_DIALECT, unsupported_level=ErrorLevel.RAISE, pretty=True)[0]


def literal(value: str | int | None) -> str:
    """A safely quoted SQL literal in the rule dialect (used for rule metadata, never for parameters)."""
    if value is None:
        return "NULL"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return exp.Literal.string(str(value)).sql(dialect=RULE_DIALECT)


def quote_identifier(name: str) -> str:
    """A quoted column name in the rule dialect."""
    return exp.to_identifier(name, quoted=True).sql(dialect=RULE_DIALECT)


def money_text(expr: str) -> str:
    """DuckDB expression: a money value as text with thousands separators and exactly two decimals
    (``8123.4`` → ``8,123.40``), computed from DECIMAL(18,2) without passing through a float."""
    cents = f"CAST(abs(CAST({expr} AS DECIMAL(38,2))) * 100 AS HUGEINT)"
    return (
        f"CASE WHEN {expr} IS NULL THEN NULL ELSE concat("
        f"CASE WHEN CAST({expr} AS DECIMAL(18,2)) < 0 THEN '-' ELSE '' END, "
        f"format('{{:,}}', {cents} // 100), '.', lpad(CAST({cents} % 100 AS VARCHAR), 2, '0')) END"
    )


def month_text(expr: str) -> str:
    """DuckDB expression: a DATE period as ``YYYY-MM`` text."""
    return f"strftime(CAST({expr} AS DATE), '%Y-%m')"


def date_text(expr: str) -> str:
    """DuckDB expression: a DATE as ``YYYY-MM-DD`` text."""
    return f"strftime(CAST({expr} AS DATE), '%Y-%m-%d')"


def list_text(expr: str, separator: str = "、") -> str:
    """DuckDB expression: a list joined with the Chinese enumeration comma."""
    return f"array_to_string(CAST({expr} AS VARCHAR[]), {literal(separator)})"


def json_text(expr: str) -> str:
    """DuckDB expression: a STRUCT/LIST/MAP serialised to JSON text."""
    return f"CAST(to_json({expr}) AS VARCHAR)"
