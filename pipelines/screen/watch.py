"""Which payroll files in a watched folder still need screening (for the scheduled flow).

A file needs a screen when no complete screen under ``<output>/screens/`` has screened the same
bytes (sha256) against the same full audit run: a new or replaced payroll file is screened, and
so is every waiting file once a new full audit has run. A file modified in the last
``settle_seconds`` may still be being copied and waits for the next tick.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pipelines.ingest import FORMATS
from pipelines.publish import MANIFEST_FILE, sha256_of
from pipelines.screen.source import latest_full_run


def screened_keys(output: Path) -> set[tuple[str, str]]:
    """(payroll sha256, audit run id) of every complete screen."""
    keys = set()
    for manifest in sorted((Path(output) / "screens").glob(f"*/{MANIFEST_FILE}")):
        if manifest.parent.name.startswith("."):
            continue
        data = json.loads(manifest.read_text(encoding="utf-8"))
        keys.add((data["payroll"]["sha256"], data["audit_run"]["run_id"]))
    return keys


def pending_payrolls(folder: Path, output: Path, settle_seconds: float = 60.0) -> list[Path]:
    """Payroll files in ``folder`` (CSV/XLSX/Parquet, not hidden) not yet screened against the
    latest full audit run, oldest first by name."""
    audit_run = latest_full_run(Path(output)).name
    done = screened_keys(output)
    now = time.time()
    pending = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.name.startswith((".", "~$", "_")) or path.suffix.lower() not in FORMATS:
            continue
        if now - path.stat().st_mtime < settle_seconds:
            continue
        if (sha256_of(path), audit_run) not in done:
            pending.append(path)
    return pending
