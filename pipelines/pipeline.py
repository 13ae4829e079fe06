"""The audit run as plain functions: ingest → validate → load → detect → publish.

`run_pipeline` calls them in order; `pipelines.flows` wraps the same functions in Prefect tasks.
Nothing here knows about Prefect.
"""

from __future__ import annotations

import os
import resource
import sys
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable

from pipelines.contracts import DEFAULT_CONTRACTS_DIR, Contract, load_contracts
from pipelines.errors import ExtractError, RunError
from pipelines import limits, publish
from pipelines.failures import clean_leftovers, keep_evidence
from pipelines.limits import DEFAULT as DEFAULT_LIMITS, Limits
from pipelines.runlock import DEFAULT_WAIT_SECONDS

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Same config + same input files → same suspect rows."""

    input: Path
    output: Path
    as_of: date
    rule_ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules_dir: Path = DEFAULT_RULES_DIR
    contracts_dir: Path = DEFAULT_CONTRACTS_DIR
    warehouse: Path | None = None
    memory_limit: str | None = None
    threads: int | None = None
    job: str | None = None  # default: full-audit when every rule runs, else adhoc
    wait_timeout: float = DEFAULT_WAIT_SECONDS
    limits: Limits = DEFAULT_LIMITS  # bounds on the work inputs and rules may cause (pipelines/limits.py)
    engine: str = "duckdb"          # where link and detect run: duckdb, or spark (pipelines/spark_run.py)
    spark_master: str = "local[2]"  # with engine="spark": local[N] or spark://host:port

    def __post_init__(self) -> None:
        if self.job is None:
            from pipelines.jobs import default_job

            object.__setattr__(self, "job", default_job(self.rule_ids, self.categories))

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse or Path(self.output) / "warehouse.duckdb"


@dataclass
class RunContext:
    """State of one run in progress."""

    config: RunConfig
    run_id: str
    partial: Path
    staging: Path
    previous: Path | None
    contracts: dict[str, Contract]
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    snapshot: Any = None            # lake.Snapshot pinned by ingest
    relations: Any = None           # lake.RunRelations defined by load
    derived: dict[str, Path] = field(default_factory=dict)  # link tables written (or reused) by link
    files_read: list[str] = field(default_factory=list)     # landing files ingest actually read
    link_key: str | None = None     # digest of the person-bearing files the link tables come from


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Stage:
    def __init__(self, ctx: RunContext, name: str, progress: Progress | None) -> None:
        self.ctx, self.name, self.progress = ctx, name, progress

    def __enter__(self) -> "_Stage":
        if self.progress:
            self.progress(self.name)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.timings[self.name] = round(time.perf_counter() - self.start, 3)
        self.ctx.peak_rss_mb[self.name] = round(peak_rss_mb(), 1)


def prepare_run(config: RunConfig) -> RunContext:
    """Check the input folder, load the contracts and open a partial run folder."""
    landing = Path(config.input)
    if not landing.is_dir():
        raise RunError("input folder not found", file=landing, hint="pass the landing folder with --input")
    contracts = load_contracts(config.contracts_dir)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    run_id = publish.new_run_id()
    notes = clean_leftovers(output, run_id)
    previous_id = publish.latest_run_id(output, config.job)
    previous = publish.runs_dir(output) / previous_id if previous_id else None
    partial = publish.start_run(output, run_id)
    staging = output / "staging" / run_id
    staging.mkdir(parents=True, exist_ok=True)
    return RunContext(config, run_id, partial, staging, previous, contracts, notes=notes)


def run_stage(ctx: RunContext, name: str, fn: Callable[..., Any], *args: Any, progress: Progress | None = None,
              report: Progress | None = None) -> Any:
    """Run one stage function, recording its wall time and the peak memory after it; ``report`` gets one line
    saying what the stage did (counts only, never personal data)."""
    _test_pause(name)
    with _Stage(ctx, name, progress), limits.using(ctx.config.limits):
        result = fn(ctx, *args)
    if report is not None:
        report(f"{name}: {stage_summary(name, result)} ({ctx.timings.get(name, 0):.1f} s)")
    return result


def stage_summary(name: str, result: Any) -> str:
    """What a stage did, in counts: rows read and quarantined, checks, rows loaded, links, hits. No data values."""
    if name == "ingest":
        files = sum(len(r.files) for r in result.values())
        return (f"{len(result)} extracts, {files} files, {sum(r.rows_read for r in result.values()):,} rows read, "
                f"{sum(r.rows_quarantined for r in result.values()):,} quarantined")
    if name == "validate":
        warnings = sum(1 for v in result.values() for c in v.checks if not c.passed and c.severity == "warning")
        ge_failed = sorted(n for n, v in result.items() if v.ge_success is False)
        text = f"{sum(v.passed for v in result.values())} of {len(result)} extracts passed, {warnings} warnings"
        return text + (f"; great-expectations flagged {', '.join(ge_failed)}" if ge_failed else "")
    if name == "load":
        return (f"{sum(result['counts'].values()):,} rows in {len(result['counts'])} tables, "
                f"{sum(result['quarantined'].values()):,} rows quarantined")
    if name == "link":
        d = result.as_dict() if hasattr(result, "as_dict") else {}
        return ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in d.items() if isinstance(v, int)) or "done"
    if name == "detect":
        ran = [r for r in result.runs if r.status == "ran"]
        return (f"{len(ran)} rules ran, {len(result.runs) - len(ran)} skipped, "
                f"{sum(r.rows for r in ran):,} hits")
    if name == "publish":
        return f"run {result.run_id}: {sum(result.hits_per_rule.values()):,} suspects, {result.held_back:,} held back"
    return "done"


def _test_pause(stage: str) -> None:
    """Test hook: with FRAUDWATCH_TEST_PAUSE_AT=<stage>, say so on stderr and wait before that
    stage (tests kill the run there). Does nothing otherwise."""
    if os.environ.get("FRAUDWATCH_TEST_PAUSE_AT") == stage:
        print(f"fraudwatch-test: paused before {stage}", file=sys.stderr, flush=True)
        time.sleep(600)


def finish_run(ctx: RunContext) -> Path:
    """Make the run visible (completion marker) and move `jobs/<job>/latest` and `latest`; remove staging."""
    final = publish.commit_run(Path(ctx.config.output), ctx.partial, ctx.run_id, ctx.config.job)
    shutil.rmtree(ctx.staging, ignore_errors=True)
    return final


def fail_run(ctx: RunContext, exc: BaseException | None = None) -> Path:
    """Keep what a failed run wrote in `failed/<run_id>/` (nothing becomes a run; `latest` stays where it was).

    ``exc`` is rewritten to name paths that exist after the move. Returns the failed folder."""
    cfg = ctx.config
    manifest = {
        "job": cfg.job,
        "parameters": {"input": str(cfg.input), "output": str(cfg.output), "as_of": cfg.as_of.isoformat(),
                       "rule_ids": list(cfg.rule_ids), "categories": list(cfg.categories),
                       "rule_parameters": cfg.parameters},
        "stages_started": list(ctx.timings), "timings_seconds": ctx.timings, "notes": ctx.notes,
    }
    snapshot = getattr(ctx, "snapshot", None)  # pinned by ingest; absent when the run failed before
    quarantine = {e: [Path(f.quarantine) for f in fs] for e, fs in snapshot.files.items()} if snapshot else None
    return keep_evidence(Path(cfg.output), ctx.run_id, ctx.partial, ctx.staging, exc, manifest, quarantine)
