"""The lake and the run snapshot: unchanged files cost no ingest, a run reads only what it pinned,
readers never block a run, and a run killed at any stage leaves the previous run intact."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines import ingest, stages
from pipelines.pipeline import RunConfig, prepare_run

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
AS_OF = date(2025, 1, 31)
SMALL = ("deaths.csv", "household.csv", "pension_payments_202401.csv", "pension_payments_202402.csv")


@pytest.fixture
def landing(tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    for name in SMALL:
        shutil.copy2(SAMPLE / name, folder / name)
    return folder


def _ctx(landing, output, **kw):
    return prepare_run(RunConfig(input=landing, output=output, as_of=AS_OF, **kw))


def _suspects(run_dir: Path):
    return pq.read_table(run_dir / "suspects.parquet").drop(["run_id", "status"])


def test_unchanged_landing_folder_is_not_read_again(landing, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = stages.ingest_stage(_ctx(landing, out))
    assert sorted(Path(p).name for p in _ctx_files(first)) == sorted(SMALL)

    def no_reading(*a, **k):
        raise AssertionError("an unchanged file was read again")

    monkeypatch.setattr(ingest, "ingest_file", no_reading)
    monkeypatch.setattr(ingest, "hash_and_detect", no_reading)
    ctx = _ctx(landing, out)
    again = stages.ingest_stage(ctx)
    assert ctx.files_read == []
    assert {n: [(f.source_file, f.sha256, f.rows_clean) for f in r.files] for n, r in again.items()} == \
        {n: [(f.source_file, f.sha256, f.rows_clean) for f in r.files] for n, r in first.items()}


def _ctx_files(ingested):
    return [f.path for r in ingested.values() for f in r.files]


def test_a_changed_file_alone_is_read_again(landing, tmp_path):
    out = tmp_path / "out"
    stages.ingest_stage(_ctx(landing, out))
    shutil.copy2(SAMPLE / "pension_payments_202403.csv", landing / "pension_payments_202403.csv")
    os.utime(landing / "deaths.csv", ns=(time.time_ns(), time.time_ns()))  # touched, same bytes
    ctx = _ctx(landing, out)
    stages.ingest_stage(ctx)
    assert sorted(Path(p).name for p in ctx.files_read) == ["deaths.csv", "pension_payments_202403.csv"]
    ctx2 = _ctx(landing, out)
    stages.ingest_stage(ctx2)
    assert ctx2.files_read == []


def test_a_run_reads_only_its_snapshot(landing, tmp_path):
    """A second ingest of new files while a run is between stages cannot change that run's results."""
    out, reference = tmp_path / "out", tmp_path / "reference"
    expected = stages.run_pipeline(RunConfig(input=landing, output=reference, as_of=AS_OF))
    ctx = _ctx(landing, out)
    ingested = stages.ingest_stage(ctx)
    validations = stages.validate_stage(ctx, ingested)
    loaded = stages.load_stage(ctx, ingested)
    # new files land and another ingest brings them into the same lake
    for name in ("pension_payments_202403.csv", "pension_payments_202404.csv", "prisoners.csv"):
        shutil.copy2(SAMPLE / name, landing / name)
    other = _ctx(landing, out)
    stages.ingest_stage(other)
    stages.load_stage(other, stages.ingest_stage(other))
    linked = stages.link_stage(ctx)
    hits = stages.detect_stage(ctx)
    summary = stages.publish_stage(ctx, ingested, validations, loaded, hits, linked)
    assert _suspects(summary.run_dir).equals(_suspects(expected.run_dir))
    manifest = json.loads((summary.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert "prisoners" not in manifest["snapshot"]
    assert len(manifest["snapshot"]["pension_payments"]) == 2


def test_readers_holding_every_published_file_never_block_a_run(landing, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = stages.run_pipeline(RunConfig(input=landing, output=out, as_of=AS_OF))
    views = (out / "latest" / "views.sql").read_text(encoding="utf-8")
    monkeypatch.chdir(out)  # the views' paths are relative to the output folder
    analyst = duckdb.connect()  # an analyst's notebook: the run's views, queried and held open
    analyst.execute(views)
    held = [open(p, "rb") for p in sorted({*Path(out / "latest").rglob("*.parquet")})]
    lake_files = [out / line.split("'")[1] for line in views.splitlines() if "read_parquet(['" in line]
    held += [open(p, "rb") for p in lake_files]
    try:
        counts = analyst.execute("SELECT (SELECT count(*) FROM pension_payments), (SELECT count(*) FROM suspects)").fetchone()
        assert counts[0] > 0 and counts[1] == _suspects(first.run_dir).num_rows
        shutil.copy2(SAMPLE / "prisoners.csv", landing / "prisoners.csv")
        second = stages.run_pipeline(RunConfig(input=landing, output=out, as_of=AS_OF))
        assert second.run_dir != first.run_dir and (second.run_dir / "suspects.parquet").exists()
        # the analyst still sees the run they opened
        assert analyst.execute("SELECT count(*) FROM suspects").fetchone()[0] == counts[1]
    finally:
        for f in held:
            f.close()
        analyst.close()


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["ingest", "validate", "load", "link", "detect", "publish"])
def test_a_run_killed_at_any_stage_leaves_the_previous_run_intact(landing, tmp_path, stage):
    out = tmp_path / "out"
    first = stages.run_pipeline(RunConfig(input=landing, output=out, as_of=AS_OF))
    before = _suspects(first.run_dir)
    shutil.copy2(SAMPLE / "prisoners.csv", landing / "prisoners.csv")
    env = os.environ | {"FRAUDWATCH_TEST_PAUSE_AT": stage}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", "--input", str(landing), "--output", str(out),
                             "--as-of", AS_OF.isoformat(), "--no-prefect"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        for line in proc.stderr:
            if f"paused before {stage}" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert os.path.realpath(out / "latest") == os.path.realpath(first.run_dir)
    assert _suspects(first.run_dir).equals(before)
    assert [p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")] == [first.run_dir.name]
    # and the next run works from what the killed one left
    again = stages.run_pipeline(RunConfig(input=landing, output=out, as_of=AS_OF))
    assert (again.run_dir / "suspects.parquet").exists()


def test_sheet_notes_and_damaged_id_counts_survive_an_unread_file(tmp_path):
    """A workbook's unread sheets and a file's damaged-ID count are told on every run, also when the
    lake serves the file without reading it."""
    import openpyxl

    folder = tmp_path / "landing"
    folder.mkdir()
    book = openpyxl.Workbook()
    book.active.title = "说明"
    book.active.append(["本表为死亡信息"])
    sheet = book.create_sheet("1月")
    sheet.append(["身份证号", "死亡日期", "数据来源"])
    sheet.append(["11010519491231002X", "2024-01-01", "公安"])
    sheet.append(["1.10105E+17", "2024-01-02", "公安"])
    for i in range(30):
        sheet.append(["11010519491231002X", f"2024-02-{i % 28 + 1:02d}", "民政"])
    book.save(folder / "deaths.xlsx")
    out = tmp_path / "out"
    for attempt in range(2):
        ctx = _ctx(folder, out)
        [f] = stages.ingest_stage(ctx)["deaths"].files
        assert ctx.files_read == ([str(folder / "deaths.xlsx")] if attempt == 0 else [])
        assert f.ids_damaged_by_number == 1
        assert any("'说明'" in n for n in ctx.notes)
        assert any("deaths.xlsx: 1 rows quarantined (id_damaged_by_number)" in n for n in ctx.notes)


def test_views_shared_by_rules_are_computed_once_but_projections_are_read_in_place(landing, tmp_path, monkeypatch):
    """person_deaths (an aggregate) is computed once for the rules reading it; benefit_payments,
    marked ``[in place]`` (every payment, projected), is never copied though two rules read it."""
    from pipelines.engine.duckdb_engine import DuckDBEngine
    from pipelines.lake import in_place_views

    shutil.copy2(SAMPLE / "certifications.csv", landing / "certifications.csv")
    made: list[str] = []
    materialize = DuckDBEngine.materialize
    monkeypatch.setattr(DuckDBEngine, "materialize",
                        lambda self, name, sql, params=None: made.append(name) or materialize(self, name, sql, params))
    summary = stages.run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=AS_OF))
    assert in_place_views() == {"benefit_payments"}
    assert {"person_deaths", "death_records"} <= set(made)
    assert "benefit_payments" not in made
    assert summary.hits_per_rule["certified_after_death"] > 0 and "duplicate_identity" in summary.hits_per_rule


def test_a_repeated_payment_id_is_one_verdict_for_validation_load_and_counts(landing, tmp_path, monkeypatch):
    """The duplicate_id verdicts are computed once (by validation, first) and are what the unique
    check reports, what the load quarantines and what the row count leaves out."""
    from pipelines import lake
    from pipelines.lake import open_published

    jan = (landing / "pension_payments_202401.csv").read_text(encoding="gb18030").splitlines()  # sample_data is GBK
    feb = (landing / "pension_payments_202402.csv").read_text(encoding="gb18030").splitlines()
    repeated = jan[1].split(",")[0]
    feb.append(",".join([repeated, *feb[1].split(",")[1:]]))  # a February row reusing January's first payment_id
    (landing / "pension_payments_202402.csv").write_text("\n".join(feb) + "\n", encoding="gb18030")
    computed = []
    sql = lake._duplicates_sql
    monkeypatch.setattr(lake, "_duplicates_sql", lambda *a, **k: computed.append(a[1].extract) or sql(*a, **k))
    summary = stages.run_pipeline(RunConfig(input=landing, output=tmp_path / "out", as_of=AS_OF))
    assert computed == ["pension_payments"]
    manifest = json.loads((summary.run_dir / "manifest.json").read_text())
    clean = sum(f["rows_clean"] for f in manifest["inputs"] if f["extract"] == "pension_payments")
    published = open_published(tmp_path / "out")
    assert summary.rows_per_extract["pension_payments"] == clean - 1 == \
        published.scalar("SELECT count(*) FROM pension_payments")
    published.close()
    report = json.loads((summary.run_dir / "validation" / "validation" / "pension_payments.json").read_text())
    [unique] = [c for c in report["checks"] if c["name"] == "unique"]
    assert not unique["passed"] and unique["observed"] == 1
    assert unique["files"] == ["pension_payments_202401.csv", "pension_payments_202402.csv"]
    assert f"e.g. {repeated!r}" in unique["message"]
    quarantine = pq.read_table(summary.run_dir / "quarantine" / "pension_payments.parquet").to_pylist()
    [dup] = [q for q in quarantine if q["reason"].startswith("duplicate_id")]
    assert (dup["source_file"], dup["source_row"]) == ("pension_payments_202402.csv", len(feb))
    assert dup["reason"] == f"duplicate_id: payment_id='{repeated}' (first at pension_payments_202401.csv row 2)"
