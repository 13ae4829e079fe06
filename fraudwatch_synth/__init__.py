"""Synthetic extract generator (`fraudwatch synth`): a realistic population with planted
fraud cases, near misses and the exact ground truth a correct run must report.

Layout: `population` (people, IDs, names, calendar), `cases` (planted person cases),
`background` (everyone else, clean by construction), `firms` (refunds and transfers),
`truth` (ground truth), `identity` / `identity_truth` (one person behind several IDs, death
records under broken IDs), `outsiders` (deaths of people outside the payroll: namesakes), `extracts` (canonical frames), `messy` and `writer` (files)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import polars as pl

from pipelines.contracts import load_contracts
from pipelines.errors import RunError
from fraudwatch_synth import extracts
from fraudwatch_synth.background import plant_background
from fraudwatch_synth.certifications import certifications_extract, certified_after_death_truth, \
    plant_background_certifications
from fraudwatch_synth.cases import MIN_MONTHS, Ctx, cases_per_kind, plant_persons
from fraudwatch_synth.firms import DEADLINE_DAYS, Firms, build_firms
from fraudwatch_synth.identity_truth import identity_truth
from fraudwatch_synth.invalid_ids import invalidate_ids
from fraudwatch_synth.outsiders import outsider_deaths
from fraudwatch_synth.plan import Plan
from fraudwatch_synth.population import REGION_CODES, Calendar, Population, build_population
from fraudwatch_synth.truth import ground_truth
from fraudwatch_synth.writer import ExtractWriter, write_parquet

MIN_PERSONS = 200
EXTRACTS = ["pension_payments", "deaths", "household", "prisoners", "subsidy_payments",
            "stabilization_refunds", "refund_transfers", "certifications"]
AS_OF_MARGIN_MONTHS = 3
# Identity cases (issue 4): their truth, near misses and the planted variant IDs (identity_truth.py).
IDENTITY_FILES = ("ground_truth_identity.parquet", "near_misses_identity.parquet", "identity_variants.parquet")
# A national set's planted cross-province subjects (national.py).
CROSS_PROVINCE_FILE = "cross_province_cases.parquet"


@dataclass(frozen=True)
class SynthSummary:
    """What `generate` wrote."""

    out: Path
    rows: dict[str, int]          # data rows per extract (planted unreadable rows not counted)
    bad_rows: int                 # planted unreadable rows (messy only)
    cases: dict[str, int]         # ground-truth suspects per category
    near_misses: int
    valid_as_of_from: str         # ground truth holds for any as_of on or after this date
    files: list[Path] = field(default_factory=list)
    identity_cases: dict[str, int] = field(default_factory=dict)  # ground_truth_identity rows per rule_id
    payroll_next: Path | None = None  # the next month's payroll file (with --payroll-next)
    provinces: tuple[str, ...] = ()   # a national set's provinces (national.py), each in <extract>/<province>/


def _check(persons: int, months: int, fmt: str, start_period: str) -> None:
    if persons < MIN_PERSONS:
        raise RunError(f"--persons {persons} is too small", hint=f"use at least {MIN_PERSONS}")
    if months < MIN_MONTHS:
        raise RunError(f"--months {months} is too small", hint=f"use at least {MIN_MONTHS}")
    if fmt not in ("csv", "parquet"):
        raise RunError(f"unknown format {fmt!r}", hint="use csv or parquet")
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", start_period):
        raise RunError(f"start period {start_period!r} is not YYYY-MM")


def _clear(out: Path) -> None:
    """Remove files an earlier synth run left here (one province's, or a national set's
    ``<extract>/<province>/`` files), so no stale month or province lingers."""
    for name in EXTRACTS:
        for path in [*out.glob(f"{name}*"), *out.glob(f"{name}/[0-9][0-9]/{name}*")]:
            if path.is_file() and path.suffix in (".csv", ".parquet"):
                path.unlink()
        for folder in sorted(out.glob(f"{name}/[0-9][0-9]")) + [out / name]:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    for name in ("ground_truth.parquet", "near_misses.parquet", "planted_bad_rows.parquet", "synth_meta.json",
                 *IDENTITY_FILES, CROSS_PROVINCE_FILE):
        (out / name).unlink(missing_ok=True)


@dataclass
class Built:
    """One population's generated structure and truth, before anything is written."""

    cal: Calendar
    pop: Population
    plan: Plan
    firms: Firms
    gt: pl.DataFrame
    near: pl.DataFrame
    gt_identity: pl.DataFrame
    near_identity: pl.DataFrame
    variants: pl.DataFrame
    identity_facts: dict
    outsiders: pl.DataFrame
    invalid: np.ndarray
    writer_rng: np.random.Generator  # the stream the writer draws the mess from


def build(persons: int, months: int, seeds: np.random.SeedSequence, start_period: str,
          codes: np.ndarray | None = None, account_offset: int = 0,
          plant_more: Callable[[Ctx, np.ndarray], np.ndarray] | None = None) -> Built:
    """Population, planted cases, background, firms and the ground truth, drawn from `seeds`.

    ``codes`` (default: the reference regions) are the region codes the population lives in;
    ``plant_more(ctx, planted)`` plants further cases on persons not yet planted (its own random
    stream) and returns them, before the background is drawn for everyone else."""
    streams = [np.random.default_rng(s) for s in seeds.spawn(6)]
    cal = Calendar.from_period(start_period, months)
    pop = build_population(streams[0], persons, REGION_CODES if codes is None else codes, account_offset)
    plan = Plan()
    planted = plant_persons(Ctx(streams[1], cal, pop, plan))
    if plant_more is not None:
        more = plant_more(Ctx(np.random.default_rng(seeds.spawn(1)[0]), cal, pop, plan), planted)
        planted = np.union1d(planted, more)
    plant_background(Ctx(streams[2], cal, pop, plan), planted)
    plant_background_certifications(Ctx(streams[2], cal, pop, plan), planted)
    firms = build_firms(Ctx(streams[3], cal, pop, plan))
    invalid = invalidate_ids(Ctx(streams[5], cal, pop, plan))
    gt, near = ground_truth(pop, cal, plan, firms)
    gt = pl.concat([gt, certified_after_death_truth(pop, plan)]).sort("category", "subject_id")
    gt_identity, near_identity, variants, identity_facts = identity_truth(pop, cal, plan)
    extracts.apply_names(pop, plan)
    outsiders = outsider_deaths(streams[5], pop, cal)
    return Built(cal, pop, plan, firms, gt, near, gt_identity, near_identity, variants, identity_facts, outsiders,
                 invalid, streams[4])


def generate(
    persons: int,
    months: int,
    seed: int,
    out: Path,
    fmt: Literal["csv", "parquet"] = "csv",
    messy: bool = False,
    start_period: str = "2024-01",
    payroll_next: Path | None = None,
) -> SynthSummary:
    """Write the seven extracts, ground_truth.parquet, near_misses.parquet,
    planted_bad_rows.parquet and synth_meta.json into `out`. Same arguments, same bytes.

    With ``payroll_next`` (a folder outside ``out``), also the next month's payroll with planted
    holds and near misses and its truth (:mod:`fraudwatch_synth.payroll`)."""
    _check(persons, months, fmt, start_period)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    b = build(persons, months, np.random.SeedSequence(seed), start_period)
    cal, pop, plan, firms, outsiders = b.cal, b.pop, b.plan, b.firms, b.outsiders
    gt, near, gt_identity, near_identity, variants = b.gt, b.near, b.gt_identity, b.near_identity, b.variants

    writer = ExtractWriter(out, fmt, messy, load_contracts(), b.writer_rng)
    book = extracts.pension_book(pop, plan)
    for m in range(months):
        writer.write("pension_payments", extracts.pension_month(book, cal, m),
                     f"pension_payments_{cal.period_text(m).replace('-', '')}")
    del book
    writer.write("deaths", extracts.deaths(pop, plan, outsiders))
    writer.write("household", extracts.household(pop, plan))
    writer.write("prisoners", extracts.prisoners(pop, plan))
    writer.write("subsidy_payments", extracts.subsidy_payments(pop, cal, plan))
    writer.write("stabilization_refunds", extracts.refunds(firms))
    writer.write("refund_transfers", extracts.transfers(firms))
    writer.write("certifications", certifications_extract(pop, plan))

    write_parquet(gt, out / "ground_truth.parquet")
    write_parquet(near, out / "near_misses.parquet")
    bad = writer.bad_rows()
    write_parquet(bad, out / "planted_bad_rows.parquet")
    for frame, name in zip((gt_identity, near_identity, variants), IDENTITY_FILES):
        write_parquet(frame, out / name)
    identity_cases = {k: int(v) for k, v in gt_identity.group_by("rule_id").len().sort("rule_id").iter_rows()}
    payroll = None
    if payroll_next is not None:
        from fraudwatch_synth.payroll import write_next_payroll

        payroll = write_next_payroll(out, Path(payroll_next), pop, plan, cal, np.random.default_rng([seed, 13]))

    valid_from = str((cal.start + months + AS_OF_MARGIN_MONTHS).astype("datetime64[D]"))
    cases = {k: int(v) for k, v in gt.group_by("category").len().sort("category").iter_rows()}
    meta = {
        "generator": "fraudwatch_synth",
        "persons": persons, "months": months, "seed": seed, "format": fmt, "messy": messy,
        "start_period": start_period, "end_period": cal.period_text(months - 1),
        "valid_as_of_from": valid_from, "refund_deadline_days": DEADLINE_DAYS,
        "cases_per_kind": cases_per_kind(persons),
        "rows": writer.rows, "planted_bad_rows": len(bad), "ground_truth": cases, "near_misses": len(near),
        "ground_truth_identity": identity_cases, "near_misses_identity": len(near_identity),
        "identity": b.identity_facts, "outsider_deaths": len(outsiders),
        "invalid_id_subjects": sorted(pop.ids.gather(b.invalid).to_list()),
    }
    if payroll is not None:
        meta["payroll_next"] = {"file": payroll.payroll.name, "period": payroll.period, "rows": payroll.rows,
                                "holds": payroll.holds, "near_misses": payroll.near_misses}
    (out / "synth_meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
    files = writer.files + [out / n for n in
                            ("ground_truth.parquet", "near_misses.parquet", "planted_bad_rows.parquet", "synth_meta.json",
                             *IDENTITY_FILES)]
    if payroll is not None:
        from fraudwatch_synth.payroll import CERTIFICATIONS_FILE, DEATHS_FILE, PRISONERS_FILE

        files += [out / DEATHS_FILE, out / PRISONERS_FILE, out / CERTIFICATIONS_FILE, payroll.payroll, payroll.truth]
    return SynthSummary(out, dict(writer.rows), len(bad), cases, len(near), valid_from, files, identity_cases,
                        payroll.payroll if payroll is not None else None)


from fraudwatch_synth.national import generate_national  # noqa: E402  (it builds on the above)

__all__ = ["generate", "generate_national", "SynthSummary"]
