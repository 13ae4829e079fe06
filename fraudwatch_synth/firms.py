"""Firms, stabilisation refunds and the dispatch firms' transfers to client employers,
with planted refund_retained cases and near misses. Every firm gets exactly one refund,
so each transfer belongs to one refund without ambiguity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fraudwatch_synth import reference as ref
from fraudwatch_synth.cases import RR, Ctx, cases_per_kind
from fraudwatch_synth.ids import make_usccs
from fraudwatch_synth.plan import Parts
from pipelines.regions import region_table

DEADLINE_DAYS = 60
DISPATCH_SHARE = 0.15

TRANSFER_SCHEMA = {"firm": pl.Int64, "recipient": pl.String, "fen": pl.Int64, "date": pl.Date}


@dataclass
class Firms:
    """Firm attributes (one refund each) and transfers; intents as in `Plan`."""

    uscc: pl.Series
    name: pl.Series
    region: np.ndarray
    dispatch: np.ndarray
    refund_fen: np.ndarray
    dispatched_fen: np.ndarray  # -1 = not given
    paid_date: np.ndarray       # datetime64[D]
    transfers: pl.DataFrame
    intents: pl.DataFrame       # kind, subject (firm index), categories
    near_misses: pl.DataFrame   # kind, subject, category


def split(rng: np.random.Generator, total: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each total (fen) into `parts` positive shares summing exactly to it; returns (owner index, share)."""
    owner = np.repeat(np.arange(len(total)), parts)
    weight = rng.uniform(0.3, 1.0, len(owner))
    csum = np.cumsum(weight)
    group_start = np.r_[0, np.cumsum(parts)[:-1]]
    before = np.r_[0.0, csum][group_start]
    in_group = csum - before[owner]
    group_sum = in_group[np.cumsum(parts) - 1]
    cum = np.floor(total[owner] * in_group / group_sum[owner]).astype(np.int64)
    is_last = np.r_[owner[1:] != owner[:-1], True]
    cum[is_last] = total[owner[is_last]]
    share = np.diff(np.r_[0, cum])
    share[group_start] = cum[group_start]
    return owner, share


def city_name(code: int) -> str:
    """The city a firm name starts with: the reference list's, else GB 2260's prefecture (a
    municipality's own name when it has none)."""
    if code // 100 in ref.CITIES:
        return ref.CITIES[code // 100]
    table = region_table()
    return table.get(str(code // 100 * 100), table[str(code // 10_000 * 10_000)])[0]


def _names(rng: np.random.Generator, region: np.ndarray, dispatch: np.ndarray, codes: np.ndarray) -> pl.Series:
    n = len(region)
    city = pl.Series([city_name(int(r)) for r in codes])
    city = city.gather(_region_pos(region, codes))
    words = pl.Series(ref.FIRM_WORDS)
    w1 = words.gather(rng.integers(0, len(words), n))
    w2 = words.gather(rng.integers(0, len(words), n))
    sd = pl.Series(ref.FIRM_SUFFIX_DISPATCH).gather(rng.integers(0, len(ref.FIRM_SUFFIX_DISPATCH), n))
    so = pl.Series(ref.FIRM_SUFFIX_ORDINARY).gather(rng.integers(0, len(ref.FIRM_SUFFIX_ORDINARY), n))
    suffix = pl.select(pl.when(pl.lit(dispatch)).then(pl.lit(sd)).otherwise(pl.lit(so))).to_series()
    return pl.select(pl.concat_str([pl.lit(city), pl.lit(w1), pl.lit(w2), pl.lit(suffix)])).to_series().alias("firm_name")


def _region_pos(region: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Position of each region code in `codes`."""
    order = np.argsort(codes)
    return order[np.searchsorted(codes[order], region)]


def build_firms(c: Ctx) -> Firms:
    """Firms with one refund each; planted dispatch-firm cases and near misses included."""
    rng, cal = c.rng, c.cal
    per_kind = cases_per_kind(len(c.pop))
    kinds = ["rr_nothing", "rr_part", "rr_part_late", "rr_self", "rr_invalid_recipient", "rr_day61",
             "nm_full_in_time", "nm_day60"]
    n = max(30 * per_kind, len(c.pop) // 100)
    codes = c.pop.codes
    region = codes[rng.integers(0, len(codes), n)]
    dispatch = rng.random(n) < DISPATCH_SHARE
    planted = rng.choice(n, per_kind * len(kinds), replace=False)
    dispatch[planted] = True
    serial = (np.arange(n, dtype=np.int64) * 48_271 + 1_000_003) % 100_000_000
    uscc = make_usccs(region, serial).alias("firm_id")
    refund = np.round(np.exp(rng.uniform(np.log(5_000), np.log(500_000), n)) * 100).astype(np.int64)
    dispatched = np.where(dispatch, (refund * rng.uniform(0.3, 0.9, n)).astype(np.int64), -1)
    paid = cal.day_in(rng.integers(0, cal.months, n), rng)

    transfers = Parts(TRANSFER_SCHEMA)
    intents = Parts({"kind": pl.String, "subject": pl.Int64, "categories": pl.String})
    misses = Parts({"kind": pl.String, "subject": pl.Int64, "category": pl.String})
    ordinary = np.flatnonzero(~dispatch)

    def send(firm: np.ndarray, fen: np.ndarray, day_lo, day_hi, parts=1, to: pl.Series | None = None) -> None:
        """Transfers of `fen` per firm in `parts` shares, each `day_lo..day_hi` days after paid_date."""
        owner, share = split(rng, fen, np.broadcast_to(np.asarray(parts), firm.shape).astype(np.int64))
        keep = share > 0
        owner, share = owner[keep], share[keep]
        who = uscc.gather(ordinary[rng.integers(0, len(ordinary), len(owner))]) if to is None else to.gather(owner)
        days = c.between(np.broadcast_to(day_lo, firm.shape)[owner], np.broadcast_to(day_hi, firm.shape)[owner])
        transfers.add(firm=firm[owner], recipient=who.to_numpy(), fen=share, date=paid[firm[owner]] + days)

    g = dict(zip(kinds, np.split(planted, len(kinds))))
    background = np.setdiff1d(np.flatnonzero(dispatch), planted)
    d = dispatched

    def part(f: np.ndarray) -> np.ndarray:
        """A 20-80 % share of each firm's dispatched amount."""
        return (d[f] * rng.uniform(0.2, 0.8, len(f))).astype(np.int64)

    p1 = part(g["rr_part"])
    send(g["rr_part"], p1, 1, DEADLINE_DAYS, parts=rng.integers(1, 3, per_kind))
    p2 = part(g["rr_part_late"])
    send(g["rr_part_late"], p2, 1, DEADLINE_DAYS)
    send(g["rr_part_late"], d[g["rr_part_late"]] - p2, DEADLINE_DAYS + 1, 120)
    p3 = part(g["rr_self"])
    send(g["rr_self"], p3, 1, DEADLINE_DAYS)
    send(g["rr_self"], d[g["rr_self"]] - p3, 1, DEADLINE_DAYS, to=uscc.gather(g["rr_self"]))
    p4 = part(g["rr_invalid_recipient"])
    send(g["rr_invalid_recipient"], p4, 1, DEADLINE_DAYS)
    invalid = g["rr_invalid_recipient"]
    bad_to = make_usccs(region[invalid], serial[invalid] + 7, corrupt=np.ones(per_kind, bool))
    send(g["rr_invalid_recipient"], d[g["rr_invalid_recipient"]] - p4, 1, DEADLINE_DAYS, to=bad_to)
    send(g["rr_day61"], d[g["rr_day61"]], DEADLINE_DAYS + 1, DEADLINE_DAYS + 1)
    send(g["nm_full_in_time"], d[g["nm_full_in_time"]], 1, DEADLINE_DAYS, parts=rng.integers(2, 4, per_kind))
    send(g["nm_day60"], d[g["nm_day60"]], DEADLINE_DAYS, DEADLINE_DAYS)
    send(background, d[background], 1, DEADLINE_DAYS, parts=rng.integers(1, 4, len(background)))

    for kind in kinds[:6]:
        intents.add(kind=kind, subject=g[kind], categories=RR)
    misses.add(kind="transfer_in_full_in_time", subject=g["nm_full_in_time"], category=RR)
    misses.add(kind="transfer_on_day_60", subject=g["nm_day60"], category=RR)
    kept = rng.choice(ordinary, per_kind, replace=False)
    dispatched[kept] = (refund[kept] * 0.5).astype(np.int64)  # a share is stated, but the firm is not a dispatch firm
    misses.add(kind="non_dispatch_firm_kept_refund", subject=kept, category=RR)

    return Firms(uscc, _names(rng, region, dispatch, codes), region, dispatch, refund, dispatched, paid,
                 transfers.frame(), intents.frame(), misses.frame())
