"""Running rules through an engine (:mod:`pipelines.engine`) over the run's relations.

Each rule's checked query (regenerated from its checked syntax tree) is wrapped in one
set-based query that adds the rule metadata, formats periods as ``YYYY-MM``, serialises the
evidence to JSON and renders the Chinese reason in SQL. Parameters are always bound
(``$as_of`` and the declared ones), never pasted into SQL text. The result is one pyarrow
table with the suspects.md columns (without ``run_id`` and ``status``) plus ``rule_version``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.engine import Engine, QueryError, as_engine
from pipelines.engine.dialects import SPARK
from pipelines.errors import RuleError
from pipelines.rules.budget import run_bounded
from pipelines.rules.model import OUTPUT_COLUMNS, Rule
from pipelines.rules.reason import compile_reason, placeholders
from pipelines.suspect_record import HITS_SCHEMA
from pipelines.rules.sqlcheck import DERIVED_TABLES, VIEW_NAMES, CheckedQuery, check_rule_sql, default_table_names


@dataclass(frozen=True)
class RuleRun:
    """What happened to one rule in a run."""

    rule_id: str
    version: int
    status: str                     # 'ran' or 'skipped'
    rows: int = 0
    seconds: float = 0.0
    missing: tuple[str, ...] = ()   # required tables/views absent from the warehouse (skipped)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunHits:
    """The hits of a run (``table``, HITS_SCHEMA, sorted by rule_id, subject_id) and per-rule facts."""

    table: pa.Table
    runs: list[RuleRun]

    @property
    def skipped(self) -> list[RuleRun]:
        """Rules that did not run because tables they need are absent."""
        return [r for r in self.runs if r.status == "skipped"]

    def counts(self) -> dict[str, int]:
        """Hit count per rule id (0 for rules that found nothing or were skipped)."""
        return {r.rule_id: r.rows for r in self.runs}


def bind_parameters(rule: Rule, checked: CheckedQuery, as_of: date, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The values bound to the query's ``$names``: ``as_of`` and the declared parameters (defaults
    with ``overrides`` applied). Only names the query uses are bound (DuckDB refuses extras)."""
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    try:
        values = {"as_of": as_of} | rule.parameter_values(overrides)
    except KeyError as exc:
        raise RuleError(
            f"override for unknown parameter {exc.args[0]!r}",
            file=rule.path, rule=rule.id,
            hint=f"declared parameters: {', '.join(rule.parameters) or '(none)'}",
        ) from None
    except ValueError as exc:
        raise RuleError(f"bad parameter override: {exc}", file=rule.path, rule=rule.id) from None
    return {k: v for k, v in values.items() if k in checked.parameters}


def _column_types(engine: Engine, rule: Rule, checked: CheckedQuery, params: dict) -> dict[str, str]:
    """Output column → SQL type, by binding (not running) the query."""
    try:
        return engine.column_types(checked.sql, params)
    except QueryError as exc:
        raise RuleError(f"the query does not bind: {exc.message}", file=rule.path, line=rule.line_of("query"), rule=rule.id) from None


def _check_output(rule: Rule, types: dict[str, str]) -> None:
    def fail(message: str, hint: str | None = None) -> RuleError:
        return RuleError(message, file=rule.path, line=rule.line_of("query"), rule=rule.id, hint=hint)

    missing = [c for c in OUTPUT_COLUMNS if c not in types]
    if missing:
        raise fail(f"the query lacks output column(s) {', '.join(missing)}",
                   hint=f"a rule returns {', '.join(OUTPUT_COLUMNS)} (use NULL where nothing applies)")
    amount = types["amount_at_risk"].upper()
    if not (amount.startswith("DECIMAL") and amount.endswith(",2)") or amount == '"NULL"' or amount == "NULL"):
        raise fail(f"amount_at_risk is {types['amount_at_risk']}; money must be DECIMAL(18,2)",
                   hint="CAST(... AS DECIMAL(18,2)); never DOUBLE/FLOAT")
    for col in ("first_period", "last_period"):
        if types[col].upper() not in ("DATE", "NULL", '"NULL"'):
            raise fail(f"{col} is {types[col]}; it must be a DATE (first day of the month) or NULL")
    ev = types["evidence"].upper()
    if not (ev.startswith(("STRUCT", "MAP")) or ev.endswith("]")):
        raise fail(f"evidence is {types['evidence']}; it must be a STRUCT, LIST or MAP")


def wrap_query(rule: Rule, checked: CheckedQuery, types: dict[str, str], engine: Engine | None = None) -> str:
    """The set-based query adding metadata, period text, evidence JSON and the reason to a rule's hits
    (in the dialect of ``engine``; DuckDB when None)."""
    from pipelines.engine.dialects import DUCKDB
    dialect = engine.dialect if engine is not None else DUCKDB
    try:
        reason = compile_reason(rule.reason, types, dialect)
    except ValueError as exc:
        raise RuleError(f"reason: {exc}", file=rule.path, line=rule.line_of("reason"), rule=rule.id) from None
    lit = dialect.literal
    return f"""WITH rule_hits AS (
{checked.sql}
)
SELECT
    {lit(rule.id)} AS rule_id,
    CAST({rule.version} AS INTEGER) AS rule_version,
    {lit(rule.category)} AS category,
    {lit(rule.severity.value)} AS severity,
    {lit(rule.subject_type)} AS subject_type,
    {dialect.as_text('subject_id')} AS subject_id,
    {dialect.as_text('subject_name')} AS subject_name,
    {dialect.as_text('region_code')} AS region_code,
    {dialect.month_text('first_period')} AS first_period,
    {dialect.month_text('last_period')} AS last_period,
    CAST(amount_at_risk AS DECIMAL(18,2)) AS amount_at_risk,
    {dialect.json_text('evidence')} AS evidence,
    {reason} AS reason
FROM rule_hits
ORDER BY subject_id"""


def _check_one_row_per_subject(rule: Rule, table: pa.Table) -> None:
    ids = table.column("subject_id")
    if ids.null_count:
        raise RuleError(f"{ids.null_count} hit(s) have no subject_id", file=rule.path, rule=rule.id,
                        hint="every hit names a person ID or USCC")
    if pc.count_distinct(ids).as_py() != table.num_rows:
        repeated = int(pc.sum(pc.greater(pc.struct_field(pc.value_counts(ids), [1]), 1)).as_py())
        # counted, never listed: subject ids are personal data and errors end up in logs
        raise RuleError(
            f"the query returned more than one row for {repeated} subject(s)",
            file=rule.path, line=rule.line_of("query"), rule=rule.id,
            hint="a rule returns one row per subject: GROUP BY subject_id and sum/list the details",
        )


def run_rule(con: Engine, rule: Rule, as_of: date, overrides: dict[str, Any] | None = None,
             tables: Iterable[str] | None = None) -> tuple[pa.Table, RuleRun]:
    """Run one rule (its required tables must exist); returns its hits and its :class:`RuleRun`."""
    started = time.perf_counter()
    engine = as_engine(con)
    known = set(rule.requires) & set(default_table_names() if tables is None else tables)
    checked = check_rule_sql(rule, known)
    params = bind_parameters(rule, checked, as_of, overrides)
    types = _column_types(engine, rule, checked, params)
    _check_output(rule, types)
    sql = wrap_query(rule, checked, types, engine)
    try:
        table = run_bounded(engine, rule, sql, params)  # under the rule's time limit and memory cap
    except QueryError as exc:
        raise RuleError(f"the query failed: {exc.message}", file=rule.path, line=rule.line_of("query"), rule=rule.id) from None
    table = table.cast(HITS_SCHEMA)
    _check_one_row_per_subject(rule, table)
    run = RuleRun(rule.id, rule.version, "ran", table.num_rows, time.perf_counter() - started,
                  parameters=rule.parameter_values(overrides))
    return table, run


def run_rules(
    con: Engine,
    rules: Iterable[Rule],
    as_of: date,
    overrides: dict[str, dict[str, Any]] | None = None,
    tables: Iterable[str] | None = None,
) -> RunHits:
    """Run ``rules`` through the engine ``con`` (its relations are the run's tables) as of ``as_of``.

    ``overrides`` maps rule id → {parameter: value}. Rules whose ``requires`` tables are absent
    are skipped and reported with the missing names. ``tables`` is the allow-list of warehouse
    names rules may read (default: every data-contract extract plus the rule views).
    Raises :class:`RuleError` naming the rule when a query fails or returns two rows for a subject.
    """
    rules = sorted(rules, key=lambda r: r.id)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise RuleError(f"rule ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(ids))
    if unknown:
        raise RuleError(f"parameter overrides for unknown rule(s) {unknown}", hint=f"rules: {', '.join(ids)}")
    allowed = frozenset(default_table_names() if tables is None else tables)
    engine = as_engine(con)
    present = engine.relations()
    parts: list[pa.Table] = []
    runs: list[RuleRun] = []
    for rule in rules:
        missing = tuple(t for t in rule.requires if t not in present)
        if missing:
            runs.append(RuleRun(rule.id, rule.version, "skipped", missing=missing))
            continue
        table, run = run_rule(engine, rule, as_of, overrides.get(rule.id), allowed)
        parts.append(table)
        runs.append(run)
    table = pa.concat_tables(parts) if parts else HITS_SCHEMA.empty_table()
    if table.num_rows:
        table = table.sort_by([("rule_id", "ascending"), ("subject_id", "ascending")])
    return RunHits(table=table, runs=runs)


def lint_rules(rules: Iterable[Rule], tables: Iterable[str] | None = None) -> list[RuleError]:
    """Every static check, without running anything; returns the problems (empty = all good).

    Per rule: ``requires`` names only warehouse tables/views and the query reads exactly those;
    the SQL passes the safety check; parameters are declared and used; the outermost SELECT names
    the standard output columns and every ``{column}`` of the reason; the query transpiles to
    Spark; the tests hold a positive case and a must-not-fire case.
    """
    warehouse = frozenset(default_table_names() if tables is None else tables)
    problems: list[RuleError] = []
    seen: dict[str, Rule] = {}
    for rule in rules:
        def err(message: str, line: int | None = None, hint: str | None = None) -> RuleError:
            return RuleError(message, file=rule.path, line=line, rule=rule.id, hint=hint)

        if rule.id in seen:
            problems.append(err(f"rule id defined twice (also in {seen[rule.id].path})", rule.line_of("id")))
        seen[rule.id] = rule
        unknown = sorted(set(rule.requires) - warehouse)
        if unknown:
            problems.append(err(f"requires names unknown table(s): {', '.join(unknown)}", rule.line_of("requires")))
        try:
            checked = check_rule_sql(rule, set(rule.requires) & warehouse)
        except RuleError as exc:
            problems.append(exc)
            continue
        unused = sorted((set(rule.requires) & warehouse) - checked.tables)
        if unused:
            problems.append(err(f"requires lists {', '.join(unused)} but the query never reads it",
                                rule.line_of("requires"), hint="requires must be exactly what the query reads"))
        if "*" in checked.output_columns or any(not c for c in checked.output_columns):
            problems.append(err("the outermost SELECT must name its columns (no *)", rule.line_of("query")))
        else:
            lacking = [c for c in OUTPUT_COLUMNS if c not in checked.output_columns]
            if lacking:
                problems.append(err(f"the query lacks output column(s) {', '.join(lacking)}", rule.line_of("query")))
            named = [c for c in placeholders(rule.reason) if c not in checked.output_columns]
            if named:
                problems.append(err(f"reason names {', '.join('{' + c + '}' for c in named)}, not output columns of the query",
                                    rule.line_of("reason")))
        try:
            to_spark_sql(rule)
        except Exception as exc:  # noqa: BLE001 - any transpile failure is a lint problem
            problems.append(err(f"the query does not transpile to Spark: {exc}", rule.line_of("query")))
        for i, case in enumerate(rule.tests):
            bad = sorted(set(case.tables) - (warehouse - set(VIEW_NAMES) - set(DERIVED_TABLES)))
            if bad:
                problems.append(err(f"case {case.name!r} fills unknown or non-extract table(s) {', '.join(bad)}",
                                    rule.line_of("tests", i, "tables"),
                                    hint="case rows go into extract tables; views and link tables are computed"))
        if not any(case.expect for case in rule.tests):
            problems.append(err("no test case expects a hit (add a positive case)", rule.line_of("tests")))
        if all(case.expect for case in rule.tests):
            problems.append(err("no must-not-fire test case (a case with `expect: []`)", rule.line_of("tests")))
    return problems


def to_spark_sql(rule: Rule) -> str:
    """The rule's checked query transpiled to Spark SQL (parameters become ``:name`` markers)."""
    checked = check_rule_sql(rule, rule.requires)
    return SPARK.from_rule_sql(checked.sql)
