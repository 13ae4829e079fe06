"""A national set (``synth --provinces``): every extract in ``<extract>/<province>/``, each province's
rows in its own counties, record IDs unique nationally, one ground truth that equals the independent
SQL recomputation over all provinces' files, and the planted cross-province cases and near misses
shaped as they claim, read back from the files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import polars as pl
import pytest
from synth_helpers import EXTRACTS
from test_ground_truth import CANON, SUSPECTS, truth, valid_as_of
from typer.testing import CliRunner

from fraudwatch_synth import generate, generate_national
from pipelines.cli import app
from pipelines.errors import RunError

PROVINCES = ("11", "44", "51")
PERSONS, MONTHS, SEED = 300, 6, 5
ID_COLUMNS = {"pension_payments": "payment_id", "subsidy_payments": "payment_id", "deaths": "record_id",
              "certifications": "record_id", "stabilization_refunds": "refund_id", "refund_transfers": "transfer_id"}


@pytest.fixture(scope="module")
def national(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("national")
    generate_national(",".join(PROVINCES), PERSONS, MONTHS, SEED, out)
    return out


def _load(folder: Path) -> duckdb.DuckDBPyConnection:
    """Every province's files as all-text tables, with the province folder each row came from."""
    con = duckdb.connect()
    con.execute(CANON)
    for name in EXTRACTS:
        con.execute(f"CREATE TABLE {name} AS SELECT *, split_part(filename, '/', -2) AS folder "
                    f"FROM read_csv('{folder}/{name}/*/*.csv', all_varchar=true, union_by_name=true, filename=true)")
        con.execute(f"ALTER TABLE {name} DROP COLUMN filename")
    con.execute(f"CREATE TABLE crossing AS FROM read_parquet('{folder}/cross_province_cases.parquet')")
    return con


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_extract_in_each_province_folder_with_that_provinces_regions(national):
    assert not [p.name for p in national.iterdir() if p.is_file() and p.name.startswith(tuple(EXTRACTS))]
    for extract in EXTRACTS:
        assert sorted(p.name for p in (national / extract).iterdir()) == list(PROVINCES)
    assert len(list((national / "pension_payments" / "44").glob("pension_payments_2024*.csv"))) == MONTHS
    con = _load(national)
    for extract in ("pension_payments", "household", "subsidy_payments", "certifications", "stabilization_refunds"):
        wrong = con.execute(f"SELECT count(*) FROM {extract} WHERE NOT starts_with(region_code, folder)").fetchone()[0]
        assert wrong == 0, extract
    # each province's own population was born in its own counties (its household rows but the movers')
    movers = "SELECT subject_id FROM crossing WHERE kind = 'moved_to_another_province'"
    assert con.execute(f"SELECT count(*) FROM household WHERE NOT starts_with(person_id, folder) "
                       f"AND person_id NOT IN ({movers})").fetchone()[0] == 0


def test_record_ids_unique_nationally_with_the_province_in_front(national):
    con = _load(national)
    for extract, column in ID_COLUMNS.items():
        rows, distinct, prefixed = con.execute(
            f"SELECT count(*), count(DISTINCT {column}), count(*) FILTER (WHERE starts_with({column}, folder)) "
            f"FROM {extract}").fetchone()
        assert rows == distinct == prefixed > 0, extract
    accounts = con.execute("SELECT bank_account FROM pension_payments GROUP BY ALL "
                           "HAVING count(DISTINCT folder) > 1 AND count(DISTINCT canon(person_id)) > 1").fetchall()
    assert accounts == []  # no account shared across provinces by chance


def test_ground_truth_matches_sql_recomputation_over_all_provinces(national):
    con = _load(national)
    for extract in EXTRACTS:
        con.execute(f"ALTER TABLE {extract} DROP COLUMN folder")
    expected = truth(national)
    assert con.execute(SUSPECTS, {"as_of": valid_as_of(national)}).fetchall() == expected
    per_province = {r[2][:2] for r in expected if r[1] == "person"}
    assert per_province >= set(PROVINCES)
    categories = {r[0] for r in expected}
    assert {"paid_after_death", "duplicate_cross_region", "refund_retained", "shared_bank_account"} <= categories


def test_cross_province_cases_are_planted_as_they_claim(national):
    con = _load(national)
    kinds = dict(con.execute("SELECT kind, count(*) FROM crossing GROUP BY ALL").fetchall())
    assert kinds == {k: 2 * len(PROVINCES) for k in ("xp_paid_by_two_provinces", "xp_death_registered_elsewhere",
                                                     "moved_to_another_province",
                                                     "death_registered_elsewhere_after_last_payment")}
    assert con.execute("SELECT count(*) FROM crossing WHERE home_province = other_province "
                       "OR NOT starts_with(subject_id, home_province)").fetchone()[0] == 0
    # paid by both provinces in one month (the same scheme)
    both = con.execute("""
        SELECT count(DISTINCT x.subject_id) FROM crossing x
        JOIN pension_payments h ON h.person_id = x.subject_id AND h.folder = x.home_province
        JOIN pension_payments o ON o.person_id = x.subject_id AND o.folder = x.other_province
             AND o.period = h.period AND o.scheme = h.scheme
        WHERE x.kind = 'xp_paid_by_two_provinces'""").fetchone()[0]
    assert both == kinds["xp_paid_by_two_provinces"]
    # a move: home pays, then the other province, never both in one month; the household row moved along
    overlap = con.execute("""
        SELECT count(*) FROM crossing x
        JOIN pension_payments h ON h.person_id = x.subject_id AND h.folder = x.home_province
        JOIN pension_payments o ON o.person_id = x.subject_id AND o.folder = x.other_province AND o.period <= h.period
        WHERE x.kind = 'moved_to_another_province'""").fetchone()[0]
    assert overlap == 0
    assert con.execute("""SELECT count(*) FROM crossing x JOIN household h ON h.person_id = x.subject_id
                          AND h.folder = x.other_province WHERE x.kind = 'moved_to_another_province'""").fetchone()[0] \
        == kinds["moved_to_another_province"]
    # deaths registered only in the other province; home paid after the death month (or not)
    deaths = con.execute("""
        SELECT x.kind, x.subject_id, bool_and(d.folder = x.other_province),
               max(p.period) > strftime(min(CAST(d.death_date AS DATE)), '%Y-%m')
        FROM crossing x JOIN deaths d ON d.person_id = x.subject_id
        JOIN pension_payments p ON p.person_id = x.subject_id AND p.folder = x.home_province
        WHERE x.category = 'paid_after_death' GROUP BY ALL""").fetchall()
    assert len(deaths) == kinds["xp_death_registered_elsewhere"] + kinds["death_registered_elsewhere_after_last_payment"]
    assert all(elsewhere and late == (kind == "xp_death_registered_elsewhere") for kind, _, elsewhere, late in deaths)
    # the planted ones are in the ground truth under their category, the near misses are not
    gt = pl.read_parquet(national / "ground_truth.parquet")
    crossing = pl.read_parquet(national / "cross_province_cases.parquet")
    found = crossing.join(gt, on=["subject_id", "category"], how="semi")
    assert found.sort("kind", "subject_id").equals(crossing.filter("must_fire").sort("kind", "subject_id"))
    near = pl.read_parquet(national / "near_misses.parquet")
    assert crossing.filter(~pl.col("must_fire")).join(near, on=["kind", "subject_id"], how="anti").is_empty()


def test_same_arguments_same_bytes_and_no_stale_layout(national, tmp_path):
    again = tmp_path / "again"
    generate_national(",".join(PROVINCES), PERSONS, MONTHS, SEED, again)
    assert _hashes(again) == _hashes(national)
    generate(PERSONS, MONTHS, SEED, again)  # one province into a national folder: the province folders go
    assert not any((again / extract).exists() for extract in EXTRACTS)
    assert not (again / "cross_province_cases.parquet").exists()
    generate_national("11,44", PERSONS, MONTHS, SEED, again)  # and back: the top-level extract files go
    assert not list(again.glob("pension_payments*.csv"))
    assert sorted(p.name for p in (again / "deaths").iterdir()) == ["11", "44"]


def test_messy_parquet_national_set_names_bad_rows_by_their_path(tmp_path):
    summary = generate_national("44,51", 300, 4, 3, tmp_path, fmt="parquet", messy=True)
    bad = pl.read_parquet(tmp_path / "planted_bad_rows.parquet")
    assert summary.bad_rows == len(bad) > 0
    assert all((tmp_path / f).is_file() and f.split("/")[1] in ("44", "51") for f in bad["file"].unique())


@pytest.mark.parametrize("provinces,message", [
    ("11", "two or more provinces"), ("11,11", "twice"), ("11,4", "not a province code"),
    ("11,99", "not a province code"), ("11,81", "fewer than two counties"),
])
def test_provinces_checked(tmp_path, provinces, message):
    with pytest.raises(RunError, match=message):
        generate_national(provinces, PERSONS, MONTHS, SEED, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_synth_command_writes_a_national_set(tmp_path):
    runner = CliRunner()
    done = runner.invoke(app, ["synth", "--provinces", "11,44", "--persons", "300", "--months", "4", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "ground_truth.parquet").is_file()
    assert sorted(p.name for p in (tmp_path / "pension_payments").iterdir()) == ["11", "44"]
    refused = runner.invoke(app, ["synth", "--provinces", "11,44", "--out", str(tmp_path / "x"),
                                  "--payroll-next", str(tmp_path / "next")])
    assert refused.exit_code == 2
    assert "--payroll-next" in refused.output
