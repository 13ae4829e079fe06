"""The Prefect flow wires the same stages and publishes its artifacts (one harness per session: ~40 s)."""

from __future__ import annotations

import os
from datetime import date

import pytest

from pipelines.publish import latest_run_id
from pipelines.synth import generate

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
    result = audit_flow(input=str(tmp_path / "in"), output=str(tmp_path / "out"), as_of=date(2026, 1, 31),
                        categories=["paid_after_death"])
    assert latest_run_id(tmp_path / "out") == result["run_id"]
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
