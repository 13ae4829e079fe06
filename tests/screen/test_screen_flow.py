"""The scheduled screen: which payroll files wait for a screen, and the Prefect flow on a real
(temporary local) Prefect server screening them."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from pipelines.screen import ScreenConfig, screen_payroll
from pipelines.screen.watch import pending_payrolls
from screen_cases import EXPECTED

ROOT = Path(__file__).resolve().parents[2]


def _copy_audit(audit: Path, to: Path) -> Path:
    shutil.copytree(audit, to, symlinks=True, ignore=shutil.ignore_patterns("screens"))
    return to


def test_a_screened_file_waits_until_it_changes_and_a_fresh_file_settles_first(audit, payroll, tmp_path):
    output = _copy_audit(audit, tmp_path / "out")
    folder = tmp_path / "payrolls"
    folder.mkdir()
    target = folder / payroll.name
    shutil.copy(payroll, target)
    (folder / "notes.txt.bak").write_text("not a payroll", encoding="utf-8")
    old = target.stat().st_mtime - 3600
    os.utime(target, (old, old))
    assert pending_payrolls(folder, output) == [target]
    screen_payroll(ScreenConfig(payroll=target, output=output, as_of=date(2025, 1, 5)))
    assert pending_payrolls(folder, output) == []
    with open(target, "a", encoding="utf-8") as fh:   # the office replaced the file: screen again
        fh.write("J99," + "110101194501010118" + ",张一,110,110101,2025-01,1.00,\n")
    assert pending_payrolls(folder, output) == []       # still being written (changed seconds ago)
    assert pending_payrolls(folder, output, settle_seconds=0) == [target]


def test_prefect_yaml_deploys_the_screen_flow_on_a_schedule():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    deployment = next(d for d in spec["deployments"] if d["name"] == "payroll-screen")
    module, _, function = deployment["entrypoint"].partition(":")
    assert (ROOT / module).exists() and function == "screen_flow"
    assert deployment["schedules"][0]["cron"] and set(deployment["parameters"]) >= {"payroll_dir", "output"}


@pytest.mark.slow
@pytest.mark.prefect
def test_the_flow_screens_each_new_payroll_once(audit, payroll, tmp_path):
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.screen_flow import screen_flow

    output = _copy_audit(audit, tmp_path / "out")
    folder = tmp_path / "payrolls"
    folder.mkdir()
    shutil.copy(payroll, folder / payroll.name)
    with prefect_test_harness(server_startup_timeout=180):
        first = screen_flow(payroll_dir=str(folder), output=str(output), as_of=date(2025, 1, 5), settle_seconds=0)
        again = screen_flow(payroll_dir=str(folder), output=str(output), as_of=date(2025, 1, 5), settle_seconds=0)
    assert [s["payroll"] for s in first] == [payroll.name] and first[0]["rows_held"] == len(EXPECTED)
    assert again == []
    assert (output / "screens" / first[0]["screen_id"] / "holds.xlsx").exists()
