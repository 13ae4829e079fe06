"""Prefect flow for the pre-payment screen (deployment ``payroll-screen`` in prefect.yaml). Thin:
it asks :mod:`pipelines.screen.watch` which payroll files in the watched folder still need a
screen and runs :func:`pipelines.screen.screen_payroll` on each."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipelines.screen import ScreenConfig, screen_payroll
from pipelines.screen.watch import pending_payrolls


@task(name="screen-payroll", retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE)
def screen_task(config: ScreenConfig) -> dict[str, Any]:
    result = screen_payroll(config)
    return {"screen_id": result.screen_id, "payroll": config.payroll.name, "audit_run": result.audit_run,
            "rows_screened": result.rows_screened, "rows_held": result.rows_held,
            "amount_held": result.amount_held, "per_reason": result.per_reason, "holds_xlsx": str(result.xlsx)}


@flow(name="fraudwatch-screen", log_prints=True)
def screen_flow(payroll_dir: str, output: str, as_of: date | None = None, settle_seconds: float = 60.0,
                memory_limit: str | None = None) -> list[dict[str, Any]]:
    """Screen every payroll file in ``payroll_dir`` not yet screened against the latest full audit."""
    logger = get_run_logger()
    todo = pending_payrolls(Path(payroll_dir), Path(output), settle_seconds)
    if not todo:
        logger.info("no new payroll file to screen")
        return []
    screens = [screen_task(ScreenConfig(payroll=path, output=Path(output), as_of=as_of or date.today(),
                                        memory_limit=memory_limit)) for path in todo]
    create_table_artifact(key="fraudwatch-screen", description="Payroll rows held before payment", table=[
        {k: s[k] for k in ("payroll", "screen_id", "rows_screened", "rows_held", "amount_held")} for s in screens])
    create_markdown_artifact(key="fraudwatch-screen-summary", markdown="\n".join(
        f"- **{s['payroll']}**: {s['rows_held']} of {s['rows_screened']} rows held, {s['amount_held']} 元 "
        f"(screen `{s['screen_id']}`, workbook `{s['holds_xlsx']}`)" for s in screens))
    return screens
