"""Lake garbage collection (`fraudwatch lake gc --output OUT [--keep-runs N]`).

Lake files are immutable and never removed by a run, so the lake grows with every changed landing
file. :func:`collect` removes the lake entries (``<sha256>-<file>.parquet``, its
``.quarantine.parquet`` and ``.json``) and duplicate verdicts (``_duplicates/``) that no kept run
reads. Kept runs: the ``keep_runs`` newest complete runs, plus always the latest complete run of
every job (``jobs/<job>/latest``) and ``latest``. What a run reads is taken from its own
``views.sql`` (the lake files of its snapshot and its duplicate verdicts) and its manifest's
snapshot, so a kept run stays whole.

It holds the run lock (job ``lake-gc``) the whole time: no run starts, pins a snapshot or writes
the lake meanwhile, and a running run makes it wait (or, with ``wait_timeout=0``, stop naming the
holder). Runs that are not kept keep their folder (suspects, manifest, derived link tables, their
quarantine copy); their views over extract tables no longer resolve, and the result lists them.
A failed run's quarantined rows are hard links in ``failed/<run_id>/quarantine/`` and survive.
Cached validation results (``lake/_validation/``) of snapshots no kept run uses go too.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipelines import publish
from pipelines.errors import RunError
from pipelines.lake import INDEX_FILE, LAKE_DIR, VIEWS_FILE, LakeFile, Snapshot, _load_json, _write_json
from pipelines.runlock import DEFAULT_WAIT_SECONDS, LockHolder, run_lock
from pipelines.validation_cache import CACHE_DIR

GC_JOB = "lake-gc"
VALIDATION_DIR = CACHE_DIR.name  # the validation cache, under the lake
DEFAULT_KEEP_RUNS = 3
_LAKE_PATH = re.compile(r"'(?:[^']*/)?" + LAKE_DIR + r"/([^']+\.parquet)'")
_SHA = re.compile(r"^([0-9a-f]{64})-")


@dataclass
class GcResult:
    """What :func:`collect` kept and removed."""

    kept_runs: list[str]
    released_runs: list[str]                 # complete runs not kept (their extract views no longer resolve)
    removed: list[str] = field(default_factory=list)   # paths relative to the lake
    freed_bytes: int = 0
    kept_files: int = 0
    stale_validations: list[str] = field(default_factory=list)  # cached validations no kept run uses
    dry_run: bool = False


def _entry(relative: str) -> str | None:
    """``<extract>/<sha256>`` of a lake entry's file (data, quarantine, metadata), else None."""
    folder, _, name = relative.rpartition("/")
    match = _SHA.match(name)
    return f"{folder}/{match.group(1)}" if match and "/" not in folder else None


def pinned(run_dir: Path) -> set[str]:
    """The lake files (relative to the lake) a run reads: its views.sql's, and its snapshot's."""
    names: set[str] = set()
    views = run_dir / VIEWS_FILE
    if views.exists():
        names |= {m.group(1) for m in _LAKE_PATH.finditer(views.read_text(encoding="utf-8"))}
    manifest = _load_json(run_dir / publish.MANIFEST_FILE)
    for extract, files in (manifest.get("snapshot") or {}).items():
        names |= {f"{extract}/{Path(f['lake_file']).name}" for f in files if f.get("lake_file")}
    return names


def collect(output: Path, keep_runs: int = DEFAULT_KEEP_RUNS, *, dry_run: bool = False,
            wait_timeout: float = DEFAULT_WAIT_SECONDS,
            on_wait: Callable[[LockHolder | None], None] | None = None) -> GcResult:
    """Remove the lake files no kept run reads (see the module doc), holding the run lock."""
    output = Path(output)
    if keep_runs < 1:
        raise RunError(f"--keep-runs {keep_runs}: keep at least one run", hint="e.g. --keep-runs 3")
    lake = output / LAKE_DIR
    if not lake.is_dir():
        raise RunError("no lake in this output folder", file=lake, hint="check --output")
    with run_lock(output, GC_JOB, wait_timeout, on_wait):
        runs = publish.complete_runs(output)
        kept = set(runs[-keep_runs:])
        kept |= {r for r in (publish.latest_run_id(output, job) for job in publish.known_jobs(output)) if r}
        if publish.latest_run_id(output):
            kept.add(publish.latest_run_id(output))
        keep_entries: set[str] = set()
        keep_files: set[str] = set()
        for run_id in kept:
            files = pinned(publish.runs_dir(output) / run_id)
            keep_files |= files
            keep_entries |= {e for e in map(_entry, files) if e}
        result = GcResult(kept_runs=sorted(kept), released_runs=[r for r in runs if r not in kept], dry_run=dry_run)
        for path in sorted(p for p in lake.rglob("*") if p.is_file()):
            relative = path.relative_to(lake).as_posix()
            if path.parent == lake or path.name.startswith(".") or relative.startswith(VALIDATION_DIR + "/"):
                continue  # the index, temporary files of an ingest (never left under the lock), the validation cache
            if relative in keep_files or _entry(relative) in keep_entries:
                result.kept_files += 1
                continue
            result.removed.append(relative)
            result.freed_bytes += path.stat().st_size
            if not dry_run:
                path.unlink()
        validation_keys = set().union(*(_validation_keys(publish.runs_dir(output) / r) for r in kept)) if kept else set()
        result.stale_validations = _stale_validations(lake, validation_keys)
        if not dry_run:
            for folder in result.stale_validations:
                shutil.rmtree(lake / VALIDATION_DIR / folder, ignore_errors=True)
            _prune_index(lake, {e.rsplit("/", 1)[-1] for e in keep_entries})
            for folder in sorted((p for p in lake.rglob("*") if p.is_dir()), reverse=True):
                if not any(folder.iterdir()):
                    folder.rmdir()
        return result


def _validation_keys(run_dir: Path) -> set[str]:
    """The validation-cache key prefixes of a run: ``<extract>-<snapshot key of its files>-`` (as the
    validate stage builds them, from the snapshot in the run's manifest)."""
    snapshot = (_load_json(run_dir / publish.MANIFEST_FILE).get("snapshot") or {})
    files = {e: tuple(LakeFile(e, f["source_file"], f["sha256"], "", "") for f in fs) for e, fs in snapshot.items()}
    pinned_snapshot = Snapshot(files)
    return {f"{e}-{pinned_snapshot.key([e])}-" for e in files}


def _stale_validations(lake: Path, kept: set[str]) -> list[str]:
    """Cached validation results of snapshots no kept run uses."""
    folder = lake / VALIDATION_DIR
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not any(p.name.startswith(k) for k in kept))


def _prune_index(lake: Path, kept_shas: set[str]) -> None:
    """Drop index entries of landing files whose lake entry is gone (they are read again if they come back)."""
    index_path = lake / INDEX_FILE
    index = _load_json(index_path)
    if index:
        _write_json(index_path, {k: v for k, v in index.items() if v.get("sha256") in kept_shas})


def describe(result: GcResult) -> list[str]:
    """Lines for the terminal: counts, sizes, run ids. No data values."""
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"kept runs: {', '.join(result.kept_runs) or '(none)'}",
             f"{verb} {len(result.removed)} lake files ({result.freed_bytes / 2**20:,.1f} MiB); "
             f"{result.kept_files} lake files kept; {len(result.stale_validations)} cached validations no kept run uses "
             + ("would be " if result.dry_run else "") + "removed"]
    if result.released_runs:
        lines.append(f"runs not kept ({len(result.released_runs)}): their suspects and manifest stay, their views over "
                     f"extract tables no longer resolve: {', '.join(result.released_runs)}")
    return lines


__all__ = ["collect", "describe", "pinned", "GcResult", "DEFAULT_KEEP_RUNS", "GC_JOB"]

