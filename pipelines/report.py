"""Human-readable summaries of a finished run, for the terminal and for Prefect artifacts.

Both read the same `RunReport`, built from what the run wrote (manifest.json, suspects.parquet and
the per-extract validation reports), so the CLI and the Prefect summary never disagree. Nothing here
prints personal data: validation warnings are shown as check, column and count (the validation
report holds the examples), amounts as exact 元 with thousands separators.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any


from pipelines import publish, validation_site

VALIDATION_SUBDIR = Path("validation") / "validation"  # <run>/validation/validation/<extract>.json


def format_yuan(value: Decimal | str | int | None) -> str:
    """Exact 元 with thousands separators and two decimals: ``1234567.5`` → ``1,234,567.50``; None/'' → ''."""
    if value is None or value == "":
        return ""
    return f"{Decimal(str(value)):,.2f}"


@dataclass
class RuleLine:
    """One rule's result in a run."""

    rule_id: str
    status: str  # 'ran' or 'skipped: needs …'
    severity: str = ""
    hits: int = 0
    new: int = 0
    recurring: int = 0
    held_back: int = 0
    amount: Decimal | None = None
    new_amount: Decimal | None = None


@dataclass
class ValidationLine:
    """Validation of one extract: failed warning checks (full data) and failed GE expectations (sample)."""

    extract: str
    passed: bool
    ge_success: bool | None
    warnings: list[str] = field(default_factory=list)
    ge_failed: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    """What a finished run reports: per rule, totals, validation warnings, where things are."""

    run_id: str
    run_dir: Path
    as_of: str
    job: str | None
    rules: list[RuleLine]
    validation: list[ValidationLine]
    rows_per_extract: dict[str, int]
    quarantined_per_extract: dict[str, int]
    notes: list[str]
    output: Path

    @property
    def ran(self) -> list[RuleLine]:
        return [r for r in self.rules if r.status == "ran"]

    @property
    def total_hits(self) -> int:
        return sum(r.hits for r in self.rules)

    @property
    def total_new(self) -> int:
        return sum(r.new for r in self.rules)

    @property
    def total_recurring(self) -> int:
        return sum(r.recurring for r in self.rules)

    @property
    def total_amount(self) -> Decimal:
        return sum((r.amount or Decimal(0) for r in self.rules), Decimal(0))

    @property
    def total_new_amount(self) -> Decimal:
        return sum((r.new_amount or Decimal(0) for r in self.rules), Decimal(0))

    @property
    def warnings(self) -> list[str]:
        """Every validation warning, one line each, prefixed with its extract."""
        out = []
        for v in self.validation:
            out += [f"{v.extract}: {w}" for w in v.warnings]
            out += [f"{v.extract}: great-expectations (sample) {w}" for w in v.ge_failed]
        return out

    @property
    def ge_unsuccessful(self) -> list[str]:
        """Extracts whose great-expectations suite did not succeed (``ge_success: false``)."""
        return [v.extract for v in self.validation if v.ge_success is False]


def load_report(run_dir: Path) -> RunReport:
    """The report of the complete run in ``run_dir`` (a folder with manifest.json and suspects.parquet)."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / publish.MANIFEST_FILE).read_text(encoding="utf-8"))
    counts = _status_counts(run_dir / publish.SUSPECTS_FILE)
    rules = []
    for r in manifest.get("rules", []):
        c = counts.get(r["id"], {})
        status = "ran" if r["status"] == "ran" else "skipped: needs " + ", ".join(r.get("missing", []))
        amount = manifest.get("amount_per_rule", {}).get(r["id"]) or None
        rules.append(RuleLine(
            rule_id=r["id"], status=status, severity=c.get("severity", ""), hits=int(r.get("rows", 0)),
            new=c.get("new", 0), recurring=c.get("recurring", 0), held_back=int(r.get("held_back", 0) or 0),
            amount=Decimal(amount) if amount else None, new_amount=c.get("new_amount"),
        ))
    rules.sort(key=lambda r: (r.status != "ran", r.rule_id))
    params = manifest.get("parameters", {})
    return RunReport(
        run_id=manifest["run_id"], run_dir=run_dir, as_of=params.get("as_of", ""),
        job=manifest.get("job") or params.get("job"), rules=rules, validation=_validation_lines(run_dir, manifest),
        rows_per_extract=manifest.get("rows_per_extract", {}),
        quarantined_per_extract=manifest.get("quarantined_per_extract", {}),
        notes=list(manifest.get("notes", [])), output=Path(params.get("output", run_dir.parent.parent)),
    )


def _status_counts(suspects: Path) -> dict[str, dict[str, Any]]:
    """Per rule: severity, new and recurring counts and the new suspects' amount (one grouped scan)."""
    if not suspects.exists():
        return {}
    from pipelines.engine import connect

    with connect() as engine:
        rows = engine.query(
            "SELECT rule_id, any_value(severity) AS severity, count(*) FILTER (WHERE status = 'new') AS \"new\", "
            "count(*) FILTER (WHERE status = 'recurring') AS \"recurring\", "
            "sum(amount_at_risk) FILTER (WHERE status = 'new')::DECIMAL(18,2) AS new_amount "
            f"FROM {engine.dialect.read_parquet([suspects])} GROUP BY rule_id").to_pylist()
    return {r.pop("rule_id"): r for r in rows}


def _validation_lines(run_dir: Path, manifest: dict) -> list[ValidationLine]:
    """Warnings from the per-extract validation reports (check name, column, count; never the values)."""
    folder = run_dir / VALIDATION_SUBDIR
    lines = []
    for name in sorted(manifest.get("validation", {})):
        meta = manifest["validation"][name]
        report_file = folder / f"{name}.json"
        line = ValidationLine(name, bool(meta.get("passed")), meta.get("ge_success"))
        if report_file.exists():
            report = json.loads(report_file.read_text(encoding="utf-8"))
            line.warnings = [check_line(c) for c in report.get("checks", [])
                             if not c.get("passed") and c.get("severity") == "warning"]
            line.ge_failed = [expectation_line(e) for e in (report.get("ge_summary") or {}).get("failed_expectations", [])]
        lines.append(line)
    return lines


def check_line(check: dict) -> str:
    """A failed full-data check as 'name [column]: N row(s)' (no data values)."""
    text = check["name"] + (f" [{check['column']}]" if check.get("column") else "")
    observed = check.get("observed")
    if isinstance(observed, int) and not isinstance(observed, bool):
        text += f": {observed:,} row(s)"
    elif isinstance(observed, float):
        text += f": {observed:.1%}"
    files = check.get("files") or []
    if files:
        text += " in " + ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return text


def expectation_line(failed: dict) -> str:
    """A failed GE expectation as 'type [column]: N unexpected' (no data values)."""
    text = str(failed.get("expectation")) + (f" [{failed['column']}]" if failed.get("column") else "")
    if failed.get("raised_exception"):
        return text + ": raised an error"
    n = failed.get("unexpected_count")
    return text + (f": {n:,} unexpected of the sample" if isinstance(n, int) else ": failed")


def summary_rows(report: RunReport) -> list[dict[str, str | int]]:
    """One row per rule (skipped ones included) for Prefect's table artifact."""
    return [
        {"rule_id": r.rule_id, "severity": r.severity, "hits": r.hits, "new": r.new, "recurring": r.recurring,
         "held_back": r.held_back, "amount_at_risk_yuan": format_yuan(r.amount), "status": r.status}
        for r in report.rules
    ]


def headline(report: RunReport) -> str:
    """One line: suspects, new/recurring, amount, as-of date, warnings."""
    text = (f"{report.total_hits:,} suspects ({report.total_new:,} new, {report.total_recurring:,} recurring), "
            f"{format_yuan(report.total_amount)} 元 at risk, as of {report.as_of}")
    if report.warnings:
        text += f"; {len(report.warnings)} validation warning(s)"
    return text


def summary_markdown(report: RunReport) -> str:
    """A markdown summary of the run: headline, hits per rule, validation warnings, extracts, notes, paths."""
    job = f" ({report.job})" if report.job else ""
    lines = [
        f"# fraudwatch run {report.run_id}{job}",
        "",
        f"**{headline(report)}**",
        "",
        f"- as of: {report.as_of}",
        f"- suspects: `{report.run_dir / publish.SUSPECTS_FILE}`",
        f"- validation report: `{validation_site.run_page(report.output, report.run_id)}` "
        f"(all runs: `{validation_site.site_index(report.output)}`)",
        f"- quarantine: `{report.run_dir / 'quarantine'}`",
        "",
        "| rule | severity | hits | new | recurring | held back | amount at risk (元) | status |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [f"| {r.rule_id} | {r.severity} | {r.hits:,} | {r.new:,} | {r.recurring:,} | {r.held_back or ''} | "
              f"{format_yuan(r.amount)} | {r.status} |" for r in report.rules]
    lines += [f"| **total** | | {report.total_hits:,} | {report.total_new:,} | {report.total_recurring:,} | | "
              f"{format_yuan(report.total_amount)} | |"]
    lines += ["", "## Validation"]
    if report.ge_unsuccessful:
        lines += ["", "great-expectations suite not successful (`ge_success: false`) for: "
                  + ", ".join(report.ge_unsuccessful)]
    lines += [""] + ([f"- {w}" for w in report.warnings] or ["No validation warnings."])
    lines += ["", "| extract | rows loaded | rows quarantined |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {rows:,} | {report.quarantined_per_extract.get(name, 0):,} |"
              for name, rows in sorted(report.rows_per_extract.items())]
    if report.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"

