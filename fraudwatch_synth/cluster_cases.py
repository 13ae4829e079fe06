"""Identity cases the person rules follow through identity clusters (issue 12, item 4): one person
paid under his own ID and a typo'd second ID (one digit of the region or sequence code wrong, the
checksum fails; same name and birth date, so the linker makes them one person).

Positives: ``pad_typo_second_id`` (paid under the own ID up to the death month and under the second
ID after it: paid_after_death under the own ID), ``pad_death_under_paid_typo`` (paid under the second
ID first, then under the own ID; the death is recorded under the second ID: paid_after_death),
``dcr_typo_second_id`` (another region pays the same scheme under the second ID while the own region
pays on: duplicate_cross_region and duplicate_identity), ``di_subsidy_typo`` (the same subsidy
program paid under both IDs: duplicate_identity). Near miss: ``typo_id_then_own_id_elsewhere`` (the
second ID paid by one region, then the own ID by another, never the same month: neither
duplicate_cross_region nor duplicate_identity).

Variants are registered like ``identity.py``'s (``Plan.variants``, role ``payee``); what a kind must
fire goes to ``Plan.identity_intents``, so ``identity_truth.py`` computes the expected rows
(``cluster_rows``) and checks them against the intents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from fraudwatch_synth.identity import DI, PAD, REGION_POS, SEQ_POS, add_variants, id_matrix, substitute

if TYPE_CHECKING:
    from fraudwatch_synth.cases import Ctx

DCR = "duplicate_cross_region"


def _second_id(c: Ctx, kind: str, p: np.ndarray) -> np.ndarray:
    """Register a typo'd second ID per person: one digit of the region or sequence code wrong (the
    check character kept, so it fails)."""
    def typo(rows: np.ndarray) -> np.ndarray:
        return substitute(id_matrix(c.pop.ids.gather(p[rows])), c.rng.choice(REGION_POS + SEQ_POS, len(rows)), c.rng)
    return add_variants(c, kind, p, typo(np.arange(len(p))), c.pop.names.gather(p), "payee", typo)


def _pay_variant(c: Ctx, v: np.ndarray, p: np.ndarray, first, last, region: np.ndarray | None = None) -> None:
    region = c.pop.region[p] if region is None else region
    fen = np.maximum(100, c.pop.amount[p] + c.rng.integers(-5000, 5000, len(p)))
    c.plan.variant_pension.add(variant=v, region=region, scheme=c.pop.scheme[p], fen=fen, first=first, last=last)


def _intend(c: Ctx, kind: str, p: np.ndarray, *rules: str) -> None:
    for rule in rules:
        c.plan.identity_intents.add(kind=kind, subject=p, rule_id=rule)


def _maybe_elsewhere(c: Ctx, p: np.ndarray) -> np.ndarray:
    return np.where(c.rng.random(len(p)) < 0.6, c.other_region(c.pop.region[p]), c.pop.region[p])


def pad_typo_second_id(c: Ctx, p: np.ndarray) -> None:
    """Died in month d (record under the own ID), paid under the own ID up to d, then 1-4 months
    under the second ID."""
    d = c.between(0, c.cal.last - 1, len(p))
    end = d + c.between(1, np.minimum(4, c.cal.last - d))
    c.pension(p, 0, d)
    c.die(p, d, c.rng.integers(0, 4, len(p)))
    _pay_variant(c, _second_id(c, "pad_typo_second_id", p), p, d + 1, end, _maybe_elsewhere(c, p))
    _intend(c, "pad_typo_second_id", p, PAD)


def pad_death_under_paid_typo(c: Ctx, p: np.ndarray) -> None:
    """Paid under the second ID in months 0..j, under the own ID from j+1 (a corrected ID); died in
    month d > j with the death recorded under the second ID; the own ID paid on 1-4 months."""
    d = c.between(1, c.cal.last - 1, len(p))
    end = d + c.between(1, np.minimum(4, c.cal.last - d))
    j = c.between(0, d - 1)
    v = _second_id(c, "pad_death_under_paid_typo", p)
    _pay_variant(c, v, p, 0, j, _maybe_elsewhere(c, p))
    c.pension(p, j + 1, end)
    c.plan.variant_deaths.add(variant=v, date=c.cal.day_in(d, c.rng), source=c.rng.integers(0, 3, len(p)))
    _intend(c, "pad_death_under_paid_typo", p, PAD)


def dcr_typo_second_id(c: Ctx, p: np.ndarray) -> None:
    """The own region pays all along; from month j >= 1 another region pays the same scheme under the
    second ID for a stretch."""
    c.pension(p, 0, c.cal.last)
    j = c.between(1, c.cal.last, len(p))
    _pay_variant(c, _second_id(c, "dcr_typo_second_id", p), p, j, c.between(j, c.cal.last),
                 c.other_region(c.pop.region[p]))
    _intend(c, "dcr_typo_second_id", p, DCR, DI)


def di_subsidy_typo(c: Ctx, p: np.ndarray) -> None:
    """A pension and one subsidy program under the own ID all along; the same program under the second
    ID for a stretch (same or another region)."""
    from fraudwatch_synth import reference as ref

    c.pension(p, 0, c.cal.last)
    program = c.rng.integers(0, len(ref.PROGRAMS), len(p))
    lo = np.array([lo for _, lo, _ in ref.PROGRAMS])[program]
    hi = np.array([hi for _, _, hi in ref.PROGRAMS])[program]
    c.plan.subsidy_run(p, program, c.pop.region[p], c.between(lo, hi), 0, c.cal.last)
    v = _second_id(c, "di_subsidy_typo", p)
    j = c.between(0, c.cal.last, len(p))
    c.plan.variant_subsidy.add(variant=v, program=program, region=_maybe_elsewhere(c, p), fen=c.between(lo, hi),
                               first=j, last=c.between(j, c.cal.last))
    _intend(c, "di_subsidy_typo", p, DI)


def nm_typo_id_then_own_id_elsewhere(c: Ctx, p: np.ndarray) -> None:
    """The second ID paid by another region in months 0..j, the own ID by the home region from j+1."""
    j = c.between(0, c.cal.last - 1, len(p))
    _pay_variant(c, _second_id(c, "typo_id_then_own_id_elsewhere", p), p, 0, j, c.other_region(c.pop.region[p]))
    c.pension(p, j + 1, c.cal.last)
    for category in (DCR, DI):
        c.plan.identity_near_misses.add(kind="typo_id_then_own_id_elsewhere", subject=p, category=category)


# Every kind here pays a second ID that the linker joins to the own ID (identity_truth.cluster_rows).
CLUSTER_KINDS: dict[str, tuple[Callable[["Ctx", np.ndarray], None], int]] = {
    "pad_typo_second_id": (pad_typo_second_id, 1),
    "pad_death_under_paid_typo": (pad_death_under_paid_typo, 1),
    "dcr_typo_second_id": (dcr_typo_second_id, 1),
    "di_subsidy_typo": (di_subsidy_typo, 1),
    "nm_typo_id_then_own_id_elsewhere": (nm_typo_id_then_own_id_elsewhere, 1),
}
# The variant kinds (as registered in Plan.variants) whose second ID is linked to the person: these and
# identity.py's duplicate_identity kinds.
LINKED_VARIANT_KINDS = frozenset({"pad_typo_second_id", "pad_death_under_paid_typo", "dcr_typo_second_id",
                                  "di_subsidy_typo", "typo_id_then_own_id_elsewhere", "di_substitution",
                                  "di_transposition_trad", "di_bad_check_homophone", "di_forged_valid"})
