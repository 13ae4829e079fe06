"""The loop on sample_data: full audit → screen a next-month payroll with `fraudwatch screen` → holds found."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.pipeline import RunConfig
from pipelines.stages import run_pipeline

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("screen_e2e") / "out"
    run_pipeline(RunConfig(input=SAMPLE, output=output, as_of=date(2025, 1, 31)))
    return output


def _next_month_payroll(output: Path, path: Path) -> None:
    """January 2025: every December payment paid again (new payment ids), as a Parquet payroll."""
    con = duckdb.connect(str(output / "warehouse.duckdb"), read_only=True)
    con.execute(f"""COPY (SELECT 'N' || payment_id AS payment_id, person_id, name_raw AS name, scheme, region_code,
                                 '2025-01' AS period, CAST(amount AS VARCHAR) AS amount
                          FROM pension_payments WHERE period = DATE '2024-12-01' ORDER BY payment_id)
                    TO '{path}' (FORMAT parquet)""")
    con.close()


def test_full_audit_then_screen_next_month_payroll_finds_the_holds(audited, tmp_path):
    payroll = tmp_path / "pension_payments_202501.parquet"
    _next_month_payroll(audited, payroll)
    result = CliRunner().invoke(app, ["screen", "--payroll", str(payroll), "--output", str(audited),
                                      "--as-of", "2025-01-05"])
    assert result.exit_code == 0, result.output
    assert "rows held" in result.output and "paid_after_death" in result.output
    screen_dir = next((audited / "screens").iterdir())
    holds = pl.read_parquet(screen_dir / "holds.parquet")
    manifest = json.loads((screen_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["audit_run"]["run_id"] == (audited / "latest").resolve().name
    assert manifest["counts"]["rows_held"] == holds.height > 0
    assert set(holds["hold_reason"]) >= {"paid_after_death", "paid_during_imprisonment", "duplicate_cross_region",
                                         "duplicate_identity"}
    # every planted paid-after-death payee still paid in December is held in January, and every
    # payee held as dead has a death record before January
    truth = pl.read_parquet(SAMPLE / "ground_truth.parquet")
    con = duckdb.connect(str(audited / "warehouse.duckdb"), read_only=True)
    paid_dec = {p for (p,) in con.execute(
        "SELECT DISTINCT person_id FROM pension_payments WHERE period = DATE '2024-12-01'").fetchall()}
    dead = {p for (p,) in con.execute(
        "SELECT person_id FROM person_deaths WHERE death_month < DATE '2025-01-01' "
        "UNION SELECT matched_person_id FROM death_matches WHERE status = 'matched'").fetchall()}
    con.close()
    held = set(holds.filter(pl.col("hold_reason") == "paid_after_death")["person_id"])
    planted = set(truth.filter(pl.col("category") == "paid_after_death")["subject_id"])
    assert planted & paid_dec <= held <= dead
