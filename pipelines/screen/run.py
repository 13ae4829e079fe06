"""The screen as one plain function: stage the payroll, run the checks, write the hold list.

Outputs are assembled in ``screens/.partial-<screen_id>`` and renamed into place when complete;
a failed screen leaves nothing under ``screens/<screen_id>``. Holds are not remembered between
screens: a payroll row held before and still in the payroll is listed again.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from pipelines import publish
from pipelines.engine import Engine
from pipelines.errors import RunError
from pipelines.pipeline import DEFAULT_RULES_DIR, peak_rss_mb
from pipelines.screen import checks as screen_checks
from pipelines.screen import links as screen_links
from pipelines.screen.payroll import stage_payroll
from pipelines.screen.source import open_audit_data
from pipelines.screen.workbook import HOLD_REASON_ZH, write_holds_xlsx

HOLDS_FILE, XLSX_FILE, QUARANTINE_FILE = "holds.parquet", "holds.xlsx", "quarantine.parquet"
HOLD_COLUMNS = [
    ("screen_id", pa.string()), ("payment_id", pa.string()), ("person_id", pa.string()), ("name", pa.string()),
    ("region_code", pa.string()), ("scheme", pa.string()), ("period", pa.string()),
    ("amount", pa.decimal128(18, 2)), ("hold_reason", pa.string()), ("severity", pa.string()),
    ("evidence", pa.string()), ("reason", pa.string()),
    # beyond the spec's columns: every reason of the row (the first is hold_reason), the rule whose
    # definition fired first, and the row of the payroll file as a spreadsheet shows it
    ("hold_reasons", pa.string()), ("rule_id", pa.string()), ("source_row", pa.int64()),
]
# Which finding names a row held for several reasons: the higher severity, then this order.
# certified_after_death replaces paid_after_death for a person certified alive after the death.
PRECEDENCE = ("certified_after_death", "paid_after_death", "paid_during_imprisonment", "duplicate_cross_region",
              "duplicate_identity", "duplicate_cross_scheme", "paid_after_death_weak_match",
              "duplicate_payment_same_period")
# category and severity of a rule absent from rules/ (certified_after_death: suspects.md says high)
DEFAULT_META = {"certified_after_death": ("certified_after_death", "high")}
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class ScreenConfig:
    payroll: Path
    output: Path
    as_of: date
    warehouse: Path | None = None
    rules_dir: Path = DEFAULT_RULES_DIR
    memory_limit: str | None = None


@dataclass
class ScreenResult:
    screen_id: str
    screen_dir: Path
    audit_run: str
    rows_read: int
    rows_quarantined: int
    rows_screened: int
    rows_held: int
    amount_held: str
    per_reason: dict[str, dict]  # hold_reason -> {"rows": n, "amount": "1234.50"}
    skipped_checks: dict[str, list[str]]
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    new_ids: dict[str, int] = field(default_factory=dict)  # payroll IDs new to the audit, pairs scored, links

    @property
    def holds(self) -> Path:
        return self.screen_dir / HOLDS_FILE

    @property
    def xlsx(self) -> Path:
        return self.screen_dir / XLSX_FILE


def rule_meta(rules_dir: Path) -> dict[str, tuple[str, str]]:
    """rule id -> (category, severity) of the rules each check applies, read from the rule files."""
    from pipelines.rules.loader import load_rules

    meta = dict(DEFAULT_META)
    meta.update({r.id: (r.category, r.severity) for r in load_rules(rules_dir, check_sql=False)})
    return meta


def screen_payroll(config: ScreenConfig) -> ScreenResult:
    """Screen one payroll file; returns what was held (see the module doc)."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    screen_id = publish.new_run_id()
    screens = Path(config.output) / "screens"
    final, partial = screens / screen_id, screens / f".partial-{screen_id}"
    if final.exists():
        raise RunError(f"screen {screen_id} already exists", file=final, hint="wait a second and screen again")
    meta = rule_meta(config.rules_dir)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        engine, audit = open_audit_data(config.output, config.warehouse, config.memory_limit, partial / "tmp")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    try:
        payroll = stage_payroll(engine, config.payroll, partial / "staging", partial / QUARANTINE_FILE)
        timings["read_payroll"] = _lap(clock)
        new_links = screen_links.build_clusters(engine, audit.relations)
        timings["link_new_ids"] = _lap(clock, timings)
        screen_checks.build_rows(engine, audit.relations, payroll.periods)
        timings["gather"] = _lap(clock, timings)
        engine.execute("CREATE TEMP TABLE _sc_hits (payment_id VARCHAR, rule_id VARCHAR, facts VARCHAR, reason VARCHAR)")
        skipped: dict[str, list[str]] = {}
        check_seconds: dict[str, float] = {}
        if "certifications" not in audit.relations:
            skipped["certified_after_death"] = ["certifications"]
        for check in screen_checks.checks(audit.relations):
            missing = [r for r in check.requires if r not in audit.relations]
            if missing:
                skipped[check.rule_id] = missing
                continue
            sql = check.sql
            params = {"as_of": config.as_of} if "$as_of" in sql else None
            started = time.perf_counter()
            engine.execute(f"INSERT INTO _sc_hits {sql}", params)
            check_seconds[check.rule_id] = round(time.perf_counter() - started, 3)
        timings["checks"] = _lap(clock, timings)
        timings["per_check"] = check_seconds
        holds = _holds(engine, screen_id, meta)
        publish.write_parquet_atomic(holds, partial / HOLDS_FILE)
        per_reason = _per_reason(engine, holds)
        amount = sum((Decimal(v["amount"]) for v in per_reason.values()), Decimal("0.00"))
        summary = [{"hold_reason": k, **v} for k, v in per_reason.items()]
        summary.append({"hold_reason": None, "rows": holds.num_rows, "amount": str(amount)})
        write_holds_xlsx(holds, partial / XLSX_FILE, screen_id, summary, [
            ("核实批次号", screen_id), ("发放名单", payroll.path.name), ("所属期", "、".join(payroll.periods)),
            ("名单行数", str(payroll.rows_read)), ("无法读取的行", str(payroll.rows_quarantined)),
            ("比对数据（全量稽核批次）", audit.run_id), ("核实日期", config.as_of.isoformat())])
        timings["write"] = _lap(clock, timings)
        shutil.rmtree(partial / "staging", ignore_errors=True)
        shutil.rmtree(partial / "tmp", ignore_errors=True)
        result = ScreenResult(
            screen_id=screen_id, screen_dir=final, audit_run=audit.run_id, rows_read=payroll.rows_read,
            rows_quarantined=payroll.rows_quarantined, rows_screened=payroll.rows_clean, rows_held=holds.num_rows,
            amount_held=str(amount), per_reason=per_reason, skipped_checks=skipped,
            timings=timings | {"total": round(time.perf_counter() - clock, 3)}, peak_rss_mb=round(peak_rss_mb(), 1),
            new_ids=new_links)
        publish.write_json_atomic(_manifest(config, payroll, audit, result), partial / publish.MANIFEST_FILE)
        engine.close()
        os.replace(partial, final)
        return result
    except BaseException:
        engine.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _holds(engine: Engine, screen_id: str, meta: dict[str, tuple[str, str]]) -> pa.Table:
    """One row per held payroll row: the first finding by severity and precedence names it."""
    rows = []
    for i, rule_id in enumerate(PRECEDENCE):
        category, severity = meta.get(rule_id, (rule_id, "high"))
        rows.append((rule_id, category, severity, i, SEVERITY_RANK.get(severity, 0), HOLD_REASON_ZH.get(category, category)))
    engine.register("_sc_meta", pa.Table.from_pylist([dict(zip(
        ("rule_id", "category", "severity", "precedence", "severity_rank", "label"), row)) for row in rows]))
    table = engine.query("""
        WITH ordered AS (
            SELECT h.*, m.category, m.severity, m.label,
                   row_number() OVER (PARTITION BY h.payment_id ORDER BY m.severity_rank, m.precedence) AS k
            FROM _sc_hits AS h JOIN _sc_meta AS m USING (rule_id)
        ),
        per_row AS (
            SELECT payment_id,
                   list(category ORDER BY k) AS categories, list(label ORDER BY k) AS labels,
                   '{' || string_agg(CAST(to_json(rule_id) AS VARCHAR) || ':' || facts, ',' ORDER BY k) || '}' AS facts
            FROM ordered GROUP BY payment_id
        )
        SELECT $screen_id::VARCHAR AS screen_id, p.payment_id, p.person_id, p.name, p.region_code, p.scheme,
               strftime(p.period, '%Y-%m') AS period, CAST(p.amount AS DECIMAL(18,2)) AS amount,
               o.category AS hold_reason, o.severity,
               '{"hold_reasons":' || CAST(to_json(r.categories) AS VARCHAR)
                   || ',"rule_id":' || CAST(to_json(o.rule_id) AS VARCHAR)
                   || ',"person_id_valid":' || CAST(to_json(p.person_id_valid) AS VARCHAR)
                   || ',"findings":' || r.facts || '}' AS evidence,
               o.reason || CASE WHEN len(r.labels) > 1
                                THEN '（另涉：' || array_to_string(r.labels[2:], '、') || '）'
                                ELSE '' END AS reason,
               array_to_string(r.categories, ',') AS hold_reasons, o.rule_id, p._source_row AS source_row
        FROM ordered AS o
        JOIN per_row AS r ON r.payment_id = o.payment_id
        JOIN payroll AS p ON p.payment_id = o.payment_id
        WHERE o.k = 1
        ORDER BY p.region_code, p.person_id, p.period, p.payment_id
    """, {"screen_id": screen_id})
    return table.cast(pa.schema(HOLD_COLUMNS))


def _per_reason(engine: Engine, holds: pa.Table) -> dict[str, dict]:
    engine.register("_sc_holds", holds)
    rows = engine.query("SELECT hold_reason, count(*) AS n, CAST(CAST(sum(amount) AS DECIMAL(18,2)) AS VARCHAR) AS amount "
                        "FROM _sc_holds GROUP BY hold_reason ORDER BY n DESC, hold_reason").to_pylist()
    return {r["hold_reason"]: {"rows": r["n"], "amount": r["amount"]} for r in rows}


def _manifest(config: ScreenConfig, payroll, audit, result: ScreenResult) -> dict:
    return {
        "screen_id": result.screen_id,
        "parameters": {"payroll": str(config.payroll), "output": str(config.output), "as_of": config.as_of.isoformat()},
        "payroll": {"file": payroll.path.name, "size_bytes": payroll.size_bytes, "sha256": payroll.sha256,
                    "encoding": payroll.encoding, "periods": payroll.periods, "rows_read": payroll.rows_read,
                    "rows_screened": payroll.rows_clean, "rows_quarantined": payroll.rows_quarantined,
                    "quarantine_reasons": payroll.reasons, "quarantine": QUARANTINE_FILE},
        "audit_run": {"run_id": audit.run_id, "as_of": audit.as_of, "warehouse": str(audit.warehouse),
                      "relations": list(audit.relations)},
        "new_ids": result.new_ids,
        "checks": {"ran": [c for c in PRECEDENCE if c not in result.skipped_checks], "skipped": result.skipped_checks},
        "counts": {"rows_read": result.rows_read, "rows_quarantined": result.rows_quarantined,
                   "rows_screened": result.rows_screened, "rows_held": result.rows_held,
                   "amount_held": result.amount_held, "per_reason": result.per_reason},
        "code_version": publish.code_version(),
        "timings_seconds": result.timings,
        "peak_rss_mb": result.peak_rss_mb,
    }


def _lap(start: float, timings: dict | None = None) -> float:
    spent = sum(v for v in (timings or {}).values() if isinstance(v, float))
    return round(time.perf_counter() - start - spent, 3)

