"""Planted person cases: one function per kind, each building the complete payment,
death, household and prison history of its subjects, plus the categories they must
fire (or, for near misses, must not fire). Firms are planted in `firms.py`.

Adding a category means adding kinds here and its semantics in `truth.py`. The identity kinds
(duplicate_identity and weak death matches) live in `identity.py`, their truth in
`identity_truth.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fraudwatch_synth import reference as ref
from fraudwatch_synth.payment_cases import PAYMENT_CATEGORIES
from fraudwatch_synth.plan import Plan
from fraudwatch_synth.population import Calendar, Population

PAD = "paid_after_death"
SAD = "subsidy_after_death"
DCR = "duplicate_cross_region"
DCS = "duplicate_cross_scheme"
PDI = "paid_during_imprisonment"
RR = "refund_retained"
CATEGORIES = [PAD, SAD, DCR, DCS, PDI, RR, *PAYMENT_CATEGORIES]

NAT = np.datetime64("NaT", "D")
SERVING = 10_000  # release month index meaning "still serving"


@dataclass
class Ctx:
    """What every planting function needs."""

    rng: np.random.Generator
    cal: Calendar
    pop: Population
    plan: Plan

    def between(self, lo, hi, n: int | None = None) -> np.ndarray:
        """Uniform integers in [lo, hi] (inclusive; arrays broadcast, scalars need n)."""
        lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64))
        if n is not None:
            lo, hi = np.broadcast_to(lo, (n,)), np.broadcast_to(hi, (n,))
        return lo + self.rng.integers(0, hi - lo + 1)

    def other_region(self, region: np.ndarray) -> np.ndarray:
        """A region code of the population's regions different from each given one."""
        codes = np.sort(self.pop.codes)
        pos = np.searchsorted(codes, region)
        step = self.rng.integers(1, len(codes), len(region))
        return codes[(pos + step) % len(codes)]

    def employee(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An employee scheme (110/120) and monthly amount for each person."""
        own = self.pop.scheme[p]
        scheme = np.where(own == 170, np.where(self.rng.random(len(p)) < 0.8, 110, 120), own)
        fen = np.where(self.pop.scheme[p] == 170, self.rng.integers(200_000, 600_000, len(p)), self.pop.amount[p])
        return scheme, fen

    def resident_fen(self, n: int) -> np.ndarray:
        return self.rng.integers(15_000, 40_000, n)

    def pension(self, p: np.ndarray, first, last, **kw) -> None:
        """Pension runs in the person's home region and scheme unless overridden."""
        kw.setdefault("region", self.pop.region[p])
        kw.setdefault("scheme", self.pop.scheme[p])
        kw.setdefault("fen", self.pop.amount[p])
        self.plan.pension_run(p, first=first, last=last, **kw)

    def die(self, p: np.ndarray, d: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """Record deaths in month d. sources: 0-2 = deaths extract (公安/民政/卫健), 3 = household 注销/死亡."""
        date = self.cal.day_in(d, self.rng)
        extract = sources < 3
        self.plan.deaths.add(person=p[extract], date=date[extract], source=sources[extract])
        self.plan.cancels.add(person=p[~extract], date=date[~extract], reason=0)
        return date

    def intend(self, kind: str, p: np.ndarray, *categories: str) -> None:
        self.plan.intents.add(kind=kind, subject=p, categories=",".join(sorted(categories)))

    def near_miss(self, kind: str, p: np.ndarray, category: str) -> None:
        self.plan.near_misses.add(kind=kind, subject=p, category=category)


def _death_then_paid(c: Ctx, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Death month d and the last paid month d+k, k in 1..4, inside the range."""
    d = c.between(0, c.cal.last - 1, len(p))
    return d, d + c.between(1, np.minimum(4, c.cal.last - d))


def _pad_source(source: int) -> Callable[[Ctx, np.ndarray], None]:
    def plant(c: Ctx, p: np.ndarray) -> None:
        d, end = _death_then_paid(c, p)
        c.pension(p, 0, end)
        c.die(p, d, np.full(len(p), source))
        c.intend(f"pad_{['police', 'civil', 'health', 'household'][source]}", p, PAD)
    return plant


def pad_multi_records(c: Ctx, p: np.ndarray) -> None:
    """Three records with different dates: health first, cremation and household later; the earliest counts."""
    d, end = _death_then_paid(c, p)
    c.pension(p, 0, end)
    first = c.die(p, d, np.full(len(p), 2))
    c.plan.deaths.add(person=p, date=first + c.between(35, 60, len(p)), source=1)
    c.plan.cancels.add(person=p, date=first + c.between(40, 90, len(p)), reason=0)
    c.intend("pad_multi_records", p, PAD)


def pad_cross_region(c: Ctx, p: np.ndarray) -> None:
    d, end = _death_then_paid(c, p)
    c.pension(p, 0, end)
    c.pension(p, c.between(0, d), end, region=c.other_region(c.pop.region[p]))
    c.die(p, d, c.rng.integers(0, 4, len(p)))
    c.intend("pad_cross_region", p, PAD, DCR)


def pad_cross_scheme(c: Ctx, p: np.ndarray) -> None:
    d, end = _death_then_paid(c, p)
    scheme, fen = c.employee(p)
    c.pension(p, 0, end, scheme=scheme, fen=fen)
    elsewhere = c.rng.random(len(p)) < 0.5
    region = np.where(elsewhere, c.other_region(c.pop.region[p]), c.pop.region[p])
    c.pension(p, c.between(0, d), end, region=region, scheme=170, fen=c.resident_fen(len(p)))
    c.die(p, d, c.rng.integers(0, 4, len(p)))
    c.intend("pad_cross_scheme", p, PAD, DCS)


def _subsidy(c: Ctx, p: np.ndarray, last: np.ndarray) -> None:
    program = c.rng.integers(0, len(ref.PROGRAMS), len(p))
    lo = np.array([lo for _, lo, _ in ref.PROGRAMS])[program]
    hi = np.array([hi for _, _, hi in ref.PROGRAMS])[program]
    c.plan.subsidy_run(p, program, c.pop.region[p], c.between(lo, hi), 0, last)


def sad_basic(c: Ctx, p: np.ndarray) -> None:
    d, end = _death_then_paid(c, p)
    _subsidy(c, p, end)
    c.pension(p, 0, d)  # the pension stopped correctly
    c.die(p, d, c.rng.integers(0, 4, len(p)))
    c.intend("sad_basic", p, SAD)


def dcr_overlap(c: Ctx, p: np.ndarray) -> None:
    """Home region from the start; a second region joins later (and may stop)."""
    c.pension(p, 0, c.cal.last)
    j = c.between(1, c.cal.last, len(p))
    c.pension(p, j, c.between(j, c.cal.last), region=c.other_region(c.pop.region[p]))
    c.intend("dcr_overlap", p, DCR)


def dcr_tie(c: Ctx, p: np.ndarray) -> None:
    """Both regions start in the same month: the higher region code is presumed improper."""
    c.pension(p, 0, c.cal.last)
    c.pension(p, 0, c.between(0, c.cal.last, len(p)), region=c.other_region(c.pop.region[p]))
    c.intend("dcr_tie", p, DCR)


def dcr_legacy15(c: Ctx, p: np.ndarray) -> None:
    """The second region pays under the legacy 15-digit form of the same ID."""
    c.pension(p, 0, c.cal.last)
    c.pension(p, c.between(0, c.cal.last, len(p)), c.cal.last, region=c.other_region(c.pop.region[p]), legacy=True)
    c.intend("dcr_legacy15", p, DCR)


def dcs_basic(c: Ctx, p: np.ndarray) -> None:
    scheme, fen = c.employee(p)
    c.pension(p, 0, c.cal.last, scheme=scheme, fen=fen)
    elsewhere = c.rng.random(len(p)) < 0.5
    region = np.where(elsewhere, c.other_region(c.pop.region[p]), c.pop.region[p])
    j = c.between(0, c.cal.last, len(p))
    c.pension(p, j, c.between(j, c.cal.last), region=region, scheme=170, fen=c.resident_fen(len(p)))
    c.intend("dcs_basic", p, DCS)


def _prison(c: Ctx, p: np.ndarray, sentence, a: np.ndarray, r: np.ndarray | None) -> None:
    admission = c.cal.day_in(a, c.rng)
    if r is None:
        r = np.full(len(p), SERVING)
    release = np.where(r < SERVING, c.cal.day_in(np.minimum(r, SERVING), c.rng), NAT)
    c.plan.prisons.add(person=p, admission=admission, release=release, sentence=sentence)


def _released_inside(c: Ctx, n_lo: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Admission a (possibly before the range) and release r with a period strictly between inside the range."""
    a = c.between(n_lo, c.cal.last - 2, n)
    return a, c.between(np.maximum(a + 2, 1), c.cal.last)


def pdi_fixed_released(c: Ctx, p: np.ndarray) -> None:
    a, r = _released_inside(c, -3, len(p))
    c.pension(p, 0, c.cal.last)
    _prison(c, p, 1, a, r)
    c.intend("pdi_fixed_released", p, PDI)


def pdi_detention_released(c: Ctx, p: np.ndarray) -> None:
    a = c.between(0, c.cal.last - 2, len(p))
    r = c.between(a + 2, np.minimum(a + 6, c.cal.last))
    c.pension(p, 0, c.cal.last)
    _prison(c, p, 2, a, r)
    c.intend("pdi_detention_released", p, PDI)


def _serving(sentence: int, name: str) -> Callable[[Ctx, np.ndarray], None]:
    def plant(c: Ctx, p: np.ndarray) -> None:
        a = c.between(-24, c.cal.last - 1, len(p))
        c.pension(p, 0, c.cal.last)
        _prison(c, p, sentence, a, None)
        c.intend(name, p, PDI)
    return plant


def pdi_unknown_type(c: Ctx, p: np.ndarray) -> None:
    a, r = _released_inside(c, -3, len(p))
    r = np.where(c.rng.random(len(p)) < 0.5, r, SERVING)
    c.pension(p, 0, c.cal.last)
    _prison(c, p, 0, a, r)
    c.intend("pdi_unknown_type", p, PDI)


# --- near misses -------------------------------------------------------------------


def nm_death_in_last_paid_month(c: Ctx, p: np.ndarray) -> None:
    d = c.between(0, c.cal.last, len(p))
    c.pension(p, 0, d)
    c.die(p, d, c.rng.integers(0, 4, len(p)))
    c.near_miss("death_in_last_paid_month", p, PAD)


def nm_arrears(c: Ctx, p: np.ndarray) -> None:
    """The last three months before (and of) the death were paid together after the death."""
    d = c.between(2, c.cal.last, len(p))
    c.pension(p, 0, d - 3)
    c.pension(p, d - 2, d, pay_month=d + 1)
    c.die(p, d, c.rng.integers(0, 4, len(p)))
    c.near_miss("arrears_paid_after_death", p, PAD)


def nm_namesake(c: Ctx, p: np.ndarray) -> None:
    """First half: living pensioners; second half: a person of the same name who died."""
    half = len(p) // 2
    alive, dead = p[:half], p[half : 2 * half]
    c.pension(alive, 0, c.cal.last)
    c.plan.same_name.add(person=dead, name_of=alive)
    d = c.between(0, c.cal.last - 1, half)
    c.pension(dead, 0, d)
    c.die(dead, d, c.rng.integers(0, 4, half))
    c.near_miss("namesake_died", alive, PAD)


def nm_noncustodial(c: Ctx, p: np.ndarray) -> None:
    a, r = _released_inside(c, -6, len(p))
    r = np.where(c.rng.random(len(p)) < 0.5, r, SERVING)
    c.pension(p, 0, c.cal.last)
    _prison(c, p, np.array(ref.NON_CUSTODIAL)[np.arange(len(p)) % 3], a, r)
    c.near_miss("noncustodial_sentence", p, PDI)


def nm_paid_admission_release_months(c: Ctx, p: np.ndarray) -> None:
    a = c.between(0, c.cal.last - 2, len(p))
    r = c.between(a + 2, c.cal.last)
    c.pension(p, 0, a)
    c.pension(p, r, c.cal.last)
    _prison(c, p, 1, a, r)
    c.near_miss("paid_in_admission_and_release_month", p, PDI)


def nm_release_next_month(c: Ctx, p: np.ndarray) -> None:
    a = c.between(0, c.cal.last - 1, len(p))
    c.pension(p, 0, c.cal.last)
    _prison(c, p, c.rng.integers(1, 3, len(p)), a, a + 1)
    c.near_miss("released_month_after_admission", p, PDI)


def nm_moved(c: Ctx, p: np.ndarray) -> None:
    j = c.between(0, c.cal.last - 1, len(p))
    new = c.other_region(c.pop.region[p])
    c.pension(p, 0, j)
    c.pension(p, j + 1, c.cal.last, region=new)
    c.plan.moves.add(person=p, region=new)
    c.near_miss("moved_without_overlap", p, DCR)


def nm_scheme_switch(c: Ctx, p: np.ndarray) -> None:
    j = c.between(0, c.cal.last - 1, len(p))
    scheme, fen = c.employee(p)
    c.pension(p, 0, j, scheme=170, fen=c.resident_fen(len(p)))
    c.pension(p, j + 1, c.cal.last, scheme=scheme, fen=fen)
    c.near_miss("resident_then_employee_pension", p, DCS)


def nm_subsidy_death_month(c: Ctx, p: np.ndarray) -> None:
    d = c.between(0, c.cal.last, len(p))
    _subsidy(c, p, d)
    c.pension(p, 0, d)
    c.die(p, d, c.rng.integers(0, 4, len(p)))
    c.near_miss("subsidy_until_death_month", p, SAD)


# kind -> (planting function, persons per case)
PERSON_KINDS: dict[str, tuple[Callable[[Ctx, np.ndarray], None], int]] = {
    "pad_police": (_pad_source(0), 1),
    "pad_civil": (_pad_source(1), 1),
    "pad_health": (_pad_source(2), 1),
    "pad_household": (_pad_source(3), 1),
    "pad_multi_records": (pad_multi_records, 1),
    "pad_cross_region": (pad_cross_region, 1),
    "pad_cross_scheme": (pad_cross_scheme, 1),
    "sad_basic": (sad_basic, 1),
    "dcr_overlap": (dcr_overlap, 1),
    "dcr_tie": (dcr_tie, 1),
    "dcr_legacy15": (dcr_legacy15, 1),
    "dcs_basic": (dcs_basic, 1),
    "pdi_fixed_released": (pdi_fixed_released, 1),
    "pdi_detention_released": (pdi_detention_released, 1),
    "pdi_life_serving": (_serving(3, "pdi_life_serving"), 1),
    "pdi_suspended_death_serving": (_serving(4, "pdi_suspended_death_serving"), 1),
    "pdi_fixed_serving": (_serving(1, "pdi_fixed_serving"), 1),
    "pdi_unknown_type": (pdi_unknown_type, 1),
    "nm_death_in_last_paid_month": (nm_death_in_last_paid_month, 1),
    "nm_arrears": (nm_arrears, 1),
    "nm_namesake": (nm_namesake, 2),
    "nm_noncustodial": (nm_noncustodial, 1),
    "nm_paid_admission_release_months": (nm_paid_admission_release_months, 1),
    "nm_release_next_month": (nm_release_next_month, 1),
    "nm_moved": (nm_moved, 1),
    "nm_scheme_switch": (nm_scheme_switch, 1),
    "nm_subsidy_death_month": (nm_subsidy_death_month, 1),
}

# Identity cases (one person behind two IDs, death records under broken IDs; issue 4).
from fraudwatch_synth.identity import IDENTITY_KINDS, SPARSE_KINDS  # noqa: E402  (imports nothing from here)

PERSON_KINDS.update(IDENTITY_KINDS)

# Identity cases the person rules follow through identity clusters (issue 12).
from fraudwatch_synth.cluster_cases import CLUSTER_KINDS  # noqa: E402

PERSON_KINDS.update(CLUSTER_KINDS)

# Payment-level risk rules: duplicate_payment_same_period, pensioner_over_110, shared_bank_account.
from fraudwatch_synth.payment_cases import PAYMENT_KINDS  # noqa: E402

PERSON_KINDS.update(PAYMENT_KINDS)

# Proof of life: certified_after_death (fraudwatch_synth/certifications.py).
from fraudwatch_synth.certifications import CERT_KINDS  # noqa: E402

PERSON_KINDS.update(CERT_KINDS)

CASE_RATE = 0.0003  # cases per kind per person
MIN_MONTHS = 4


def cases_per_kind(persons: int) -> int:
    """How many cases of each kind a population of this size gets (at least two)."""
    return max(2, round(persons * CASE_RATE))


def kind_count(kind: str, persons: int) -> int:
    """Cases of one kind: :func:`cases_per_kind`, but at least one (not two) for the identity kinds
    that file death records under broken IDs (``identity.SPARSE_KINDS``) and the payment-level kinds
    (``payment_cases.PAYMENT_KINDS``), the proof-of-life kinds (``certifications.CERT_KINDS``) and the
    identity-cluster kinds (``cluster_cases.CLUSTER_KINDS``), so
    the smallest populations still have room."""
    if kind in SPARSE_KINDS or kind in PAYMENT_KINDS or kind in CERT_KINDS or kind in CLUSTER_KINDS:
        return max(1, round(persons * CASE_RATE))
    return cases_per_kind(persons)


def plant_persons(c: Ctx) -> np.ndarray:
    """Plant every person kind on disjoint pensioners; returns the planted person indexes."""
    counts = {kind: kind_count(kind, len(c.pop)) for kind in PERSON_KINDS}
    need = sum(counts[kind] * size for kind, (_, size) in PERSON_KINDS.items())
    pool = np.flatnonzero(c.pop.pensioner)
    if need > len(pool) // 2:  # the smallest sets (200 persons) have no room for the identity-cluster kinds
        counts.update({kind: 0 for kind in CLUSTER_KINDS})
        need = sum(counts[kind] * size for kind, (_, size) in PERSON_KINDS.items())
    if need > len(pool) // 2:
        raise ValueError(f"{len(c.pop)} persons are too few to plant {need} case persons")
    chosen = c.rng.choice(pool, need, replace=False)
    start = 0
    for kind, (fn, size) in PERSON_KINDS.items():
        take = chosen[start : start + counts[kind] * size]
        start += counts[kind] * size
        fn(c, take)
    return np.sort(chosen)
