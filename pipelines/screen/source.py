"""What the screen checks a payroll against: the data the monthly full audit's latest run used.

The screening SQL reads named relations only (``pension_payments``, ``person_deaths``,
``death_records``, ``death_matches``, ``prisoners``, ``identity_clusters``, ``certifications``).
:func:`open_audit_data` opens an engine session (:mod:`pipelines.engine`) in which those names
read the data of the full audit's latest run (the job pointer ``<output>/jobs/full-audit/latest``).

The data is the run's ``views.sql`` (named views over the run's snapshot of the Parquet lake and
its link tables); a run without one (an earlier version) falls back to ``<output>/warehouse.duckdb``
opened read-only. The manifest of the screen names the run it belongs to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipelines import publish
from pipelines.engine import Engine, QueryError, connect
from pipelines.errors import RunError
from pipelines.jobs import FULL_AUDIT

# Relations the screening SQL may read; those absent from the audit data are simply absent
# (the checks that need them do not run and the screen says so).
RELATIONS = ("pension_payments", "death_records", "person_deaths", "death_matches", "prisoners",
             "identity_clusters", "certifications", "household")


@dataclass(frozen=True)
class AuditData:
    """The audit run the screen uses and the relations present in its data."""

    run_id: str
    run_dir: Path
    as_of: str | None
    warehouse: Path
    relations: tuple[str, ...]


def latest_full_run(output: Path) -> Path:
    """Folder of the full audit's newest complete run: the one ``jobs/full-audit/latest`` points to
    (a daily death check or an ad-hoc run is never screened against)."""
    output = Path(output)
    link = publish.job_latest_link(output, FULL_AUDIT)
    run_id = publish.latest_run_id(output, FULL_AUDIT)
    if run_id is None:
        raise RunError(f"no complete full audit to screen against: {link.relative_to(output)} does not exist",
                       file=output, hint="run the full audit first: `fraudwatch run --input LANDING --output OUT` "
                                         "(every rule; job full-audit)")
    run_dir = publish.runs_dir(output) / run_id
    if not publish.is_complete(output, run_id) or not (run_dir / publish.MANIFEST_FILE).exists():
        raise RunError(f"the full audit's latest run {run_id} is not complete", file=run_dir,
                       hint="run the full audit again; `fraudwatch doctor --output OUT` shows the runs")
    return run_dir


def open_audit_data(output: Path, warehouse: Path | None = None, memory_limit: str | None = None,
                    temp_directory: Path | None = None) -> tuple[Engine, AuditData]:
    """An engine session (read-only over the audit's data) in which ``pension_payments``,
    ``person_deaths``, … are the full audit's relations, and a description of that data."""
    output = Path(output)
    run_dir = latest_full_run(output)
    manifest = json.loads((run_dir / publish.MANIFEST_FILE).read_text(encoding="utf-8"))
    views = run_dir / "views.sql"
    if warehouse is None and views.exists():  # the run's published relations over the lake (readers never block a run)
        from pipelines.lake import run_views_sql

        engine = connect("duckdb", memory_limit=memory_limit, temp_directory=temp_directory)
        run_views_sql(engine, views, output)
        relations = tuple(name for name in RELATIONS if name in engine.relations())
        if "pension_payments" not in relations:
            engine.close()
            raise RunError("the audit run has no pension_payments", file=views,
                           hint="the full audit must have read pension payments")
        return engine, AuditData(run_id=run_dir.name, run_dir=run_dir,
                                 as_of=manifest.get("parameters", {}).get("as_of"), warehouse=views, relations=relations)
    path = Path(warehouse) if warehouse else output / "warehouse.duckdb"
    if not path.exists():
        raise RunError("the audit's warehouse is missing", file=path,
                       hint="run the full audit again to rebuild it")
    try:
        engine = connect("duckdb", database=path, read_only=True, memory_limit=memory_limit,
                         temp_directory=temp_directory)
    except QueryError as exc:
        raise RunError(f"cannot open the audit's warehouse read-only: {exc.message}", file=path,
                       hint="an audit run may be writing it; screen again when it has finished") from None
    relations = tuple(name for name in RELATIONS if name in engine.relations())
    if "pension_payments" not in relations:
        engine.close()
        raise RunError("the audit's warehouse has no pension_payments", file=path,
                       hint="the full audit must have loaded pension payments")
    return engine, AuditData(run_id=run_dir.name, run_dir=run_dir, as_of=manifest.get("parameters", {}).get("as_of"),
                             warehouse=path, relations=relations)
