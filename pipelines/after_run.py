"""What happens once a run has ended, finished or failed: the output folder's validation report site is
rebuilt, then alerts are sent. Neither ever fails the run (problems are logged).

Called by both ways of running (`pipelines.stages.run_pipeline` and the Prefect flow), after the run's
folder is final: `runs/<run_id>/` for a finished run, `failed/<run_id>/` (if kept) for a failed one.
"""

from __future__ import annotations

from pathlib import Path

from pipelines import alerts, validation_site


def finished(run_dir: Path, output: Path) -> None:
    """A run completed: refresh the validation report, alert on new high-severity suspects."""
    validation_site.refresh(output)
    alerts.after_run(run_dir, output)


def failed(ctx, exc: BaseException) -> None:
    """A run failed (``ctx`` is its `pipelines.pipeline.RunContext`): refresh the report, alert."""
    validation_site.refresh(Path(ctx.config.output))
    alerts.after_failed_run(ctx, exc)
