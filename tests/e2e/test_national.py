"""National mode: several provinces' extracts in one job. The landing folder holds one folder per
extract and in it one folder per province (``pension_payments/11/…``, ``deaths/44/…``), so a
person paid in one province and recorded dead in another, or paid by two provinces in the same
month, is found, and each province's own planted cases still are."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fraudwatch_synth import generate
from pipelines import stages
from pipelines.contracts import load_contracts
from pipelines.pipeline import RunConfig

AS_OF = date(2026, 1, 31)


def _province_layout(source: Path, landing: Path, province: str) -> None:
    """The extract files of ``source`` (a province's landing folder) as ``<extract>/<province>/<file>``."""
    extracts = sorted(load_contracts(), key=len, reverse=True)  # every extract the contracts define
    for path in sorted(source.glob("*.csv")):
        extract = next(e for e in extracts if path.name.startswith(e))
        target = landing / extract / province / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def national(tmp_path_factory):
    source = tmp_path_factory.mktemp("province-11")
    generate(persons=300, months=6, seed=5, out=source, fmt="csv", messy=False)
    landing = tmp_path_factory.mktemp("national")
    _province_layout(source, landing, "11")
    truth = pq.read_table(source / "ground_truth.parquet").to_pylist()
    planted = {r["subject_id"] for r in truth}
    dead = {r["person_id"] for r in csv.DictReader((source / "deaths.csv").open(encoding="utf-8"))}
    months = [list(csv.DictReader(p.open(encoding="utf-8"))) for p in sorted(source.glob("pension_payments_*.csv"))]
    every_month = set.intersection(*({r["person_id"] for r in m} for m in months))
    clean = sorted(p for p in every_month - planted - dead if not p.endswith("X"))
    died, twice = clean[0], clean[1]
    may = next(r for r in months[4] if r["person_id"] == twice)
    # Province 44 records the death of a person province 11 keeps paying, and pays another
    # province-11 pensioner in May as well.
    _write(landing / "deaths" / "44" / "deaths.csv",
           [{"person_id": died, "name": next(r["name"] for r in months[0] if r["person_id"] == died),
             "death_date": "2024-02-10", "source": "公安", "record_id": "GA44202402100001"}])
    _write(landing / "pension_payments" / "44" / "pension_payments_202405.csv",
           [{**may, "payment_id": "4420240500000001", "region_code": "440106", "bank_account": "6222440600000001"}])
    summary = stages.run_pipeline(RunConfig(input=landing, output=tmp_path_factory.mktemp("out"), as_of=AS_OF))
    suspects = pq.read_table(summary.suspects).to_pylist()
    return {"truth": truth, "died": died, "twice": twice, "may": may, "suspects": suspects, "summary": summary}


@pytest.mark.slow
def test_a_death_recorded_in_another_province_is_found(national):
    hit = [s for s in national["suspects"] if s["category"] == "paid_after_death" and s["subject_id"] == national["died"]]
    assert len(hit) == 1
    assert (hit[0]["first_period"], hit[0]["last_period"]) == ("2024-03", "2024-06")


@pytest.mark.slow
def test_a_pension_paid_by_two_provinces_in_one_month_is_found(national):
    hit = [s for s in national["suspects"]
           if s["category"] == "duplicate_cross_region" and s["subject_id"] == national["twice"]]
    assert len(hit) == 1
    assert str(hit[0]["amount_at_risk"]) == national["may"]["amount"]
    assert "440106" in hit[0]["evidence"]


@pytest.mark.slow
def test_each_provinces_planted_cases_are_still_found(national):
    found = {(s["category"], s["subject_id"], str(s["amount_at_risk"])) for s in national["suspects"]}
    missing = [t for t in national["truth"] if (t["category"], t["subject_id"], str(t["amount_at_risk"])) not in found]
    assert missing == []
    inputs = {f["file"] for f in json.loads(
        (national["summary"].run_dir / "manifest.json").read_text(encoding="utf-8"))["inputs"]}
    assert {"deaths/11/deaths.csv", "deaths/44/deaths.csv", "pension_payments/44/pension_payments_202405.csv"} <= inputs
