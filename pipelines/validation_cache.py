"""Validation results reused across runs: an extract whose files are all unchanged (same lake
files, same contract) is not validated again; its report files are copied into the run.

Only the future-date checks depend on the day. A result is reused on a later day when, on the day
it was made, no date was in the future (then none can be later either); otherwise only that day."""

from __future__ import annotations

import pickle
import datetime as dt
import shutil
from dataclasses import replace
from pathlib import Path

from pipelines.validate import ExtractValidation

CACHE_DIR = Path("lake") / "_validation"


def _rel(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def save(output: Path, key: str, report_dir: Path, result: ExtractValidation, validated_on: dt.date) -> None:
    """Keep ``result`` (made on ``validated_on``) and its report files under ``<output>/lake/_validation/<key>/``."""
    target = Path(output) / CACHE_DIR / key
    tmp = target.with_name(f".{key}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    for name, path in (("report", result.report_path), ("ge", result.ge_result_path)):
        rel = _rel(path, report_dir)
        if rel and Path(path).exists():
            shutil.copyfile(path, tmp / name)
            files[name] = rel
    (tmp / "result.pickle").write_bytes(pickle.dumps((result, files, validated_on)))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def still_valid(result: ExtractValidation, validated_on: dt.date, today: dt.date) -> bool:
    """Whether a result made on ``validated_on`` holds on ``today``: the same day, or a later one
    when nothing was in the future then (neither a future_dates warning nor a failed GE sample,
    whose date expectations are bounded by the day too)."""
    if today == validated_on:
        return True
    if today < validated_on:
        return False
    dated = any(c.name == "future_dates" and not c.passed for c in result.checks)
    return not dated and result.ge_success is not False


def load(output: Path, key: str, report_dir: Path, today: dt.date) -> ExtractValidation | None:
    """The cached result of ``key`` (if it still holds on ``today``) with its report files copied
    under ``report_dir``, or None."""
    source = Path(output) / CACHE_DIR / key
    try:
        result, files, validated_on = pickle.loads((source / "result.pickle").read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        return None
    if not still_valid(result, validated_on, today):
        return None
    paths = {}
    for name, rel in files.items():
        dest = Path(report_dir) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, dest)
        paths[name] = dest
    return replace(result, report_path=paths.get("report", result.report_path), ge_result_path=paths.get("ge"))
