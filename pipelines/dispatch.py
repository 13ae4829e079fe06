"""Cases sent to each region: one workbook per region, with a reply deadline, recorded in the case store.

:func:`export_by_region` writes ``<out_dir>/<code>_<name>_疑点核查_<run>.xlsx`` for every region
with suspects in the run: only that region's suspects, the region's code and name in the file
name, the summary sheet and every printed page header, and the reply deadline (today +
``due_days``). Each workbook is a *dispatch* recorded in the case store (id, region, deadline,
and the suspects it holds) and carries its dispatch id; importing it back records outcomes only
for that region's suspects (:func:`pipelines.outcomes.import_outcomes`), and
``fraudwatch outcomes progress`` counts sent / answered / overdue per region from these records.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path


from pipelines.engine import connect
from pipelines import publish
from pipelines.case_store import CaseStore, current_user
from pipelines.errors import RunError
from pipelines.export import ExportResult, Progress, export_suspects, refuse_overwrite
from pipelines.export_xlsx import Scope
from pipelines.regions import region_name

DEFAULT_DUE_DAYS = 30


@dataclass
class RegionWorkbook:
    """One workbook sent to one region."""

    region_code: str
    region_name: str
    file: Path
    suspects: int
    due_date: date
    dispatch_id: str


@dataclass
class DispatchResult:
    """What :func:`export_by_region` wrote and recorded."""

    run_id: str
    workbooks: list[RegionWorkbook]
    notes: list[str] = field(default_factory=list)


def _file_part(text: str) -> str:
    return re.sub(r"[\\/:*?\"<>|\s]+", "", text) or "地区"


def export_by_region(output: Path, out_dir: Path, store: CaseStore, run: str = "latest", mask: bool = False,
                     due_days: int = DEFAULT_DUE_DAYS, force: bool = False, today: date | None = None,
                     progress: Progress | None = None) -> DispatchResult:
    """Write one workbook per region of ``run`` into ``out_dir`` and record each as a dispatch.

    Nothing is written when any target file exists (unless ``force``); the dispatches are recorded
    in one transaction after every workbook has been written."""
    if due_days < 0:
        raise RunError(f"--due-days must not be negative (got {due_days})")
    run_dir = publish.resolve_run(Path(output), run)
    today = today or date.today()
    due = today + timedelta(days=due_days)
    suspects = str(run_dir / publish.SUSPECTS_FILE)
    with connect() as engine:
        source = engine.dialect.read_parquet([suspects])
        regions = [tuple(r.values()) for r in engine.query(
            f"SELECT region_code, count(*) AS n FROM {source} GROUP BY 1 ORDER BY 1").to_pylist()]
        items = [tuple(r.values()) for r in engine.query(
            f"SELECT region_code, rule_id, subject_id, amount_at_risk::DECIMAL(18,2) AS amount_at_risk FROM {source} "
            "WHERE region_code IS NOT NULL ORDER BY ALL").to_pylist()]
    notes: list[str] = []
    without = sum(n for code, n in regions if code is None)
    if without:
        notes.append(f"{without} suspects have no region code and are in no region's workbook")
    out_dir = Path(out_dir)
    plan = []
    for code, n in regions:
        if code is None:
            continue
        name = region_name(code)
        file = out_dir / f"{_file_part(code)}_{_file_part(name)}_疑点核查_{run_dir.name[:8]}.xlsx"
        plan.append((code, name, file, n))
    refuse_overwrite([p for _, _, p, _ in plan], force)
    out_dir.mkdir(parents=True, exist_ok=True)
    sent_at = datetime.now(timezone.utc)
    workbooks: list[RegionWorkbook] = []
    done = 0
    total = sum(n for *_, n in plan)
    for code, name, file, n in plan:
        dispatch_id = f"{run_dir.name}-{code}-{uuid.uuid4().hex[:8]}"
        scope = Scope(code, name, due, dispatch_id)
        result: ExportResult = export_suspects(
            output, file, "xlsx", run=run_dir.name, mask=mask, store=store, force=True, region=code, scope=scope,
            progress=(lambda d, t, base=done: progress(base + d, total)) if progress else None)
        done += result.rows
        workbooks.append(RegionWorkbook(code, name, file, result.rows, due, dispatch_id))
    by_region = {w.region_code: w for w in workbooks}
    store.add_dispatches(
        [{"dispatch_id": w.dispatch_id, "run_id": run_dir.name, "region_code": w.region_code, "region_name": w.region_name,
          "file": str(w.file), "sent_at": sent_at, "due_date": w.due_date, "sent_by": current_user(), "suspects": w.suspects}
         for w in workbooks],
        [{"dispatch_id": by_region[code].dispatch_id, "rule_id": rule_id, "subject_id": subject_id, "region_code": code,
          "amount_at_risk": amount} for code, rule_id, subject_id, amount in items])
    return DispatchResult(run_dir.name, workbooks, notes)
