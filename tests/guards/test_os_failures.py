"""Operating-system failures a user can cause end with what happened and what to do: a real full
disk (a small tmpfs) at every stage, a read-only output folder, a file that vanished mid-run."""

from __future__ import annotations

import errno
import os
import subprocess
from datetime import date
from pathlib import Path

import pytest
from hostile import assert_clean_failure, landing, payments_csv, run

from pipelines import stages
from pipelines.contracts import load_contracts
from pipelines.errors import FraudwatchError
from pipelines.guards.oserrors import os_failure, os_failure_in_chain
from pipelines.ingest import discover_extracts, ingest_extract
from pipelines.pipeline import RunConfig, fail_run, prepare_run, run_stage


def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount permission): {proc.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A real 64 MB file system that can be filled to the last byte."""
    mount = tmp_path / "disk"
    _mount(mount, "size=64m")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` completely; returns the filler to delete."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for piece in (1 << 20, 4096, 1):
            try:
                while fh.write(b"\0" * piece):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def _landing(tmp_path: Path, rows: int = 5000) -> Path:
    folder = landing(tmp_path / "landing")
    (folder / "pension_payments.csv").write_text(payments_csv(rows), encoding="utf-8")
    return folder


def test_disk_full_at_each_stage_is_said_as_disk_full(tmp_path, small_disk):
    config = RunConfig(input=_landing(tmp_path), output=small_disk / "out", as_of=date(2025, 1, 31))
    ctx = prepare_run(config)
    results: dict = {}
    plan = [
        ("ingest", lambda: run_stage(ctx, "ingest", stages.ingest_stage)),
        ("validate", lambda: run_stage(ctx, "validate", stages.validate_stage, results["ingest"])),
        ("load", lambda: run_stage(ctx, "load", stages.load_stage, results["ingest"])),
        ("link", lambda: run_stage(ctx, "link", stages.link_stage)),
        ("detect", lambda: run_stage(ctx, "detect", stages.detect_stage)),
        ("publish", lambda: run_stage(ctx, "publish", stages.publish_stage, results["ingest"], results["validate"],
                                      results["load"], results["detect"], results["link"])),
    ]
    failed_on_full_disk = []
    try:
        for name, step in plan:
            filler = fill(small_disk)
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - what matters is how it is told
                failure = os_failure_in_chain(exc)
                assert failure is not None, f"{name}: disk full not recognised: {type(exc).__name__}: {exc}"
                assert "disk is full" in str(failure) and "malformed" not in str(failure), str(failure)
                failed_on_full_disk.append(name)
            filler.unlink()
            results[name] = step()  # with room again the stage goes through
    finally:
        fail_run(ctx)
    # every stage that writes hit the full disk and was told as such
    assert {"ingest", "validate", "load", "publish"} <= set(failed_on_full_disk), failed_on_full_disk


@pytest.mark.slow
@pytest.mark.parametrize("size", ["256k", "450k"])
def test_disk_full_run_ends_with_a_message_not_a_traceback(tmp_path, size):
    disk = tmp_path / "disk"
    _mount(disk, f"size={size}")
    try:
        proc = run(_landing(tmp_path, rows=20000), disk / "out")  # 256k: fills in ingest; 450k: after the lake is written (a run writes about 670 KB here)
        out = assert_clean_failure(proc, "the disk is full", "free space on that disk")
        assert "pension_payments.csv" not in out and "malformed" not in out  # the input is not blamed
        assert proc.returncode == 2
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_read_only_output_folder(tmp_path):
    disk = tmp_path / "ro"
    _mount(disk, "size=1m,ro")
    try:
        proc = run(_landing(tmp_path), disk / "out")
        assert_clean_failure(proc, "read-only file system", "--output")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_file_that_vanished_mid_run_is_said_so(tmp_path):
    folder = _landing(tmp_path)
    contracts = load_contracts()
    found = discover_extracts(folder, contracts)
    os.unlink(folder / "deaths.csv")  # removed between discovery and reading
    with pytest.raises(BaseException) as info:
        ingest_extract(contracts["deaths"], found["deaths"], folder, tmp_path / "staging")
    failure = os_failure_in_chain(info.value)
    assert failure is not None and "vanished" in str(failure), repr(info.value)


@pytest.mark.slow
def test_unreadable_landing_file_as_another_user(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    folder = _landing(tmp_path)
    for p in (tmp_path, folder):
        os.chmod(p, 0o755)
    os.chmod(folder / "deaths.csv", 0o600)  # readable by root only
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)

    def as_nobody():
        os.setgid(65534)
        os.setuid(65534)

    try:
        proc = run(folder, out, preexec=as_nobody, env={"HOME": str(out), "PREFECT_HOME": str(out / ".prefect")})
    except PermissionError:
        pytest.skip("the venv is not usable by an unprivileged user here (root bypasses permission bits)")
    if "error:" not in proc.stderr:
        pytest.skip(f"the code is not readable by an unprivileged user here: {proc.stderr[-300:]}")
    assert_clean_failure(proc, "permission denied", "readable")


def test_os_failure_recognises_errors_from_each_library():
    assert "disk is full" in str(os_failure(OSError(errno.ENOSPC, "No space left on device", "/x/y")))
    assert "disk is full" in str(os_failure(RuntimeError('IO Error: Could not write file "/o/w.duckdb": No space left on device')))
    assert "/o/w.duckdb" in str(os_failure(RuntimeError('IO Error: Could not write file "/o/w.duckdb": No space left on device')))
    assert "read-only" in str(os_failure(RuntimeError("failed to create file: Read-only file system (os error 30)")))
    assert os_failure(ValueError("unbalanced quotes")) is None
    assert isinstance(os_failure(OSError(errno.EACCES, "Permission denied")), FraudwatchError)
