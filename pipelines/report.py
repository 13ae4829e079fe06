"""Human-readable summaries of a run, for the terminal and for Prefect artifacts."""

from __future__ import annotations

from pipelines.stages import RunSummary


def summary_rows(summary: RunSummary) -> list[dict[str, str | int]]:
    """One row per rule: hits and amount at risk (元), skipped rules included."""
    rows: list[dict[str, str | int]] = [
        {"rule_id": rule, "hits": hits, "amount_at_risk_yuan": summary.amount_per_rule.get(rule, ""), "status": "ran"}
        for rule, hits in sorted(summary.hits_per_rule.items())
    ]
    rows += [
        {"rule_id": rule, "hits": 0, "amount_at_risk_yuan": "", "status": "skipped: needs " + ", ".join(missing)}
        for rule, missing in sorted(summary.skipped_rules.items())
    ]
    return rows


def summary_markdown(summary: RunSummary) -> str:
    """A markdown summary of the run: outputs, hits per rule, quarantine, notes."""
    lines = [
        f"# fraudwatch run {summary.run_id}",
        "",
        f"- suspects: `{summary.suspects}`",
        f"- warehouse: `{summary.warehouse}`",
        f"- quarantine: `{summary.quarantine_dir}`",
        f"- validation report: `{summary.validation_report}`",
        "",
        "| rule | hits | amount at risk (元) | status |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [f"| {r['rule_id']} | {r['hits']} | {r['amount_at_risk_yuan']} | {r['status']} |" for r in summary_rows(summary)]
    lines += ["", "| extract | rows loaded | rows quarantined |", "| --- | ---: | ---: |"]
    lines += [
        f"| {name} | {rows} | {summary.quarantined_per_extract.get(name, 0)} |"
        for name, rows in sorted(summary.rows_per_extract.items())
    ]
    if summary.held_back:
        lines += ["", f"Held back {summary.held_back} suspect(s) closed as 无问题 with unchanged facts."]
    if summary.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in summary.notes]
    return "\n".join(lines) + "\n"
