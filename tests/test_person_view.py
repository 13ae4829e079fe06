"""The person view: one person's facts from the warehouse and every run, and the terminal rendering."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest
from audit_helpers import PERSON_A, PERSON_A_15, PERSON_B, hit, publish_run, tiny_warehouse
from typer.testing import CliRunner

from pipelines import outcomes
from pipelines.case_store import open_store
from pipelines.person_view import normalise_person_id, person_facts

RUN1, RUN2 = "20240701T000000.000Z", "20240801T000000.000Z"


@pytest.fixture()
def out(tmp_path):
    publish_run(tmp_path, RUN1, [hit("paid_after_death", PERSON_A, "5000.00"), hit("paid_after_death", PERSON_B, "1.00")])
    publish_run(tmp_path, RUN2, [hit("paid_after_death", PERSON_A, "7500.00"), hit("duplicate_cross_region", PERSON_A, "2600.50")])
    (tmp_path / "runs" / ".partial-20240901T000000.000Z").mkdir()  # a run in progress is not read
    tiny_warehouse(tmp_path / "warehouse.duckdb").close()
    with open_store(tmp_path) as store:
        outcomes.set_outcome(store, tmp_path, "paid_after_death", PERSON_A, "核查中", "李", run=RUN1, today=dt.date(2024, 8, 2))
        outcomes.set_outcome(store, tmp_path, "paid_after_death", PERSON_A, "确认违规", "李", recovered="7500",
                             today=dt.date(2024, 8, 3))
    return tmp_path


@pytest.fixture()
def con(out):
    c = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    yield c
    c.close()


def test_normalise_upgrades_15_digit_ids():
    assert normalise_person_id(f" {PERSON_A_15} ") == (PERSON_A, True, dt.date(1950, 3, 15), "男")
    assert normalise_person_id("11010519491231002x")[0] == "11010519491231002X"
    assert normalise_person_id("12345")[:2] == ("12345", False)


def test_person_facts_gathers_every_source(out, con):
    facts = person_facts(con, out, PERSON_A_15)
    assert facts.person_id == PERSON_A and facts.valid and facts.found
    assert facts.links is None  # identity linking has not built person_links
    assert facts.payments.height == 6 and set(facts.payments["kind"]) == {"pension", "subsidy"}
    assert facts.payments["amount"].sum() == Decimal("12700.50")
    assert facts.death_date == dt.date(2024, 2, 10)
    assert facts.prison["sentence_type"].to_list() == ["有期徒刑"]
    assert facts.household["household_id"].to_list() == ["H1"]
    months = facts.payments_by_month
    march = months.filter(months["period"] == dt.date(2024, 3, 1))
    # in prison strictly between the admission month 2023-12 and the release month 2024-03
    assert march.height == 3 and march["after_death"].all() and not march["in_prison"].any()
    jan = months.filter(months["period"] == dt.date(2024, 1, 1))
    assert not jan["after_death"].any() and jan["in_prison"].all()
    feb = months.filter(months["period"] == dt.date(2024, 2, 1))
    assert not feb["after_death"].any() and feb["in_prison"].all()  # the death month itself is still payable
    assert facts.hits.select("run_id", "rule_id").rows() == [(RUN1, "paid_after_death"), (RUN2, "duplicate_cross_region"),
                                                             (RUN2, "paid_after_death")]
    assert facts.outcomes["outcome"].to_list() == ["under_review", "confirmed_fraud"]
    assert facts.outcomes["is_current"].to_list() == [False, True]
    assert set(facts.names["name"]) == {"张三"}


def test_identity_linking_tables_are_shown_when_they_exist(out):
    con = duckdb.connect(str(out / "warehouse.duckdb"))
    con.execute("CREATE TABLE person_links (person_id_a VARCHAR, person_id_b VARCHAR, score DOUBLE, agreed_fields VARCHAR[])")
    con.execute(f"INSERT INTO person_links VALUES ('110101195003150099', '{PERSON_A}', 0.995, ['name', 'birth_date'])")
    con.execute("CREATE TABLE identity_clusters (person_id VARCHAR, canonical_id VARCHAR, cluster_size INTEGER)")
    con.execute(f"INSERT INTO identity_clusters VALUES ('{PERSON_A}', '{PERSON_A}', 2)")
    con.execute("CREATE TABLE death_matches (death_person_id VARCHAR, death_name VARCHAR, death_date DATE, source VARCHAR, "
                "record_id VARCHAR, status VARCHAR, matched_person_id VARCHAR)")
    con.execute(f"INSERT INTO death_matches VALUES ('11010119500315001X', '张三', DATE '2024-01-30', '卫健', 'WJ9', "
                f"'matched', '{PERSON_A}')")
    facts = person_facts(con, out, PERSON_A)
    con.close()
    assert facts.links["other_id"].to_list() == ["110101195003150099"] and facts.links["score"].to_list() == [0.995]
    assert facts.cluster["cluster_size"].to_list() == [2]
    assert facts.weak_deaths["record_id"].to_list() == ["WJ9"]
    import io

    from rich.console import Console

    from pipelines.person_view import render_person

    buffer = io.StringIO()
    render_person(facts, Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "110101195003150099" in text and "canonical ID" in text and "WJ9" in text and "weaker" in text


def test_unknown_person_and_missing_tables(tmp_path):
    facts = person_facts(duckdb.connect(), tmp_path, PERSON_B)
    assert not facts.found and facts.payments.height == 0 and facts.death_date is None and facts.links is None
    assert facts.cluster is None and facts.weak_deaths is None


def test_render_person_shows_every_section(out, con):
    import io

    from rich.console import Console

    from pipelines.person_view import render_person

    buffer = io.StringIO()
    render_person(person_facts(con, out, PERSON_A_15), Console(file=buffer, width=200))
    text = buffer.getvalue()
    for part in [PERSON_A, "typed as 110101500315001", "died 2024-02-10", "after death", "in prison", "有期徒刑", "H1",
                 "duplicate_cross_region", "确认违规", "7,500.00", "2,600.50", "no person_links table"]:
        assert part in text, part


def _publish_views(out):
    """The person command reads the published run: give the latest run the tiny warehouse's
    tables and views as Parquet plus the views.sql a run writes."""
    run_dir = out / "runs" / RUN2
    (run_dir / "derived").mkdir(exist_ok=True)
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    lines = []
    for (name,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                               "AND NOT starts_with(table_name, '_') ORDER BY 1").fetchall():
        path = run_dir / "derived" / f"{name}.parquet"
        con.execute(f"COPY (SELECT * FROM {name}) TO '{path}' (FORMAT parquet)")
        lines.append(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet(['{path}']);")
    con.close()
    (run_dir / "views.sql").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_cli_person(out):
    from pipelines.cli import app

    _publish_views(out)

    result = CliRunner().invoke(app, ["person", PERSON_A_15, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert PERSON_A in result.output and "died 2024-02-10" in result.output
    missing = CliRunner().invoke(app, ["person", "310101195201010035", "--output", str(out)])
    assert missing.exit_code == 0 and "no registry rows" in missing.output
