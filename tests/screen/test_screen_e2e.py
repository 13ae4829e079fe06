"""The loop on sample_data: full audit → screen a next-month payroll with `fraudwatch screen` → holds found."""

from __future__ import annotations

import json
import shutil
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


def _published(output: Path):
    """The audit run's relations, as an analyst opens them: its views.sql."""
    con = duckdb.connect()
    con.execute((output / "latest" / "views.sql").read_text(encoding="utf-8"))
    return con


def _next_month_payroll(output: Path, path: Path) -> None:
    """January 2025: every December payment paid again (new payment ids), as a Parquet payroll."""
    con = _published(output)
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
    con = _published(audited)
    paid_dec = {p for (p,) in con.execute(
        "SELECT DISTINCT person_id FROM pension_payments WHERE period = DATE '2024-12-01'").fetchall()}
    dead = {p for (p,) in con.execute(
        "SELECT person_id FROM person_deaths WHERE death_month < DATE '2025-01-01' "
        "UNION SELECT matched_person_id FROM death_matches WHERE status = 'matched'").fetchall()}
    con.close()
    held = set(holds.filter(pl.col("hold_reason") == "paid_after_death")["person_id"])
    planted = set(truth.filter(pl.col("category") == "paid_after_death")["subject_id"])
    assert planted & paid_dec <= held <= dead


# where each rule's evidence lists the payments it counts as at risk
_AT_RISK_IDS = {
    "paid_after_death": lambda e: e["payment_ids"],
    "paid_after_death_weak_match": lambda e: e["payment_ids"],
    "paid_during_imprisonment": lambda e: e["payment_ids"],
    "duplicate_cross_region": lambda e: e["improper_payment_ids"],
    "duplicate_cross_scheme": lambda e: e["resident_payment_ids"],
    "duplicate_identity": lambda e: e["improper_payment_ids"],
    "duplicate_payment_same_period": lambda e: [i for d in e["duplicates"] for i in d["duplicate_payment_ids"]],
}


def test_the_screen_holds_exactly_what_the_rules_find_once_the_payroll_is_paid(audited, tmp_path):
    """The oracle: audit the landing folder *with* the payroll as paid, and the payroll rows the
    rules count as at risk (by their evidence) are exactly the rows the screen held, reason by reason."""
    payroll = tmp_path / "payroll" / "pension_payments_202501.parquet"
    payroll.parent.mkdir()
    _next_month_payroll(audited, payroll)
    result = CliRunner().invoke(app, ["screen", "--payroll", str(payroll), "--output", str(audited),
                                      "--as-of", "2025-01-31"])
    assert result.exit_code == 0, result.output
    screen_dir = sorted((audited / "screens").iterdir())[-1]
    held = {(r["payment_id"], reason) for r in pl.read_parquet(screen_dir / "holds.parquet").iter_rows(named=True)
            for reason in r["hold_reasons"].split(",")}

    landing = tmp_path / "landing"
    landing.mkdir()
    for path in SAMPLE.iterdir():
        shutil.copyfile(path, landing / path.name)  # the landing folder refuses links
    shutil.copyfile(payroll, landing / payroll.name)
    paid = run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=date(2025, 1, 31)))
    suspects = pl.read_parquet(paid.suspects)
    found = set()
    for row in suspects.filter(pl.col("rule_id").is_in(list(_AT_RISK_IDS))).iter_rows(named=True):
        evidence = json.loads(row["evidence"])
        assert evidence.get("payment_ids_complete", True) and evidence.get("duplicates_complete", True)
        found |= {(i, row["category"]) for i in _AT_RISK_IDS[row["rule_id"]](evidence) if i.startswith("N")}
    positive = set(pl.read_parquet(payroll).filter(pl.col("amount").cast(pl.Decimal(18, 2)) > 0)["payment_id"])
    found = {(i, c) for i, c in found if i in positive}
    assert held == found
    assert {c for _, c in held} >= {"paid_after_death", "paid_during_imprisonment", "duplicate_cross_region",
                                    "duplicate_identity", "duplicate_cross_scheme"}
