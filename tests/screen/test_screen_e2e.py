"""The loop on generated data shaped like real exports: synth (messy landing folder, the next
month's payroll with planted holds and near misses) → full audit → `fraudwatch screen` → the
holds are exactly the planted ones, and exactly what the rules find once the payroll is paid."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from benchmarks.screen_oracle import against_rules, against_truth, audit_with_payroll
from fraudwatch_synth import generate
from fraudwatch_synth.payroll import KINDS, TRUTH_FILE
from pipelines.cli import app
from pipelines.pipeline import RunConfig
from pipelines.stages import run_pipeline

pytestmark = pytest.mark.slow
AS_OF = date(2024, 7, 5)  # screening the 2024-07 payroll after six months audited


@pytest.fixture(scope="module")
def screened(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(landing, payroll file, output, screen folder)."""
    root = tmp_path_factory.mktemp("screen_e2e")
    summary = generate(persons=2500, months=6, seed=11, out=root / "landing", messy=True,
                       payroll_next=root / "payroll")
    run_pipeline(RunConfig(input=root / "landing", output=root / "out", as_of=AS_OF))
    result = CliRunner().invoke(app, ["screen", "--payroll", str(summary.payroll_next), "--output", str(root / "out"),
                                      "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    assert "rows held" in result.output and "paid_after_death" in result.output
    return root / "landing", summary.payroll_next, root / "out", next((root / "out" / "screens").iterdir())


def test_the_holds_are_exactly_the_planted_ones_and_no_near_miss(screened):
    _, payroll, output, screen_dir = screened
    holds = pl.read_parquet(screen_dir / "holds.parquet")
    truth = pl.read_parquet(payroll.parent / TRUTH_FILE)
    check = against_truth(holds, truth, pl.read_parquet(output / "latest" / "suspects.parquet"))
    assert check["exact"] and not check["held_audit_suspects"], check
    assert set(holds["hold_reason"]) == {v[0] for v in KINDS.values() if v}
    manifest = json.loads((screen_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["audit_run"]["run_id"] == (output / "jobs" / "full-audit" / "latest").resolve().name
    typos = ("hold_new_typo_id", "hold_died_paid_under_typo_id")  # new IDs in the payroll, each linked once
    assert manifest["new_ids"]["links"] == truth.filter(pl.col("kind").is_in(typos)).height


def test_the_planted_persons_are_clean_in_the_audit(screened):
    """The payroll's cases add facts to the landing folder (a death in the last month, an admission,
    certifications) that the audit of the generated months must not report — except the passed
    certification after a death, which the audit reports as certified_after_death (and nothing else)."""
    _, payroll, output, _ = screened
    suspects = pl.read_parquet(output / "latest" / "suspects.parquet")
    truth = pl.read_parquet(payroll.parent / TRUTH_FILE)
    certified = truth.filter(pl.col("kind") == "hold_certified_after_death")["person_id"].to_list()
    planted = suspects.filter(pl.col("subject_id").is_in(truth["person_id"].to_list()))
    assert certified and sorted(planted.select("category", "subject_id").iter_rows()) == \
        sorted(("certified_after_death", p) for p in certified)


def test_the_screen_holds_exactly_what_the_rules_find_once_the_payroll_is_paid(screened, tmp_path):
    landing, payroll, _, screen_dir = screened
    suspects = audit_with_payroll(landing, payroll, tmp_path, AS_OF)
    check = against_rules(pl.read_parquet(screen_dir / "holds.parquet"), payroll, suspects)
    assert check["equal"] and check["suspects_with_truncated_evidence"] == 0, check
