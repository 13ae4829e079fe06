"""The scheduled service as the data team runs it: a real `prefect server` process, `prefect deploy --all`
from the repository folder, both cron schedules creating runs at the right Asia/Shanghai times, and a
process worker completing one deployment run with the expected suspects. Every process is killed at the end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DEATH_CATEGORIES = ("paid_after_death", "subsidy_after_death")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prefect:
    """`prefect` commands against one private server (its own PREFECT_HOME, its own port)."""

    def __init__(self, home: Path, port: int, extra_env: dict[str, str]) -> None:
        self.api = f"http://127.0.0.1:{port}/api"
        self.port = port
        self.env = {**os.environ, **extra_env, "PREFECT_HOME": str(home), "PREFECT_API_URL": self.api,
                    "PREFECT_UI_API_URL": self.api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_API_SERVICES_SCHEDULER_LOOP_SECONDS": "5", "PREFECT_CLI_PROMPT": "false",
                    "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        self.env.pop("PREFECT_PROFILES_PATH", None)
        self.procs: list[subprocess.Popen] = []
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def cli(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO, env=env or self.env,
                             capture_output=True, text=True, timeout=300)
        if check:
            assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
        return out

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "prefect", *args], cwd=REPO, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def get(self, path: str):
        with urllib.request.urlopen(self.api + path, timeout=10) as response:
            return json.loads(response.read())

    def post(self, path: str, body: dict):
        request = urllib.request.Request(self.api + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(what: str, check, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture()
def prefect(tmp_path):
    landing, output = tmp_path / "landing", tmp_path / "out"
    shutil.copytree(SAMPLE, landing)
    server = Prefect(tmp_path / "prefect_home", free_port(),
                     {"FRAUDWATCH_LANDING": str(landing), "FRAUDWATCH_OUTPUT": str(output)})
    try:
        server.start("server", "server", "start", "--host", "127.0.0.1", "--port", str(server.port))
        wait_for("the Prefect server", lambda: server.get("/health") is True, timeout=240)
        yield server, landing, output
    finally:
        server.stop_all()


def test_deploy_schedule_and_run_with_a_real_server(prefect):
    server, landing, output = prefect
    server.cli("work-pool", "create", "fraudwatch-process", "--type", "process")
    # Empty paths are refused at deploy time (the build step in prefect.yaml)
    unset = {k: v for k, v in server.env.items() if k not in ("FRAUDWATCH_LANDING", "FRAUDWATCH_OUTPUT")}
    refused = server.cli("--no-prompt", "deploy", "--all", env=unset, check=False)
    assert refused.returncode != 0, refused.stdout
    assert "FRAUDWATCH_LANDING is not set" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert server.post("/deployments/filter", {}) == []

    server.cli("--no-prompt", "deploy", "--all")
    deployments = {d["name"]: d for d in server.post("/deployments/filter", {})}
    assert {"monthly-full-audit", "daily-death-check"} <= set(deployments)
    assert deployments["daily-death-check"]["parameters"]["input"] == str(landing)
    assert deployments["daily-death-check"]["parameters"]["job"] == "death-check"
    schema = deployments["monthly-full-audit"]["parameter_openapi_schema"]["properties"]
    assert all(schema[p].get("description") for p in ("input", "output", "as_of", "job", "categories"))

    def scheduled(name: str) -> list[datetime]:
        body = {"deployments": {"id": {"any_": [deployments[name]["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}
        runs = server.post("/flow_runs/filter", body)
        return sorted(datetime.fromisoformat(r["expected_start_time"]).astimezone(SHANGHAI) for r in runs)

    monthly = wait_for("monthly scheduled runs", lambda: scheduled("monthly-full-audit"), timeout=120)
    daily = wait_for("daily scheduled runs", lambda: scheduled("daily-death-check"), timeout=120)
    assert all((t.day, t.hour, t.minute) == (5, 6, 0) for t in monthly), monthly
    assert all((t.hour, t.minute) == (7, 30) for t in daily), daily
    assert len({t.date() for t in daily}) == len(daily) >= 3  # one a day

    # Trigger the daily check now and let a process worker run it once
    server.cli("deployment", "run", "fraudwatch-audit/daily-death-check")
    server.start("worker", "worker", "start", "--pool", "fraudwatch-process", "--run-once")

    def finished():
        body = {"deployments": {"id": {"any_": [deployments["daily-death-check"]["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}}}
        return server.post("/flow_runs/filter", body)

    runs = wait_for("the deployment run to finish", finished, timeout=600, interval=3)
    assert runs[0]["state"]["type"] == "COMPLETED", server.log("worker")[-5000:]
    assert "Failed to send telemetry" not in server.log("server") + server.log("worker")

    suspects = output / "jobs" / "death-check" / "latest" / "suspects.parquet"
    manifest = json.loads((suspects.parent / "manifest.json").read_text())
    assert manifest["job"] == "death-check"
    scheduled_at = datetime.fromisoformat(runs[0]["expected_start_time"]).astimezone(SHANGHAI)
    assert manifest["parameters"]["as_of"] == scheduled_at.date().isoformat()  # the schedule's date in Shanghai
    con = duckdb.connect()
    cats = ", ".join(f"'{c}'" for c in DEATH_CATEGORIES)
    wrong = con.execute(f"""
        WITH expected AS (SELECT category, subject_id, amount_at_risk
                          FROM read_parquet(['{SAMPLE / "ground_truth.parquet"}', '{SAMPLE / "ground_truth_identity.parquet"}'],
                                            union_by_name = true)
                          WHERE category IN ({cats})),
             reported AS (SELECT category, subject_id, amount_at_risk FROM read_parquet('{suspects}')
                          WHERE category IN ({cats}))
        (SELECT 'missing', * FROM (FROM expected EXCEPT ALL FROM reported))
        UNION ALL (SELECT 'unexpected', * FROM (FROM reported EXCEPT ALL FROM expected))
    """).fetchall()
    assert wrong == []
    assert con.execute(f"SELECT count(*) FROM read_parquet('{suspects}')").fetchone()[0] > 0

    # The same deployment with the flow parameter engine=spark: a worker runs it on Spark (local
    # mode, in the worker's flow-run process) and publishes the same suspects
    first_run = manifest["run_id"]
    server.cli("deployment", "run", "fraudwatch-audit/daily-death-check", "--param", "engine=spark",
               "--param", "spark_master=local[1]")
    server.start("worker-spark", "worker", "start", "--pool", "fraudwatch-process", "--run-once")
    runs = wait_for("the Spark deployment run to finish", lambda: len(finished()) >= 2 and finished(),
                    timeout=900, interval=3)
    assert all(r["state"]["type"] == "COMPLETED" for r in runs), server.log("worker-spark")[-5000:]
    on_spark = json.loads((suspects.parent / "manifest.json").read_text())
    assert on_spark["run_id"] != first_run and on_spark["parameters"]["engine"] == "spark"
    runs_dir = suspects.parent.parent.parent.parent / "runs"
    rows = "SELECT category, subject_id, amount_at_risk, first_period, last_period FROM read_parquet('{}') ORDER BY ALL"
    assert con.execute(rows.format(runs_dir / on_spark["run_id"] / "suspects.parquet")).fetchall() == \
        con.execute(rows.format(runs_dir / first_run / "suspects.parquet")).fetchall()
