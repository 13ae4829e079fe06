"""National mode: several provinces' extracts in one job. A generated national set
(``synth --provinces``) lands as one folder per extract and in it one folder per province
(``pension_payments/11/…``, ``deaths/44/…``); one run finds every planted case of every province
exactly — the pensions paid by two provinces in one month and the deaths registered in another
province among them — and none of the near misses (a move between provinces, a death registered
elsewhere after the last payment)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
from engines import engine_params

from fraudwatch_synth import generate_national
from pipelines import stages
from pipelines.pipeline import RunConfig

AS_OF = date(2026, 1, 31)
TRUTH_COLUMNS = "category, subject_id, amount_at_risk, first_period, last_period, region_code"
# what the generator's truth covers (the weak death match is in the identity truth too)
CATEGORIES = ("paid_after_death", "subsidy_after_death", "duplicate_cross_region", "duplicate_cross_scheme",
              "paid_during_imprisonment", "refund_retained", "duplicate_identity", "duplicate_payment_same_period",
              "pensioner_over_110", "shared_bank_account", "certified_after_death", "paid_after_death_weak_match")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("national")
    generate_national("11,44,51", persons=300, months=6, seed=5, out=folder)
    return folder


# Both engines: the Spark run of this national set (3 × 300 persons) takes ~80 s on an idle 2-core
# machine (2026-12-01; 5.4 min when the machine was loaded), the same tests as DuckDB's.
ENGINES = engine_params()


@pytest.fixture(scope="module", params=ENGINES)
def national(request, landing, tmp_path_factory):
    if request.param == "spark":
        request.getfixturevalue("spark")  # the test session's SparkSession: the run reuses it
    output = tmp_path_factory.mktemp(f"out-{request.param}")
    summary = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF, engine=request.param))
    return landing, summary


def _query(sql: str, landing: Path, suspects: Path) -> list[tuple]:
    con = duckdb.connect()
    for name in ("ground_truth", "ground_truth_identity", "near_misses", "cross_province_cases"):
        con.execute(f"CREATE VIEW {name} AS FROM read_parquet('{landing / name}.parquet')")
    con.execute(f"CREATE VIEW s AS FROM read_parquet('{suspects}') "
                f"WHERE category IN ({', '.join(repr(c) for c in CATEGORIES)})")
    return con.execute(sql).fetchall()


@pytest.mark.slow
def test_every_planted_case_of_every_province_is_reported_exactly_and_nothing_else(national):
    landing, summary = national
    wrong = _query(f"""
        WITH expected AS (SELECT {TRUTH_COLUMNS} FROM ground_truth
                          UNION ALL SELECT {TRUTH_COLUMNS} FROM ground_truth_identity),
        reported AS (SELECT {TRUTH_COLUMNS} FROM s)
        (SELECT 'missing', * FROM (FROM expected EXCEPT ALL FROM reported))
        UNION ALL (SELECT 'unexpected', * FROM (FROM reported EXCEPT ALL FROM expected))""", landing, summary.suspects)
    assert wrong == []


@pytest.mark.slow
def test_cross_province_cases_are_found_and_their_near_misses_are_not(national):
    landing, summary = national
    planted = _query(f"""
        SELECT x.kind, {TRUTH_COLUMNS.replace('category', 'g.category').replace('subject_id', 'g.subject_id')}
        FROM cross_province_cases x JOIN ground_truth g USING (subject_id) WHERE x.must_fire
        ORDER BY ALL""", landing, summary.suspects)
    found = _query(f"""
        SELECT x.kind, {TRUTH_COLUMNS.replace('category', 's.category').replace('subject_id', 's.subject_id')}
        FROM cross_province_cases x JOIN s USING (subject_id) WHERE x.must_fire
        ORDER BY ALL""", landing, summary.suspects)
    assert found == planted
    assert {(k, c) for k, c, *_ in planted} == {("xp_paid_by_two_provinces", "duplicate_cross_region"),
                                               ("xp_death_registered_elsewhere", "paid_after_death")}
    # the improper payments are the other province's; the evidence names its county
    other = _query("""
        SELECT bool_and(starts_with(s.region_code, x.other_province)
                        AND contains(s.evidence, '"improper_regions":["' || x.other_province)), count(*)
        FROM cross_province_cases x JOIN s USING (subject_id) WHERE x.kind = 'xp_paid_by_two_provinces'""",
                   landing, summary.suspects)
    assert other == [(True, 6)]
    flagged = _query("""
        SELECT x.kind, x.subject_id FROM cross_province_cases x JOIN s USING (subject_id, category)
        WHERE NOT x.must_fire""", landing, summary.suspects)
    assert flagged == []
    assert _query("SELECT count(*) FROM cross_province_cases WHERE NOT must_fire", landing, summary.suspects)[0][0] == 12


@pytest.mark.slow
def test_every_province_file_is_its_own_lake_entry(national):
    _, summary = national
    inputs = {f["file"] for f in json.loads((summary.run_dir / "manifest.json").read_text(encoding="utf-8"))["inputs"]}
    assert {"deaths/11/deaths.csv", "deaths/44/deaths.csv", "deaths/51/deaths.csv",
            "pension_payments/44/pension_payments_202405.csv"} <= inputs
    assert len(inputs) == 3 * (6 + 7)  # each province: six months of payments and seven other extracts
