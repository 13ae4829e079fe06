"""Malformed files run the way `fraudwatch run` runs by default (a Prefect flow on Prefect's
ephemeral server): the console, Prefect's logs and Prefect's own database hold no planted
personal data; errors name file, row and column instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import PLANTED, assert_no_personal_data, fraudwatch, landing, payments_csv

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def malformed_quotes(folder: Path) -> None:
    rows = payments_csv(30).splitlines(True)
    rows[5] = rows[5].replace("欧阳秘密", '"欧阳"秘密"x')
    (folder / "pension_payments.csv").write_text("".join(rows), encoding="utf-8")


# One Prefect run costs minutes on a loaded machine (server start, ingest retries): the malformed-quote
# case of issue 15 runs here; the same failures without Prefect are in test_landing and test_csv_shape.
@pytest.mark.parametrize("damage", [malformed_quotes])
def test_malformed_files_under_prefect_leak_no_personal_data(tmp_path, damage):
    folder = landing(tmp_path / "landing")
    damage(folder)
    home = tmp_path / "prefect-home"
    proc = fraudwatch("run", "--input", str(folder), "--output", str(tmp_path / "out"), "--as-of", "2025-01-31",
                      "--limit", "csv_max_field_bytes=300",
                      env={"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "DEBUG"}, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "pension_payments.csv" in out
    assert_no_personal_data(out, "the console")
    stored = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in stored), f"no Prefect database under {home}: {stored}"
    for path in stored:  # the sqlite database (and its WAL), logs, results: raw bytes
        data = path.read_bytes()
        for value in PLANTED:
            assert value.encode() not in data, f"{path} holds planted personal data {value!r}"
