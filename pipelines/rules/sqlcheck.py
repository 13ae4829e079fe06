"""The SQL safety check: a rule's query must be exactly one read-only SELECT over warehouse
tables and views.

Allow-list mindset: the query is parsed with sqlglot (DuckDB dialect) and *every* node of the
tree is checked. A node is accepted only if its type is on the structural allow-list or it is
a function on the function allow-list; anything else (Command fall-backs, DDL, COPY, table
functions, file-reading functions, unknown constructs) is refused with :class:`RuleSQLRefused`
naming file, line, rule and the offending construct. The engine then runs the SQL *regenerated
from the checked tree*, so what was checked is exactly what runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from pipelines.errors import RuleSQLRefused
from pipelines.linking.schema import LINK_TABLES
from pipelines.engine.dialects import DUCKDB, parse_rule_sql
from pipelines.rules.model import BUILTIN_PARAMETERS, Rule

VIEW_NAMES = ("death_records", "person_deaths", "passed_certifications", "benefit_payments")
# Tables computed from the extracts by a pipeline stage (identity resolution, pipelines/linking).
DERIVED_TABLES = LINK_TABLES
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Structural node types a read-only SELECT is made of.
_ALLOWED_NODES: frozenset[type[exp.Expression]] = frozenset(
    getattr(exp, name)
    for name in (
        "Select", "Union", "Intersect", "Except", "With", "CTE", "Subquery", "From", "Join",
        "Where", "Group", "Having", "Qualify", "Order", "Ordered", "Limit", "Offset", "Distinct",
        "Alias", "TableAlias", "Column", "Identifier", "Star", "Literal", "Null", "Boolean",
        "Placeholder", "Var", "Paren", "Tuple", "Case", "Cast", "TryCast", "DataType",
        "DataTypeParam", "Between", "In", "Is", "Not", "Neg", "And", "Or", "Xor", "EQ", "NEQ",
        "NullSafeEQ", "NullSafeNEQ", "GT", "GTE", "LT", "LTE", "Add", "Sub", "Mul", "Div",
        "IntDiv", "Mod", "DPipe", "Like", "ILike", "Escape", "Window", "WindowSpec", "Filter",
        "Interval", "Bracket", "Slice", "PropertyEQ", "Kwarg", "Lambda", "Exists", "Any", "All",
        "Dot", "Values", "Table", "IgnoreNulls", "RespectNulls", "BitwiseLeftShift",
    )
    if hasattr(exp, name)
)

# Pure, deterministic functions (sqlglot's typed classes). Anything touching files, the
# environment, the catalog or the clock is absent on purpose (use $as_of for "today").
_ALLOWED_FUNCS = frozenset(
    {
        # aggregates
        "Sum", "Count", "CountIf", "Min", "Max", "Avg", "ArrayAgg", "ArrayUniqueAgg", "AnyValue",
        "ArgMax", "ArgMin", "GroupConcat", "Median", "Quantile", "Stddev", "StddevPop",
        "StddevSamp", "Variance", "VariancePop", "LogicalAnd", "LogicalOr", "First", "Last", "BitwiseOrAgg",
        # window functions
        "RowNumber", "Rank", "DenseRank", "Lag", "Lead", "FirstValue", "LastValue", "NthValue",
        "Ntile", "PercentRank", "CumeDist",
        # conditionals and maths
        "Coalesce", "Greatest", "Least", "Nullif", "If", "Abs", "Round", "Floor", "Ceil", "Sign",
        "Pow", "Sqrt", "Ln", "Log", "Exp",
        # text
        "Concat", "ConcatWs", "Lower", "Upper", "Length", "Substring", "Trim", "Left", "Right",
        "Pad", "Replace", "Split", "StringToArray", "StrPosition", "StartsWith", "EndsWith",
        "RegexpLike", "RegexpExtract", "RegexpReplace", "Reverse", "Repeat", "Md5", "Format",
        # lists and structs
        "ArrayToString", "ArraySort", "ArrayDistinct", "ArrayContains", "ArraySize", "ArraySlice",
        "ArrayFilter", "ArrayConcat", "ArrayAll", "ArrayAny", "Transform", "Struct",
        "StructExtract", "Array", "Explode", "Unnest", "ArrayIntersect", "ArraysOverlap", "Flatten",
        # dates
        "TimeToStr", "StrToDate", "StrToTime", "DateTrunc", "TimestampTrunc", "DateAdd",
        "DateSub", "DateDiff", "Year", "Month", "Day", "Quarter", "DayOfWeek", "DayOfMonth",
        "DayOfYear", "Extract", "LastDay", "MakeDate", "DateFromParts", "TsOrDsToDate",
        "TsOrDsAdd", "TsOrDsDiff", "Date", "ToDays",
    }
)
# DuckDB functions sqlglot has no typed class for (sqlglot leaves them as Anonymous).
_ALLOWED_ANONYMOUS = frozenset(
    {
        "list_sort", "list_reverse_sort", "list_distinct", "list_slice", "list_contains",
        "list_has", "list_position", "list_sum", "list_count", "array_length", "len",
        "lpad", "rpad", "printf", "format", "strip_accents", "string_split", "str_split",
        "prefix", "suffix", "contains", "nfc_normalize", "bit_length", "date_part", "datepart",
        "make_date", "last_day", "isodow", "yearweek", "epoch", "arg_max", "arg_min",
        "list_aggregate", "list_any_value", "list_first", "list_last", "struct_pack",
        "array_to_string", "list_value", "list_concat", "list_filter", "list_transform",
        "hash",  # for cheap pre-filters; Spark has hash() too (a different hash, same use)
        "bit_count",  # with bit_or and <<: a pre-filter's mask of periods seen
    }
)
# Names refused with a specific explanation (they would be refused anyway: not allow-listed).
_DANGEROUS_FUNCS = {
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
    "read_json_objects", "read_ndjson", "read_ndjson_auto", "read_text", "read_blob", "read_xlsx",
    "glob", "sniff_csv", "getenv", "current_setting", "getvariable", "query", "query_table",
    "sqlite_scan", "postgres_scan", "mysql_scan", "iceberg_scan", "delta_scan", "parquet_metadata",
    "parquet_schema", "to_file", "load_extension", "httpfs", "current_date", "now",
    "current_timestamp", "random", "rand", "uuid", "gen_random_uuid", "setseed",
}
_STATEMENT_NAMES = {
    "Copy": "COPY", "Attach": "ATTACH", "Detach": "DETACH", "Install": "INSTALL", "Pragma": "PRAGMA",
    "Set": "SET", "Use": "USE", "Create": "CREATE", "Drop": "DROP", "Alter": "ALTER",
    "Insert": "INSERT", "Update": "UPDATE", "Delete": "DELETE", "Merge": "MERGE",
    "Describe": "DESCRIBE", "Summarize": "SUMMARIZE", "Pivot": "PIVOT", "Command": "a raw command",
    "Into": "SELECT … INTO", "Returning": "RETURNING", "Transaction": "BEGIN", "Commit": "COMMIT",
    "Rollback": "ROLLBACK", "Export": "EXPORT DATABASE", "Analyze": "ANALYZE", "Cache": "CACHE",
    "TruncateTable": "TRUNCATE",
}
_HINT = "a rule is one read-only SELECT over warehouse tables/views; parameters are $name"


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed the check."""

    tree: exp.Query
    sql: str                          # regenerated from the checked tree (DuckDB): this is what runs
    tables: frozenset[str]            # warehouse tables/views it reads
    parameters: frozenset[str]        # $names it uses
    output_columns: tuple[str, ...]   # names of the outermost SELECT's columns


@lru_cache(maxsize=1)
def default_table_names() -> frozenset[str]:
    """Warehouse table and view names: every data-contract extract, the rule views and the
    derived tables of the link stage."""
    from pipelines.contracts import load_contracts

    return frozenset(load_contracts()) | frozenset(VIEW_NAMES) | frozenset(DERIVED_TABLES)


def function_name(node: exp.Func) -> str:
    """The SQL name of a function node, lower-case (``read_csv``, ``sum``, ``list_sort``)."""
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def check_query(
    sql: str,
    tables: Iterable[str],
    *,
    declared: Iterable[str] = (),
    file: str | Path | None = None,
    line: int | None = None,
    rule: str | None = None,
) -> CheckedQuery:
    """Refuse ``sql`` unless it is one read-only SELECT over ``tables`` (plus its own CTEs) whose
    ``$parameters`` are exactly the ``declared`` ones (``$as_of`` is always allowed)."""

    def refuse(message: str, hint: str = _HINT) -> RuleSQLRefused:
        return RuleSQLRefused(message, file=file, line=line, rule=rule, hint=hint)

    known = {t.lower() for t in tables}
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)  # fall-back-to-Command warnings: we refuse Commands anyway
    try:
        statements = [s for s in parse_rule_sql(sql) if s is not None]
    except (ParseError, SqlglotError) as exc:
        raise refuse(f"the query does not parse as DuckDB SQL: {str(exc).splitlines()[0]}") from None
    finally:
        logger.setLevel(level)
    if len(statements) != 1:
        raise refuse(f"the query holds {len(statements)} statements; exactly one SELECT is allowed")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        kind = _STATEMENT_NAMES.get(type(tree).__name__, type(tree).__name__)
        if isinstance(tree, exp.Command):
            kind = f"{str(tree.this).upper()} (a raw command)"
        raise refuse(f"{kind} statement refused; only SELECT is allowed")

    cte_names: set[str] = set()
    for cte in tree.find_all(exp.CTE):
        name = cte.alias_or_name
        if not _NAME.match(name):
            raise refuse(f"CTE name {name!r} refused: use a plain identifier")
        cte_names.add(name.lower())

    used_tables: set[str] = set()
    used_params: set[str] = set()
    for node in tree.walk():
        _check_node(node, known, cte_names, used_tables, used_params, refuse)

    declared_set = set(declared)
    undeclared = sorted(used_params - declared_set - set(BUILTIN_PARAMETERS))
    if undeclared:
        raise refuse(
            f"parameter(s) {', '.join('$' + p for p in undeclared)} are used but not declared",
            hint="declare each under `parameters:` with type, default and description",
        )
    unused = sorted(declared_set - used_params)
    if unused:
        raise refuse(
            f"declared parameter(s) {', '.join(unused)} are never used as ${unused[0]} in the query",
            hint="remove the declaration or use the parameter",
        )
    try:
        regenerated = DUCKDB.render(tree)
    except SqlglotError as exc:
        raise refuse(f"the query cannot be regenerated from its syntax tree: {exc}") from None
    return CheckedQuery(
        tree=tree,
        sql=regenerated,
        tables=frozenset(used_tables),
        parameters=frozenset(used_params),
        output_columns=tuple(tree.named_selects),
    )


def _check_node(node, known, cte_names, used_tables, used_params, refuse) -> None:
    kind = type(node).__name__
    if isinstance(node, exp.Table):
        _check_table(node, known, cte_names, used_tables, refuse)
        return
    if isinstance(node, exp.Placeholder):
        name = node.name
        if not name or not _NAME.match(name):
            raise refuse(
                f"parameter {node.sql(dialect='duckdb')!r} refused: only named parameters ($name) are allowed",
                hint="write $name and declare it under `parameters:`",
            )
        used_params.add(name)
        return
    if isinstance(node, exp.Select) and node.args.get("into"):
        raise refuse("SELECT … INTO refused; only read-only SELECT is allowed")
    if isinstance(node, exp.Join) and (node.args.get("method") or "").upper() == "POSITIONAL":
        raise refuse("POSITIONAL JOIN refused: it depends on physical row order")
    if isinstance(node, exp.Column):
        _check_schema(node.args.get("db"), node.args.get("catalog"), node.sql(dialect="duckdb"), refuse)
    if type(node) in _ALLOWED_NODES:  # exact type: a subclass is a different construct
        return
    if isinstance(node, exp.Func):
        name = function_name(node)
        allowed = name in _ALLOWED_ANONYMOUS if isinstance(node, exp.Anonymous) else kind in _ALLOWED_FUNCS
        if name in _DANGEROUS_FUNCS or name.startswith(("duckdb_", "pragma_")) or not allowed:
            why = "it reads files, the catalog, settings or the clock" if (
                name in _DANGEROUS_FUNCS or name.startswith(("duckdb_", "pragma_"))
            ) else "it is not on the allow-list"
            raise refuse(
                f"function {name}() refused: {why}",
                hint="rules may only use pure functions over warehouse tables; use $as_of instead of "
                "the current date; if the function is pure, add it to the allow-list in pipelines/rules/sqlcheck.py",
            )
        return
    what = _STATEMENT_NAMES.get(kind, kind)
    raise refuse(
        f"construct {what} ({node.sql(dialect='duckdb')[:60]!r}) refused: not on the allow-list",
        hint="rules are plain SELECTs; if this construct is harmless, add it to the allow-list in pipelines/rules/sqlcheck.py",
    )


def _check_schema(db, catalog, text, refuse) -> None:
    if catalog is not None:
        raise refuse(f"{text!r}: references to other databases (catalogs) are refused")
    if db is not None and str(db.name).lower() != "main":
        raise refuse(
            f"{text!r}: schema {db.name!r} refused; only the warehouse's main schema may be read",
            hint="information_schema, duckdb_* and other schemas are off limits to rules",
        )


def _check_table(node: exp.Table, known, cte_names, used_tables, refuse) -> None:
    target = node.this
    if not isinstance(target, exp.Identifier):
        name = function_name(target) if isinstance(target, exp.Func) else type(target).__name__
        raise refuse(
            f"table function {name}() refused: rules may read only warehouse tables and views",
            hint="files are loaded by `fraudwatch load`; rules never read files or table functions",
        )
    extra = sorted(k for k, v in node.args.items() if v and k not in ("this", "db", "catalog", "alias", "joins"))
    if extra:
        raise refuse(f"table reference {node.sql(dialect='duckdb')!r} refused: unsupported clause {extra[0]}")
    _check_schema(node.args.get("db"), node.args.get("catalog"), node.sql(dialect="duckdb"), refuse)
    name = target.name
    if not _NAME.match(name):
        raise refuse(
            f"table reference {name!r} refused: DuckDB reads a quoted path like this as a file",
            hint="name a warehouse table or view, never a file path",
        )
    lowered = name.lower()
    if lowered in cte_names and node.args.get("db") is None:
        return
    if lowered not in known:
        raise refuse(
            f"table {name!r} is not a warehouse table or view this rule may read",
            hint=f"allowed: {', '.join(sorted(known)) or '(none)'} (list the tables a rule reads under `requires:`)",
        )
    used_tables.add(lowered)


def check_rule_sql(rule: Rule, tables: Iterable[str] | None = None) -> CheckedQuery:
    """Check a rule's query. ``tables`` defaults to the rule's ``requires`` (which must be
    warehouse names): a rule can read only what it declares it needs."""
    allowed = set(rule.requires if tables is None else tables)
    return check_query(
        rule.query,
        allowed,
        declared=rule.parameters,
        file=rule.path,
        line=rule.line_of("query"),
        rule=rule.id,
    )
