"""Prefect flows. Thin: each task wraps one stage of `pipelines.stages.STAGES`, walked in that order.

Deployments and schedules are in `prefect.yaml`; `fraudwatch run` calls `audit_flow` directly
(Prefect then starts a temporary local server: no server to start by hand).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_progress_artifact, \
    create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from pipelines import after_run, stages
from pipelines.limits import DEFAULT as DEFAULT_LIMITS
from pipelines.failures import is_transient
from pipelines.jobs import SCHEDULE_TIMEZONE, default_job, reference_date
from pipelines.pipeline import RunConfig, fail_run, prepare_run, run_stage
from pipelines.report import load_report, summary_markdown, summary_rows
from pipelines.runcheck import check_request, require_paths
from pipelines.runlock import DEFAULT_WAIT_SECONDS, run_lock


def _retry_if_transient(task, task_run, state) -> bool:
    """Retry only what may pass on a second try (I/O hiccups, a busy lock), never a broken extract."""
    return is_transient(state.result(raise_on_failure=False))


def _log(line: str) -> None:
    get_run_logger().info(line)


# IO stages retry a transient error (a landing folder on a network share can hiccup); pure stages do not.
_io = dict(retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_if_transient, cache_policy=NO_CACHE)


def _stage_task(stage: stages.Stage):
    """The Prefect task of one stage of :data:`pipelines.stages.STAGES`."""

    def call(ctx, inputs: tuple):
        return run_stage(ctx, stage.name, stage.fn, *inputs, report=_log)

    return task(name=stage.name, **(_io if stage.io else dict(cache_policy=NO_CACHE)))(call)


STAGE_TASKS = {stage.name: _stage_task(stage) for stage in stages.STAGES}


@flow(name="fraudwatch-audit", log_prints=True)
def audit_flow(
    input: str,
    output: str,
    as_of: date | None = None,
    rules: list[str] | None = None,
    categories: list[str] | None = None,
    parameters: dict[str, dict[str, Any]] | None = None,
    memory_limit: str | None = None,
    job: str | None = None,
    wait_timeout: float = DEFAULT_WAIT_SECONDS,
    limits: dict[str, Any] | None = None,
    timezone: str = SCHEDULE_TIMEZONE,
    engine: str = "duckdb",
    spark_master: str = "local[2]",
) -> dict[str, Any]:
    """ingest → validate → load → link → detect → publish; publishes a hit table, a summary and a link as artifacts.

    Args:
        input: Landing folder holding the extract files (on the worker's machine).
        output: Output folder: warehouse, runs/<run_id>/, jobs/<job>/latest, latest.
        as_of: Reference date of the rules. Default: the date of the flow run's scheduled start in `timezone`
            (a run scheduled for 06:00 on the 5th in Shanghai uses the 5th, whatever the worker's clock says).
        rules: Only these rule ids (default: every active rule). `fraudwatch rules list` shows them.
        categories: Only rules of these categories, e.g. paid_after_death, subsidy_after_death.
        parameters: Rule parameter overrides, {rule_id: {parameter: value}}, e.g. {"refund_retained": {"deadline_days": 90}}.
        memory_limit: DuckDB memory limit, e.g. 16GB.
        job: Job name (default: full-audit when every rule runs, else adhoc). Each job keeps its own run history
            and latest; new/recurring compares with the same job's previous run.
        wait_timeout: Seconds to wait for another run holding the same output folder (0: fail at once).
        limits: Resource limit overrides, {name: value}, e.g. {"rule_time_limit_seconds": 120}
            (names and defaults: pipelines/limits.py).
        timezone: Time zone of the schedule, used for the default reference date.
        engine: Where linking and the rules run: duckdb, or spark (needs pyspark and Java 17).
        spark_master: With engine spark: local[N] or spark://host:port.
    """
    from prefect.runtime import flow_run

    require_paths(input, output)
    job = job or default_job(rules or (), categories or ())
    config = RunConfig(
        input=Path(input), output=Path(output), as_of=as_of or reference_date(timezone, flow_run.scheduled_start_time),
        rule_ids=tuple(rules or ()), categories=tuple(categories or ()),
        parameters=parameters or {}, memory_limit=memory_limit, job=job, wait_timeout=wait_timeout,
        limits=DEFAULT_LIMITS.with_overrides(limits or {}),
        engine=engine, spark_master=spark_master,
    )
    logger = get_run_logger()
    check_request(config)
    logger.info("job %s, reference date %s", job, config.as_of.isoformat())

    def waiting(holder):
        logger.warning("waiting up to %g s for the run lock of %s, held by %s", wait_timeout, output,
                       holder.describe() if holder else "another run")

    with run_lock(config.output, job, wait_timeout, waiting):
        return _audit(config, logger)


def _audit(config: RunConfig, logger) -> dict[str, Any]:
    ctx = prepare_run(config)
    progress = create_progress_artifact(progress=0.0, description="fraudwatch audit run progress")
    try:
        def call(stage: stages.Stage, inputs: tuple):
            result = STAGE_TASKS[stage.name](ctx, inputs)
            update_progress_artifact(progress, stage.done_percent)
            return result

        summary = stages.run_stages(call)
    except BaseException as exc:
        fail_run(ctx, exc)
        after_run.failed(ctx, exc)
        raise
    report = load_report(summary.run_dir)
    create_table_artifact(key="fraudwatch-hits", table=summary_rows(report), description="Hits and amounts per rule")
    create_markdown_artifact(key="fraudwatch-summary", markdown=summary_markdown(report), description="Run summary")
    create_link_artifact(key="fraudwatch-suspects", link=summary.suspects.resolve().as_uri(), link_text="suspects.parquet")
    for note in summary.notes:
        logger.info(note)
    after_run.finished(summary.run_dir, config.output)
    return stages.summary_dict(summary)
