"""What happens when a run fails or dies: evidence kept, transient errors told apart, leftovers cleaned up.

- A failed run's partial folder (validation report and Data Docs, quarantine, the manifest so far) moves
  to ``<output>/failed/<run_id>/`` with ``error.txt``; the error's message is rewritten to name paths
  that exist there.
- `is_transient` says which errors may pass on a second try (Prefect retries only those).
- `clean_leftovers` removes the partial and staging folders of dead runs (called under the run lock,
  so no live run owns them) and moves runs killed before their completion marker to ``failed/``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipelines import publish
from pipelines.errors import FraudwatchError

FAILED_DIR = "failed"
ERROR_FILE = "error.txt"
# OS errors that a second try will not fix: a user has to act.
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.EISDIR,
                     errno.ENOTDIR, errno.EDQUOT, errno.ENAMETOOLONG}


def failed_dir(output: Path, run_id: str) -> Path:
    return Path(output) / FAILED_DIR / run_id


def is_transient(exc: BaseException | Any) -> bool:
    """True for errors a retry may cure: a busy run lock, a database file lock, a network share's I/O hiccup.

    A fraudwatch error about the data or the request (a broken extract, a failed validation, an unknown
    rule) is deterministic and never transient."""
    from pipelines.runlock import RunLocked

    if isinstance(exc, RunLocked):
        return True
    if isinstance(exc, FraudwatchError):
        return False
    if isinstance(exc, OSError):
        return exc.errno not in _PERMANENT_ERRNOS
    text = str(exc)
    return type(exc).__name__ == "IOException" and "lock" in text.lower() and "No space" not in text


def keep_evidence(output: Path, run_id: str, partial: Path, staging: Path, exc: BaseException | None,
                  manifest: dict[str, Any], quarantine_files: dict[str, list[Path]] | None = None) -> Path:
    """Move what a failed run produced to ``failed/<run_id>/`` and record the error there.

    Returns that folder. ``exc`` (a FraudwatchError) is rewritten in place so that every path it names
    under the partial or staging folder points into the failed folder instead."""
    target = failed_dir(output, run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    if partial.is_dir():
        os.replace(partial, target)
    else:
        target.mkdir(parents=True, exist_ok=True)
    moved = {str(partial): str(target)}
    quarantines = sorted(staging.rglob("quarantine")) if staging.is_dir() else []
    for folder in quarantines:
        if not folder.is_dir() or not any(folder.iterdir()):
            continue
        dest = target / "quarantine" / "staged" / folder.parent.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(dest))
        moved[str(folder)] = str(dest)
    shutil.rmtree(staging, ignore_errors=True)
    for extract, files in sorted((quarantine_files or {}).items()):  # the run's quarantined rows, from the lake
        for path in files:
            if not Path(path).is_file() or pq.ParquetFile(path).metadata.num_rows == 0:
                continue
            dest = target / "quarantine" / extract / Path(path).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dest)  # the lake file stays; a hard link costs no space
            except OSError:
                shutil.copyfile(path, dest)
    if isinstance(exc, FraudwatchError):
        for old, new in moved.items():
            exc.message = exc.message.replace(old, new)
            exc.hint = exc.hint.replace(old, new) if exc.hint else exc.hint
            exc.file = exc.file.replace(old, new) if exc.file else exc.file
        exc.args = (exc.message,)
        kept = f"the failed run's evidence is kept in {target}"
        if (target / "quarantine").is_dir():
            kept += f"; quarantined rows: {target / 'quarantine'}"
        exc.hint = (exc.hint + "\n  " if exc.hint else "") + kept
    error_text = str(exc) if exc is not None else "the run was stopped"
    details = "".join(traceback.format_exception(exc)) if exc is not None and not isinstance(exc, FraudwatchError) else ""
    (target / ERROR_FILE).write_text(error_text + ("\n\n" + details if details else "") + "\n", encoding="utf-8")
    record = {**manifest, "run_id": run_id, "status": "failed",
              "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "error": {"type": type(exc).__name__ if exc is not None else None, "message": error_text}}
    publish.write_json_atomic(record, target / publish.MANIFEST_FILE)
    return target


def clean_leftovers(output: Path, own_run_id: str) -> list[str]:
    """Under the run lock: remove dead runs' partial and staging folders, move runs killed before their
    completion marker to ``failed/``, repair pointers. Returns a note for each thing done."""
    output = Path(output)
    notes: list[str] = []
    runs = publish.runs_dir(output)
    if runs.is_dir():
        for entry in sorted(runs.iterdir()):
            if entry.name.startswith(".partial-") and entry.name != f".partial-{own_run_id}":
                size = _size_mb(entry)
                shutil.rmtree(entry, ignore_errors=True)
                notes.append(f"removed runs/{entry.name} ({size:.1f} MB) left by a run that was stopped")
            elif not entry.name.startswith(".") and entry.is_dir() and not publish.is_complete(output, entry.name):
                target = failed_dir(output, entry.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(entry, target)
                (target / ERROR_FILE).write_text("the run was stopped after its folder was renamed and before it "
                                                 "was marked complete; it was never published\n", encoding="utf-8")
                notes.append(f"moved incomplete run {entry.name} to {FAILED_DIR}/{entry.name} (stopped before it "
                             "was marked complete)")
    staging = output / "staging"
    if staging.is_dir():
        for entry in sorted(staging.iterdir()):
            if entry.name != own_run_id:
                size = _size_mb(entry)
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                notes.append(f"removed staging/{entry.name} ({size:.1f} MB) left by a run that was stopped")
    notes += publish.repair_pointers(output)
    return notes


def _size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
