"""Every difference between the SQL engines, one dialect object per engine (Splink's pattern).

Rules are written in DuckDB dialect (:data:`RULE_DIALECT`) with ``$name`` parameters; the
engine running them renders and transpiles through its dialect. Stage code asks the engine's
dialect for the SQL of anything engine-specific: money as ``8,123.40``, a period as ``YYYY-MM``,
evidence as JSON, reading a list of Parquet files, quoting, the values of a column that repeat.

``dialect_for(name)`` returns the one instance per engine name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

RULE_DIALECT = "duckdb"  # the sqlglot dialect rules are written in


def parse_rule_sql(sql: str) -> list[exp.Expression | None]:
    """Parse rule SQL in the rule dialect (may raise sqlglot.errors.ParseError)."""
    return sqlglot.parse(sql, read=RULE_DIALECT)


def _string_literal(value: str, sqlglot_dialect: str) -> str:
    return exp.Literal.string(str(value)).sql(dialect=sqlglot_dialect)


class Dialect(ABC):
    """What one engine's SQL looks like. Subclasses set ``name`` and ``sqlglot_dialect`` and
    implement every abstract helper; each helper returns SQL text for an expression ``expr``."""

    name: str             # the engine name (``--engine``)
    sqlglot_dialect: str  # sqlglot's name for it

    # ---------------------------------------------------------------- rendering and transpiling
    def render(self, tree: exp.Expression) -> str:
        """SQL text of a parsed (rule-dialect) tree in this dialect; unsupported constructs raise."""
        return tree.sql(dialect=self.sqlglot_dialect, unsupported_level=ErrorLevel.RAISE, pretty=True)

    def from_rule_sql(self, sql: str) -> str:
        """One rule-dialect statement in this dialect (raises on anything unsupported)."""
        if self.sqlglot_dialect == RULE_DIALECT:
            return sql
        return sqlglot.transpile(sql, read=RULE_DIALECT, write=self.sqlglot_dialect,
                                 unsupported_level=ErrorLevel.RAISE, pretty=True)[0]

    def literal(self, value: str | int | None) -> str:
        """A safely quoted literal (for metadata such as a rule id; parameters are always bound)."""
        if value is None:
            return "NULL"
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return _string_literal(str(value), self.sqlglot_dialect)

    def quote_identifier(self, name: str) -> str:
        """A quoted identifier."""
        return exp.to_identifier(name, quoted=True).sql(dialect=self.sqlglot_dialect)

    # ---------------------------------------------------------------- engine-specific SQL
    def as_text(self, expr: str) -> str:
        """Any value cast to text."""
        return f"CAST({expr} AS VARCHAR)"

    def repeated_hashes(self, expr: str, relation: str) -> str:
        """SELECT of the 64-bit hashes of ``expr`` (not NULL) that occur in more than one row of
        ``relation``: a cheap pre-filter for repeated values (a collision only adds a hash)."""
        return (f"SELECT hash({expr}) AS h FROM {relation} WHERE {expr} IS NOT NULL "
                f"GROUP BY hash({expr}) HAVING count(*) > 1")

    @abstractmethod
    def read_parquet(self, paths: Sequence[Path | str], union_by_name: bool = True) -> str:
        """A FROM-clause item reading a list of Parquet files as one relation."""

    @abstractmethod
    def money_text(self, expr: str) -> str:
        """A DECIMAL(18,2) money value as text: thousands separators, two decimals, never via float."""

    @abstractmethod
    def month_text(self, expr: str) -> str:
        """A DATE period as ``YYYY-MM``."""

    @abstractmethod
    def date_text(self, expr: str) -> str:
        """A DATE as ``YYYY-MM-DD``."""

    @abstractmethod
    def list_text(self, expr: str, separator: str = "、") -> str:
        """A list joined with ``separator`` (the Chinese enumeration comma)."""

    @abstractmethod
    def json_text(self, expr: str) -> str:
        """A STRUCT/LIST/MAP serialised to JSON text."""


class DuckDBDialect(Dialect):
    name = "duckdb"
    sqlglot_dialect = "duckdb"

    def read_parquet(self, paths: Sequence[Path | str], union_by_name: bool = True) -> str:
        files = ", ".join(self.literal(str(p)) for p in paths)
        return f"read_parquet([{files}]{', union_by_name = true' if union_by_name else ''})"

    def money_text(self, expr: str) -> str:
        cents = f"CAST(abs(CAST({expr} AS DECIMAL(38,2))) * 100 AS HUGEINT)"
        return (
            f"CASE WHEN {expr} IS NULL THEN NULL ELSE concat("
            f"CASE WHEN CAST({expr} AS DECIMAL(18,2)) < 0 THEN '-' ELSE '' END, "
            f"format('{{:,}}', {cents} // 100), '.', lpad(CAST({cents} % 100 AS VARCHAR), 2, '0')) END"
        )

    def month_text(self, expr: str) -> str:
        return f"strftime(CAST({expr} AS DATE), '%Y-%m')"

    def date_text(self, expr: str) -> str:
        return f"strftime(CAST({expr} AS DATE), '%Y-%m-%d')"

    def list_text(self, expr: str, separator: str = "、") -> str:
        return f"array_to_string(CAST({expr} AS VARCHAR[]), {self.literal(separator)})"

    def json_text(self, expr: str) -> str:
        return f"CAST(to_json({expr}) AS VARCHAR)"

    def repeated_hashes(self, expr: str, relation: str) -> str:
        # Sorting the hashes and comparing neighbours: twice as fast as grouping when nearly every
        # value is distinct (105 M payment IDs: 7 s against 14 s). One sort over all rows is what a
        # cluster should not do, so Spark keeps the grouping (the base class).
        return (f"SELECT DISTINCT h FROM (SELECT h, lag(h) OVER (ORDER BY h) AS prev FROM "
                f"(SELECT hash({expr}) AS h FROM {relation} WHERE {expr} IS NOT NULL) AS hs) AS n WHERE h = prev")


class SparkDialect(DuckDBDialect):
    """Spark SQL. Stage code and rules write the rule dialect (DuckDB) to every engine, these
    helpers included; the Spark engine turns each statement into Spark SQL with the custom sqlglot
    dialect ``fraudwatch_spark`` (:mod:`pipelines.engine.spark_sqlglot`), the one place where
    what stock sqlglot gets wrong for Spark is patched (e.g. the money formatter's
    ``format('{:,}', …)``, which stock sqlglot writes as a printf-style FORMAT_STRING).
    ``read_parquet([...])`` stays in the text: the Spark engine reads those files as a temp view."""

    name = "spark"
    sqlglot_dialect = "fraudwatch_spark"

    def from_rule_sql(self, sql: str) -> str:
        """Rule-dialect SQL (statements or queries) as Spark SQL; ``$name`` becomes ``:name``."""
        import pipelines.engine.spark_sqlglot  # noqa: F401 - registers "fraudwatch_spark"

        return super().from_rule_sql(sql)

    # grouping the hashes (the base class): DuckDB's one sort over all rows would not spread over a cluster
    repeated_hashes = Dialect.repeated_hashes

    # literals and identifiers go into rule-dialect text, which the engine transpiles
    def literal(self, value: str | int | None) -> str:
        return DUCKDB_LITERAL(value)

    def quote_identifier(self, name: str) -> str:
        return exp.to_identifier(name, quoted=True).sql(dialect=RULE_DIALECT)


DUCKDB_LITERAL = DuckDBDialect().literal
_DIALECTS: dict[str, Dialect] = {d.name: d for d in (DuckDBDialect(), SparkDialect())}
DUCKDB = _DIALECTS["duckdb"]
SPARK = _DIALECTS["spark"]


def dialect_for(name: str) -> Dialect:
    """The dialect of engine ``name`` (``duckdb``, ``spark``)."""
    try:
        return _DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(sorted(_DIALECTS))}") from None
