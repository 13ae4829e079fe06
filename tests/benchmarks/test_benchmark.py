"""The benchmark's pure parts: the baselines' identifier/money handling agrees with the pipeline's
normalisers, both baselines report exactly the pipeline's suspects on a small synth set, the
comparison and the report do what they say, and the pandas child reports running out of memory."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import baseline_pandas, baseline_sql, run_benchmark  # noqa: E402
from pipelines.normalize import firm_id_parts, person_id_parts  # noqa: E402

AS_OF = date(2026, 1, 31)

PERSON_IDS = [
    "11010119310704454X",   # valid, check X
    "11010119310704454x",   # lower-case x
    "110101193107150975",   # valid
    "110101193107150976",   # wrong check digit
    "110101310704454",      # legacy 15 digits → upgraded
    "110101311304454",      # 15 digits, month 13 → invalid
    "11010119311304454X",   # 18 chars, impossible birth date
    " 110101193107150975 ", # padded
    "12345",                # garbage
    "ABCDEFGHIJKLMNOPQR",
    "11010117990101001X",   # born 1799 → invalid
]
USCCS = ["91110102184258347M", "914201163918236449", "914201163918237163", "91110102184258347N",
         "91110102184258347", "9111010218425834IM", "91110102184258347m"]


def pipeline_person_ids(raw: list[str]) -> list[tuple]:
    out = pl.DataFrame({"x": raw}).select(person_id_parts(pl.col("x")).alias("p")).unnest("p")
    return list(zip(out["value"].to_list(), out["valid"].to_list()))


def test_pandas_person_id_canonicalisation_matches_the_pipeline():
    assert [baseline_pandas.canonical_person_id(x) for x in PERSON_IDS] == pipeline_person_ids(PERSON_IDS)


def test_sql_person_id_canonicalisation_matches_the_pipeline():
    con = baseline_sql.connect()
    values = ", ".join(f"({i}, '{x}')" for i, x in enumerate(PERSON_IDS))
    source = baseline_sql._with_person_id(f"(SELECT * FROM (VALUES {values}) AS t(i, person_id))")
    got = con.execute(f"SELECT person_id, person_id_valid FROM {source} ORDER BY i").fetchall()
    assert got == pipeline_person_ids(PERSON_IDS)


def test_uscc_checks_match_the_pipeline():
    expected = pl.DataFrame({"x": USCCS}).select(firm_id_parts(pl.col("x")).struct.field("valid"))["valid"].to_list()
    assert [baseline_pandas.uscc_valid(x) for x in USCCS] == expected
    con = baseline_sql.connect()
    got = [con.execute("SELECT fw_uscc_valid(upper(fw_text(?)))", [x]).fetchone()[0] for x in USCCS]
    assert got == expected


def test_money_to_fen_is_exact():
    s = pd.Series(["1234.5", "-3.07", "12", "0.01", "99999999.99", "+7.10", "-0.5"], dtype="str")
    assert baseline_pandas.to_fen(s).tolist() == [123450, -307, 1200, 1, 9999999999, 710, -50]


def _suspects(path: Path, rows: list[tuple]) -> Path:
    pq.write_table(pa.table({
        "category": [r[0] for r in rows], "subject_id": [r[1] for r in rows],
        "amount_at_risk": pa.array([r[2] for r in rows], pa.decimal128(18, 2)),
        "rule_id": [r[3] if len(r) > 3 else r[0] for r in rows],
    }), path)
    return path


def test_compare_suspects_counts_both_directions_and_ignores_other_categories(tmp_path):
    from decimal import Decimal as D
    a = _suspects(tmp_path / "a.parquet", [("paid_after_death", "1", D("10.00")), ("refund_retained", "F", D("5.00")),
                                           ("shared_bank_account", "X", D("1.00")),
                                           ("paid_after_death", "2", D("7.00"), "paid_after_death_weak_match")])
    b = _suspects(tmp_path / "b.parquet", [("paid_after_death", "1", D("10.00")), ("refund_retained", "F", D("5.01"))])
    c = run_benchmark.compare_suspects(a, b)
    assert not c["equal"] and c["only_in_pipeline"] == 1 and c["only_in_expected"] == 1 and c["rows"] == 2
    assert c["examples_only_in_expected"] == [["refund_retained", "F", "5.01"]]
    assert c["add_on_rule_rows"] == {"paid_after_death_weak_match": 1}  # outside the baselines, counted apart
    assert run_benchmark.compare_suspects(a, a)["equal"]


@pytest.mark.slow
def test_both_baselines_equal_the_pipeline_on_a_small_synth_set(tmp_path):
    """The real correctness test: on generated data (every category planted, near misses, legacy
    15-digit IDs), the hand-written SQL and the pandas code find exactly the pipeline's suspects
    (category, subject_id, amount_at_risk) -- and the synth ground truth."""
    from pipelines.pipeline import RunConfig
    from pipelines.stages import run_pipeline
    from fraudwatch_synth import generate

    landing = tmp_path / "landing"
    generate(persons=1500, months=12, seed=3, out=landing, fmt="csv", messy=False)
    summary = run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=AS_OF))

    baseline_sql.convert(landing, tmp_path / "parquet")
    sql_out = tmp_path / "sql.parquet"
    figures = baseline_sql.run(tmp_path / "parquet", AS_OF, sql_out)
    assert set(figures["rows_per_category"]) == set(baseline_sql.CATEGORIES)

    frame, _ = baseline_pandas.run(landing, AS_OF)
    pd_out = tmp_path / "pandas.parquet"
    baseline_pandas.write(frame, pd_out)

    vs_sql = run_benchmark.compare_suspects(summary.suspects, sql_out)
    assert vs_sql["equal"], vs_sql
    assert set(vs_sql["rows_per_category"]) == set(baseline_sql.CATEGORIES)
    assert run_benchmark.compare_suspects(pd_out, sql_out)["equal"]
    assert run_benchmark.compare_suspects(sql_out, landing / "ground_truth.parquet")["equal"]


def test_pandas_child_reports_running_out_of_memory(tmp_path):
    row = "2024010000000001,11010119310704454X,110,110101,2024-01,2341.73\n"
    (tmp_path / "pension_payments.csv").write_text("payment_id,person_id,scheme,region_code,period,amount\n" + row * 1_000_000)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.baseline_pandas", "--landing", str(tmp_path), "--as-of", "2025-01-01",
         "--max-memory-gb", "0.3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout)["status"] == "out_of_memory"
    assert proc.returncode == baseline_pandas.OOM_EXIT or "MemoryError" in proc.stderr, proc.stderr[-2000:]


def _fake_result(persons: int, scale: float) -> dict:
    rules = [{"id": c, "rows": 1, "seconds": 1.0 * scale} for c in run_benchmark.CATEGORIES] + \
            [{"id": "shared_bank_account", "rows": 0, "seconds": 4.0 * scale}]
    return {
        "persons": persons, "months": 12, "seed": 7, "input_rows": {"pension_payments": 12 * persons, "deaths": persons // 10},
        "input_bytes": persons * 1000, "load_before": [0.5, 0.5, 0.5], "synth": {"reused": True},
        "pipeline": {"seconds": 100 * scale, "timings_seconds": {"ingest": 50 * scale, "detect": 10 * scale},
                     "stage_peak_rss_mb": {"ingest": 1000, "detect": 2000}, "rows_read": 12 * persons,
                     "rules": rules, "process": {"seconds": 101 * scale, "peak_rss_mb": 2000}},
        "sql": {"figures": {"seconds": 5.0 * scale}, "peak_rss_mb": 900},
        "parquet_conversion": {"seconds": 20 * scale, "peak_rss_mb": 800},
        "pandas": {"status": "ok", "seconds": 200 * scale, "peak_rss_mb": 9000,
                   "figures": {"seconds": 200 * scale, "seconds_per_step": {c: 10 * scale for c in run_benchmark.CATEGORIES}}},
        "pipeline_vs_sql": {"equal": True, "rows": 6},
    }


def test_report_ratios():
    results = [_fake_result(1_000_000, 1.0), _fake_result(3_000_000, 3.0)]
    f = run_benchmark.figures_row(results[0])
    assert f["detect_vs_sql"] == pytest.approx(2.0) and f["six_rules_vs_sql"] == pytest.approx(6 / 5)
    assert f["pandas_vs_detect"] == pytest.approx(20.0) and f["pandas_checks_vs_six_rules"] == pytest.approx(10.0)
    text = run_benchmark.render(results, {"cpu": "test", "cores": 2, "ram_gb": 24})
    assert "| pipeline: ingest | 50.0 | – | 0.98 |" in text
    assert "| detect stage (all rules) / SQL floor | 2.00× | 2.00× |" in text
    assert "3.00 (3.00)" in text  # time grows with the rows
    assert "yes (6 rows)" in text
    json.dumps(results)  # the figures file is plain JSON
