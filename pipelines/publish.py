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

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import __version__
from pipelines.errors import RunError

SUSPECT_COLUMNS = [
    ("run_id", pa.string()),
    ("rule_id", pa.string()),
    ("category", pa.string()),
    ("severity", pa.string()),
    ("subject_type", pa.string()),
    ("subject_id", pa.string()),
    ("subject_name", pa.string()),
    ("region_code", pa.string()),
    ("first_period", pa.string()),
    ("last_period", pa.string()),
    ("amount_at_risk", pa.decimal128(18, 2)),
    ("evidence", pa.string()),
    ("reason", pa.string()),
    ("status", pa.string()),
]
SUSPECTS_FILE = "suspects.parquet"
MANIFEST_FILE = "manifest.json"


def new_run_id(now: datetime | None = None) -> str:
    """A sortable run id from the UTC start time, e.g. ``20261122T160500.123Z``."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}Z"


def runs_dir(output: Path) -> Path:
    return Path(output) / "runs"


def latest_run_id(output: Path) -> str | None:
    """The run id `latest` points to, or None before the first complete run."""
    link = Path(output) / "latest"
    if not link.is_symlink() and not link.exists():
        return None
    target = Path(os.readlink(link)) if link.is_symlink() else Path(link.read_text().strip())
    return target.name


def resolve_run(output: Path, run: str = "latest") -> Path:
    """Folder of a complete run: ``latest`` or a run id. Raises RunError naming what is missing."""
    run_id = latest_run_id(output) if run == "latest" else run
    if run_id is None:
        raise RunError("no complete run yet", file=output, hint="run `fraudwatch run --input DIR --output DIR` first")
    folder = runs_dir(output) / run_id
    if not (folder / SUSPECTS_FILE).exists():
        raise RunError(f"run {run_id} has no {SUSPECTS_FILE}", file=folder, hint="pick a run listed under runs/")
    return folder


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


def commit_run(output: Path, partial: Path, run_id: str) -> Path:
    """Rename the partial folder into place, then point `latest` at it (both atomic renames)."""
    final = runs_dir(output) / run_id
    os.replace(partial, final)
    _fsync_dir(final.parent)
    tmp_link = Path(output) / f".latest-{run_id}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(Path("runs") / run_id)
    os.replace(tmp_link, Path(output) / "latest")
    _fsync_dir(Path(output))
    return final


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
    con = duckdb.connect()
    try:
        con.register("hits", hits)
        if previous is not None and (previous / SUSPECTS_FILE).exists():
            con.register("prev", pq.read_table(previous / SUSPECTS_FILE, columns=["rule_id", "subject_id"]))
        else:
            con.execute("CREATE TEMP VIEW prev AS SELECT NULL::VARCHAR AS rule_id, NULL::VARCHAR AS subject_id WHERE false")
        spec = [name for name, _ in SUSPECT_COLUMNS]
        extras = [c for c in hits.column_names if c not in spec]
        extra_sql = "".join(f', h."{c}"' for c in extras)
        table = con.sql(
            f"""
            SELECT ?::VARCHAR AS run_id, h.rule_id, h.category, h.severity, h.subject_type, h.subject_id,
                   h.subject_name, h.region_code, h.first_period, h.last_period,
                   h.amount_at_risk::DECIMAL(18,2) AS amount_at_risk, h.evidence, h.reason,
                   CASE WHEN p.rule_id IS NULL THEN 'new' ELSE 'recurring' END AS status{extra_sql}
            FROM hits h LEFT JOIN prev p ON p.rule_id = h.rule_id AND p.subject_id = h.subject_id
            ORDER BY h.rule_id, h.subject_id
            """,
            params=[run_id],
        ).to_arrow_table()
    finally:
        con.close()
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
