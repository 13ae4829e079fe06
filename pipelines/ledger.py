"""What the outcomes add up to: progress per region and the savings ledger per rule and category.

Everything is read from the case store (:mod:`pipelines.case_store`) and the runs' suspect lists
and computed in an in-memory DuckDB with exact DECIMAL sums.

Terms (also in ``docs/auditors_and_analysts.md``):

- *answered*: the suspect's current outcome is decided (确认违规, 经办差错 or 无问题); 核查中 is not an answer.
- *confirmed*: current outcome 确认违规 or 经办差错 — money was paid that should not have been.
- *precision*: confirmed ÷ answered.
- *overpayment found* (actual): the amount at risk, as recorded with the verdict, of confirmed suspects.
- *future loss prevented* (estimated): see :class:`FutureLoss`.
- *recovered*: 追回金额 of the current outcomes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipelines.engine import connect
from pipelines import publish
from pipelines.case_store import CaseStore
from pipelines.errors import RunError
from pipelines.regions import region_name

DECIDED = ("confirmed_fraud", "admin_error", "no_issue")
CONFIRMED = ("confirmed_fraud", "admin_error")
# categories whose improper payment recurs every month until someone stops it
RECURRING = ("paid_after_death", "subsidy_after_death", "duplicate_cross_region", "duplicate_cross_scheme",
             "paid_during_imprisonment", "duplicate_identity", "pensioner_over_110", "shared_bank_account")
# of those, the ones that would have run for the rest of the payee's life
LIFELONG = ("paid_after_death", "subsidy_after_death", "duplicate_cross_region", "duplicate_cross_scheme",
            "duplicate_identity", "shared_bank_account")


@dataclass(frozen=True)
class FutureLoss:
    """How *future loss prevented* is estimated for a confirmed suspect (a setting).

    monthly amount stopped = amount at risk ÷ improper months (first_period … last_period);
    months it would otherwise have run =
      - lifelong categories: the months from the last improper period until the payee would have
        reached ``until_age`` (birth date from the 18-digit ID), or ``default_months`` when the ID
        has no birth date; this is the UK National Fraud Initiative's rule for pensions paid after
        death ("annual pension × the years until the pensioner would have reached 85");
      - other recurring categories (imprisonment, whose end is not known; pensioners over 110, for
        whom the age rule gives nothing): ``default_months``;
      - one-off categories (refund_retained, duplicate_payment_same_period, unknown ones): 0;
    both capped at ``cap_months`` so that one case cannot dominate the ledger (this project's
    choice; the NFI rule has no cap). estimate = monthly amount × months, rounded to the fen.
    """

    until_age: int = 85
    default_months: int = 12
    cap_months: int = 60
    recurring: tuple[str, ...] = RECURRING
    lifelong: tuple[str, ...] = LIFELONG

    def sql(self) -> str:
        """SQL over an outcome row (``o``): the estimate in 元 as DECIMAL(18,2)."""
        rec = ", ".join(f"'{c}'" for c in self.recurring) or "NULL"
        life = ", ".join(f"'{c}'" for c in self.lifelong) or "NULL"
        first = "try_strptime(o.first_period || '-01', '%Y-%m-%d')::DATE"
        last = "try_strptime(o.last_period || '-01', '%Y-%m-%d')::DATE"
        birth = ("CASE WHEN length(o.subject_id) = 18 THEN try_strptime(substr(o.subject_id, 7, 8), '%Y%m%d')::DATE END")
        months_run = f"(date_diff('month', {first}, {last}) + 1)"
        to_age = f"greatest(date_diff('month', {last}, {birth} + INTERVAL {int(self.until_age)} YEAR), 0)"
        forward = (f"CASE WHEN o.category IN ({life}) THEN least(coalesce({to_age}, {int(self.default_months)}), {int(self.cap_months)}) "
                   f"WHEN o.category IN ({rec}) THEN least({int(self.default_months)}, {int(self.cap_months)}) ELSE 0 END")
        return (f"CASE WHEN o.amount_at_risk IS NULL OR {months_run} IS NULL OR {months_run} <= 0 THEN 0 "
                f"ELSE round(o.amount_at_risk::DECIMAL(38,6) / {months_run} * ({forward}), 2) END::DECIMAL(18,2)")


def _manifest(run_dir: Path) -> dict:
    path = run_dir / publish.MANIFEST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def outcome_report(store: CaseStore, output: Path, run: str = "latest", by: str = "rule",
                   future: FutureLoss = FutureLoss()) -> pl.DataFrame:
    """The savings ledger per ``by`` (``rule`` → rule_id, ``category`` → category).

    hits, amount_at_risk and open (hits without a decided outcome) are of ``run`` (default latest);
    the rest is over the current outcomes of every suspect ever reviewed: answered, the count of each
    outcome, precision_pct (confirmed ÷ answered), overpayment_found, future_loss_prevented (see
    :class:`FutureLoss`), recovered; plus held_back (suspects the run held back as 无问题)."""
    if by not in ("rule", "category"):
        raise RunError(f"unknown grouping {by!r}", hint="use rule or category")
    key = "rule_id" if by == "rule" else "category"
    run_dir = publish.resolve_run(Path(output), run)
    held = (_manifest(run_dir).get("held_back") or {}).get("per_rule") or {}
    with connect() as con:
        con.register("cur", store.current_outcomes())
        con.register("_held", pa.table({"rule_id": pa.array(list(held), pa.string()),
                                        "held_back": pa.array(list(held.values()), pa.int64())}))
        con.materialize("hits", "SELECT rule_id, category, subject_id, amount_at_risk FROM "
                        + con.dialect.read_parquet([run_dir / publish.SUSPECTS_FILE]))
        # held-back counts are per rule; a rule has one category
        held_key = ("SELECT rule_id AS k, held_back FROM _held" if by == "rule" else
                    "SELECT coalesce(m.category, hb.rule_id) AS k, sum(hb.held_back)::BIGINT AS held_back FROM _held hb "
                    "LEFT JOIN (SELECT DISTINCT rule_id, category FROM cur UNION SELECT DISTINCT rule_id, category FROM hits) m "
                    "USING (rule_id) GROUP BY 1")
        return pl.from_arrow(con.query(f"""
            WITH h AS (SELECT h.{key} AS k, count(*) AS hits, sum(h.amount_at_risk)::DECIMAL(18,2) AS amount_at_risk,
                              count(*) FILTER (WHERE c.outcome IS NULL OR c.outcome NOT IN {DECIDED}) AS open
                       FROM hits h LEFT JOIN cur c USING (rule_id, subject_id) GROUP BY 1),
            o AS (SELECT o.{key} AS k,
                         count(*) FILTER (WHERE outcome IN {DECIDED}) AS answered,
                         count(*) FILTER (WHERE outcome = 'confirmed_fraud') AS confirmed_fraud,
                         count(*) FILTER (WHERE outcome = 'admin_error') AS admin_error,
                         count(*) FILTER (WHERE outcome = 'no_issue') AS no_issue,
                         count(*) FILTER (WHERE outcome = 'under_review') AS under_review,
                         coalesce(sum(amount_at_risk) FILTER (WHERE outcome IN {CONFIRMED}), 0)::DECIMAL(18,2) AS overpayment_found,
                         coalesce(sum({future.sql()}) FILTER (WHERE outcome IN {CONFIRMED}), 0)::DECIMAL(18,2) AS future_loss_prevented,
                         coalesce(sum(recovered_amount), 0)::DECIMAL(18,2) AS recovered
                  FROM cur o GROUP BY 1),
            hb AS ({held_key})
            SELECT k AS {key}, coalesce(h.hits, 0) AS hits, coalesce(h.amount_at_risk, 0)::DECIMAL(18,2) AS amount_at_risk,
                   coalesce(h.open, 0) AS open, coalesce(o.answered, 0) AS answered,
                   coalesce(o.confirmed_fraud, 0) AS confirmed_fraud, coalesce(o.admin_error, 0) AS admin_error,
                   coalesce(o.no_issue, 0) AS no_issue, coalesce(o.under_review, 0) AS under_review,
                   CASE WHEN o.answered > 0 THEN round(100.0 * (o.confirmed_fraud + o.admin_error) / o.answered, 1) END
                       AS precision_pct,
                   coalesce(o.overpayment_found, 0)::DECIMAL(18,2) AS overpayment_found,
                   coalesce(o.future_loss_prevented, 0)::DECIMAL(18,2) AS future_loss_prevented,
                   coalesce(o.recovered, 0)::DECIMAL(18,2) AS recovered, coalesce(hb.held_back, 0) AS held_back
            FROM h FULL JOIN o USING (k) FULL JOIN hb USING (k)
            ORDER BY k"""))


def progress(store: CaseStore, today: date | None = None) -> pl.DataFrame:
    """Per region the suspects sent (``export --by-region``) and what came back, as of ``today``:
    sent, answered, under_review, overdue (not answered and past the reply deadline of the first
    workbook that carried it), confirmed, no_issue, recovered, amount_sent, next_due (earliest
    deadline still open). A suspect sent twice counts once, in the region of its latest dispatch."""
    today = today or date.today()
    with connect() as con:
        con.register("items", store.dispatch_items())
        con.register("cur", store.current_outcomes())
        frame = pl.from_arrow(con.query(f"""
            WITH s AS (SELECT rule_id, subject_id, arg_max(region_code, sent_at) AS region_code, min(due_date) AS due_date,
                              arg_max(amount_at_risk, sent_at) AS amount_at_risk
                       FROM items GROUP BY rule_id, subject_id),
            j AS (SELECT s.*, c.outcome, c.recovered_amount FROM s LEFT JOIN cur c USING (rule_id, subject_id))
            SELECT region_code, count(*) AS sent,
                   count(*) FILTER (WHERE outcome IN {DECIDED}) AS answered,
                   count(*) FILTER (WHERE outcome = 'under_review') AS under_review,
                   count(*) FILTER (WHERE (outcome IS NULL OR outcome NOT IN {DECIDED}) AND due_date < $today) AS overdue,
                   count(*) FILTER (WHERE outcome IN {CONFIRMED}) AS confirmed,
                   count(*) FILTER (WHERE outcome = 'no_issue') AS no_issue,
                   coalesce(sum(recovered_amount), 0)::DECIMAL(18,2) AS recovered,
                   coalesce(sum(amount_at_risk), 0)::DECIMAL(18,2) AS amount_sent,
                   min(due_date) FILTER (WHERE outcome IS NULL OR outcome NOT IN {DECIDED}) AS next_due
            FROM j GROUP BY region_code ORDER BY region_code""", {"today": today}))
    names = [region_name(c) for c in frame["region_code"].to_list()]
    return frame.insert_column(1, pl.Series("region_name", names, dtype=pl.String))


PROGRESS_HEADERS = {
    "region_code": "地区代码", "region_name": "地区", "sent": "下发疑点", "answered": "已答复", "under_review": "核查中",
    "overdue": "逾期未答复", "confirmed": "确认违规/差错", "no_issue": "无问题", "recovered": "追回金额(元)",
    "amount_sent": "下发涉及金额(元)", "next_due": "最近答复期限",
}


def write_progress_xlsx(frame: pl.DataFrame, path: Path, today: date, force: bool = False) -> Path:
    """The progress table as a one-sheet workbook (Chinese headers, a total row), atomically."""
    import xlsxwriter

    path = Path(path)
    if path.exists() and not force:
        raise RunError("file exists", file=path, hint="choose another name or pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    wb = xlsxwriter.Workbook(str(tmp), {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False})
    try:
        ws = wb.add_worksheet("核查进度")
        bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        money = wb.add_format({"num_format": "#,##0.00"})
        day = wb.add_format({"num_format": "yyyy-mm-dd"})
        ws.write_string(0, 0, f"疑点核查进度（截至 {today.isoformat()}）", wb.add_format({"bold": True, "font_size": 14}))
        cols = list(PROGRESS_HEADERS)
        for j, c in enumerate(cols):
            ws.write_string(2, j, PROGRESS_HEADERS[c], bold)
        ws.set_column(0, 0, 10), ws.set_column(1, 1, 30), ws.set_column(2, len(cols) - 1, 13)
        for i, row in enumerate(frame.select(cols).iter_rows(named=True), start=3):
            for j, c in enumerate(cols):
                v = row[c]
                if v is None:
                    continue
                if c in ("recovered", "amount_sent"):
                    ws.write_number(i, j, float(v), money)
                elif c == "next_due":
                    ws.write_datetime(i, j, _dt(v), day)
                elif isinstance(v, int):
                    ws.write_number(i, j, v)
                else:
                    ws.write_string(i, j, str(v))
        total = 3 + frame.height
        ws.write_string(total, 1, "合计", bold)
        for j, c in enumerate(cols):
            if c in ("region_code", "region_name", "next_due"):
                continue
            value = frame[c].sum() if frame.height else 0
            ws.write_number(total, j, float(value or 0), money if c in ("recovered", "amount_sent") else None)
        ws.freeze_panes(3, 2)
        ws.set_landscape(), ws.set_paper(9), ws.fit_to_pages(1, 0), ws.repeat_rows(2)
        wb.close()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return path


def _dt(value: date):
    from datetime import datetime

    return datetime(value.year, value.month, value.day)
