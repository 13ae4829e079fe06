"""Ground truth equals an independent recomputation, in plain DuckDB SQL written from
suspects.md, over the generated files; near misses are present and never reported."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fraudwatch_synth import generate

CANON = """
CREATE MACRO upgrade(id) AS
    substr(id, 1, 6) || '19' || substr(id, 7, 9) || substr('10X98765432', 1 + CAST(list_sum(list_transform(range(17),
        lambda i: CAST(substr(substr(id, 1, 6) || '19' || substr(id, 7, 9), i + 1, 1) AS INT)
             * [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2][i + 1])) AS BIGINT) % 11, 1);
CREATE MACRO canon(id) AS CASE WHEN length(id) = 15 THEN upgrade(id) ELSE upper(id) END;
CREATE MACRO uscc_ok(c) AS length(c) = 18
    AND list_bool_and(list_transform(range(18), lambda i: instr('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(c, i + 1, 1)) > 0))
    AND substr('0123456789ABCDEFGHJKLMNPQRTUWXY', 1 + CAST((31 - list_sum(list_transform(range(17),
        lambda i: (instr('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(c, i + 1, 1)) - 1)
             * [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28][i + 1])) % 31) % 31 AS BIGINT), 1) = substr(c, 18, 1);
"""

SUSPECTS = """
WITH pay AS (
    SELECT payment_id, canon(person_id) AS person, scheme, region_code, period,
           CAST(amount AS DECIMAL(18,2)) AS amount
    FROM pension_payments),
sub AS (SELECT canon(person_id) AS person, region_code, period, CAST(amount AS DECIMAL(18,2)) AS amount
        FROM subsidy_payments),
died AS (
    SELECT person, strftime(min(d), '%Y-%m') AS death_month, min(d) AS death_date FROM (
        SELECT canon(person_id) AS person, CAST(death_date AS DATE) AS d FROM deaths
        UNION ALL
        SELECT canon(person_id), CAST(cancel_date AS DATE) FROM household
        WHERE status = '注销' AND cancel_reason = '死亡')
    GROUP BY person),
pad AS (SELECT 'paid_after_death' AS category, p.* FROM pay p JOIN died USING (person) WHERE period > death_month),
sad AS (SELECT 'subsidy_after_death', NULL, s.person, NULL, s.region_code, s.period, s.amount
        FROM sub s JOIN died USING (person) WHERE period > death_month),
starts AS (
    SELECT person, scheme, region_code,
           row_number() OVER (PARTITION BY person, scheme ORDER BY min(period), region_code) AS rank
    FROM pay GROUP BY person, scheme, region_code),
overlap AS (SELECT person, scheme, period FROM pay GROUP BY ALL HAVING count(DISTINCT region_code) > 1),
dcr AS (
    SELECT 'duplicate_cross_region', p.* FROM pay p JOIN overlap USING (person, scheme, period)
    JOIN starts k ON k.person = p.person AND k.scheme = p.scheme AND k.rank = 1
    WHERE p.region_code <> k.region_code),
both_paid AS (SELECT person, period FROM pay GROUP BY ALL
              HAVING bool_or(scheme = '170') AND bool_or(scheme IN ('110', '120'))),
dcs AS (SELECT 'duplicate_cross_scheme', p.* FROM pay p JOIN both_paid USING (person, period) WHERE scheme = '170'),
terms AS (
    SELECT canon(person_id) AS person, strftime(CAST(admission_date AS DATE), '%Y-%m') AS am,
           strftime(CAST(release_date AS DATE), '%Y-%m') AS rm
    FROM prisoners
    WHERE sentence_type IS NULL OR sentence_type IN ('有期徒刑', '拘役', '无期徒刑', '死刑缓期执行')),
pdi AS (
    SELECT DISTINCT 'paid_during_imprisonment', p.* FROM pay p JOIN terms USING (person)
    WHERE p.period > am AND (p.period < rm OR (rm IS NULL AND p.period <= strftime($as_of, '%Y-%m')))),
ranked AS (
    SELECT p.*, row_number() OVER (PARTITION BY p.person, p.scheme, p.region_code, p.period
                                   ORDER BY CAST(raw.pay_date AS DATE), p.payment_id) AS nth
    FROM pay p JOIN pension_payments raw USING (payment_id)),
dps AS (SELECT 'duplicate_payment_same_period', payment_id, person, scheme, region_code, period, amount
        FROM ranked WHERE nth > 1),
aged AS (
    SELECT p.*, TRY_CAST(substr(person, 7, 8) AS INT) AS born, CAST(replace(period, '-', '') || '01' AS INT) AS day1
    FROM pay p),
o110 AS (SELECT 'pensioner_over_110', payment_id, person, scheme, region_code, period, amount
         FROM aged WHERE (day1 - born) // 10000 > 110),
acct AS (
    SELECT DISTINCT canon(p.person_id) AS person, p.bank_account, coalesce(h.household_id, canon(p.person_id)) AS home
    FROM pension_payments p LEFT JOIN household h ON canon(h.person_id) = canon(p.person_id)
    WHERE p.bank_account IS NOT NULL),
shared AS (SELECT bank_account FROM acct GROUP BY bank_account HAVING count(DISTINCT home) > 1),
sba AS (SELECT DISTINCT 'shared_bank_account', p.payment_id, p.person, p.scheme, p.region_code, p.period, p.amount
        FROM pay p JOIN pension_payments raw USING (payment_id)
        WHERE raw.bank_account IN (SELECT bank_account FROM shared)),
improper AS (
    SELECT * FROM pad UNION ALL SELECT * FROM sad UNION ALL SELECT * FROM dcr
    UNION ALL SELECT * FROM dcs UNION ALL SELECT * FROM pdi
    UNION ALL SELECT * FROM dps UNION ALL SELECT * FROM o110 UNION ALL SELECT * FROM sba),
people_totals AS (
    SELECT category, 'person' AS subject_type, person AS subject_id,
           CASE WHEN category <> 'shared_bank_account' THEN sum(amount) END AS amount_at_risk,
           min(period) AS first_period, max(period) AS last_period
    FROM improper GROUP BY category, person),
top_region AS (
    SELECT category, person, region_code FROM improper GROUP BY category, person, region_code
    QUALIFY row_number() OVER (PARTITION BY category, person ORDER BY sum(amount) DESC, region_code) = 1),
people AS (
    SELECT p.*, t.region_code FROM people_totals p JOIN top_region t ON t.category = p.category AND t.person = p.subject_id),
counted AS (
    SELECT r.firm_id, sum(CAST(t.amount AS DECIMAL(18,2))) AS sent
    FROM refund_transfers t JOIN stabilization_refunds r ON upper(t.firm_id) = upper(r.firm_id)
    WHERE uscc_ok(upper(t.recipient_id)) AND upper(t.recipient_id) <> upper(r.firm_id)
      AND CAST(t.transfer_date AS DATE) - CAST(r.paid_date AS DATE) <= 60
    GROUP BY r.firm_id),
firms AS (
    SELECT 'refund_retained', 'firm', upper(r.firm_id),
           CAST(r.dispatched_amount AS DECIMAL(18,2)) - coalesce(c.sent, 0), NULL, NULL, r.region_code
    FROM stabilization_refunds r LEFT JOIN counted c USING (firm_id)
    WHERE r.is_labor_dispatch = 'true' AND $as_of > CAST(r.paid_date AS DATE) + 60
      AND CAST(r.dispatched_amount AS DECIMAL(18,2)) - coalesce(c.sent, 0) > 0),
cad AS (
    SELECT 'certified_after_death', 'person', c.person, NULL, NULL, NULL, arg_max(c.region_code, c.cert_date)
    FROM (SELECT canon(person_id) AS person, CAST(cert_date AS DATE) AS cert_date, region_code
          FROM certifications WHERE result = '通过') c
    JOIN died d USING (person) WHERE c.cert_date > d.death_date GROUP BY c.person)
SELECT * FROM people UNION ALL SELECT * FROM firms UNION ALL SELECT * FROM cad ORDER BY 1, 3
"""


def load(folder: Path) -> duckdb.DuckDBPyConnection:
    """The clean files of a synth folder as all-text DuckDB tables."""
    con = duckdb.connect()
    con.execute(CANON)
    for name in ["deaths", "household", "prisoners", "subsidy_payments", "stabilization_refunds", "refund_transfers",
                 "certifications"]:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{folder / name}.csv', all_varchar=true)")
    con.execute(f"CREATE TABLE pension_payments AS SELECT * FROM read_csv('{folder}/pension_payments_*.csv', all_varchar=true)")
    return con


def recompute(folder: Path, as_of: date) -> list[tuple]:
    return load(folder).execute(SUSPECTS, {"as_of": as_of}).fetchall()


def truth(folder: Path) -> list[tuple]:
    return pl.read_parquet(folder / "ground_truth.parquet").sort("category", "subject_id").rows()


def valid_as_of(folder: Path) -> date:
    return date.fromisoformat(json.loads((folder / "synth_meta.json").read_text())["valid_as_of_from"])


def test_ground_truth_matches_sql_recomputation(clean_csv):
    expected = truth(clean_csv)
    as_of = valid_as_of(clean_csv)
    assert recompute(clean_csv, as_of) == expected
    assert recompute(clean_csv, as_of + timedelta(days=400)) == expected
    indicators = ("shared_bank_account", "certified_after_death")  # risk indicators: no amount
    assert all(isinstance(r[3], Decimal) and r[3] > 0 for r in expected if r[0] not in indicators)
    assert all(r[3] is None for r in expected if r[0] in indicators)
    categories = {r[0] for r in expected}
    assert categories == {"paid_after_death", "subsidy_after_death", "duplicate_cross_region",
                          "duplicate_cross_scheme", "paid_during_imprisonment", "refund_retained",
                          "duplicate_payment_same_period", "pensioner_over_110", "shared_bank_account",
                          "certified_after_death"}


@pytest.mark.parametrize("persons,months,seed,start", [(400, 4, 7, "2023-11"), (250, 13, 99, "2022-06")])
def test_ground_truth_other_shapes(tmp_path, persons, months, seed, start):
    generate(persons, months, seed, tmp_path, start_period=start)
    assert recompute(tmp_path, valid_as_of(tmp_path)) == truth(tmp_path)


def test_ground_truth_schema(clean_csv):
    gt = pl.read_parquet(clean_csv / "ground_truth.parquet")
    assert gt.schema == pl.Schema({
        "category": pl.String, "subject_type": pl.String, "subject_id": pl.String,
        "amount_at_risk": pl.Decimal(18, 2), "first_period": pl.String, "last_period": pl.String,
        "region_code": pl.String,
    })
    firms = gt.filter(pl.col("subject_type") == "firm")
    assert firms["first_period"].is_null().all() and (firms["category"] == "refund_retained").all()
    assert gt.filter(pl.col("subject_type") == "person")["subject_id"].str.len_chars().eq(18).all()


def test_near_misses_present_and_not_reported(clean_csv):
    near = pl.read_parquet(clean_csv / "near_misses.parquet")
    reported = {(r[0], r[2]) for r in truth(clean_csv)}
    for kind, subject, category in near.rows():
        assert (category, subject) not in reported, (kind, subject)
    assert set(near["kind"]) == {
        "death_in_last_paid_month", "arrears_paid_after_death", "namesake_died", "noncustodial_sentence",
        "paid_in_admission_and_release_month", "released_month_after_admission", "moved_without_overlap",
        "resident_then_employee_pension", "subsidy_until_death_month", "transfer_in_full_in_time",
        "transfer_on_day_60", "non_dispatch_firm_kept_refund",
        "same_period_two_employee_schemes", "aged_110_on_every_period_start", "same_household_shares_account",
        "cad_failed_after_death", "cad_before_death",
    }


def _subjects(near: pl.DataFrame, kind: str) -> list[str]:
    return near.filter(pl.col("kind") == kind)["subject_id"].to_list()


def test_near_misses_have_their_tricky_shape(clean_csv):
    """Each near miss really sits on the boundary it is meant to test."""
    con = load(clean_csv)
    near = pl.read_parquet(clean_csv / "near_misses.parquet")

    def one(sql: str, ids: list[str]) -> list:
        return [r[0] for r in con.execute(sql, {"ids": ids}).fetchall()]

    arrears = one("""SELECT bool_or(CAST(p.pay_date AS DATE) > CAST(d.death_date AS DATE)
                         AND p.period <= strftime(CAST(d.death_date AS DATE), '%Y-%m'))
                     FROM pension_payments p JOIN (SELECT person_id, min(death_date) AS death_date FROM
                       (SELECT person_id, death_date FROM deaths UNION ALL
                        SELECT person_id, cancel_date FROM household WHERE cancel_reason = '死亡') GROUP BY 1) d
                     USING (person_id) WHERE person_id IN (SELECT unnest($ids)) GROUP BY person_id""",
                  _subjects(near, "arrears_paid_after_death"))
    assert arrears and all(arrears)
    namesakes = one("""SELECT count(*) FROM household h JOIN deaths d ON d.name = h.name AND d.person_id <> h.person_id
                       WHERE h.person_id IN (SELECT unnest($ids)) GROUP BY h.person_id""",
                    _subjects(near, "namesake_died"))
    assert namesakes and all(n > 0 for n in namesakes)
    edges = one("""SELECT count(DISTINCT p.period) FROM pension_payments p JOIN prisoners t USING (person_id)
                   WHERE person_id IN (SELECT unnest($ids)) AND p.period IN
                     (strftime(CAST(t.admission_date AS DATE), '%Y-%m'), strftime(CAST(t.release_date AS DATE), '%Y-%m'))
                   GROUP BY person_id""", _subjects(near, "paid_in_admission_and_release_month"))
    assert edges and all(n == 2 for n in edges)
    day60 = one("""SELECT max(CAST(t.transfer_date AS DATE) - CAST(r.paid_date AS DATE)) FROM refund_transfers t
                   JOIN stabilization_refunds r USING (firm_id) WHERE firm_id IN (SELECT unnest($ids)) GROUP BY firm_id""",
                _subjects(near, "transfer_on_day_60"))
    assert day60 and all(d == 60 for d in day60)
    aged = one("""SELECT max((CAST(replace(period, '-', '') || '01' AS INT) - CAST(substr(person_id, 7, 8) AS INT)) // 10000)
                  FROM pension_payments WHERE person_id IN (SELECT unnest($ids)) GROUP BY person_id""",
               _subjects(near, "aged_110_on_every_period_start"))
    assert aged and all(a == 110 for a in aged)
    two_schemes = one("""SELECT count(*) FROM (SELECT person_id FROM pension_payments WHERE person_id IN (SELECT unnest($ids))
                         GROUP BY person_id, region_code, period HAVING count(DISTINCT scheme) = 2) GROUP BY person_id""",
                      _subjects(near, "same_period_two_employee_schemes"))
    assert two_schemes and all(n > 0 for n in two_schemes)
    homes = one("""SELECT count(DISTINCT h.household_id) FROM pension_payments p JOIN household h USING (person_id)
                   WHERE p.bank_account IN (SELECT bank_account FROM pension_payments WHERE person_id IN (SELECT unnest($ids)))
                   GROUP BY p.bank_account HAVING count(DISTINCT p.person_id) > 1""",
                _subjects(near, "same_household_shares_account"))
    assert homes and all(n == 1 for n in homes)
    cert_vs_death = """SELECT bool_and(CAST(c.cert_date AS DATE) {op} d.died AND c.result = '{result}')
                       FROM certifications c JOIN (
                           SELECT person_id, min(d) AS died FROM (
                               SELECT person_id, CAST(death_date AS DATE) AS d FROM deaths UNION ALL
                               SELECT person_id, CAST(cancel_date AS DATE) FROM household WHERE cancel_reason = '死亡')
                           GROUP BY 1) d USING (person_id)
                       WHERE person_id IN (SELECT unnest($ids)) GROUP BY person_id"""
    failed = one(cert_vs_death.format(op=">", result="未通过"), _subjects(near, "cad_failed_after_death"))
    assert failed and all(failed)
    before = one(cert_vs_death.format(op="<", result="通过"), _subjects(near, "cad_before_death"))
    assert before and all(before)
    day61 = con.execute("""SELECT count(*) FROM refund_transfers t JOIN stabilization_refunds r USING (firm_id)
                           WHERE CAST(t.transfer_date AS DATE) - CAST(r.paid_date AS DATE) = 61""").fetchone()[0]
    assert day61 > 0


def test_messy_and_parquet_share_the_ground_truth(clean_csv, messy_csv, clean_parquet):
    expected = (clean_csv / "ground_truth.parquet").read_bytes()
    assert (messy_csv / "ground_truth.parquet").read_bytes() == expected
    assert (clean_parquet / "ground_truth.parquet").read_bytes() == expected
    assert (messy_csv / "near_misses.parquet").read_bytes() == (clean_csv / "near_misses.parquet").read_bytes()
