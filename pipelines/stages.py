"""The stages of an audit run, each a plain function of the run context, and their one list.

ingest → validate → load → link → detect → publish (:data:`STAGES`). `run_pipeline` walks the list;
the Prefect flow in `pipelines.flows` walks the same list, each stage a task. A failure anywhere
drops the partial run and leaves `latest` alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import json
import shutil
from collections import Counter
from datetime import date

import pyarrow as pa

from pipelines import after_run, jobs, lake, outcomes, publish, validation_cache, validation_site
from pipelines.engine import Engine, connect
from pipelines.errors import RunError

DERIVED_DIR = "derived"  # link tables of a run, as Parquet
from pipelines.ingest import IngestResult, check_broken_rate, check_damaged_ids, discover_extracts
from pipelines.linking import LINK_TABLES, PERSON_EXTRACTS, LinkResult, link_persons
from pipelines.linking import state as link_state
from pipelines.linking.incremental import TooManyChanges, link_incremental
from pipelines.linking.records import present_person_extracts, registry_present
from pipelines.linking.scoring import THRESHOLD
from pipelines.linking.schema import LINK_ORDER
from pipelines.pipeline import Progress, RunConfig, RunContext, fail_run, finish_run, peak_rss_mb, prepare_run, run_stage
from pipelines.rules.engine import RunHits, run_rules
from pipelines.runcheck import check_request
from pipelines.runlock import LockHolder, run_lock
from pipelines.rules.loader import load_rules
from pipelines.rules.model import Rule
from pipelines.validate import ExtractValidation, raise_for_failures, validate_extract


@dataclass
class RunSummary:
    """What a finished run reports to the user and to Prefect."""

    run_id: str
    run_dir: Path
    warehouse: Path
    suspects: Path
    validation_report: Path | None
    quarantine_dir: Path
    hits_per_rule: dict[str, int]
    held_back: int
    amount_per_rule: dict[str, str]
    skipped_rules: dict[str, list[str]]
    absent_extracts: list[str]
    rows_per_extract: dict[str, int]
    quarantined_per_extract: dict[str, int]
    timings: dict[str, float]
    peak_rss_mb: float
    notes: list[str] = field(default_factory=list)


def ingest_stage(ctx: RunContext) -> dict[str, IngestResult]:
    """Find the extracts in the landing folder and bring each file into the lake (a file already
    there, same size and mtime, is not read); pin the run's snapshot of the lake."""
    landing = Path(ctx.config.input)
    found = discover_extracts(landing, ctx.contracts)
    for path in found.unrecognised:
        ctx.notes.append(f"ignored {path.relative_to(landing)}: its name matches no extract")
    absent = sorted(set(ctx.contracts) - set(found))
    if absent:
        ctx.notes.append("extracts absent from the landing folder: " + ", ".join(absent))
    if not found:
        raise RunError("no extract files in the landing folder", file=landing,
                       hint="file names must start with an extract name, e.g. pension_payments_202401.csv")
    legacy = Path(ctx.config.output) / "warehouse.duckdb"
    if legacy.exists():
        ctx.notes.append("warehouse.duckdb (an earlier version's warehouse) is not used by runs any more: "
                         "the run reads the lake; the file is kept for the auditors' outcomes it may hold")
    lake.clean_partial_ingests(Path(ctx.config.output))
    ingested, read = {}, []
    for name, files in found.items():
        ingested[name], fresh = lake.ingest_to_lake(ctx.contracts[name], files, landing, Path(ctx.config.output))
        read += fresh
    ctx.snapshot = lake.Snapshot.of(ingested)  # pinned first: a failed run keeps the quarantine it points at
    ctx.files_read = read
    for result in ingested.values():
        for f in result.files:
            ctx.notes.extend(f.notes)
            if f.ids_damaged_by_number:
                ctx.notes.append(f"{f.source_file}: {f.ids_damaged_by_number} rows quarantined (id_damaged_by_number): "
                                 "the ID went through a number and its digits are lost")
    for name, result in ingested.items():
        check_damaged_ids(ctx.contracts[name], result)
        check_broken_rate(ctx.contracts[name], result)
    return ingested


def validate_stage(ctx: RunContext, ingested: dict[str, IngestResult]) -> dict[str, ExtractValidation]:
    """Check every extract of the snapshot against its contract (an extract whose files are all
    unchanged reuses its earlier report); an extract-level failure stops the run."""
    report_dir = ctx.partial / "validation"
    results, reused, today = {}, 0, date.today()
    for name, result in ingested.items():
        key = f"{name}-{ctx.snapshot.key([name])}-{lake.contract_fingerprint(ctx.contracts[name])}"
        cached = validation_cache.load(Path(ctx.config.output), key, report_dir, today)
        if cached is not None:
            results[name] = cached
            reused += 1
            continue
        with _engine(ctx, "duckdb") as engine:  # full-data checks run on DuckDB whatever the run's engine
            # the duplicate_id verdicts the load quarantines (computed once per set of files, here
            # first) are what the `unique` check reports
            duplicates = lake.duplicates_file(engine, ctx.contracts[name], ctx.snapshot, Path(ctx.config.output))
            results[name] = validate_extract(
                ctx.contracts[name],
                [f.staged_path for f in result.files],
                {f.source_file: f.rows_read for f in result.files},
                {f.source_file: f.rows_quarantined for f in result.files},
                report_dir,
                engine,
                today=today,
                duplicates=duplicates,
            )
        if results[name].passed:
            validation_cache.save(Path(ctx.config.output), key, report_dir, results[name], today)
    for validation in results.values():
        raise_for_failures(validation)
    return results


def load_stage(ctx: RunContext, ingested: dict[str, IngestResult]) -> dict[str, Any]:
    """Define the run's relations over its snapshot (duplicate_id verdicts over all files of each
    extract, computed once per set of files) and write the run's quarantine. Nothing is copied."""
    quarantine_dir = ctx.partial / "quarantine"
    quarantine_dir.mkdir(exist_ok=True)
    with _engine(ctx) as engine:
        ctx.relations = lake.run_relations(engine, ctx.contracts, ctx.snapshot, Path(ctx.config.output))
        counts, quarantined = {}, {}
        for name, files in ctx.snapshot.files.items():
            read = engine.dialect.read_parquet
            parts = [f"SELECT extract, source_file, source_row, reason, raw_json FROM {read([f.quarantine for f in files], False)}"]
            if name in ctx.relations.duplicates:
                parts.append(f"SELECT {engine.dialect.literal(name)}, _source_file, _source_row, reason, raw_json "
                             f"FROM {read([ctx.relations.duplicates[name]])}")
            quarantined[name] = engine.write_parquet(
                " UNION ALL ".join(parts) + " ORDER BY source_file, source_row", quarantine_dir / f"{name}.parquet")
            # the extract's rows: its files' clean rows less the duplicate_id repeats (no pass over the rows)
            repeats = engine.scalar(f"SELECT count(*) FROM {read([ctx.relations.duplicates[name]])}") \
                if name in ctx.relations.duplicates else 0
            counts[name] = sum(f.rows_clean for f in ingested[name].files) - repeats
    views = [v for v, _ in lake._view_selects(set(ctx.relations.extracts))]
    return {"loads": {}, "views": views, "counts": counts, "quarantined": {k: v for k, v in quarantined.items() if v},
            "warehouse": publish.runs_dir(Path(ctx.config.output)) / ctx.run_id / lake.VIEWS_FILE,
            "files_read": list(ctx.files_read)}


def _earlier_runs(ctx: RunContext) -> list[Path]:
    """Runs whose link tables or link state this run may start from, newest first: the previous run
    of this job, the newest run of any job, and the newest full audit."""
    output = Path(ctx.config.output)
    ids = {publish.latest_run_id(output, ctx.config.job), publish.latest_run_id(output),
           publish.latest_run_id(output, jobs.FULL_AUDIT)}
    runs = [publish.runs_dir(output) / i for i in sorted((i for i in ids if i), reverse=True)]
    return [r for r in runs if r.is_dir()]


def _previous_links(runs: list[Path], key: str) -> tuple[Path, dict[str, Path]] | None:
    """The link tables of the newest of ``runs`` that linked the same person-bearing files."""
    for run in runs:
        try:
            manifest = json.loads((run / publish.MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        files = {t: run / DERIVED_DIR / f"{t}.parquet" for t in LINK_TABLES}
        if manifest.get("link_key") == key and all(p.exists() for p in files.values()):
            return run, files
    return None


def link_stage(ctx: RunContext) -> LinkResult | None:
    """Identity resolution: link IDs that are one person and match death records with broken IDs.

    Writes ``person_links``, ``person_link_candidates``, ``identity_clusters`` and ``death_matches``
    as Parquet in the run folder, with the link state the next run may update
    (:mod:`pipelines.linking.state`). Reused from an earlier run when the person-bearing files are
    the same; updated incrementally when they only gained files (:mod:`pipelines.linking.incremental`);
    else linked in full. Skipped when no selected rule reads them and there is nothing to reuse."""
    key = ctx.snapshot.key(PERSON_EXTRACTS)
    ctx.link_key = key
    target = ctx.partial / DERIVED_DIR
    runs = _earlier_runs(ctx)
    reused = _previous_links(runs, key)
    if reused is not None:
        run, files = reused
        for table, path in files.items():
            link_state.link_file(path, target / path.name)
        old_state = link_state.LinkState.read(run)
        if old_state is not None:
            for path in old_state.dir.iterdir():
                link_state.link_file(path, target / link_state.STATE_DIR / path.name)
        ctx.derived = {t: target / f"{t}.parquet" for t in LINK_TABLES}
        ctx.notes.append(f"identity linking reused from run {run.name} (same person-bearing files)")
        return None
    if not any(set(r.requires) & set(LINK_TABLES) for r in select_rules(ctx)):
        ctx.link_key = None
        ctx.notes.append("identity linking skipped: no selected rule reads the link tables")
        return None
    state_dir = target / link_state.STATE_DIR if ctx.config.engine == "duckdb" else None
    files = {e: [(f.source_file, f.sha256) for f in ctx.snapshot.files.get(e, ())] for e in PERSON_EXTRACTS
             if ctx.snapshot.files.get(e)}
    with _engine(ctx) as engine:
        result = _link_incrementally(ctx, engine, runs, files, state_dir)
        if result is None:
            result = link_persons(engine, max_block_size=MAX_BLOCK_SIZE, state_dir=state_dir)
        for table in LINK_TABLES:
            engine.write_parquet(f"SELECT * FROM {table} ORDER BY {LINK_ORDER[table]}", target / f"{table}.parquet")
    if state_dir is not None:
        meta = json.loads((state_dir / link_state.META_FILE).read_text(encoding="utf-8"))
        link_state.write_meta(state_dir, meta | {"files": files})
        result.state_bytes = link_state.state_bytes(state_dir)
    ctx.derived = {t: target / f"{t}.parquet" for t in LINK_TABLES}
    return result


MAX_BLOCK_SIZE = 1000  # the linker's cap on a (name key, birth date) block, for every run


def _link_incrementally(ctx: RunContext, engine: Engine, runs: list[Path], files: dict[str, list[tuple[str, str]]],
                        state_dir: Path | None) -> LinkResult | None:
    """The link tables updated from an earlier run's link state, or None (with a note saying why)
    when the run must link in full."""
    if state_dir is None:
        ctx.notes.append("identity linking in full: incremental linking runs on DuckDB only")
        return None
    states = [s for s in (link_state.LinkState.read(r) for r in runs) if s is not None]
    unique = {e for e in files if any(c.unique for c in ctx.contracts[e].columns)}
    plan = link_state.plan_update(states, files, threshold=THRESHOLD, max_block_size=MAX_BLOCK_SIZE,
                                  ordered_extracts=unique)
    if isinstance(plan, str):
        ctx.notes.append(f"identity linking in full: {plan}")
        return None
    registry = registry_present(engine, present_person_extracts(engine))
    if registry != plan.state.meta.get("registry"):
        ctx.notes.append(f"identity linking in full: the household register {'appeared' if registry else 'is gone'} "
                         f"since run {plan.state.run_dir.name}")
        return None
    added = {}
    for extract, new in plan.added.items():
        lake_files = {f.source_file: f for f in ctx.snapshot.files[extract]}
        added[extract] = lake.rows_sql(engine, [lake_files[f].data for f, _ in new], ctx.relations.duplicates.get(extract))
    try:
        result = link_incremental(engine, plan.state, added, registry=registry, max_block_size=MAX_BLOCK_SIZE,
                                  state_dir=state_dir)
    except TooManyChanges as exc:
        ctx.notes.append(f"identity linking in full: {exc} since run {plan.state.run_dir.name}")
        shutil.rmtree(state_dir, ignore_errors=True)
        return None
    counts = ", ".join(f"{len(v)} added {e} file(s)" for e, v in sorted(plan.added.items()))
    i = result.incremental
    ctx.notes.append(f"identity linking updated incrementally from run {plan.state.run_dir.name} ({counts}): "
                     f"{i['touched_ids']:,} IDs touched, {i['changed_ids']:,} changed, {i['blocks_recomputed']:,} "
                     f"name/birth blocks recomputed, {i['pairs_rescored']:,} pairs rescored")
    return result


def select_rules(ctx: RunContext) -> list[Rule]:
    """The rules this run uses: all active ones, or those named by id/category."""
    rules = [r for r in load_rules(ctx.config.rules_dir) if r.status != "deprecated"]
    wanted_ids, wanted_categories = set(ctx.config.rule_ids), set(ctx.config.categories)
    unknown = wanted_ids - {r.id for r in rules}
    if unknown:
        raise RunError(f"unknown rule id(s): {', '.join(sorted(unknown))}", file=ctx.config.rules_dir,
                       hint="`fraudwatch rules list` shows the rule ids")
    if wanted_ids:
        rules = [r for r in rules if r.id in wanted_ids]
    if wanted_categories:
        rules = [r for r in rules if r.category in wanted_categories]
    return rules


def detect_stage(ctx: RunContext) -> RunHits:
    """Run the selected rules over the warehouse, set-based, read-only."""
    rules = select_rules(ctx)
    with _engine(ctx) as engine:
        _materialize_shared_views(ctx, engine, rules)
        hits = run_rules(engine, rules, ctx.config.as_of, ctx.config.parameters)
    for run in hits.runs:
        if run.status == "skipped":
            ctx.notes.append(f"rule {run.rule_id} skipped: needs {', '.join(run.missing)}, absent from this landing folder")
    return hits


def _materialize_shared_views(ctx: RunContext, engine: Engine, rules: list[Rule]) -> None:
    """Compute once, for this stage's session, each rule view (death_records, person_deaths, …) that
    two or more of the selected rules read: a view is otherwise recomputed inside every rule that
    reads it (death_records scans the whole household register each time). Views marked ``[in place]``
    are left as views: materialising benefit_payments copied all 111 M payments at 10 M persons."""
    readers = Counter(t for r in rules for t in set(r.requires))
    have, in_place = engine.relations(), lake.in_place_views()
    for view, sql in lake._view_selects(set(ctx.relations.extracts)):
        if readers[view] >= 2 and view in have and view not in in_place:
            engine.materialize(view, sql)


def publish_stage(ctx: RunContext, ingested: dict[str, IngestResult], validations: dict[str, ExtractValidation],
                  loaded: dict[str, Any], hits: RunHits, linked: LinkResult | None = None) -> RunSummary:
    """Write suspects.parquet and manifest.json into the partial run folder, then make the run visible."""
    kept, held, store_notes = outcomes.apply_outcomes_of(ctx.config.output, hits.table)  # the case store
    ctx.notes.extend(store_notes)
    if held.count:
        publish.write_parquet_atomic(held.table, ctx.partial / "held_back.parquet")
        ctx.notes.append(held.reason)
    table = publish.with_status(kept, ctx.run_id, ctx.previous)
    publish.write_parquet_atomic(table, ctx.partial / publish.SUSPECTS_FILE)
    per_rule_hits = {r.rule_id: r.rows - held.per_rule.get(r.rule_id, 0) for r in hits.runs if r.status == "ran"}
    per_rule_amount = _amount_per_rule(table)
    skipped = {r.rule_id: list(r.missing) for r in hits.runs if r.status == "skipped"}
    ctx.timings.setdefault("publish", 0.0)
    manifest = {
        "run_id": ctx.run_id,
        "job": ctx.config.job,
        "parameters": {"input": str(ctx.config.input), "output": str(ctx.config.output),
                       "as_of": ctx.config.as_of.isoformat(), "rule_ids": list(ctx.config.rule_ids),
                       "categories": list(ctx.config.categories), "rule_parameters": ctx.config.parameters,
                       "engine": ctx.config.engine},
        "previous_run": ctx.previous.name if ctx.previous else None,
        "code_version": publish.code_version(),
        "inputs": [
            {"extract": name, "file": f.source_file, "size_bytes": f.size_bytes, "sha256": f.sha256,
             "encoding": f.encoding, "rows_read": f.rows_read, "rows_clean": f.rows_clean,
             "rows_quarantined": f.rows_quarantined, "quarantine_reasons": f.reasons,
             "ids_damaged_by_number": f.ids_damaged_by_number}
            for name, r in sorted(ingested.items()) for f in r.files
        ],
        "absent_extracts": sorted(set(ctx.contracts) - set(ingested)),
        "rows_per_extract": loaded["counts"],
        "quarantined_per_extract": loaded["quarantined"],
        "validation": {n: {"passed": v.passed, "ge_success": v.ge_success,
                           "warnings": [c.message for c in v.checks if not c.passed and c.severity == "warning"]}
                       for n, v in sorted(validations.items())},
        "rules": [{"id": r.rule_id, "version": r.version, "status": r.status,
                   "rows": r.rows - held.per_rule.get(r.rule_id, 0), "held_back": held.per_rule.get(r.rule_id, 0),
                   "seconds": r.seconds, "missing": list(r.missing), "parameters": r.parameters} for r in hits.runs],
        "amount_per_rule": per_rule_amount,
        "held_back": held.to_manifest(),
        "identity_linking": linked.as_dict() if linked is not None else None,
        "snapshot": ctx.snapshot.to_manifest(),
        "files_read": list(ctx.files_read),
        "link_key": ctx.link_key,
        "timings_seconds": ctx.timings,
        "peak_rss_mb": ctx.peak_rss_mb,
        "notes": ctx.notes,
    }
    final_dir = publish.runs_dir(Path(ctx.config.output)) / ctx.run_id
    extra = {"suspects": ctx.partial / publish.SUSPECTS_FILE}
    extra |= {f"quarantine_{p.stem}": p for p in sorted((ctx.partial / "quarantine").glob("*.parquet"))}
    with _engine(ctx, "duckdb") as engine:  # views.sql is for DuckDB clients, whatever the run's engine
        lake.write_views_sql(engine, ctx.relations, ctx.partial, {k: str(v.resolve()) for k, v in extra.items()}, final_dir,
                             Path(ctx.config.output))
    publish.write_json_atomic(manifest, ctx.partial / publish.MANIFEST_FILE)
    run_dir = finish_run(ctx)
    report = validation_site.run_page(ctx.config.output, ctx.run_id)
    return RunSummary(
        run_id=ctx.run_id, run_dir=run_dir, warehouse=loaded["warehouse"], suspects=run_dir / publish.SUSPECTS_FILE,
        validation_report=report, quarantine_dir=run_dir / "quarantine",
        hits_per_rule=per_rule_hits, held_back=held.count, amount_per_rule=per_rule_amount, skipped_rules=skipped,
        absent_extracts=manifest["absent_extracts"], rows_per_extract=loaded["counts"],
        quarantined_per_extract=loaded["quarantined"], timings=ctx.timings, peak_rss_mb=round(peak_rss_mb(), 1),
        notes=ctx.notes,
    )


@dataclass(frozen=True)
class Stage:
    """One stage of the run: its function, the earlier stages whose results it takes (in order,
    after the run context), whether it does I/O a retry may get past (the Prefect task retries
    those), and how far the run is once it is done (percent, for progress)."""

    name: str
    fn: Callable[..., Any]
    inputs: tuple[str, ...] = ()
    io: bool = False
    done_percent: float = 0.0


# The run, in order: the one place the stage order is written (run_pipeline and the Prefect flow both walk it).
STAGES: tuple[Stage, ...] = (
    Stage("ingest", ingest_stage, (), io=True, done_percent=25.0),
    Stage("validate", validate_stage, ("ingest",), done_percent=40.0),
    Stage("load", load_stage, ("ingest",), io=True, done_percent=55.0),
    Stage("link", link_stage, (), done_percent=70.0),
    Stage("detect", detect_stage, (), done_percent=85.0),
    Stage("publish", publish_stage, ("ingest", "validate", "load", "detect", "link"), io=True, done_percent=100.0),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def run_stages(call: Callable[[Stage, tuple[Any, ...]], Any]) -> RunSummary:
    """Walk :data:`STAGES`: ``call(stage, inputs)`` runs one stage given the results of the stages it
    takes; returns the last stage's result (the run summary)."""
    results: dict[str, Any] = {}
    for stage in STAGES:
        results[stage.name] = call(stage, tuple(results[name] for name in stage.inputs))
    return results[STAGES[-1].name]


def run_pipeline(config: RunConfig, progress: Progress | None = None,
                 on_wait: Callable[[LockHolder | None], None] | None = None, report: Progress | None = None) -> RunSummary:
    """One complete audit run without Prefect (the flow runs the same stages), holding the run lock."""
    check_request(config)
    with run_lock(config.output, config.job, config.wait_timeout, on_wait):
        ctx = prepare_run(config)
        try:
            summary = run_stages(lambda stage, inputs: run_stage(ctx, stage.name, stage.fn, *inputs,
                                                                 progress=progress, report=report))
        except BaseException as exc:
            fail_run(ctx, exc)
            after_run.failed(ctx, exc)
            raise
        after_run.finished(summary.run_dir, config.output)
        return summary


def _amount_per_rule(table: pa.Table) -> dict[str, str]:
    with connect() as engine:
        engine.register("t", table)
        rows = engine.query("SELECT rule_id, coalesce(CAST(CAST(sum(amount_at_risk) AS DECIMAL(18,2)) AS VARCHAR), '') AS a "
                            "FROM t GROUP BY 1 ORDER BY 1").to_pylist()
    return {r["rule_id"]: r["a"] for r in rows}


def _engine(ctx: RunContext, name: str | None = None) -> Engine:
    """A fresh engine session (of the run's engine, or ``name``) holding the run's relations (the
    snapshot, views, derived tables). On Spark the process's one SparkSession is reused."""
    cfg = ctx.config
    if (name or cfg.engine) == "spark":
        from pipelines.engine.spark_engine import SparkEngine
        from pipelines.engine.spark_session import run_session

        engine = SparkEngine(session=run_session(cfg.spark_master, Path(cfg.output) / "tmp" / "spark", cfg.memory_limit),
                             work_dir=Path(cfg.output) / "tmp" / "spark" / ctx.run_id)
    else:
        engine = connect("duckdb", memory_limit=cfg.memory_limit, temp_directory=Path(cfg.output) / "tmp", threads=cfg.threads)
    if ctx.relations is not None:
        relations = lake.RunRelations(ctx.relations.extracts, ctx.relations.duplicates,
                                      {k: str(v) for k, v in ctx.derived.items()})
        ctx.relations = relations
        lake.register_relations(engine, relations)
    return engine


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    """A JSON-friendly view of a run summary."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(summary).items()}
