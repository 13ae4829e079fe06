"""On a generated landing folder (messy CSV): ingest → load → link → every rule. The identity
findings equal ground_truth_identity.parquet exactly, no identity near miss fires, and the strict
categories still equal ground_truth.parquet."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from benchmarks import legacy_warehouse as warehouse
from pipelines.contracts import load_contracts
from pipelines.ingest import discover_extracts, ingest_extract
from pipelines.linking import link_persons
from pipelines.rules import load_rules, run_rules
from fraudwatch_synth import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    landing = tmp_path_factory.mktemp("landing")
    generate(persons=2000, months=8, seed=5, out=landing, messy=True)
    work = tmp_path_factory.mktemp("work")
    contracts = load_contracts()
    con = warehouse.connect(work / "w.duckdb", threads=2)
    for name, files in discover_extracts(landing, contracts).items():
        warehouse.load_extract(con, contracts[name], ingest_extract(contracts[name], files, landing, work / "staging"))
    warehouse.create_views(con)
    link_persons(con)
    hits = pl.from_arrow(run_rules(con, load_rules(), date(2025, 3, 31)).table)
    con.close()
    return landing, hits


def _rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select("rule_id", "subject_id", pl.col("amount_at_risk").cast(pl.String), "first_period",
                               "last_period", "region_code").rows())


def test_identity_findings_equal_the_truth(run):
    landing, hits = run
    truth = pl.read_parquet(landing / "ground_truth_identity.parquet")
    identity_rules = hits.filter(pl.col("rule_id").is_in(["duplicate_identity", "paid_after_death_weak_match"]))
    # rows of the strict rules found through a linked second ID (the rest: test_strict_categories_unchanged)
    linked = hits.join(truth.select("rule_id", "subject_id"), on=["rule_id", "subject_id"], how="semi").filter(
        pl.col("rule_id").is_in(["paid_after_death", "duplicate_cross_region"]))
    got = pl.concat([identity_rules, linked])
    assert _rows(got) == _rows(truth) and truth.height >= 8
    assert linked["evidence"].str.contains("other_ids_of_this_person").all()
    # the person rules found through a linked second ID (issue 12), each planted kind
    clustered = truth.filter(pl.col("rule_id").is_in(["paid_after_death", "duplicate_cross_region"]))
    assert {"pad_typo_second_id", "pad_death_under_paid_typo", "dcr_typo_second_id"} <= set(clustered["kind"])
    assert "di_subsidy_typo" in set(truth.filter(pl.col("rule_id") == "duplicate_identity")["kind"])
    weak = got.filter(pl.col("rule_id") == "paid_after_death_weak_match")
    assert set(weak["severity"]) == {"medium"} and set(weak["category"]) == {"paid_after_death"}
    assert weak["reason"].str.contains("弱匹配").all()
    assert identity_rules["evidence"].str.contains("agreed_fields").all()


def test_no_identity_near_miss_fires(run):
    landing, hits = run
    near = pl.read_parquet(landing / "near_misses_identity.parquet")
    fired = near.join(hits, left_on=["subject_id", "category_it_must_not_fire"], right_on=["subject_id", "category"])
    assert fired.is_empty(), fired


def test_strict_categories_unchanged(run):
    """Every strict category equals ground_truth.parquet plus the rows found through a linked second
    ID (ground_truth_identity.parquet under the category's own rule id)."""
    landing, hits = run
    strict = pl.read_parquet(landing / "ground_truth.parquet").with_columns(rule_id=pl.col("category"))
    linked = pl.read_parquet(landing / "ground_truth_identity.parquet").filter(
        pl.col("rule_id").is_in(strict["category"].unique().implode()))
    got = hits.filter(pl.col("rule_id").is_in(strict["category"].unique().implode()))
    assert _rows(got) == sorted(_rows(strict) + _rows(linked)) and linked.height >= 3
