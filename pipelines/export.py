"""Suspect lists for auditors: XLSX or CSV with Chinese headers, optional masking.

Every export row carries the suspect key 疑点编号 = ``run_id|rule_id|subject_id`` (masked exports:
``run_id|rule_id|#n``, n = the suspect's 1-based position in the run ordered by rule_id,
subject_id, so no ID leaks), and the outcome columns 处置结果, 追回金额(元), 处置说明, 复核人,
复核日期 that :mod:`pipelines.outcomes` imports back. When the case store holds outcomes, they are
pre-filled with each suspect's current outcome (re-importing them changes nothing).

- XLSX (layout: :mod:`pipelines.export_xlsx`): sheet 汇总, one sheet per category, sheet 填写说明;
  printable, with the ID and name first and the technical columns (the key last) hidden.
- CSV: one UTF-8-with-BOM file with every suspect (category in a column), and the summary next to
  it as ``<name>.summary.csv``. A text cell that would start a formula (``= + - @``, tab, CR) gets
  a leading ``'`` (OWASP CSV injection rule); the import removes it again.

No export replaces an existing file unless asked to (``force``): it may hold an auditor's work.
Everything is computed in DuckDB (sums as DECIMAL, exact); the CSV is written batch by batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import polars as pl

from pipelines.engine import connect
from pipelines import publish
from pipelines.errors import RunError
from pipelines.case_store import CaseStore, open_store
from pipelines.outcomes import KEY_HEADER, KEY_SEPARATOR, OUTCOME_HEADERS, OUTCOME_LABELS

if TYPE_CHECKING:
    from pipelines.export_xlsx import Scope

CATEGORY_ZH: dict[str, str] = {
    "paid_after_death": "死亡冒领养老金",
    "subsidy_after_death": "死亡冒领补贴",
    "duplicate_cross_region": "跨地区重复领取",
    "duplicate_cross_scheme": "跨险种重复领取",
    "paid_during_imprisonment": "服刑期间领取",
    "refund_retained": "稳岗资金滞留",
    "duplicate_identity": "一人多号重复领取",
    "duplicate_payment_same_period": "同期重复发放",
    "pensioner_over_110": "超高龄领取养老金",
    "shared_bank_account": "多人共用银行账户",
    "certified_after_death": "死亡后仍通过资格认证",
}
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
SUBJECT_TYPE_ZH = {"person": "个人", "firm": "单位"}
STATUS_ZH = {"new": "新增", "recurring": "再次出现"}
# suspects.parquet column -> export header (columns not listed keep their name)
COLUMN_HEADERS: dict[str, str] = {
    "run_id": "批次号", "rule_id": "规则编号", "category": "类别", "severity": "严重程度",
    "subject_type": "对象类型", "subject_id": "身份证号/信用代码", "subject_name": "姓名/单位名称",
    "region_code": "地区", "first_period": "起始所属期", "last_period": "截止所属期",
    "amount_at_risk": "涉及金额(元)", "evidence": "证据", "reason": "疑点说明", "status": "状态",
    "rule_version": "规则版本",
}
# Compound surnames kept whole when masking a name.
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文",
                     "司徒", "夏侯", "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "澹台", "公冶", "太史",
                     "申屠", "钟离", "闾丘", "万俟", "单于", "赫连", "拓跋")
XLSX_MAX_ROWS = 1_048_575  # data rows per sheet under Excel's 1,048,576-row limit
Progress = Callable[[int, int], None]  # (rows written so far, total rows)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _case(column: str, mapping: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in mapping.items())
    return f"CASE {column} {whens} ELSE {column} END"


def _category_order(column: str) -> str:
    whens = " ".join(f"WHEN {_lit(k)} THEN {i}" for i, k in enumerate(CATEGORY_ZH))
    return f"CASE {column} {whens} ELSE {len(CATEGORY_ZH)} END"


def mask_id_sql(column: str) -> str:
    """SQL: an ID with only its first 6 and last 4 characters shown (``110105********002X``)."""
    return (f"CASE WHEN length({column}) > 10 THEN left({column}, 6) || repeat('*', length({column}) - 10) "
            f"|| right({column}, 4) ELSE repeat('*', length({column})) END")


def mask_name_sql(column: str) -> str:
    """SQL: a person's name reduced to the surname (``张**``; compound surnames such as 欧阳 kept whole)."""
    compound = "[" + ", ".join(_lit(s) for s in COMPOUND_SURNAMES) + "]"
    return (f"CASE WHEN length({column}) >= 3 AND list_contains({compound}, left({column}, 2)) "
            f"THEN left({column}, 2) || repeat('*', length({column}) - 2) "
            f"ELSE left({column}, 1) || repeat('*', greatest(length({column}) - 1, 1)) END")


def _mask_text_sql(column: str, json_text: bool) -> str:
    """SQL masking the subject's ID and name in free text, then every ID-shaped token (18 or 15
    digits), then a name written before an ID in brackets (``王五（440300...）``); in JSON also every
    ``"…name…":"…"`` value. Bank accounts and record ids are left as they are."""
    text = (f"replace(replace({column}, s.subject_id, {mask_id_sql('s.subject_id')}), "
            f"coalesce(s.subject_name, chr(1)), coalesce({mask_name_sql('s.subject_name')}, ''))")
    text = f"regexp_replace({text}, '\\b(\\d{{6}})\\d{{8}}(\\d{{3}}[\\dXx])\\b', '\\1********\\2', 'g')"
    text = f"regexp_replace({text}, '\\b(\\d{{6}})\\d{{5}}(\\d{{4}})\\b', '\\1*****\\2', 'g')"
    # a name right after a bracket/separator, as rules list people: （王五（440300…）、刘梅（…））
    text = f"regexp_replace({text}, '([（(、，,：:\\s])(\\p{{Han}})[\\p{{Han}}·]{{0,5}}（(\\d{{6}}\\*)', '\\1\\2**（\\3', 'g')"
    # elsewhere the name's start is unknown: mask up to 4 characters before the bracket (may over-mask)
    text = f"regexp_replace({text}, '(\\p{{Han}})\\p{{Han}}{{1,3}}（(\\d{{6}}\\*)', '\\1**（\\2', 'g')"
    if json_text:
        text = f"regexp_replace({text}, '\"(\\w*name\\w*)\":\"(\\p{{Han}}|[^\"])[^\"]*\"', '\"\\1\":\"\\2**\"', 'g')"
    return text


@dataclass(frozen=True)
class _Col:
    header: str
    sql: str
    kind: str  # text | wrap | evidence | id | money | int | date
    width: float = 12
    hidden: bool = False


FORMULA_START = "^[=+\\-@\\t\\r]"  # OWASP CSV injection: a cell starting like this gets a leading '


def _csv_safe(sql: str) -> str:
    """SQL: the text with a leading ``'`` when it would start a formula in a spreadsheet (OWASP)."""
    return f"CASE WHEN regexp_matches({sql}, '{FORMULA_START}') THEN chr(39) || {sql} ELSE {sql} END"


def _columns(extra: list[str], mask: bool, money_sql_type: str) -> list[_Col]:
    """Export columns in sheet order: who (frozen), what, the outcome to fill in, the evidence, then
    the technical columns (hidden in the XLSX), the suspect key last."""
    person = "s.subject_type = 'person'"
    subject_id = f"CASE WHEN {person} THEN {mask_id_sql('s.subject_id')} ELSE s.subject_id END" if mask else "s.subject_id"
    name = f"CASE WHEN {person} THEN {mask_name_sql('s.subject_name')} ELSE s.subject_name END" if mask else "s.subject_name"
    reason = f"CASE WHEN {person} THEN {_mask_text_sql('s.reason', False)} ELSE s.reason END" if mask else "s.reason"
    evidence = f"CASE WHEN {person} THEN {_mask_text_sql('s.evidence', True)} ELSE s.evidence END" if mask else "s.evidence"
    key_tail = "'#' || s._ordinal" if mask else "s.subject_id"
    sep = _lit(KEY_SEPARATOR)
    money = f"::{money_sql_type}"
    cols = [
        _Col(COLUMN_HEADERS["subject_id"], subject_id, "id", 19.5),
        _Col(COLUMN_HEADERS["subject_name"], name, "text", 10),
        _Col(COLUMN_HEADERS["region_code"], "s.region_code", "id", 7.5),
        _Col(COLUMN_HEADERS["category"], _case("s.category", CATEGORY_ZH), "wrap", 9),
        _Col(COLUMN_HEADERS["severity"], _case("s.severity", SEVERITY_ZH), "text", 4.5),
        _Col(COLUMN_HEADERS["first_period"], "s.first_period", "id", 8),
        _Col(COLUMN_HEADERS["last_period"], "s.last_period", "id", 8),
        _Col(COLUMN_HEADERS["amount_at_risk"], f"s.amount_at_risk{money}", "money", 11),
        _Col(COLUMN_HEADERS["reason"], reason, "wrap", 40),
        _Col(COLUMN_HEADERS["status"], _case("s.status", STATUS_ZH), "wrap", 5),
        _Col(OUTCOME_HEADERS["outcome"], _case("o.outcome", OUTCOME_LABELS), "text", 8.5),
        _Col(OUTCOME_HEADERS["recovered_amount"], f"o.recovered_amount{money}", "money", 10),
        _Col(OUTCOME_HEADERS["note"], "o.note", "wrap", 14),
        _Col(OUTCOME_HEADERS["reviewer"], "o.reviewer", "text", 7),
        _Col(OUTCOME_HEADERS["review_date"], "o.review_date", "date", 10),
        _Col(COLUMN_HEADERS["evidence"], evidence, "evidence", 42),
        _Col(COLUMN_HEADERS["rule_id"], "s.rule_id", "text", 14, hidden=True),
        _Col(COLUMN_HEADERS["subject_type"], _case("s.subject_type", SUBJECT_TYPE_ZH), "text", 6, hidden=True),
        _Col(COLUMN_HEADERS["run_id"], "s.run_id", "id", 20, hidden=True),
    ]
    cols += [_Col(COLUMN_HEADERS.get(c, c), f's."{c}"', "int" if c == "rule_version" else "text", 10, hidden=True)
             for c in extra]
    cols.append(_Col(KEY_HEADER, f"s.run_id || {sep} || s.rule_id || {sep} || {key_tail}", "id", 30, hidden=True))
    return cols


def readable_evidence(text: str | None) -> str | None:
    """The evidence JSON as short lines an auditor can read on paper: ``key: value``, lists of values
    joined with 、, one line per record of a list of records (``k=v, k=v``). The JSON itself stays in
    suspects.parquet and the CSV."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text

    def flat(v) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k}={flat(x)}" for k, x in v.items())
        if isinstance(v, list):
            return "、".join(flat(x) for x in v)
        if isinstance(v, bool):
            return "是" if v else "否"
        return "—" if v is None else str(v)

    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            lines.append(f"{key}:")
            lines.extend(f"  · {flat(x)}" for x in value)
        else:
            lines.append(f"{key}: {flat(value)}")
    return "\n".join(lines)


@dataclass
class ExportResult:
    """What :func:`export_suspects` wrote."""

    run_id: str
    files: list[Path]
    rows: int
    per_category: dict[str, int]
    masked: bool
    prefilled_outcomes: int = 0
    notes: list[str] = field(default_factory=list)


class _Source:
    """An in-memory DuckDB over one run's suspects (view ``s``; only ``region``'s when given) and
    the current outcomes from the case store (view ``o``)."""

    def __init__(self, run_dir: Path, store: CaseStore | None, notes: list[str], region: str | None = None) -> None:
        manifest = _manifest(run_dir)
        held = manifest.get("held_back") or {}
        self.as_of: str | None = (manifest.get("parameters") or {}).get("as_of")
        self.held_back: str | None = held.get("reason") if held.get("count") else None
        self.engine = connect()
        path = str(run_dir / publish.SUSPECTS_FILE)
        # the ordinal (masked keys) is the position in the whole run, also in a region's workbook
        where = f"WHERE region_code = {_lit(region)}" if region is not None else ""
        self.engine.execute("CREATE VIEW s AS SELECT * FROM (SELECT *, row_number() OVER (ORDER BY rule_id, subject_id) "
                            f"AS _ordinal FROM read_parquet({_lit(path)})) {where}")
        self.columns = list(self.engine.column_types(f"SELECT * FROM read_parquet({_lit(path)})"))
        if store is not None:
            self.engine.register("_current", store.current_outcomes())
            self.engine.execute("CREATE VIEW o AS SELECT rule_id, subject_id, outcome, recovered_amount, note, reviewer, "
                                "review_date FROM _current")
        else:
            self.engine.execute("CREATE VIEW o AS SELECT NULL::VARCHAR AS rule_id, NULL::VARCHAR AS subject_id, "
                             "NULL::VARCHAR AS outcome, NULL::DECIMAL(18,2) AS recovered_amount, NULL::VARCHAR AS note, "
                             "NULL::VARCHAR AS reviewer, NULL::DATE AS review_date WHERE false")

    def rows_sql(self, mask: bool, money_sql_type: str, csv_safe: bool = False) -> tuple[list[_Col], str]:
        spec = [c for c, _ in publish.SUSPECT_COLUMNS]
        extra = [c for c in self.columns if c not in spec and c != "_ordinal"]
        cols = _columns(extra, mask, money_sql_type)
        select = ", ".join(f"{_csv_safe(c.sql) if csv_safe and c.kind not in ('money', 'int', 'date') else c.sql} AS c{i}"
                           for i, c in enumerate(cols))
        sql = (f"SELECT s.category AS _category, {select} FROM s LEFT JOIN o USING (rule_id, subject_id) "
               f"ORDER BY {_category_order('s.category')}, s.category, s.amount_at_risk DESC NULLS LAST, "
               "s.rule_id, s.subject_id")
        return cols, sql

    def summary(self) -> pl.DataFrame:
        """Hits, new hits and amount (DECIMAL) per category and region, with category subtotals and a total."""
        return pl.from_arrow(self.engine.query(f"""
            SELECT category AS category_code, {_case('category', CATEGORY_ZH)} AS category,
                   CASE WHEN grouping(category) = 1 THEN '合计' WHEN grouping(region_code) = 1 THEN '小计'
                        ELSE coalesce(region_code, '(空)') END AS region,
                   count(*) AS hits, count(*) FILTER (WHERE status = 'new') AS new_hits,
                   coalesce(sum(amount_at_risk), 0)::DECIMAL(38,2) AS amount_at_risk
            FROM s GROUP BY GROUPING SETS ((category, region_code), (category), ())
            ORDER BY grouping(category), {_category_order('category')}, category, grouping(region_code), region_code"""))

    def close(self) -> None:
        self.engine.close()


def _manifest(run_dir: Path) -> dict:
    path = run_dir / publish.MANIFEST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_csv(src: _Source, out: Path, mask: bool, progress: Progress | None) -> tuple[dict[str, int], Path]:
    cols, sql = src.rows_sql(mask, "VARCHAR", csv_safe=True)  # exact decimal text, e.g. 8466.00
    total = src.engine.scalar("SELECT count(*) FROM s")
    per_category: dict[str, int] = {}
    written = 0
    with open(out, "wb") as fh:
        fh.write(b"\xef\xbb\xbf")
        reader = src.engine.batches(sql, batch_rows=100_000)
        first = True
        for batch in reader:
            frame = pl.from_arrow(batch)
            counts = frame.group_by("_category").len()
            for cat, n in counts.iter_rows():
                per_category[cat] = per_category.get(cat, 0) + n
            frame = frame.drop("_category").rename({f"c{i}": c.header for i, c in enumerate(cols)})
            frame.write_csv(fh, include_header=first)
            first = False
            written += batch.num_rows
            if progress:
                progress(written, total)
        if first:  # no suspects: header only
            fh.write((",".join(c.header for c in cols) + "\n").encode("utf-8"))
    summary_path = out.with_name(out.stem + ".summary.csv")
    summary = src.summary().with_columns(pl.col("amount_at_risk").cast(pl.String)).select(
        pl.when(pl.col("category_code").is_null()).then(pl.lit("全部")).otherwise(pl.col("category")).alias("类别"),
        pl.col("category_code").alias("类别代码"), pl.col("region").alias("地区"), pl.col("hits").alias("疑点数"),
        pl.col("new_hits").alias("其中新增"), pl.col("amount_at_risk").alias("涉及金额(元)"))
    with open(summary_path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf")
        summary.write_csv(fh)
    return per_category, summary_path


def refuse_overwrite(paths: list[Path], force: bool) -> None:
    """An export never replaces a file (an auditor may have filled it in) unless ``force``."""
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise RunError("file exists: " + ", ".join(str(p) for p in existing), file=existing[0],
                       hint="it may hold outcomes an auditor filled in: choose another --out, or pass --force to overwrite")


def export_suspects(output: Path, out: Path, fmt: str = "xlsx", run: str = "latest", mask: bool = False,
                    store: CaseStore | None = None, progress: Progress | None = None, force: bool = False,
                    region: str | None = None, scope: "Scope | None" = None) -> ExportResult:
    """Export a run's suspects (``run`` = ``latest`` or a run id under ``output``) to ``out``.

    ``fmt`` is ``xlsx`` or ``csv``; ``mask`` masks person IDs and names (firms stay readable);
    ``store`` (default: the case store of ``output``) supplies current outcomes to pre-fill.
    ``progress(rows_written, total)`` is called after each batch. An existing file is an error
    unless ``force``. ``region`` keeps only that region's suspects; ``scope`` (XLSX) marks the
    workbook as sent to a region (see :func:`pipelines.dispatch.export_by_region`).
    """
    from pipelines import export_xlsx

    if fmt not in ("xlsx", "csv"):
        raise RunError(f"unknown export format {fmt!r}", hint="use --format xlsx or --format csv")
    run_dir = publish.resolve_run(Path(output), run)
    out = Path(out)
    if out.suffix.lower() != f".{fmt}":
        out = out.with_name(out.name + f".{fmt}")
    final_summary = out.with_name(out.stem + ".summary.csv")
    refuse_overwrite([out, final_summary] if fmt == "csv" else [out], force)
    out.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    own = store is None
    if own:
        store = open_store(Path(output))
    try:
        notes.extend(store.notes)
        src = _Source(run_dir, store, notes, region=region)
    finally:
        if own:
            store.close()
    tmp = out.with_name(f".{out.name}.partial")
    try:
        prefilled = src.engine.scalar("SELECT count(*) FROM s JOIN o USING (rule_id, subject_id)")
        rows = src.engine.scalar("SELECT count(*) FROM s")
        if fmt == "xlsx":
            per_category = export_xlsx.write_xlsx(src, tmp, mask, run_dir.name, progress, scope, max_rows=XLSX_MAX_ROWS)
            files = [out]
        else:
            per_category, summary_path = _write_csv(src, tmp, mask, progress)
            summary_path.replace(final_summary)
            files = [out, final_summary]
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.stem + ".summary.csv").unlink(missing_ok=True)
        raise
    finally:
        src.close()
    return ExportResult(run_dir.name, files, rows, per_category, mask, prefilled, notes)


@dataclass
class RunOverview:
    """A run's suspects aggregated for analysts (amounts DECIMAL(38,2), 元)."""

    run_id: str
    as_of: str | None
    suspects: pl.DataFrame     # the suspects.parquet rows, plus category_zh
    by_category: pl.DataFrame  # category, category_zh, hits, new_hits, amount_at_risk
    by_region: pl.DataFrame    # region_code, hits, amount_at_risk
    by_month: pl.DataFrame     # month (first improper period, YYYY-MM), category, hits, amount_at_risk
    by_rule: pl.DataFrame      # rule_id, severity, hits, amount_at_risk


def run_overview(output: Path, run: str = "latest") -> RunOverview:
    """Hits and amounts of one run by category, region, first improper month and rule (for notebooks)."""
    run_dir = publish.resolve_run(Path(output), run)
    engine = connect()
    try:
        engine.execute(f"CREATE VIEW s AS SELECT *, {_case('category', CATEGORY_ZH)} AS category_zh "
                       f"FROM read_parquet({_lit(str(run_dir / publish.SUSPECTS_FILE))})")
        amount = "coalesce(sum(amount_at_risk), 0)::DECIMAL(38,2) AS amount_at_risk"
        q = lambda sql: pl.from_arrow(engine.query(sql))  # noqa: E731
        return RunOverview(
            run_id=run_dir.name,
            as_of=(_manifest(run_dir).get("parameters") or {}).get("as_of"),
            suspects=q("SELECT * FROM s ORDER BY rule_id, subject_id"),
            by_category=q(f"SELECT category, any_value(category_zh) AS category_zh, count(*) AS hits, "
                          f"count(*) FILTER (WHERE status = 'new') AS new_hits, {amount} FROM s GROUP BY 1 ORDER BY 1"),
            by_region=q(f"SELECT region_code, count(*) AS hits, {amount} FROM s GROUP BY 1 ORDER BY 1"),
            by_month=q(f"SELECT first_period AS month, category, count(*) AS hits, {amount} FROM s "
                       "WHERE first_period IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"),
            by_rule=q(f"SELECT rule_id, any_value(severity) AS severity, count(*) AS hits, {amount} FROM s GROUP BY 1 ORDER BY 1"),
        )
    finally:
        engine.close()
