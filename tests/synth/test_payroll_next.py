"""fraudwatch synth --payroll-next: the next month's payroll with its truth; same seed, same bytes;
without the option nothing of it is written."""

from __future__ import annotations

import polars as pl
from typer.testing import CliRunner

from fraudwatch_synth import generate
from fraudwatch_synth.payroll import CERTIFICATIONS_FILE, DEATHS_FILE, KINDS, PRISONERS_FILE, TRUTH_FILE, cases_per_kind
from pipelines.cli import app


def test_the_payroll_follows_the_last_month_with_every_kind_planted(tmp_path):
    result = CliRunner().invoke(app, ["synth", "--persons", "800", "--months", "4", "--seed", "3", "--out",
                                      str(tmp_path / "in"), "--payroll-next", str(tmp_path / "pay")])
    assert result.exit_code == 0, result.output
    payroll = pl.read_csv(tmp_path / "pay" / "pension_payments_202405.csv", infer_schema=False)
    truth = pl.read_parquet(tmp_path / "pay" / TRUTH_FILE)
    assert set(payroll["period"]) == {"2024-05"} and payroll["payment_id"].is_unique().all()
    assert set(truth["kind"]) == set(KINDS)
    per_kind = dict(truth.group_by("kind").len().iter_rows())
    assert all(per_kind[k] == cases_per_kind(800) * (2 if k == "near_reversed_and_repaid" else 1) for k in KINDS)
    assert set(truth["payment_id"]) <= set(payroll["payment_id"])
    holds = truth.filter(pl.col("expect") == "hold")
    assert set(holds["hold_reason"]) == {v[0] for v in KINDS.values() if v}
    assert (tmp_path / "in" / DEATHS_FILE).exists() and (tmp_path / "in" / PRISONERS_FILE).exists()
    certs = pl.read_csv(tmp_path / "in" / CERTIFICATIONS_FILE, infer_schema=False)
    deaths = pl.read_csv(tmp_path / "in" / DEATHS_FILE, infer_schema=False)
    dated = certs.join(deaths, on="person_id").join(truth, on="person_id")
    # proof of life: passed after the death (held as certified_after_death); failed after it, or passed
    # before it (both held as paid_after_death)
    kinds = {(r["kind"], r["result"], r["cert_date"] > r["death_date"]) for r in dated.iter_rows(named=True)}
    assert kinds == {("hold_certified_after_death", "通过", True), ("hold_died_failed_certification_after", "未通过", True),
                     ("hold_died_certified_before", "通过", False)}


def test_same_seed_same_bytes_and_nothing_without_the_option(tmp_path):
    for name in ("a", "b"):
        generate(persons=500, months=4, seed=9, out=tmp_path / name / "in", payroll_next=tmp_path / name / "pay")
    for rel in ("pay/pension_payments_202405.csv", f"pay/{TRUTH_FILE}", f"in/{DEATHS_FILE}", f"in/{PRISONERS_FILE}",
                f"in/{CERTIFICATIONS_FILE}"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    generate(persons=500, months=4, seed=9, out=tmp_path / "a" / "in")  # again, without the payroll
    assert not (tmp_path / "a" / "in" / DEATHS_FILE).exists()
    assert (tmp_path / "a" / "in" / "deaths.csv").read_bytes() == (tmp_path / "b" / "in" / "deaths.csv").read_bytes()
