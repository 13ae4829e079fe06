"""Invalid IDs are identifiers (suspects.md): a few planted persons of the strict person categories
carry an ID with a wrong check character in every extract (payroll, deaths, household, prison,
subsidy). The same invalid ID everywhere is the same person, so each must be reported exactly like
a valid one — under the invalid ID, with the reason saying the ID itself is invalid.

Runs after planting and before the ground truth, which then names these persons by their invalid
IDs (``identity_variants.parquet`` is not involved: no second ID exists).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraudwatch_synth.cases import DCR, DCS, PAD, PDI, SAD, Ctx, cases_per_kind
from fraudwatch_synth.identity import id_matrix, wrong_check
from fraudwatch_synth.ids import strings

CATEGORIES = (PAD, SAD, PDI, DCR, DCS)


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
    p = np.unique(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)
    if len(p):
        c.pop.ids = c.pop.ids.scatter(p, strings(wrong_check(id_matrix(c.pop.ids.gather(p)), c.rng)))
    return p
