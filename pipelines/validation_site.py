"""The validation report site of an output folder: one offline HTML site listing every run.

``<output>/validation/index.html`` lists every run (complete under ``runs/``, failed under ``failed/``)
by run id, with its job, state and as-of date, failures highlighted; ``<output>/validation/runs/<run_id>.html``
shows one run: per extract, the full-data checks (DuckDB, every row) and the great-expectations
expectations (on the sample), from the JSON each run keeps in ``<run>/validation/validation/``.

Rendered with jinja2 with autoescaping on for every template: a value from the data (an ID, a name, a
header, a file name) is always text, never markup. The pages need nothing from the network: CSS is
inline, there is no JavaScript and no link outside the output folder, so the site works on an intranet.
It is rebuilt after every run, finished or failed; rebuilding is idempotent.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from pipelines import publish

SITE_DIR = "validation"
RUN_REPORTS = Path("validation") / "validation"  # inside a run folder: <extract>.json, <extract>.ge.json
FAILED_DIR = "failed"
log = logging.getLogger("fraudwatch.validation_site")

_env = Environment(loader=PackageLoader("pipelines", "templates"), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def site_index(output: Path) -> Path:
    """The site's front page for ``output``."""
    return Path(output) / SITE_DIR / "index.html"


def run_page(output: Path, run_id: str) -> Path:
    """One run's page."""
    return Path(output) / SITE_DIR / "runs" / f"{run_id}.html"


@dataclass
class Expectation:
    """One great-expectations result, flattened for display."""

    type: str
    column: str | None
    severity: str | None
    success: bool
    arguments: str
    unexpected: str
    observed: str
    examples: list[str]
    error: str | None


@dataclass
class ExtractReport:
    """One extract's validation in one run."""

    extract: str
    passed: bool
    rows: int
    source_files: list[str]
    checks: list[dict[str, Any]]
    ge_success: bool | None
    sample_size: int
    ge_statistics: dict[str, Any]
    expectations: list[Expectation]

    @property
    def errors(self) -> int:
        return sum(1 for c in self.checks if not c.get("passed") and c.get("severity") == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for c in self.checks if not c.get("passed") and c.get("severity") == "warning")

    @property
    def ge_failed(self) -> int:
        return sum(1 for e in self.expectations if not e.success)


@dataclass
class RunEntry:
    """One run of the output folder as the site shows it."""

    run_id: str
    state: str  # 'complete' | 'failed'
    job: str
    as_of: str
    folder: Path
    extracts: list[ExtractReport] = field(default_factory=list)
    error: str | None = None
    suspects: int | None = None

    @property
    def errors(self) -> int:
        return sum(e.errors for e in self.extracts)

    @property
    def warnings(self) -> int:
        return sum(e.warnings for e in self.extracts)

    @property
    def ge_failed(self) -> int:
        return sum(e.ge_failed for e in self.extracts)

    @property
    def ge_unsuccessful(self) -> list[str]:
        return [e.extract for e in self.extracts if e.ge_success is False]


def collect_runs(output: Path) -> list[RunEntry]:
    """Every complete and failed run of ``output``, newest first (partial runs in progress are left out)."""
    output = Path(output)
    entries = []
    for state, parent in (("complete", publish.runs_dir(output)), ("failed", output / FAILED_DIR)):
        if not parent.is_dir():
            continue
        for folder in parent.iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            if state == "complete" and not (folder / publish.MANIFEST_FILE).exists():
                continue
            entries.append(_entry(folder, state))
    return sorted(entries, key=lambda e: e.run_id, reverse=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _entry(folder: Path, state: str) -> RunEntry:
    manifest = _read_json(folder / publish.MANIFEST_FILE) or {}
    params = manifest.get("parameters") or {}
    job = manifest.get("job") or params.get("job") or ""
    entry = RunEntry(run_id=manifest.get("run_id") or folder.name, state=state, job=str(job),
                     as_of=str(params.get("as_of") or ""), folder=folder)
    if state == "complete":
        entry.suspects = sum(int(r.get("rows") or 0) for r in manifest.get("rules", []))
    else:
        entry.error = _failure_text(folder)
    reports = folder / RUN_REPORTS
    if reports.is_dir():
        for path in sorted(reports.glob("*.json")):
            if path.name.endswith(".ge.json"):
                continue
            report = _read_json(path)
            if isinstance(report, dict):
                entry.extracts.append(_extract(report, _read_json(path.with_name(f"{path.stem}.ge.json"))))
    return entry


def _failure_text(folder: Path) -> str | None:
    """What a failed run left as its error (``error.json`` with a message, or ``error.txt``)."""
    data = _read_json(folder / "error.json")
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or json.dumps(data, ensure_ascii=False))
    text = folder / "error.txt"
    return text.read_text(encoding="utf-8", errors="replace") if text.is_file() else None


def _extract(report: dict, ge: dict | None) -> ExtractReport:
    return ExtractReport(
        extract=str(report.get("extract")), passed=bool(report.get("passed")), rows=int(report.get("rows") or 0),
        source_files=[str(f) for f in report.get("source_files") or []], checks=list(report.get("checks") or []),
        ge_success=report.get("ge_success"), sample_size=int(report.get("sample_size") or 0),
        ge_statistics=(ge or {}).get("statistics") or {},
        expectations=[_expectation(item) for item in (ge or {}).get("results") or []],
    )


def _expectation(item: dict) -> Expectation:
    config = item.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k not in ("batch_id", "column")}
    result = item.get("result") or {}
    count, percent = result.get("unexpected_count"), result.get("unexpected_percent")
    unexpected = "" if count is None else f"{count:,}" + (f" ({percent:.2f}%)" if isinstance(percent, (int, float)) else "")
    values = result.get("partial_unexpected_list") or []
    where = result.get("partial_unexpected_index_list") or []
    examples = []
    for i, value in enumerate(values[:5]):
        place = where[i] if i < len(where) and isinstance(where[i], dict) else {}
        at = f" ({place.get('_source_file')} row {place.get('_source_row')})" if place else ""
        examples.append(f"{_show(value)}{at}")
    exc = item.get("exception_info") or {}
    error = exc.get("exception_message") if exc.get("raised_exception") else None
    return Expectation(
        type=str(config.get("type")), column=(config.get("kwargs") or {}).get("column"),
        severity=config.get("severity"), success=bool(item.get("success")),
        arguments=", ".join(f"{k}={_show(v)}" for k, v in kwargs.items()), unexpected=unexpected,
        observed="" if result.get("observed_value") is None else _show(result.get("observed_value")),
        examples=examples, error=error,
    )


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 300 else text[:300] + "…"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_site(output: Path) -> Path:
    """(Re)build the site of ``output`` from every run's validation JSON; returns the index page."""
    output = Path(output)
    runs = collect_runs(output)
    site = output / SITE_DIR
    for run in runs:
        rel_folder = os.path.relpath(run.folder, site / "runs")
        _write(run_page(output, run.run_id),
               _env.get_template("validation_run.html.j2").render(run=run, folder=rel_folder))
    _write(site_index(output), _env.get_template("validation_index.html.j2").render(runs=runs, output=str(output)))
    return site_index(output)


def refresh(output: Path) -> Path | None:
    """:func:`build_site`, never raising: a report that cannot be written is logged, the run goes on."""
    try:
        return build_site(output)
    except Exception as exc:
        log.warning("could not rebuild the validation report in %s (%s: %s)", Path(output) / SITE_DIR,
                    type(exc).__name__, exc)
        return None
