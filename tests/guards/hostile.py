"""Helpers for hostile-input tests: a small valid landing folder with planted personal data,
and the real `fraudwatch` command run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Planted personal data: none of these may appear in any message, log or Prefect database.
PERSON_ID = "11010519491231002X"
OTHER_ID = "110101195003150013"
NAME = "欧阳秘密"
BANK = "6222020200112233445"
PLANTED = (PERSON_ID, OTHER_ID, NAME, BANK)

PAYMENTS_HEADER = "payment_id,person_id,name,scheme,region_code,period,amount,pay_date,bank_account\n"


def payments_csv(rows: int = 20) -> str:
    lines = [f"P{i:03d},{PERSON_ID if i % 2 else OTHER_ID},{NAME},110,110105,2024-{1 + i % 12:02d},3000.00,2024-01-05,{BANK}\n"
             for i in range(rows)]
    return PAYMENTS_HEADER + "".join(lines)


def deaths_csv() -> str:
    return f"person_id,name,death_date,source\n{PERSON_ID},{NAME},2024-01-15,police\n{OTHER_ID},{NAME},2024-06-01,police\n"


def landing(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pension_payments.csv").write_text(payments_csv(), encoding="utf-8")
    (folder / "deaths.csv").write_text(deaths_csv(), encoding="utf-8")
    return folder


def fraudwatch(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
               preexec=None) -> subprocess.CompletedProcess:
    """The `fraudwatch` CLI in a child process (this worktree's code), output captured as text."""
    full_env = os.environ | {"PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"} | (env or {})
    return subprocess.run([str(Path(sys.executable).parent / "fraudwatch"), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT, preexec_fn=preexec)


def run(landing_dir: Path, output: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return fraudwatch("run", "--input", str(landing_dir), "--output", str(output), "--as-of", "2025-01-31",
                      "--no-prefect", *extra, **kw)


def assert_no_personal_data(text: str, where: str = "output") -> None:
    for value in PLANTED:
        assert value not in text, f"{where} holds planted personal data {value!r}:\n{text[:3000]}"


def assert_clean_failure(proc: subprocess.CompletedProcess, *expected: str) -> str:
    """Non-zero exit, no traceback, each ``expected`` fragment in the message; returns the output."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    # great-expectations' Data Docs renderer logs the error it swallows with its traceback (its own
    # logging, not a fraudwatch message; the Data Docs are being rewritten without it): tolerated here.
    ours = re.sub(r"An unexpected Exception occurred during data docs rendering.*?\n\"\.\n", "", out, flags=re.S)
    assert "Traceback" not in ours, out
    for fragment in expected:
        assert fragment in out, f"{fragment!r} not in:\n{out}"
    return out
