"""The run lock: one run per output folder, a holder record, waiting bounded, released when the holder dies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from pipelines import runlock
from pipelines.runlock import RunLocked, current_holder, run_lock

HOLD = textwrap.dedent("""
    import sys, time
    from pipelines.runlock import run_lock
    with run_lock(sys.argv[1], "monthly-full-audit"):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def hold_in_other_process(output, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(output), str(seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_fails_at_once_naming_the_holder(tmp_path):
    holder = hold_in_other_process(tmp_path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(RunLocked) as caught:
            with run_lock(tmp_path, "adhoc", wait_timeout=0):
                pytest.fail("got a lock another process holds")
        assert time.monotonic() - start < 1
        assert f"PID {holder.pid}" in str(caught.value) and "monthly-full-audit" in str(caught.value)
        assert current_holder(tmp_path).pid == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_second_run_waits_saying_who_holds_it_then_runs(tmp_path):
    holder = hold_in_other_process(tmp_path, 1.5)
    told = []
    start = time.monotonic()
    try:
        with run_lock(tmp_path, "adhoc", wait_timeout=30, on_wait=told.append) as me:
            assert time.monotonic() - start > 1  # got the lock only after the holder let it go
            assert me.pid == os.getpid() and current_holder(tmp_path).job == "adhoc"
    finally:
        holder.kill()
        holder.wait()
    assert [h.pid for h in told] == [holder.pid]
    assert current_holder(tmp_path) is None


def test_waiting_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "POLL_SECONDS", 0.05)
    holder = hold_in_other_process(tmp_path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(RunLocked, match="after waiting 0.5 s"):
            with run_lock(tmp_path, "adhoc", wait_timeout=0.5):
                pass
        assert 0.5 <= time.monotonic() - start < 2
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_releases_the_lock(tmp_path):
    holder = hold_in_other_process(tmp_path, 60)
    holder.kill()
    holder.wait()
    assert current_holder(tmp_path) is None
    with run_lock(tmp_path, "adhoc", wait_timeout=0):
        pass


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with run_lock(tmp_path, "adhoc", wait_timeout=0) as outer:
        with run_lock(tmp_path, "adhoc", wait_timeout=0) as inner:
            assert inner.pid == outer.pid
        assert current_holder(tmp_path) is not None  # still held by the outer block
    assert current_holder(tmp_path) is None
