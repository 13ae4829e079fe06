"""`fraudwatch doctor`: can this installation do its job?

Checks, each giving findings of level ok / info / warn / error (any error: exit code 1):

* packages: installed versions and known-bad combinations (prefect 3.8 with SQLAlchemy ≥ 2.1: the
  scheduler crashes and no scheduled run is ever created; prefect 3.8 with fastapi ≥ 0.151: the server
  answers 422 to the client);
* the output folder: layout (runs/, latest, leftovers of dead runs), the DuckDB file format of
  ``warehouse.duckdb`` against the installed DuckDB, the alert configuration;
* the run lock: who holds it (its JSON holder record);
* the last run of each job and its state (complete / failed);
* Prefect: whether ``PREFECT_API_URL`` answers, each fraudwatch deployment's schedules and its next
  scheduled run (an active schedule without one means the scheduler is not working).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Iterable
from zoneinfo import ZoneInfo

from pipelines import publish

FLOW_NAME = "fraudwatch-audit"
SHANGHAI = ZoneInfo("Asia/Shanghai")
PACKAGES = ("fraudwatch", "prefect", "sqlalchemy", "fastapi", "duckdb", "polars", "pyarrow", "great-expectations",
            "apprise", "jinja2", "pyspark")
LEVELS = ("ok", "info", "warn", "error")


@dataclass(frozen=True)
class Finding:
    """One line of the diagnosis."""

    topic: str
    level: str  # ok | info | warn | error
    message: str


def _version_tuple(text: str | None) -> tuple[int, ...]:
    parts = []
    for piece in (text or "").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def installed_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (None: not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def check_versions(versions: dict[str, str | None]) -> list[Finding]:
    """Known-bad combinations among ``versions`` (package name → version string or None)."""
    found = [Finding("packages", "info", ", ".join(f"{n} {v}" for n, v in versions.items() if v))]
    prefect, sqlalchemy, fastapi = (_version_tuple(versions.get(n)) for n in ("prefect", "sqlalchemy", "fastapi"))
    for name in ("prefect", "duckdb", "great-expectations"):
        if versions.get(name, "x") is None:
            found.append(Finding("packages", "error", f"{name} is not installed: run `make` (pip install -e .)"))
    if prefect[:2] == (3, 8):
        if sqlalchemy >= (2, 1):
            found.append(Finding("packages", "error",
                                 f"prefect {versions['prefect']} with SQLAlchemy {versions['sqlalchemy']}: Prefect's scheduler "
                                 "crashes (\"Can't evaluate bulk DML statement\") and no scheduled run is ever created; "
                                 "install SQLAlchemy <2.1 (pip install 'sqlalchemy>=2.0.30,<2.1')"))
        if fastapi >= (0, 151):
            found.append(Finding("packages", "error",
                                 f"prefect {versions['prefect']} with fastapi {versions['fastapi']}: the Prefect server answers "
                                 "422 to the client's filter requests (0.155 also breaks its startup); install fastapi <0.151"))
    if len(found) == 1:
        found.append(Finding("packages", "ok", "no known-bad combination of prefect, SQLAlchemy and fastapi"))
    return found


# --------------------------------------------------------------------------- DuckDB file format


def duckdb_file_format(path: Path) -> tuple[int, str] | None:
    """(storage version number, library that wrote it, e.g. 'v2.0.0') from a DuckDB file's header; None if not DuckDB."""
    with open(path, "rb") as fh:
        head = fh.read(128)
    if len(head) < 116 or head[8:12] != b"DUCK":
        return None
    version = struct.unpack_from("<Q", head, 12)[0]
    library = head[52:84].split(b"\0", 1)[0].decode("ascii", "replace")
    return version, library


def _installed_duckdb_format() -> tuple[int, str] | None:
    from pipelines.engine import connect

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.duckdb"
        connect("duckdb", database=path).close()
        return duckdb_file_format(path)


def check_output(output: Path) -> list[Finding]:
    """Layout and formats of an output folder."""
    output = Path(output)
    topic = "output"
    if not output.exists():
        return [Finding(topic, "warn", f"{output} does not exist (no run yet, or wrong --output)")]
    if not output.is_dir():
        return [Finding(topic, "error", f"{output} is not a folder")]
    found = []
    runs = publish.runs_dir(output)
    complete = sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) if runs.is_dir() else []
    found.append(Finding(topic, "info", f"{output}: {len(complete)} complete run(s) under runs/"))
    latest = publish.latest_run_id(output)
    if latest is None:
        found.append(Finding(topic, "warn" if complete else "info", "latest: not set (no complete run yet)"))
    elif not (runs / latest / publish.SUSPECTS_FILE).exists():
        found.append(Finding(topic, "error", f"latest points at {latest}, which has no {publish.SUSPECTS_FILE}"))
    else:
        found.append(Finding(topic, "ok", f"latest -> runs/{latest}"))
    partial = sorted(p.name for p in runs.glob(".partial-*")) if runs.is_dir() else []
    staging = sorted(p.name for p in (output / "staging").iterdir()) if (output / "staging").is_dir() else []
    if partial or staging:
        found.append(Finding(topic, "warn", f"{len(partial)} partial run folder(s) and {len(staging)} staging folder(s) "
                             "(a run in progress, or leftovers of killed runs)"))
    found += _check_warehouse(output / "warehouse.duckdb")
    site = output / "validation" / "index.html"
    if site.exists():
        found.append(Finding(topic, "ok", f"validation report: {site}"))
    found += _check_alerts(output)
    return found


def _check_warehouse(path: Path) -> list[Finding]:
    if not path.exists():
        return [Finding("output", "info", f"{path.name}: none")]
    fmt = duckdb_file_format(path)
    if fmt is None:
        return [Finding("output", "error", f"{path} is not a DuckDB database file")]
    mine = _installed_duckdb_format()
    version, library = fmt
    text = f"{path.name}: DuckDB storage version {version}, written by DuckDB {library or '?'}"
    if mine is not None and version > mine[0]:
        return [Finding("output", "error", text + f"; the installed DuckDB {mine[1]} (storage version {mine[0]}) "
                        "cannot open it: install the DuckDB that wrote it")]
    if mine is not None and version < mine[0]:
        return [Finding("output", "warn", text + f"; older than the installed DuckDB {mine[1]} (storage version "
                        f"{mine[0]}): opening it for writing upgrades it, after which older DuckDB cannot read it")]
    return [Finding("output", "ok", text)]


def _check_alerts(output: Path) -> list[Finding]:
    from pipelines import alerts
    from pipelines.errors import ConfigError

    try:
        config = alerts.load_config(output)
    except ConfigError as exc:
        return [Finding("alerts", "error", str(exc))]
    if not config.urls:
        return [Finding("alerts", "info", f"no alerts configured ([alerts] urls in {output / alerts.CONFIG_FILE})")]
    problems = alerts.check_config(config)
    if problems:
        return [Finding("alerts", "error", p) for p in problems]
    return [Finding("alerts", "ok", f"{len(config.urls)} alert URL(s), new suspects of severity >= {config.min_severity}")]


# --------------------------------------------------------------------------- lock and jobs


def check_lock(output: Path) -> list[Finding]:
    """Who holds the output folder's run lock (helper module ``pipelines.runlock``)."""
    from pipelines import runlock

    if not Path(output).is_dir():
        return []
    holder = runlock.current_holder(output)
    if holder is None:
        return [Finding("run lock", "ok", "free (no run in progress)")]
    return [Finding("run lock", "info", f"held by {holder.describe()}")]


def last_runs(output: Path) -> dict[str, tuple[str, str, str]]:
    """Per job: (run id, state complete|failed, as-of) of its newest run, complete or failed."""
    output = Path(output)
    newest: dict[str, tuple[str, str, str]] = {}
    for state, parent in (("complete", publish.runs_dir(output)), ("failed", output / "failed")):
        if not parent.is_dir():
            continue
        for folder in parent.iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                manifest = json.loads((folder / publish.MANIFEST_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                if state == "complete":
                    continue
                manifest = {}
            params = manifest.get("parameters") or {}
            job = str(manifest.get("job") or params.get("job") or _failed_job(folder) or "adhoc")
            entry = (manifest.get("run_id") or folder.name, state, str(params.get("as_of") or ""))
            if job not in newest or entry[0] > newest[job][0]:
                newest[job] = entry
    return newest


def _failed_job(folder: Path) -> str | None:
    try:
        return json.loads((folder / "error.json").read_text(encoding="utf-8")).get("job")
    except (OSError, ValueError, AttributeError):
        return None


def check_jobs(output: Path) -> list[Finding]:
    runs = last_runs(output)
    if not runs:
        return [Finding("jobs", "info", "no run yet")]
    found = []
    for job, (run_id, state, as_of) in sorted(runs.items()):
        text = f"{job}: last run {run_id} {state}" + (f" (as of {as_of})" if as_of else "")
        found.append(Finding("jobs", "ok" if state == "complete" else "error",
                             text + ("" if state == "complete" else f"; evidence in {Path(output) / 'failed' / run_id}")))
    return found


# --------------------------------------------------------------------------- Prefect


def configured_api_url() -> str | None:
    """PREFECT_API_URL as Prefect resolves it (environment, then the active profile)."""
    if "PREFECT_API_URL" in os.environ:  # the environment wins (also when set empty: no server)
        return os.environ["PREFECT_API_URL"].strip() or None
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def check_prefect(api_url: str | None, timeout: float = 5.0, now: datetime | None = None) -> list[Finding]:
    """Is the Prefect API reachable; each fraudwatch deployment's schedules and next scheduled run."""
    topic = "prefect"
    if not api_url:
        return [Finding(topic, "info", "PREFECT_API_URL is not set: `fraudwatch run` uses a temporary local server; "
                        "scheduled deployments need a running server (README: Scheduling with Prefect)")]
    import httpx

    try:
        response = httpx.get(api_url.rstrip("/") + "/health", timeout=timeout)
        response.raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        return [Finding(topic, "error", f"Prefect API {api_url} is not reachable ({type(exc).__name__}): start "
                        "`prefect server start` or fix PREFECT_API_URL")]
    found = [Finding(topic, "ok", f"Prefect API {api_url} is reachable")]
    try:
        found += _deployments(api_url, timeout, now or datetime.now(timezone.utc))
    except Exception as exc:  # the API answers /health but not the client: report, do not crash
        found.append(Finding(topic, "error", f"reading deployments from {api_url} failed ({type(exc).__name__}: {exc})"))
    return found


def _deployments(api_url: str, timeout: float, now: datetime) -> list[Finding]:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowFilter, FlowFilterName,
                                                FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    found = []
    with SyncPrefectClient(api_url, httpx_settings={"timeout": timeout}) as client:
        deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])))
        if not deployments:
            return [Finding("prefect", "warn", f"no deployment of flow {FLOW_NAME}: run `prefect deploy --all`")]
        for d in sorted(deployments, key=lambda d: d.name):
            schedules = [s for s in (d.schedules or []) if s.active]
            described = "; ".join(_schedule_text(s.schedule) for s in schedules) or "no active schedule"
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1)
            name = f"{FLOW_NAME}/{d.name}"
            if runs:
                when = runs[0].expected_start_time or runs[0].next_scheduled_start_time
                local = when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M %Z") if when else "?"
                found.append(Finding("prefect", "ok", f"{name} ({described}): next scheduled run {local}"))
            elif schedules and not d.paused:
                found.append(Finding("prefect", "error", f"{name} ({described}) has no scheduled run: Prefect's scheduler "
                                     "is not creating runs (is the server's scheduler running? see the packages check)"))
            else:
                state = "paused" if d.paused else "no active schedule"
                found.append(Finding("prefect", "warn", f"{name}: {state}, no scheduled run"))
    return found


def _schedule_text(schedule) -> str:
    cron = getattr(schedule, "cron", None)
    if cron:
        return f"cron {cron} {getattr(schedule, 'timezone', None) or 'UTC'}"
    return type(schedule).__name__


# --------------------------------------------------------------------------- all


def diagnose(output: Path | None, versions: dict[str, str | None] | None = None,
             api_url: str | None = None, timeout: float = 5.0) -> list[Finding]:
    """Every check; ``versions`` and ``api_url`` default to what is installed and configured."""
    found = check_versions(versions if versions is not None else installed_versions())
    if output is not None:
        found += check_output(output) + check_lock(output) + check_jobs(output)
    found += check_prefect(api_url if api_url is not None else configured_api_url(), timeout)
    return found


def exit_code(findings: list[Finding]) -> int:
    """1 if anything is wrong (an error), else 0."""
    return 1 if any(f.level == "error" for f in findings) else 0
