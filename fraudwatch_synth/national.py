"""A national set (`fraudwatch synth --provinces 11,44,51`): one generated population per province,
living in that province's counties (GB 2260, ``pipelines/regions/gb2260.csv``), with every kind of
planted case of a single-province set, plus cases that cross provinces, in the national landing
layout ``<out>/<extract>/<province>/<file>`` that ``fraudwatch run`` reads as one job.

Cross-province kinds, planted on a province's own pensioners with another province drawn at random
(each subject in ``cross_province_cases.parquet``): ``xp_paid_by_two_provinces`` (a county of the
other province also pays the same scheme for a stretch: duplicate_cross_region) and
``xp_death_registered_elsewhere`` (the death is registered in the other province while the home
province pays on: paid_after_death). Near misses (near_misses.parquet): ``moved_to_another_province``
(the pension moves with no overlapping month, the household follows) and
``death_registered_elsewhere_after_last_payment`` (the death, registered in the other province,
falls in or after the last month the home province paid).

Each record goes to the province that holds it: a payment to the province of its region code, a
household row to its (current) region's, a death record to the province it is registered in
(the person's own unless planted elsewhere), everything else to the person's or firm's own.
Record IDs (each contract's ``unique`` columns, and death record IDs) carry the province code in
front, so they are unique nationally. The ground truth is the provinces' truths together: the
cross-province runs and deaths are part of the home province's plan, so ``truth.py`` computes
their suspects like any other.
"""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from fraudwatch_synth import AS_OF_MARGIN_MONTHS, CROSS_PROVINCE_FILE, IDENTITY_FILES, Built, SynthSummary, _check, _clear, build, extracts
from fraudwatch_synth.cases import DCR, PAD, Ctx, _death_then_paid, cases_per_kind
from fraudwatch_synth.certifications import certifications_extract
from fraudwatch_synth.firms import DEADLINE_DAYS
from fraudwatch_synth.writer import ExtractWriter, write_parquet
from pipelines.contracts import Contract, load_contracts
from pipelines.errors import RunError
from pipelines.regions import region_table

# Bank-account numbers are a bijection of an index below 10^9 (ids.bank_accounts): each province
# numbers its persons and variant IDs from its own offset, ACCOUNT_BLOCK × persons apart.
ACCOUNT_BLOCK = 2
ACCOUNT_INDEXES = 1_000_000_000
# The near misses' kinds (near_misses.parquet); the planted kinds are NATIONAL_KINDS' positive keys.
MOVED = "moved_to_another_province"
DIED_ELSEWHERE = "death_registered_elsewhere_after_last_payment"
CROSS_PROVINCE_SCHEMA = {"kind": pl.String, "subject_id": pl.String, "category": pl.String, "must_fire": pl.Boolean,
                         "home_province": pl.String, "other_province": pl.String}


def province_codes(province: str) -> np.ndarray:
    """The county-level region codes of a province (its two-digit code), from GB 2260."""
    codes = sorted(int(code) for code, (_, level, _) in region_table().items()
                   if level == "county" and code.startswith(province))
    return np.array(codes, dtype=np.int64)


def parse_provinces(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"11,44,51"`` -> ("11", "44", "51"), checked: two-digit GB 2260 province codes, each with two or
    more counties, distinct, at least two."""
    items = [x.strip() for x in (text.split(",") if isinstance(text, str) else text)]
    known = sorted(code[:2] for code, (_, level, _) in region_table().items() if level == "province")
    for item in items:
        if not re.fullmatch(r"\d{2}", item) or item not in known:
            raise RunError(f"--provinces: {item!r} is not a province code",
                           hint=f"use two-digit GB 2260 province codes, e.g. 11,44,51 (known: {', '.join(known)})")
        if len(province_codes(item)) < 2:
            raise RunError(f"--provinces: province {item} has fewer than two counties in GB 2260",
                           hint="choose provinces with counties of their own")
    if len(set(items)) != len(items):
        raise RunError("--provinces names a province twice", hint="list each province once, e.g. 11,44,51")
    if len(items) < 2:
        raise RunError("--provinces needs two or more provinces", hint="for one province leave --provinces out")
    return tuple(items)


# --- cross-province kinds -------------------------------------------------------------


def _elsewhere(c: Ctx, n: int, others: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """For n subjects: another province (int code) and one of its counties, drawn at random."""
    provinces = sorted(others)
    pick = c.rng.integers(0, len(provinces), n)
    region = np.array([others[provinces[k]][c.rng.integers(0, len(others[provinces[k]]))] for k in pick],
                      dtype=np.int64)
    return np.array([int(provinces[k]) for k in pick], dtype=np.int64), region


def xp_paid_by_two_provinces(c: Ctx, p: np.ndarray, others: dict[str, np.ndarray]) -> None:
    """The home province pays throughout; another province's county pays the same scheme from month
    j >= 1 for a stretch: its payments in those months are improper."""
    _, region = _elsewhere(c, len(p), others)
    c.pension(p, 0, c.cal.last)
    j = c.between(1, c.cal.last, len(p))
    c.pension(p, j, c.between(j, c.cal.last), region=region)
    c.intend("xp_paid_by_two_provinces", p, DCR)


def xp_death_registered_elsewhere(c: Ctx, p: np.ndarray, others: dict[str, np.ndarray]) -> None:
    """The death is registered in another province's deaths extract (not in the home household
    register); the home province pays one to four months past the death month."""
    province, _ = _elsewhere(c, len(p), others)
    d, end = _death_then_paid(c, p)
    c.pension(p, 0, end)
    c.die(p, d, c.rng.integers(0, 3, len(p)))
    c.plan.registered_elsewhere.add(person=p, province=province)
    c.intend("xp_death_registered_elsewhere", p, PAD)


def nm_xp_moved(c: Ctx, p: np.ndarray, others: dict[str, np.ndarray]) -> None:
    """Moved to another province: home pays months 0..j, the new province j+1.. (no overlap)."""
    _, region = _elsewhere(c, len(p), others)
    j = c.between(0, c.cal.last - 1, len(p))
    c.pension(p, 0, j)
    c.pension(p, j + 1, c.cal.last, region=region)
    c.plan.moves.add(person=p, region=region)
    c.near_miss(MOVED, p, DCR)


def nm_xp_death_elsewhere_last_paid(c: Ctx, p: np.ndarray, others: dict[str, np.ndarray]) -> None:
    """The death is registered in another province in month d; home paid up to d (the death month is
    payable) or stopped the month before."""
    province, _ = _elsewhere(c, len(p), others)
    d = c.between(1, c.cal.last, len(p))
    c.pension(p, 0, d - (c.rng.random(len(p)) < 0.5))
    c.die(p, d, c.rng.integers(0, 3, len(p)))
    c.plan.registered_elsewhere.add(person=p, province=province)
    c.near_miss(DIED_ELSEWHERE, p, PAD)


NATIONAL_KINDS = {
    "xp_paid_by_two_provinces": xp_paid_by_two_provinces,
    "xp_death_registered_elsewhere": xp_death_registered_elsewhere,
    "nm_xp_moved": nm_xp_moved,
    "nm_xp_death_elsewhere_last_paid": nm_xp_death_elsewhere_last_paid,
}


def plant_national(c: Ctx, planted: np.ndarray, others: dict[str, np.ndarray]) -> np.ndarray:
    """Plant every cross-province kind on pensioners not planted yet; returns them."""
    per_kind = cases_per_kind(len(c.pop))
    free = c.pop.pensioner.copy()
    free[planted] = False
    free[c.plan.same_name.frame()["person"].to_numpy()] = False
    chosen = c.rng.choice(np.flatnonzero(free), per_kind * len(NATIONAL_KINDS), replace=False)
    for fn, p in zip(NATIONAL_KINDS.values(), np.split(chosen, len(NATIONAL_KINDS))):
        fn(c, p, others)
    return np.sort(chosen)


def cross_province_cases(b: Built, province: str) -> pl.DataFrame:
    """The planted cross-province subjects of one province: kind, subject_id, the category it must (or,
    for a near miss, must not) fire, the home province and the other province involved. Their
    suspects are in ground_truth.parquet like any other's."""
    planted = (b.plan.intents.frame().filter(pl.col("kind").is_in(list(NATIONAL_KINDS)))
               .select("kind", "subject", category="categories", must_fire=pl.lit(True)))
    missed = (b.plan.near_misses.frame().filter(pl.col("kind").is_in([MOVED, DIED_ELSEWHERE]))
              .select("kind", "subject", "category", must_fire=pl.lit(False)))
    home = int(province)
    other = pl.concat([
        b.plan.pension.frame().select("person", province=pl.col("region") // 10_000).filter(pl.col("province") != home),
        b.plan.registered_elsewhere.frame(),
    ]).unique().rename({"person": "subject"})
    cases = pl.concat([planted, missed]).join(other, on="subject")
    return cases.select(
        "kind", subject_id=b.pop.ids.gather(cases["subject"]), category="category", must_fire="must_fire",
        home_province=pl.lit(province), other_province=pl.col("province").cast(pl.String),
    ).cast(CROSS_PROVINCE_SCHEMA)


# --- writing the national layout ------------------------------------------------------


def _in(province: str, column: str = "region_code") -> pl.Expr:
    return pl.col(column).str.starts_with(province)


def national_ids(df: pl.DataFrame, contract: Contract, province: str) -> pl.DataFrame:
    """The province code in front of the record IDs: the contract's ``unique`` columns and the death
    record ID, so that every province's IDs stay apart in one national job."""
    columns = [c.name for c in contract.columns if (c.unique or c.name == "record_id") and c.name in df.columns]
    return df.with_columns([(pl.lit(province) + pl.col(name)).alias(name) for name in columns])


def _death_rows(b: Built, province: str) -> pl.DataFrame:
    """A province's death records with the province each is registered in."""
    rows = extracts.death_rows(b.pop, b.plan, b.outsiders)
    elsewhere = b.plan.registered_elsewhere.frame()
    registered = dict(zip(b.pop.ids.gather(elsewhere["person"]).to_list(),
                          elsewhere["province"].cast(pl.String).to_list()))
    return rows.with_columns(province=pl.col("person_id").replace_strict(registered, default=province,
                                                                         return_dtype=pl.String))


def _own(df: pl.DataFrame, province: str, extract: str) -> pl.DataFrame:
    """An extract that never leaves its province (a synth bug otherwise)."""
    if "region_code" in df.columns and not df["region_code"].str.starts_with(province).all():
        raise RuntimeError(f"synth bug: {extract} of province {province} has rows of another province")
    return df


def generate_national(
    provinces: str | list[str] | tuple[str, ...],
    persons: int,
    months: int,
    seed: int,
    out: Path,
    fmt: Literal["csv", "parquet"] = "csv",
    messy: bool = False,
    start_period: str = "2024-01",
) -> SynthSummary:
    """Write a national set into `out`: every extract as ``<extract>/<province>/<file>`` for each
    province of ``provinces`` (``persons`` persons each), and at the top one ground_truth.parquet,
    near_misses.parquet, planted_bad_rows.parquet, identity truth and synth_meta.json for the whole
    set. Same arguments, same bytes."""

    provinces = parse_provinces(provinces)
    _check(persons, months, fmt, start_period)
    if ACCOUNT_BLOCK * persons * len(provinces) > ACCOUNT_INDEXES:
        raise RunError(f"--persons {persons} × {len(provinces)} provinces is too many",
                       hint=f"at most {ACCOUNT_INDEXES // ACCOUNT_BLOCK:,} persons in all")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    codes = {p: province_codes(p) for p in provinces}
    built = {}
    for i, p in enumerate(provinces):
        others = {q: codes[q] for q in provinces if q != p}
        built[p] = build(persons, months, np.random.SeedSequence([seed, int(p)]), start_period, codes[p],
                         account_offset=i * ACCOUNT_BLOCK * persons, plant_more=partial(plant_national, others=others))
    cal = built[provinces[0]].cal

    contracts = load_contracts()
    books = {p: extracts.pension_book(b.pop, b.plan) for p, b in built.items()}
    deaths = {p: _death_rows(b, p) for p, b in built.items()}
    households = {p: extracts.household(b.pop, b.plan) for p, b in built.items()}
    writers = []
    for p in provinces:
        b = built[p]
        writer = ExtractWriter(out, fmt, messy, contracts, b.writer_rng, province=p)
        writers.append(writer)

        def write(extract: str, df: pl.DataFrame, stem: str | None = None) -> None:
            writer.write(extract, national_ids(df, contracts[extract], p), stem)

        # payments and household rows of every province's plan, by the region that holds them
        book = pl.concat([books[q].filter(_in(p)) for q in provinces]).sort("region_code", maintain_order=True)
        for m in range(months):
            write("pension_payments", extracts.pension_month(book, cal, m),
                  f"pension_payments_{cal.period_text(m).replace('-', '')}")
        del book
        write("deaths", extracts.number_deaths(
            pl.concat([deaths[q].filter(pl.col("province") == p) for q in provinces]).drop("province")))
        write("household", pl.concat([households[q].filter(_in(p)) for q in provinces])
              .sort("region_code", maintain_order=True))
        write("prisoners", extracts.prisoners(b.pop, b.plan))
        write("subsidy_payments", _own(extracts.subsidy_payments(b.pop, cal, b.plan), p, "subsidy_payments"))
        write("stabilization_refunds", _own(extracts.refunds(b.firms), p, "stabilization_refunds"))
        write("refund_transfers", extracts.transfers(b.firms))
        write("certifications", _own(certifications_extract(b.pop, b.plan), p, "certifications"))

    def together(frames, *by: str) -> pl.DataFrame:
        return pl.concat(list(frames)).sort(*by) if by else pl.concat(list(frames))

    gt = together((b.gt for b in built.values()), "category", "subject_id")
    near = together((b.near for b in built.values()), "kind", "subject_id")
    bad = pl.concat([w.bad_rows() for w in writers])
    gt_identity = together((b.gt_identity for b in built.values()), "rule_id", "subject_id")
    near_identity = together((b.near_identity for b in built.values()), "kind", "subject_id", "category_it_must_not_fire")
    variants = together(b.variants for b in built.values())
    crossing = together((cross_province_cases(b, p) for p, b in built.items()), "kind", "subject_id")
    write_parquet(crossing, out / CROSS_PROVINCE_FILE)
    write_parquet(gt, out / "ground_truth.parquet")
    write_parquet(near, out / "near_misses.parquet")
    write_parquet(bad, out / "planted_bad_rows.parquet")
    for frame, name in zip((gt_identity, near_identity, variants), IDENTITY_FILES):
        write_parquet(frame, out / name)

    rows: dict[str, int] = {}
    for w in writers:
        for extract, n in w.rows.items():
            rows[extract] = rows.get(extract, 0) + n
    valid_from = str((cal.start + months + AS_OF_MARGIN_MONTHS).astype("datetime64[D]"))
    cases = {k: int(v) for k, v in gt.group_by("category").len().sort("category").iter_rows()}
    identity_cases = {k: int(v) for k, v in gt_identity.group_by("rule_id").len().sort("rule_id").iter_rows()}
    meta = {
        "generator": "fraudwatch_synth", "layout": "national",
        "provinces": list(provinces), "persons_per_province": persons,
        "months": months, "seed": seed, "format": fmt, "messy": messy,
        "start_period": start_period, "end_period": cal.period_text(months - 1),
        "valid_as_of_from": valid_from, "refund_deadline_days": DEADLINE_DAYS,
        "cases_per_kind": cases_per_kind(persons),
        "rows": rows, "planted_bad_rows": len(bad), "ground_truth": cases, "near_misses": len(near),
        "cross_province_cases": {k: int(v) for k, v in crossing.group_by("kind").len().sort("kind").iter_rows()},
        "ground_truth_identity": identity_cases, "near_misses_identity": len(near_identity),
        "outsider_deaths": sum(len(b.outsiders) for b in built.values()),
        "invalid_id_subjects": sorted(x for b in built.values() for x in b.pop.ids.gather(b.invalid).to_list()),
    }
    (out / "synth_meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
    files = [f for w in writers for f in w.files] + [
        out / n for n in ("ground_truth.parquet", "near_misses.parquet", "planted_bad_rows.parquet", "synth_meta.json",
                          *IDENTITY_FILES, CROSS_PROVINCE_FILE)]
    return SynthSummary(out, rows, len(bad), cases, len(near), valid_from, files, identity_cases, None, provinces)


__all__ = ["generate_national", "parse_provinces", "province_codes", "NATIONAL_KINDS"]
