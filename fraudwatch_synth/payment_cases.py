"""Planted cases of the payment-level risk rules: the same period paid twice by one region
under one scheme (duplicate_payment_same_period), pensioners older than 110 (pensioner_over_110)
and one bank account paying unrelated pensioners (shared_bank_account); plus their near misses
and the ground truth, computed from the generated structure as each rule defines it.

Registered in ``cases.PERSON_KINDS``; their truth is added by ``truth.ground_truth``."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Callable

import numpy as np
import polars as pl

from fraudwatch_synth.identity import _reidentify
from fraudwatch_synth.plan import NONE, Plan
from fraudwatch_synth.population import Calendar, Population

if TYPE_CHECKING:
    from fraudwatch_synth.cases import Ctx

DPS = "duplicate_payment_same_period"
O110 = "pensioner_over_110"
SBA = "shared_bank_account"
PAYMENT_CATEGORIES = [DPS, O110, SBA]
MAX_AGE = 110


# --- duplicate_payment_same_period -------------------------------------------------


def dps_paid_twice(c: Ctx, p: np.ndarray) -> None:
    """A second run of the same scheme in the same region pays months j..k again, same amount."""
    c.pension(p, 0, c.cal.last)
    j = c.between(0, c.cal.last, len(p))
    c.pension(p, j, c.between(j, c.cal.last))
    c.intend("dps_paid_twice", p, DPS)


def dps_top_up(c: Ctx, p: np.ndarray) -> None:
    """One month j >= 1 paid again with a smaller amount (a top-up); the regular payment sorts first
    (same pay date, lower payment_id) and is kept, so the top-up is the excess."""
    c.pension(p, 0, c.cal.last)
    j = c.between(1, c.cal.last, len(p))
    c.pension(p, j, j, fen=c.pop.amount[p] // 4 + 1)
    c.intend("dps_top_up", p, DPS)


def nm_dps_two_employee_schemes(c: Ctx, p: np.ndarray) -> None:
    """The same months paid under 110 and 120 by the same region: two schemes, not a duplicate
    (and no resident pension, so not duplicate_cross_scheme either)."""
    _, fen = c.employee(p)
    c.pension(p, 0, c.cal.last, scheme=110, fen=fen)
    j = c.between(0, c.cal.last, len(p))
    c.pension(p, j, c.between(j, c.cal.last), scheme=120, fen=c.rng.integers(200_000, 600_000, len(p)))
    c.near_miss("same_period_two_employee_schemes", p, DPS)


# --- pensioner_over_110 ------------------------------------------------------------


def _set_birth(c: Ctx, p: np.ndarray, birth: np.ndarray) -> None:
    """New birth dates (hence IDs) for persons p in their own region; retries another sequence code
    when an ID is taken."""
    seq = c.pop.id_key[p] % 1000
    todo = np.ones(len(p), dtype=bool)
    for step in range(0, 400, 2):
        idx = np.flatnonzero(todo)
        if not len(idx):
            return
        ok = _reidentify(c, p[idx], c.pop.region[p[idx]], birth[idx], (seq[idx] + step) % 1000)
        todo[idx[ok]] = False
    raise RuntimeError("synth bug: no free ID for a planted pensioner_over_110 birth date")


def _years_before(days: np.ndarray, years: np.ndarray) -> np.ndarray:
    """The same month and day `years` years earlier (days are never the 29th-31st)."""
    out = []
    for d, y in zip(np.asarray(days, dtype="datetime64[D]").astype(object), years):
        out.append(np.datetime64(dt.date(d.year - int(y), d.month, d.day), "D"))
    return np.array(out, dtype="datetime64[D]")


def o110_turned_111(c: Ctx, p: np.ndarray) -> None:
    """Turns 111 in month t-1 (day 2-28) or on the first of month t, 0-2 more years for some: paid
    throughout, so the periods from t on (all of them when older) are reported."""
    t = c.between(0, c.cal.last, len(p))
    on_first = c.rng.random(len(p)) < 0.25
    turn = np.where(on_first, c.cal.month_start(t), c.cal.month_start(t - 1) + c.between(1, 27, len(p)))
    extra = np.where(c.rng.random(len(p)) < 0.3, c.rng.integers(1, 3, len(p)), 0)
    _set_birth(c, p, _years_before(turn, MAX_AGE + 1 + extra))
    c.pension(p, 0, c.cal.last)
    c.intend("o110_turned_111", p, O110)


def nm_o110_aged_110(c: Ctx, p: np.ndarray) -> None:
    """Turns 111 on day 2-28 of the last month: on the first day of every period aged 110 at most."""
    turn = c.cal.month_start(np.full(len(p), c.cal.last)) + c.between(1, 27, len(p))
    _set_birth(c, p, _years_before(turn, np.full(len(p), MAX_AGE + 1)))
    c.pension(p, 0, c.cal.last)
    c.near_miss("aged_110_on_every_period_start", p, O110)


# --- shared_bank_account -----------------------------------------------------------


def _pairs(c: Ctx, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split p in two halves (sorted by household, so pairs are in different households)."""
    half = len(p) // 2
    s = p[np.argsort(c.pop.house_no[p], kind="stable")]
    return s[:half], s[half: 2 * half]


def _share_account(c: Ctx, a: np.ndarray, b: np.ndarray) -> None:
    c.pop.accounts = c.pop.accounts.scatter(b, c.pop.accounts.gather(a))


def sba_unrelated_pair(c: Ctx, p: np.ndarray) -> None:
    """Pensioners a and b of different households paid into a's account (b from month j on)."""
    a, b = _pairs(c, p)
    _share_account(c, a, b)
    c.pension(a, 0, c.cal.last)
    c.pension(b, c.between(0, c.cal.last, len(b)), c.cal.last)
    c.intend("sba_unrelated_pair", np.r_[a, b], SBA)


def nm_sba_same_household(c: Ctx, p: np.ndarray) -> None:
    """b moves into a's household (and region when its ID is free) and is paid into a's account."""
    a, b = _pairs(c, p)
    ok = _reidentify(c, b, c.pop.region[a], c.pop.birth[b], c.pop.id_key[b] % 1000)
    del ok  # b keeps its own region when the ID is taken; the household is what matters
    c.pop.household = c.pop.household.scatter(b, c.pop.household.gather(a))
    c.pop.house_no[b] = c.pop.house_no[a]
    _share_account(c, a, b)
    c.pension(a, 0, c.cal.last)
    c.pension(b, 0, c.cal.last)
    c.near_miss("same_household_shares_account", np.r_[a, b], SBA)


PAYMENT_KINDS: dict[str, tuple[Callable[["Ctx", np.ndarray], None], int]] = {
    "dps_paid_twice": (dps_paid_twice, 1),
    "dps_top_up": (dps_top_up, 1),
    "o110_turned_111": (o110_turned_111, 1),
    "sba_unrelated_pair": (sba_unrelated_pair, 2),
    "nm_dps_two_employee_schemes": (nm_dps_two_employee_schemes, 1),
    "nm_o110_aged_110": (nm_o110_aged_110, 1),
    "nm_sba_same_household": (nm_sba_same_household, 2),
}


# --- ground truth ------------------------------------------------------------------


def payment_suspects(pop: Population, plan: Plan, cal: Calendar, subjects: np.ndarray,
                     summarise: Callable[[pl.DataFrame, str], pl.DataFrame]) -> pl.DataFrame:
    """(person, category, fen, first, last, region) of the three categories for the given persons;
    fen is null for shared_bank_account (a pure risk indicator)."""
    keep = pl.col("person").is_in(pl.Series(subjects).implode())
    runs = plan.pension.frame().filter(keep).with_columns(run_first=pl.col("first"))
    pension = (runs.with_columns(period=pl.int_ranges("first", pl.col("last") + 1)).explode("period")
               .drop("first", "last")
               .with_columns(paid=pl.when(pl.col("pay_month") == NONE).then("period").otherwise("pay_month")))

    # The first payment (pay date, then payment_id: runs that start earlier sort first) is due.
    groups = (pension.sort("paid", "run_first", maintain_order=True)
              .group_by("person", "scheme", "region", "period", maintain_order=True)
              .agg(n=pl.len(), fen=pl.col("fen").sum() - pl.col("fen").first()))
    dps = summarise(groups.filter((pl.col("n") >= 2) & (pl.col("fen") > 0)), DPS)

    start = pl.lit(pl.Series(cal.month_start(np.arange(cal.months)))).gather(pl.col("period"))
    born = pl.lit(pl.Series(pop.birth)).gather(pl.col("person"))
    aged = pension.with_columns(age=start.dt.year() - born.dt.year() - (
        start.dt.month().cast(pl.Int64) * 100 + start.dt.day() < born.dt.month().cast(pl.Int64) * 100 + born.dt.day()
    ).cast(pl.Int64)).filter(pl.col("age") > MAX_AGE)
    net = aged.group_by("person", "period").agg(net=pl.col("fen").sum()).filter(pl.col("net") > 0)
    o110 = summarise(aged.join(net.select("person", "period"), on=["person", "period"]), O110)

    paid = plan.pension.frame()["person"].unique().to_numpy()
    homes = pl.DataFrame({"person": paid, "account": pop.accounts.gather(paid), "home": pop.household.gather(paid)})
    shared = homes.group_by("account").agg(h=pl.col("home").n_unique()).filter(pl.col("h") >= 2)
    members = homes.join(shared, on="account").select("person")
    sba = summarise(pension.join(members, on="person"), SBA).with_columns(fen=pl.lit(None, pl.Int64))

    return pl.concat([o.select("person", "category", "fen", "first", "last", "region") for o in (dps, o110, sba)])
