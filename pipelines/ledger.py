"""What the outcomes add up to: per rule hits, reviews and recoveries (the savings ledger).

Everything is read from the case store (:mod:`pipelines.case_store`) and the runs' suspect lists,
and computed in an in-memory DuckDB with exact DECIMAL sums.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from pipelines import publish
from pipelines.case_store import CaseStore

DECIDED = ("confirmed_fraud", "admin_error", "no_issue")


def _manifest(run_dir: Path) -> dict:
    path = run_dir / publish.MANIFEST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def outcome_report(store: CaseStore, output: Path, run: str = "latest") -> pl.DataFrame:
    """Per rule: hits and amount at risk in ``run`` (default latest), how many of those hits are
    still open (no decided outcome), and over all outcomes ever recorded: reviewed (decided:
    confirmed_fraud/admin_error/no_issue), each outcome's count, confirmed rate (% of reviewed) and
    recovered (元, sum over current outcomes), plus the suspects the run held back."""
    run_dir = publish.resolve_run(Path(output), run)
    held = (_manifest(run_dir).get("held_back") or {}).get("per_rule") or {}
    con = duckdb.connect()
    try:
        con.register("cur", store.current_outcomes())
        con.register("_held", pa.table({"rule_id": pa.array(list(held), pa.string()),
                                        "held_back": pa.array(list(held.values()), pa.int64())}))
        return pl.from_arrow(con.sql(f"""
            WITH hits AS (SELECT rule_id, subject_id, amount_at_risk FROM read_parquet(?)),
            h AS (SELECT rule_id, count(*) AS hits, sum(hits.amount_at_risk)::DECIMAL(18,2) AS amount_at_risk,
                         count(*) FILTER (WHERE c.outcome IS NULL OR c.outcome NOT IN {DECIDED}) AS open
                  FROM hits LEFT JOIN cur c USING (rule_id, subject_id) GROUP BY rule_id),
            o AS (SELECT rule_id,
                         count(*) FILTER (WHERE outcome IN {DECIDED}) AS reviewed,
                         count(*) FILTER (WHERE outcome = 'confirmed_fraud') AS confirmed_fraud,
                         count(*) FILTER (WHERE outcome = 'admin_error') AS admin_error,
                         count(*) FILTER (WHERE outcome = 'no_issue') AS no_issue,
                         count(*) FILTER (WHERE outcome = 'under_review') AS under_review,
                         coalesce(sum(recovered_amount), 0)::DECIMAL(18,2) AS recovered
                  FROM cur GROUP BY rule_id)
            SELECT rule_id, coalesce(h.hits, 0) AS hits, coalesce(h.amount_at_risk, 0)::DECIMAL(18,2) AS amount_at_risk,
                   coalesce(h.open, 0) AS open, coalesce(o.reviewed, 0) AS reviewed,
                   coalesce(o.confirmed_fraud, 0) AS confirmed_fraud, coalesce(o.admin_error, 0) AS admin_error,
                   coalesce(o.no_issue, 0) AS no_issue, coalesce(o.under_review, 0) AS under_review,
                   CASE WHEN o.reviewed > 0 THEN round(100.0 * o.confirmed_fraud / o.reviewed, 1) END AS confirmed_rate_pct,
                   coalesce(o.recovered, 0)::DECIMAL(18,2) AS recovered, coalesce(hb.held_back, 0) AS held_back
            FROM h FULL JOIN o USING (rule_id) FULL JOIN _held hb USING (rule_id)
            ORDER BY rule_id""", params=[str(run_dir / publish.SUSPECTS_FILE)]).to_arrow_table())
    finally:
        con.close()
