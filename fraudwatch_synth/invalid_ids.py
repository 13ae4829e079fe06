"""Invalid IDs are identifiers (suspects.md): a few planted persons of the strict person categories
carry an ID with a wrong check character in every extract (payroll, deaths, household, prison,
subsidy). The same invalid ID everywhere is the same person, so each must be reported exactly like
a valid one — under the invalid ID, with the reason saying the ID itself is invalid.

Runs after planting and before the ground truth, which then names these persons by their invalid
IDs (``identity_variants.parquet`` is not involved: no second ID exists).

Invalid IDs are rare in real extracts, and the data contracts refuse an extract whose share of
valid IDs is low (``min_valid_rate``: the column is probably not IDs). So a person is given an
invalid ID only while every extract he appears in stays at most ``MAX_INVALID_SHARE`` invalid,
counting the rows already filed under broken IDs (identity variants) as invalid: a small set then
gets fewer such persons (none in a 40-row deaths extract), a large one one per strict category or more.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraudwatch_synth.cases import DCR, DCS, PAD, PDI, SAD, Ctx, cases_per_kind
from fraudwatch_synth.identity import id_matrix, wrong_check
from fraudwatch_synth.ids import strings

CATEGORIES = (PAD, SAD, PDI, DCR, DCS)
MAX_INVALID_SHARE = 0.05


def _months(parts) -> pl.DataFrame:
    return parts.frame().group_by("person").agg(rows=(pl.col("last") - pl.col("first") + 1).sum())


def _rows_per_person(c: Ctx) -> dict[str, tuple[pl.DataFrame, int, int]]:
    """extract -> (rows per person, rows in all, rows already under broken IDs), where small
    enough to matter (household has one row per person: never)."""
    plan = c.plan
    pension, subsidy = _months(plan.pension), _months(plan.subsidy)
    variant_pension, variant_subsidy = _months_of(plan.variant_pension), _months_of(plan.variant_subsidy)
    deaths = plan.deaths.frame().group_by("person").agg(rows=pl.len())
    prisons = plan.prisons.frame().group_by("person").agg(rows=pl.len())
    return {
        "pension_payments": (pension, int(pension["rows"].sum()) + variant_pension, variant_pension),
        "subsidy_payments": (subsidy, int(subsidy["rows"].sum()) + variant_subsidy, variant_subsidy),
        "deaths": (deaths, len(plan.deaths.frame()) + len(plan.variant_deaths.frame()), len(plan.variant_deaths.frame())),
        "prisoners": (prisons, len(plan.prisons.frame()), 0),
    }


def _months_of(parts) -> int:
    f = parts.frame()
    return int((f["last"] - f["first"] + 1).sum()) if len(f) else 0


def _within_budget(candidates: np.ndarray, extracts: dict[str, tuple[pl.DataFrame, int, int]]) -> np.ndarray:
    """The candidates (in order) taken while each extract stays at most MAX_INVALID_SHARE invalid."""
    invalid = {name: broken for name, (_, _, broken) in extracts.items()}
    rows = {name: dict(per.iter_rows()) for name, (per, _, _) in extracts.items()}
    kept = []
    for person in candidates:
        adds = {name: rows[name].get(int(person), 0) for name in extracts}
        if all(invalid[name] + n <= MAX_INVALID_SHARE * extracts[name][1] for name, n in adds.items() if n):
            kept.append(person)
            for name, n in adds.items():
                invalid[name] += n
    return np.asarray(kept, dtype=np.int64)


def invalidate_ids(c: Ctx) -> np.ndarray:
    """Give one planted person per strict category (more in large populations) an invalid ID;
    returns the persons changed."""
    intents = c.plan.intents.frame()
    variant_persons = c.plan.variants.frame()["person"]
    same = c.plan.same_name.frame()
    # a 15-digit form has no check character: upgraded it is the valid ID, another identifier
    legacy = c.plan.pension.frame().filter(pl.col("legacy"))["person"]
    taken = pl.concat([variant_persons, same["person"], same["name_of"], legacy]).implode()
    per_category = max(1, cases_per_kind(len(c.pop)) // 2)
    chosen = []
    for category in CATEGORIES:
        pool = (intents.filter((pl.col("categories") == category) & ~pl.col("subject").is_in(taken))
                ["subject"].unique().sort().to_numpy())
        if len(pool):
            chosen.append(c.rng.choice(pool, min(per_category, len(pool)), replace=False))
    p = _within_budget(np.concatenate(chosen), _rows_per_person(c)) if chosen else np.array([], dtype=np.int64)
    p = np.unique(p)
    if len(p):
        c.pop.ids = c.pop.ids.scatter(p, strings(wrong_check(id_matrix(c.pop.ids.gather(p)), c.rng)))
    return p
