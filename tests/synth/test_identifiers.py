"""Person IDs, USCCs and bank accounts are valid, recomputed here independently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest

from fraudwatch_synth.reference import REGIONS
from synth_helpers import id_ok, luhn_ok, upgrade, uscc_ok


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_checksum_helpers_reject_corruption():
    assert id_ok("11010119491001001X") and not id_ok("110101194910010011")
    assert uscc_ok("91110101000000019Y") and not uscc_ok("91110101000000019X")
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_person_ids_valid_unique_and_consistent_with_household(clean_csv):
    house = rows(clean_csv / "household.csv")
    ids = [r["person_id"] for r in house]
    assert len(ids) == len(set(ids)) == 300
    regions = {str(code) for code, _ in REGIONS}
    # planted persons whose ID is invalid in every extract (invalid IDs are identifiers, issue 12)
    invalid = set(json.loads((clean_csv / "synth_meta.json").read_text())["invalid_id_subjects"])
    assert invalid and invalid <= set(ids)
    for r in house:
        pid = r["person_id"]
        assert id_ok(pid) != (pid in invalid), pid
        assert pid[:6] in regions
        assert r["birth_date"].replace("-", "") == pid[6:14]
        assert (int(pid[16]) % 2 == 1) == (r["gender"] == "男")
    known = set(ids)
    # Payments under planted identity variants (typo'd or forged IDs, issue 4) are the exception,
    # and exactly those listed in identity_variants.parquet.
    payees = pl.read_parquet(clean_csv / "identity_variants.parquet").filter(pl.col("role") == "payee")
    subsidy_only = set(payees.filter(pl.col("kind") == "di_subsidy_typo")["variant_id"].to_list())
    planted = set(payees["variant_id"].to_list()) - subsidy_only
    seen = set()
    for f in sorted(clean_csv.glob("pension_payments_*.csv")):
        for r in rows(f):
            pid = r["person_id"]
            if pid in planted:
                seen.add(pid)
                assert pid not in known, pid
                continue
            full = upgrade(pid) if len(pid) == 15 else pid
            assert (id_ok(full) or full in invalid) and full in known, pid
    assert seen == planted
    # a second ID drawing a subsidy only (duplicate_identity counts subsidies, issue 12)
    subsidies = {r["person_id"] for r in rows(clean_csv / "subsidy_payments.csv")}
    assert subsidy_only and subsidy_only <= subsidies and not subsidy_only & known


def test_legacy_15_digit_ids_exist_only_where_planted(clean_csv):
    legacy = [r["person_id"] for f in clean_csv.glob("pension_payments_*.csv") for r in rows(f) if len(r["person_id"]) == 15]
    assert legacy, "the dcr_legacy15 case pays under a 15-digit ID"


def test_firm_ids_valid_and_invalid_recipients_planted(clean_csv):
    refunds = rows(clean_csv / "stabilization_refunds.csv")
    assert all(uscc_ok(r["firm_id"]) for r in refunds)
    assert len({r["firm_id"] for r in refunds}) == len(refunds)
    recipients = [r["recipient_id"] for r in rows(clean_csv / "refund_transfers.csv")]
    assert any(not uscc_ok(x) for x in recipients), "a transfer to an invalid USCC is planted"
    assert sum(not uscc_ok(x) for x in recipients) < len(recipients) / 2
    gt = pl.read_parquet(clean_csv / "ground_truth.parquet").filter(pl.col("subject_type") == "firm")
    assert all(uscc_ok(x) for x in gt["subject_id"])


def test_bank_accounts_valid_and_one_per_person(clean_csv):
    """One account per person, except the planted shared accounts (shared_bank_account cases and
    their same-household near misses)."""
    gt = pl.read_parquet(clean_csv / "ground_truth.parquet").filter(pl.col("category") == "shared_bank_account")
    near = pl.read_parquet(clean_csv / "near_misses.parquet").filter(
        pl.col("category_it_must_not_fire") == "shared_bank_account")
    sharing = set(gt["subject_id"]) | set(near["subject_id"])
    assert sharing
    owners: dict[str, set[str]] = {}
    for f in clean_csv.glob("pension_payments_*.csv"):
        for r in rows(f):
            acct = r["bank_account"]
            assert acct.isdigit() and 16 <= len(acct) <= 19 and luhn_ok(acct), acct
            pid = r["person_id"] if len(r["person_id"]) == 18 else upgrade(r["person_id"])
            owners.setdefault(acct, set()).add(pid)
    for acct, pids in owners.items():
        assert len(pids) == 1 or pids <= sharing, (acct, pids)


@pytest.mark.parametrize("persons, months, seed", [(200, 4, 5), (200, 4, 9), (300, 6, 3), (300, 4, 2), (600, 8, 11)])
def test_small_sets_keep_every_extract_within_its_contract_share_of_valid_ids(tmp_path, persons, months, seed):
    """Persons with an invalid ID are planted only while each extract stays mostly valid, so the
    smallest sets the suite generates still pass the contracts' ``min_valid_rate``; some are planted."""
    from fraudwatch_synth import generate
    from pipelines.contracts import load_contracts

    generate(persons, months, seed, tmp_path)
    contracts = load_contracts()
    for name, contract in contracts.items():
        column = next((c for c in contract.columns if c.name == "person_id" and c.min_valid_rate), None)
        files = sorted(tmp_path.glob(f"{name}*.csv"))
        if column is None or not files:
            continue
        ids = [r["person_id"] for f in files for r in rows(f)]
        share = sum(id_ok(upgrade(x) if len(x) == 15 else x) for x in ids) / len(ids)
        assert share >= column.min_valid_rate, (name, share)
    assert json.loads((tmp_path / "synth_meta.json").read_text())["invalid_id_subjects"]
