"""Publishing a run: suspects.parquet, manifest.json, quarantine, and the `latest` link.

A run is assembled in a hidden partial folder (`runs/.partial-<run_id>`) and renamed into place
only when complete; `latest` is then swapped atomically. A failed or killed run leaves no
`runs/<run_id>/suspects.parquet` and does not move `latest`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import __version__
from pipelines.errors import RunError
from pipelines.suspect_record import SUSPECT_COLUMNS

SUSPECTS_FILE = "suspects.parquet"
MANIFEST_FILE = "manifest.json"
COMPLETE_FILE = "_COMPLETE"  # completion marker: the run is complete when this file exists


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id from the UTC start time, e.g. ``20261122T160500.123Z``."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z"


def runs_dir(output: Path) -> Path:
    return Path(output) / "runs"


def job_latest_link(output: Path, job: str) -> Path:
    """``<output>/jobs/<job>/latest``: the newest complete run of one job."""
    return Path(output) / "jobs" / job / "latest"


def _link_target(link: Path) -> str | None:
    if not link.is_symlink() and not link.exists():
        return None
    target = Path(os.readlink(link)) if link.is_symlink() else Path(link.read_text().strip())
    return target.name


def latest_run_id(output: Path, job: str | None = None) -> str | None:
    """The run id `latest` (or `jobs/<job>/latest`) points to, or None before the first complete run."""
    return _link_target(job_latest_link(output, job) if job else Path(output) / "latest")


def is_complete(output: Path, run_id: str) -> bool:
    """A run is complete when its folder holds the completion marker, written after its suspects and manifest.

    Runs published before the marker existed count as complete up to the one `latest` points to."""
    folder = runs_dir(output) / run_id
    if (folder / COMPLETE_FILE).exists():
        return True
    latest = latest_run_id(output)
    return latest is not None and run_id <= latest and (folder / SUSPECTS_FILE).exists()


def run_job(run_dir: Path) -> str | None:
    """The job a published run belongs to (from its completion marker or manifest), or None if not recorded."""
    for name in (COMPLETE_FILE, MANIFEST_FILE):
        try:
            job = json.loads((run_dir / name).read_text(encoding="utf-8")).get("job")
        except (OSError, ValueError, AttributeError):
            continue
        if job:
            return job
    return None


def complete_runs(output: Path) -> list[str]:
    """Ids of the complete runs in ``<output>/runs``, oldest first."""
    folder = runs_dir(output)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and is_complete(output, p.name))


def resolve_run(output: Path, run: str = "latest") -> Path:
    """Folder of a complete run. ``run`` is ``latest`` (the monthly full audit's newest run, else the newest run of
    any job), a job name (that job's newest run) or a run id. Raises RunError naming what is missing."""
    from pipelines.jobs import FULL_AUDIT, JOB_NAME

    output = Path(output)
    if run == "latest":
        run_id = latest_run_id(output, FULL_AUDIT) or latest_run_id(output)
    elif JOB_NAME.fullmatch(run) and not (runs_dir(output) / run).exists():
        run_id = latest_run_id(output, run)
        if run_id is None:
            raise RunError(f"no {SUSPECTS_FILE} for {run!r}: it is neither a run id nor a job with a complete run",
                           file=output, hint="jobs with runs: " + (", ".join(known_jobs(output)) or "(none)")
                           + "; newest runs: " + (", ".join(complete_runs(output)[-5:]) or "(none)"))
    else:
        run_id = run
    if run_id is None:
        raise RunError("no complete run yet in this output folder", file=output,
                       hint="check --output, or run `fraudwatch run --input DIR --output DIR` first")
    folder = runs_dir(output) / run_id
    if not (folder / SUSPECTS_FILE).exists() or not is_complete(output, run_id):
        problem = "is not a complete run" if (folder / SUSPECTS_FILE).exists() else f"has no {SUSPECTS_FILE}"
        raise RunError(f"run {run_id} {problem}", file=folder,
                       hint="complete runs: " + (", ".join(complete_runs(output)[-5:]) or "(none)"))
    return folder


def known_jobs(output: Path) -> list[str]:
    folder = Path(output) / "jobs"
    return sorted(p.name for p in folder.iterdir() if (p / "latest").is_symlink()) if folder.is_dir() else []


def describe_run(run_dir: Path) -> str:
    """One line saying which run a command reads: id, job, reference date."""
    try:
        manifest = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    as_of = (manifest.get("parameters") or {}).get("as_of", "?")
    return f"run {run_dir.name} (job {run_job(run_dir) or 'not recorded'}, as of {as_of}) in {run_dir.parent.parent}"


def start_run(output: Path, run_id: str) -> Path:
    """Create the hidden partial folder a run is assembled in."""
    final = runs_dir(output) / run_id
    if final.exists():
        raise RunError(f"run {run_id} already exists", file=final, hint="wait a second and run again")
    partial = runs_dir(output) / f".partial-{run_id}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def abort_run(partial: Path) -> None:
    """Remove a failed run's partial folder (nothing of it becomes visible)."""
    shutil.rmtree(partial, ignore_errors=True)


def _between_steps(step: str) -> None:
    """Called between the steps of `commit_run` (tests kill the process here)."""


def commit_run(output: Path, partial: Path, run_id: str, job: str | None = None) -> Path:
    """Publish a run: rename the partial folder into place, write its completion marker (the commit point),
    then point ``jobs/<job>/latest`` and ``latest`` at it. Each step is an atomic rename.

    Killed before the marker, the run is not complete (readers and the next run ignore it; the next run
    moves it to ``failed/``); killed after it, the run is complete and the next run repairs the pointers."""
    output = Path(output)
    final = runs_dir(output) / run_id
    os.replace(partial, final)
    _fsync_dir(final.parent)
    _between_steps("renamed")
    marker = {"run_id": run_id, "job": job, "completed": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(marker, final / COMPLETE_FILE)
    _fsync_dir(final)
    _between_steps("marked")
    if job:
        _point(output, job_latest_link(output, job), run_id)
    _point(output, output / "latest", run_id)
    return final


def _point(output: Path, link: Path, run_id: str) -> None:
    """Atomically make ``link`` a relative symlink to ``<output>/runs/<run_id>``."""
    link.parent.mkdir(parents=True, exist_ok=True)
    target = Path(os.path.relpath(runs_dir(output) / run_id, link.parent))
    tmp_link = link.with_name(f".{link.name}-{run_id}")
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(target)
    os.replace(tmp_link, link)
    _fsync_dir(link.parent)


def repair_pointers(output: Path) -> list[str]:
    """Point ``latest`` and each ``jobs/<job>/latest`` at the newest complete run (after a run killed between
    its completion marker and its pointers). Returns a note per pointer moved."""
    output = Path(output)
    notes, newest_per_job = [], {}
    runs = complete_runs(output)
    for run_id in runs:
        job = run_job(runs_dir(output) / run_id)
        if job:
            newest_per_job[job] = run_id
    for job, run_id in sorted(newest_per_job.items()):
        if latest_run_id(output, job) != run_id and (latest_run_id(output, job) or "") < run_id:
            _point(output, job_latest_link(output, job), run_id)
            notes.append(f"jobs/{job}/latest moved to run {run_id} (a run was stopped before updating it)")
    if runs and (latest_run_id(output) or "") < runs[-1]:
        _point(output, output / "latest", runs[-1])
        notes.append(f"latest moved to run {runs[-1]} (a run was stopped before updating it)")
    return notes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def with_status(hits: pa.Table, run_id: str, previous: Path | None) -> pa.Table:
    """Add `run_id` and `status` (new / recurring vs the previous run's suspects) in spec column order.

    Extra columns of `hits` (e.g. rule_version) follow the spec columns.
    """
    from pipelines.engine import connect

    with connect() as engine:
        engine.register("hits", hits)
        if previous is not None and (previous / SUSPECTS_FILE).exists():
            engine.register("prev", pq.read_table(previous / SUSPECTS_FILE, columns=["rule_id", "subject_id"]))
        else:
            engine.register_query("prev", "SELECT NULL::VARCHAR AS rule_id, NULL::VARCHAR AS subject_id WHERE false")
        spec = [name for name, _ in SUSPECT_COLUMNS]
        extras = [c for c in hits.column_names if c not in spec]
        added = {"run_id": "$run_id::VARCHAR AS run_id",
                 "status": "CASE WHEN p.rule_id IS NULL THEN 'new' ELSE 'recurring' END AS status"}
        select = ", ".join([added.get(c, f'h."{c}"') for c in spec] + [f'h."{c}"' for c in extras])
        table = engine.query(
            f"""
            SELECT {select}
            FROM hits h LEFT JOIN prev p ON p.rule_id = h.rule_id AND p.subject_id = h.subject_id
            ORDER BY h.rule_id, h.subject_id
            """,
            {"run_id": run_id},
        )
    schema = pa.schema(SUSPECT_COLUMNS + [table.schema.field(c) for c in extras])
    return table.cast(schema)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file via a temp name and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(data: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def code_version() -> dict[str, str | None]:
    """Package version and, when run from a git checkout, the commit."""
    commit = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"package": __version__, "git_commit": commit}
