"""Fixtures of the screen tests: a real full audit of the hand-made cases, and their payroll file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipelines.pipeline import RunConfig
from pipelines.stages import run_pipeline
from screen_cases import (ADMITTED_JAN, BAD_ROWS, DEAD, DEAD_ARREARS, DEAD_INVALID, DEAD_JAN, DEAD_TWO_REGIONS,
                          DEAD_TYPO_OWNER, HEAD, NAMES, PAYROLL, PRISON, PRISON_INVALID, PROBATION, RELEASED, REVERSED,
                          TYPO_DEATH, UNREGISTERED, WEAK, _audit_payments, _write, broken, pid)


@pytest.fixture(scope="session")
def audit(tmp_path_factory) -> Path:
    """A full audit of a tiny landing folder (real pipeline, no Prefect); returns its output folder."""
    root = tmp_path_factory.mktemp("screen_audit")
    landing, output = root / "landing", root / "out"
    landing.mkdir()
    _write(landing / "pension_payments.csv", HEAD, _audit_payments())
    _write(landing / "deaths.csv", ["person_id", "name", "death_date", "source", "record_id"], [
        [DEAD, "张一", "2024-12-15", "公安", "GA1"], [DEAD_JAN, "张二", "2025-01-10", "民政", "MZ2"],
        [DEAD_ARREARS, "张三", "2024-12-05", "卫健", "WJ3"], [broken(WEAK), "王伟", "2024-12-01", "公安", "GA4"],
        [DEAD_TWO_REGIONS, "吴一", "2024-12-20", "公安", "GA5"], [REVERSED, "吴二", "2024-11-20", "公安", "GA6"],
        [DEAD_INVALID, "郑一", "2024-12-02", "公安", "GA7"], [DEAD_TYPO_OWNER, "冯一", "2024-11-10", "民政", "MZ8"],
        [TYPO_DEATH, "褚一", "2024-12-03", "卫健", "WJ9"],
        # deaths of people the payroll never paid (the death registry covers everyone)
        *[[pid("420101", f"193{i}0101", "011"), f"陈{i}", "2024-06-01", "卫健", f"WJ{10 + i}"] for i in range(6)]])
    _write(landing / "household.csv", ["person_id", "name", "birth_date", "household_id", "region_code", "status"], [
        [p, n, f"{p[6:10]}-{p[10:12]}-{p[12:14]}", f"H{i}", p[:6], "正常"]
        for i, (p, n) in enumerate(NAMES.items()) if p not in UNREGISTERED])
    _write(landing / "prisoners.csv", ["person_id", "name", "admission_date", "release_date", "sentence_type"], [
        [PRISON, "李一", "2024-06-01", "", "有期徒刑"], [RELEASED, "李二", "2024-03-01", "2024-12-20", "有期徒刑"],
        [PROBATION, "李三", "2024-05-01", "", "缓刑"], [ADMITTED_JAN, "李四", "2025-01-05", "", "拘役"],
        [PRISON_INVALID, "郑二", "2024-07-01", "", "有期徒刑"],
        # inmates the payroll never paid
        *[[pid("420101", f"198{i}0202", "033"), f"林{i}", "2023-03-01", "", "有期徒刑"] for i in range(6)]])
    run_pipeline(RunConfig(input=landing, output=output, as_of=date(2025, 1, 5)))
    return output


@pytest.fixture()
def payroll(tmp_path) -> Path:
    path = tmp_path / "payroll_202501.csv"
    rows = [[pid_, p, NAMES[p], s, r, period, amount, ""] for pid_, (p, s, r, period, amount) in PAYROLL.items()]
    _write(path, HEAD, rows + BAD_ROWS)
    return path


