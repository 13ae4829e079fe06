"""End to end on generated data: every planted case found with its exact amount, no near miss,
every planted bad row quarantined, reruns idempotent, failed runs invisible."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines import stages
from pipelines.errors import ExtractError
from pipelines.pipeline import RunConfig
from pipelines.publish import latest_run_id
from fraudwatch_synth import generate

AS_OF = date(2026, 1, 31)
SPEC_CATEGORIES = {"paid_after_death", "subsidy_after_death", "duplicate_cross_region",
                   "duplicate_cross_scheme", "paid_during_imprisonment", "refund_retained", "duplicate_identity",
                   "duplicate_payment_same_period", "pensioner_over_110", "shared_bank_account", "certified_after_death"}
TRUTH_COLUMNS = "category, subject_id, amount_at_risk, first_period, last_period, region_code"


@pytest.fixture(scope="module", params=["csv-messy", "parquet"])
def landing(request, tmp_path_factory) -> Path:
    fmt, _, messy = request.param.partition("-")
    folder = tmp_path_factory.mktemp(request.param)
    generate(persons=600, months=8, seed=11, out=folder, fmt=fmt, messy=bool(messy))
    return folder


@pytest.fixture(scope="module")
def first_run(landing, tmp_path_factory):
    output = tmp_path_factory.mktemp("out")
    summary = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    return landing, output, summary


def query(sql: str, **files: Path) -> list[tuple]:
    con = duckdb.connect()
    for name, path in files.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
    return con.execute(sql).fetchall()


def test_every_planted_case_is_reported_exactly_and_nothing_else(first_run):
    landing, _, summary = first_run
    truth = {"g": landing / "ground_truth.parquet", "gi": landing / "ground_truth_identity.parquet"}
    wrong = query(
        f"""
        WITH expected AS (SELECT {TRUTH_COLUMNS} FROM g UNION ALL SELECT {TRUTH_COLUMNS} FROM gi),
        reported AS (SELECT {TRUTH_COLUMNS} FROM s WHERE category IN ({",".join(f"'{c}'" for c in sorted(SPEC_CATEGORIES))}))
        (SELECT 'missing', * FROM (FROM expected EXCEPT ALL FROM reported))
        UNION ALL (SELECT 'unexpected', * FROM (FROM reported EXCEPT ALL FROM expected))
        """,
        s=summary.suspects, **truth,
    )
    assert wrong == []
    planted = query("SELECT DISTINCT category FROM g UNION SELECT DISTINCT category FROM gi", **truth)
    assert {c for (c,) in planted} == SPEC_CATEGORIES


def test_weak_death_matches_are_reported_with_lower_severity_and_explained(first_run):
    landing, _, summary = first_run
    rows = query("SELECT s.severity, s.evidence FROM s JOIN gi USING (rule_id, subject_id) "
                 "WHERE s.rule_id = 'paid_after_death_weak_match'",
                 s=summary.suspects, gi=landing / "ground_truth_identity.parquet")
    assert rows and all(severity != "high" for severity, _ in rows)
    assert all("birth" in evidence or "出生" in evidence for _, evidence in rows)


@pytest.mark.parametrize("near_misses", ["near_misses.parquet", "near_misses_identity.parquet"])
def test_no_near_miss_is_reported(first_run, near_misses):
    landing, _, summary = first_run
    fired = query("SELECT n.* FROM n JOIN s ON s.subject_id = n.subject_id AND s.category = n.category_it_must_not_fire",
                  s=summary.suspects, n=landing / near_misses)
    assert fired == []
    assert query("SELECT count(*) FROM n", n=landing / near_misses)[0][0] > 3


def test_every_planted_bad_row_is_quarantined_with_file_row_and_reason(first_run):
    landing, _, summary = first_run
    planted = query("SELECT file, source_row, reason FROM b ORDER BY ALL", b=landing / "planted_bad_rows.parquet")
    got = query(
        "SELECT source_file, source_row, split_part(reason, ':', 1) FROM read_parquet('"
        + str(summary.quarantine_dir) + "/*.parquet') ORDER BY ALL"
    ) if planted else []
    assert got == planted


def test_suspect_rows_carry_every_spec_field(first_run):
    _, _, summary = first_run
    rows = query("SELECT count(*), count(*) FILTER (WHERE reason IS NULL OR evidence IS NULL OR subject_name IS NULL"
                 " OR region_code IS NULL), min(status), max(status) FROM s", s=summary.suspects)
    total, incomplete, lo, hi = rows[0]
    assert total > 0 and incomplete == 0 and lo == hi == "new"
    evidence = query("SELECT evidence FROM s LIMIT 1", s=summary.suspects)[0][0]
    assert isinstance(json.loads(evidence), dict)


def test_manifest_records_inputs_rules_and_counts(first_run):
    landing, _, summary = first_run
    manifest = json.loads((summary.run_dir / "manifest.json").read_text(encoding="utf-8"))
    files = {i["file"] for i in manifest["inputs"]}
    assert any(f.startswith("pension_payments") for f in files)
    assert all(len(i["sha256"]) == 64 and i["size_bytes"] > 0 for i in manifest["inputs"])
    assert {r["id"] for r in manifest["rules"]} >= {"paid_after_death", "refund_retained"}
    assert manifest["rows_per_extract"]["pension_payments"] > 0
    assert set(manifest["timings_seconds"]) >= {"ingest", "validate", "load", "link", "detect", "publish"}
    assert manifest["identity_linking"]["person_ids"] > 0


def test_rerun_gives_the_same_rows_marked_recurring(first_run):
    landing, output, first = first_run
    second = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    cols = "rule_id, subject_id, amount_at_risk, first_period, last_period, evidence, reason"
    a = query(f"SELECT {cols} FROM s ORDER BY ALL", s=first.suspects)
    b = query(f"SELECT {cols} FROM s ORDER BY ALL", s=second.suspects)
    assert a == b
    assert query("SELECT DISTINCT status FROM s", s=second.suspects) == [("recurring",)]
    assert latest_run_id(output) == second.run_id
    assert first.rows_per_extract == second.rows_per_extract  # loading the same files twice doubles nothing


def test_a_run_that_fails_midway_leaves_latest_and_runs_untouched(first_run, monkeypatch):
    landing, output, _ = first_run
    before = latest_run_id(output)
    runs_before = sorted(p.name for p in (output / "runs").iterdir())

    def boom(ctx):
        raise RuntimeError("killed during detection")

    monkeypatch.setattr(stages, "STAGES", tuple(dataclasses.replace(s, fn=boom) if s.name == "detect" else s
                                                for s in stages.STAGES))
    with pytest.raises(RuntimeError):
        stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    assert latest_run_id(output) == before
    assert sorted(p.name for p in (output / "runs").iterdir()) == runs_before


def test_a_broken_extract_stops_the_run_naming_the_file(tmp_path):
    landing = tmp_path / "in"
    landing.mkdir()
    (landing / "deaths.csv").write_text("姓名,死亡日期\n张三,2024-01-02\n", encoding="utf-8")
    with pytest.raises(ExtractError) as info:
        stages.run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=AS_OF))
    assert "deaths.csv" in str(info.value) and "person_id" in str(info.value)
    assert latest_run_id(tmp_path / "out") is None
    assert not list((tmp_path / "out" / "runs").glob("*/suspects.parquet"))


def test_rules_needing_absent_extracts_are_skipped_and_said(tmp_path, landing):
    partial = tmp_path / "in"
    partial.mkdir()
    for f in landing.glob("pension_payments*"):
        (partial / f.name).write_bytes(f.read_bytes())
    summary = stages.run_pipeline(RunConfig(input=partial, output=tmp_path / "out", as_of=AS_OF))
    assert "refund_retained" in summary.skipped_rules
    assert "stabilization_refunds" in " ".join(summary.skipped_rules["refund_retained"])
    assert any("absent" in note for note in summary.notes)


def test_a_suspect_closed_as_no_issue_is_held_back_on_the_next_run(landing, tmp_path):
    from pipelines import outcomes
    from pipelines.case_store import open_store

    output = tmp_path / "out"
    first = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    rule_id, subject_id = query("SELECT rule_id, subject_id FROM s ORDER BY ALL LIMIT 1", s=first.suspects)[0]
    with open_store(output) as store:
        outcomes.set_outcome(store, output, rule_id, subject_id, "no_issue", reviewer="审计员甲", note="已核实")
    second = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    assert second.held_back == 1
    assert query("SELECT count(*) FROM s WHERE rule_id = ? AND subject_id = ?".replace("?", "'{}'").format(
        rule_id, subject_id), s=second.suspects) == [(0,)]
    assert query("SELECT rule_id, subject_id FROM h", h=second.run_dir / "held_back.parquet") == [(rule_id, subject_id)]
    manifest = json.loads((second.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["held_back"]["count"] == 1
