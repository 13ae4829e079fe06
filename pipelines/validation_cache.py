"""Validation results reused across runs: an extract whose files are all unchanged (same lake
files, same contract, same day) is not validated again; its report files are copied into the run."""

from __future__ import annotations

import pickle
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


def save(output: Path, key: str, report_dir: Path, result: ExtractValidation) -> None:
    """Keep ``result`` and its report files under ``<output>/lake/_validation/<key>/``."""
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
    (tmp / "result.pickle").write_bytes(pickle.dumps((result, files)))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load(output: Path, key: str, report_dir: Path) -> ExtractValidation | None:
    """The cached result of ``key`` with its report files copied under ``report_dir``, or None."""
    source = Path(output) / CACHE_DIR / key
    try:
        result, files = pickle.loads((source / "result.pickle").read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    paths = {}
    for name, rel in files.items():
        dest = Path(report_dir) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, dest)
        paths[name] = dest
    return replace(result, report_path=paths.get("report", result.report_path), ge_result_path=paths.get("ge"))
