"""The ``reason`` template: Chinese text with ``{column}`` placeholders, compiled into one SQL
concat expression evaluated by DuckDB for all hits at once (no per-row Python).

Placeholders name output columns of the rule query. ``{col}`` renders by the column's type:
DECIMAL → money (``8,123.40``), DATE → ``YYYY-MM-DD`` (``YYYY-MM`` for ``first_period``,
``last_period`` and names ending in ``_period``/``_month``), lists → items joined with ``、``,
anything else → text. ``{col:money}``, ``{col:month}``, ``{col:date}``, ``{col:list}``,
``{col:text}`` force a format. ``{{`` and ``}}`` are literal braces. NULL renders as ``不详``.
"""

from __future__ import annotations

import re

from pipelines.engine.dialects import DUCKDB, Dialect

FORMATS = ("money", "month", "date", "list", "text")
NULL_TEXT = "不详"
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?$")


def parse_template(template: str) -> list[tuple[str, str | None]]:
    """Split a template into parts: ``(text, None)`` for literal text, ``(column, format)`` for
    placeholders (format '' when not given). Raises ValueError on a malformed placeholder."""
    parts: list[tuple[str, str | None]] = []
    literal = ""
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        literal += template[pos:m.start()]
        pos = m.end()
        token = m.group(0)
        if token in ("{{", "}}"):
            literal += token[0]
            continue
        if m.group(1) is None:
            raise ValueError(f"unmatched {token!r} at character {m.start() + 1}; write {token * 2} for a literal brace")
        field = _FIELD.match(m.group(1).strip())
        if not field:
            raise ValueError(f"placeholder {token!r} must be {{column}} or {{column:format}}")
        fmt = field.group(2) or ""
        if fmt and fmt not in FORMATS:
            raise ValueError(f"placeholder {token!r}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        if literal:
            parts.append((literal, None))
            literal = ""
        parts.append((field.group(1), fmt))
    literal += template[pos:]
    if literal:
        parts.append((literal, None))
    return parts


def placeholders(template: str) -> list[str]:
    """Column names a template uses, in order of first use."""
    names: list[str] = []
    for value, fmt in parse_template(template):
        if fmt is not None and value not in names:
            names.append(value)
    return names


def default_format(column: str, sql_type: str) -> str:
    """The format a placeholder gets from its column name and DuckDB type."""
    t = sql_type.upper()
    if t.endswith("[]") or t.startswith("LIST"):
        return "list"
    if t.startswith("DECIMAL"):
        return "money"
    if t == "DATE" or t.startswith("TIMESTAMP"):
        if column in ("first_period", "last_period") or column.endswith(("_period", "_month")):
            return "month"
        return "date"
    return "text"


def compile_reason(template: str, column_types: dict[str, str], dialect: Dialect = DUCKDB) -> str:
    """SQL expression (in ``dialect``) rendering ``template`` for each row; ``column_types`` maps the
    query's output columns to their types. Raises ValueError naming an unknown column."""
    pieces: list[str] = []
    for value, fmt in parse_template(template):
        if fmt is None:
            pieces.append(dialect.literal(value))
            continue
        if value not in column_types:
            raise ValueError(
                f"reason names column {{{value}}} but the query has no such output column "
                f"(it has: {', '.join(column_types)})"
            )
        ref = dialect.quote_identifier(value)
        fmt = fmt or default_format(value, column_types[value])
        rendered = {
            "money": dialect.money_text,
            "month": dialect.month_text,
            "date": dialect.date_text,
            "list": dialect.list_text,
            "text": dialect.as_text,
        }[fmt](ref)
        pieces.append(f"coalesce({rendered}, {dialect.literal(NULL_TEXT)})")
    if not pieces:
        return dialect.literal("")
    return f"concat({', '.join(pieces)})"
