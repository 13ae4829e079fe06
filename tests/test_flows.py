"""The Prefect flow wires the same stages and publishes its artifacts (one harness per session: ~40 s)."""

from __future__ import annotations

import os
from datetime import date

import pytest

from pipelines.publish import latest_run_id
from fraudwatch_synth import generate

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


@pytest.fixture(scope="module")
def harness():
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_audit_flow_publishes_a_run_and_artifacts(harness, tmp_path):
    from prefect.client.orchestration import get_client

    from pipelines.flows import audit_flow

    generate(persons=300, months=6, seed=3, out=tmp_path / "in")
    state = audit_flow(input=str(tmp_path / "in"), output=str(tmp_path / "out"), as_of=date(2026, 1, 31),
                       categories=["paid_after_death"], return_state=True)
    result = state.result()
    assert latest_run_id(tmp_path / "out") == result["run_id"]
    # one task per stage of the one stage list, in its order; the I/O stages retry
    from pipelines.flows import STAGE_TASKS
    from pipelines.stages import STAGE_NAMES, STAGES

    runs = sorted(_task_runs(state.state_details.flow_run_id), key=lambda t: t.expected_start_time)
    assert [t.name.rsplit("-", 1)[0] for t in runs] == list(STAGE_NAMES)
    assert {n for n, t in STAGE_TASKS.items() if t.retries} == {s.name for s in STAGES if s.io}
    assert set(result["hits_per_rule"]) == {"paid_after_death", "paid_after_death_weak_match"}  # the category's rules
    assert result["hits_per_rule"]["paid_after_death"] > 0

    async def artifacts():
        async with get_client() as client:
            return {a.key: a.data for a in await client.read_artifacts()}

    import asyncio

    found = asyncio.run(artifacts())
    assert {"fraudwatch-hits", "fraudwatch-summary", "fraudwatch-suspects"} <= set(found)
    summary = found["fraudwatch-summary"]
    assert "as of: 2026-01-31" in summary and " new, 0 recurring)" in summary and "## Validation" in summary


def test_a_failing_flow_leaves_latest_alone(harness, tmp_path):
    from pipelines.flows import audit_flow

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "deaths.csv").write_text("姓名\n张三\n", encoding="utf-8")
    state = audit_flow(input=str(tmp_path / "in"), output=str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    assert latest_run_id(tmp_path / "out") is None
    assert "deaths.csv" in str(state.message) or "deaths.csv" in repr(state.result(raise_on_failure=False))


def test_doctor_reads_deployments_and_their_next_scheduled_runs_from_a_real_server(harness):
    """The harness runs a real Prefect server process (without its scheduler service): a deployment with a
    scheduled run shows it in Asia/Shanghai time; an active schedule with no run is reported as an error."""
    from datetime import datetime, timezone

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Scheduled

    from pipelines import doctor

    url = PREFECT_API_URL.value()
    assert url and url.startswith("http://127.0.0.1")

    def cron(expr):
        return [DeploymentScheduleCreate(schedule=CronSchedule(cron=expr, timezone="Asia/Shanghai"), active=True)]

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("fraudwatch-audit")
        daily = client.create_deployment(flow_id, "daily-death-check", schedules=cron("30 7 * * *"))
        client.create_deployment(flow_id, "monthly-full-audit", schedules=cron("0 6 5 * *"))
        client.create_flow_run_from_deployment(
            daily, state=Scheduled(scheduled_time=datetime(2027, 1, 1, 23, 30, tzinfo=timezone.utc)))
    found = doctor.check_prefect(url)
    messages = {f.message: f.level for f in found}
    assert messages[f"Prefect API {url} is reachable"] == "ok"
    assert messages["fraudwatch-audit/daily-death-check (cron 30 7 * * * Asia/Shanghai): "
                    "next scheduled run 2027-01-02 07:30 CST"] == "ok"
    monthly = [f for f in found if f.message.startswith("fraudwatch-audit/monthly-full-audit")]
    assert [f.level for f in monthly] == ["error"] and "has no scheduled run" in monthly[0].message
    assert doctor.exit_code(found) == 1


def _task_runs(flow_run_id):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))

    return asyncio.run(read())


def test_a_broken_extract_is_not_retried_and_its_evidence_is_kept(harness, tmp_path):
    from pipelines.flows import audit_flow

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "deaths.csv").write_text("姓名\n张三\n", encoding="utf-8")
    state = audit_flow(input=str(tmp_path / "in"), output=str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    ingest = [t for t in _task_runs(state.state_details.flow_run_id) if t.name.startswith("ingest")]
    assert [t.run_count for t in ingest] == [1]
    failed = list((tmp_path / "out" / "failed").iterdir())
    assert len(failed) == 1 and (failed[0] / "error.txt").exists()


def test_a_transient_error_is_retried(harness):
    from prefect import flow, task

    from pipelines import flows

    calls = []

    @task(**{**flows._io, "retry_delay_seconds": 0})
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError(5, "Input/output error (network share)")
        return "ok"

    @flow
    def f():
        return flaky()

    assert f() == "ok" and len(calls) == 3


def test_empty_deployment_paths_fail_the_flow_at_once(harness, tmp_path):
    from pipelines.errors import RunError
    from pipelines.flows import audit_flow

    state = audit_flow(input="", output="", return_state=True)
    assert state.is_failed()
    with pytest.raises(RunError, match="FRAUDWATCH_LANDING"):
        state.result()
