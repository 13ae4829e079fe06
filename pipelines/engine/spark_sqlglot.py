"""The one place where DuckDB SQL that sqlglot transpiles to Spark wrongly is patched: a custom
sqlglot dialect, ``fraudwatch_spark`` (the pattern of Splink's ``custom_spark_dialect.py``).

Rules, views and stage SQL are written in DuckDB dialect; :class:`FraudwatchSpark` turns them
into Spark SQL that computes the same values. Each patch below names the DuckDB construct, what
stock sqlglot writes for Spark and why that is wrong.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.spark import Spark

NAME = "fraudwatch_spark"


def _format(self: Spark.Generator, expression: exp.Format) -> str:
    """DuckDB ``format('{:,}', n)`` (thousands separators, the money formatter) becomes
    ``FORMAT_STRING('{:,}', …)`` in stock sqlglot: Spark's format_string is printf-style and
    prints ``{:,}`` literally. ``format_number(n, 0)`` groups digits of an integral or DECIMAL
    value exactly (no float). Other DuckDB format strings are refused, not guessed."""
    template = expression.this
    if isinstance(template, exp.Literal) and template.is_string and template.this == "{:,}" and len(expression.expressions) == 1:
        return self.func("FORMAT_NUMBER", expression.expressions[0], exp.Literal.number(0))
    self.unsupported(f"DuckDB format() with template {template.sql('duckdb')} has no Spark equivalent here")
    return self.function_fallback_sql(expression)


def _array_agg(self: Spark.Generator, expression: exp.ArrayAgg) -> str:
    """DuckDB ``list(x)`` keeps NULL items; Spark's COLLECT_LIST drops them. Evidence lists in
    rules never rely on NULL items, so COLLECT_LIST is kept, with ORDER BY inside the aggregate
    refused (Spark has none)."""
    this = expression.this
    if isinstance(this, exp.Order):
        self.unsupported("list(x ORDER BY ...) has no Spark equivalent; use list_sort(list(x))")
        this = this.this
    return self.func("COLLECT_LIST", this)


def _json_object(self: Spark.Generator, expression: exp.JSONObject) -> str:
    """DuckDB ``json_object('k', v, ...)`` becomes Spark's ``JSON_OBJECT('k': v)`` syntax in stock
    sqlglot, which Spark does not have. ``TO_JSON(NAMED_STRUCT(...))`` writes the same text
    (keys in order, no spaces), with nulls kept as ``null`` as DuckDB does (Spark drops them by default)."""
    pairs = []
    for item in expression.expressions:
        if not isinstance(item, exp.JSONKeyValue):
            self.unsupported("json_object with a non key/value argument")
            continue
        pairs += [item.this, item.expression]
    struct = self.func("NAMED_STRUCT", *pairs)
    return f"TO_JSON({struct}, MAP('ignoreNullFields', 'false'))"


def _rewrite_range(tree: exp.Expression) -> exp.Expression:
    """DuckDB's table function ``range(a, b)`` (one column ``range``, or the alias's column)
    becomes EXPLODE(SEQUENCE(...)) in stock sqlglot, with a mangled alias list when one is given
    (``range(17) AS t(i)``). Spark's own RANGE(a, b) has one column ``id``: a subquery renames it."""
    for table in list(tree.find_all(exp.Table)):
        series = table.this
        if not (isinstance(series, exp.GenerateSeries) and series.args.get("is_end_exclusive") and not series.args.get("step")):
            continue
        alias = table.args.get("alias")
        columns = alias.columns if alias is not None else []
        column = columns[0].name if columns else "range"
        name = alias.name if alias is not None and alias.name else "range"
        start = series.args.get("start") or exp.Literal.number(0)
        inner = exp.select(exp.alias_(exp.column("id"), column)).from_(
            exp.Table(this=exp.Anonymous(this="RANGE", expressions=[start.copy(), series.args["end"].copy()])))
        table.replace(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(name))))
    return tree


def _rewrite_functions(tree: exp.Expression) -> exp.Expression:
    """DuckDB functions Spark lacks or computes differently, each rewritten to what gives the same value.

    * ``regexp_full_match(x, 'p')`` (left as is by stock sqlglot; Spark has none) → ``x RLIKE '^(?:p)$'``.
    * ``try_strptime(x, fmt)`` (left as is) → ``TRY_TO_TIMESTAMP(x, fmt)`` (NULL on a bad date, as DuckDB).
    * ``to_json(x)``: DuckDB keeps NULL fields (``"f":null``), Spark's TO_JSON drops them unless
      told ``ignoreNullFields`` false.
    * ``hash(x, …)`` → ``XXHASH64(x, …)``: a 64-bit hash as DuckDB's (Spark's HASH is 32-bit murmur3, more
      collisions). The values differ between engines: use hashes for equality, never for order.
    * ``unicode(x)`` (the first character's code point) becomes ASCII in stock sqlglot, which is not
      the code point for CJK text in Spark: the UTF-32 bytes of the first character (Java writes them big-endian, no BOM) are it.
    * ``list_filter(l, lambda x, i: …)``: DuckDB's index is 1-based, Spark's FILTER index 0-based.
    * ``first(x ORDER BY k1 DESC, k2)`` (Spark's FIRST has no ORDER BY) → ``MIN_BY(x, STRUCT(-k1, k2))``:
      only numeric keys may be DESC.
    * ``count(DISTINCT (a, b))`` → ``COUNT(DISTINCT a, b)``.
    * ``list[i + 1]`` (a computed index; DuckDB lists are 1-based): stock sqlglot shifts literal
      indexes only, so ``['a', 'b'][code + 1]`` would read the next item on Spark (0-based). A
      computed index into an array literal, or an index that is arithmetic, is shifted by one.
    """
    for node in list(tree.find_all(exp.Bracket)):
        if len(node.expressions) != 1:
            continue
        index = node.expressions[0]
        if isinstance(index, exp.Literal) or isinstance(index, exp.Slice):
            continue
        if isinstance(node.this, exp.Array) or isinstance(index, (exp.Add, exp.Sub)):
            index.replace(exp.Paren(this=exp.Sub(this=index.copy(), expression=exp.Literal.number(1))))
    for node in list(tree.find_all(exp.RegexpFullMatch)):
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise ValueError("regexp_full_match on Spark needs a literal pattern")
        node.replace(exp.RegexpLike(this=node.this.copy(), expression=exp.Literal.string(f"^(?:{pattern.this})$")))
    for node in list(tree.find_all(exp.Anonymous)):
        name = node.name.lower()
        if name == "try_strptime" and len(node.expressions) == 2 and isinstance(node.expressions[1], exp.Literal):
            fmt = node.expressions[1].this
            for duck, java in (("%Y", "yyyy"), ("%m", "MM"), ("%d", "dd"), ("%H", "HH"), ("%M", "mm"), ("%S", "ss")):
                fmt = fmt.replace(duck, java)
            node.replace(exp.Anonymous(this="TRY_TO_TIMESTAMP", expressions=[node.expressions[0].copy(), exp.Literal.string(fmt)]))
        elif name == "to_json" and len(node.expressions) == 1:
            # DuckDB writes a NULL struct field as null; Spark's TO_JSON leaves the field out
            options = exp.Anonymous(this="MAP", expressions=[exp.Literal.string("ignoreNullFields"), exp.Literal.string("false")])
            node.set("expressions", [node.expressions[0].copy(), options])
        elif name == "hash" and node.expressions:
            node.replace(exp.Anonymous(this="XXHASH64", expressions=[e.copy() for e in node.expressions]))
    for node in list(tree.find_all(exp.Unicode)):
        first = exp.Substring(this=node.this.copy(), start=exp.Literal.number(1), length=exp.Literal.number(1))
        utf32 = exp.Anonymous(this="HEX", expressions=[exp.Anonymous(this="ENCODE", expressions=[first, exp.Literal.string("UTF-32")])])
        code = exp.Anonymous(this="CONV", expressions=[utf32, exp.Literal.number(16), exp.Literal.number(10)])
        node.replace(exp.Cast(this=exp.Nullif(this=code, expression=exp.Literal.string("")), to=exp.DataType.build("INT")))
    for node in list(tree.find_all(exp.ArrayFilter)):
        fn = node.expression
        if isinstance(fn, exp.Lambda) and len(fn.expressions) == 2:
            index = fn.expressions[1].name
            for ident in list(fn.this.find_all(exp.Identifier)):
                if ident.name != index:
                    continue
                ref = ident.parent if isinstance(ident.parent, exp.Column) and not ident.parent.table else ident
                if ref is ident and isinstance(ident.parent, (exp.Column, exp.Dot)):
                    continue  # a qualified name, not the lambda's index
                ref.replace(exp.Paren(this=exp.Add(this=ref.copy(), expression=exp.Literal.number(1))))
    for node in list(tree.find_all(exp.First)):
        order = node.this
        if isinstance(order, exp.Order):
            keys = [o.this.copy() if not o.args.get("desc") else exp.Neg(this=exp.Paren(this=o.this.copy()))
                    for o in order.expressions]
            node.replace(exp.Anonymous(this="MIN_BY", expressions=[order.this.copy(), exp.Struct(expressions=keys)]))
    for node in list(tree.find_all(exp.Count)):
        distinct = node.this
        if isinstance(distinct, exp.Distinct) and len(distinct.expressions) == 1 and isinstance(distinct.expressions[0], exp.Tuple):
            distinct.set("expressions", [e.copy() for e in distinct.expressions[0].expressions])
    return tree


class FraudwatchSpark(Spark):
    """Spark SQL as fraudwatch runs it (see the module docstring)."""

    class Generator(Spark.Generator):
        TYPE_MAPPING = {
            **Spark.Generator.TYPE_MAPPING,
            # DuckDB HUGEINT (the money formatter's cents) would become INT128, unknown to Spark;
            # DECIMAL(38,0) holds every 128-bit value fraudwatch computes, exactly.
            exp.DataType.Type.INT128: "DECIMAL(38, 0)",
            exp.DataType.Type.UINT128: "DECIMAL(38, 0)",
        }
        def generate(self, expression: exp.Expression, copy: bool = True) -> str:
            expression = expression.copy() if copy else expression
            for rewrite in REWRITES:
                expression = rewrite(expression)
            return super().generate(expression, copy=False)

        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.Format: _format,
            exp.ArrayAgg: _array_agg,
            exp.JSONObject: _json_object,
        }


REWRITES = (_rewrite_range, _rewrite_functions)

Dialect.classes[NAME] = FraudwatchSpark
