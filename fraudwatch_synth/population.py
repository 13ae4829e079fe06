"""The synthetic population: persons with unique valid IDs, names, home regions, birth
dates, pension entitlements, bank accounts and households; and the month calendar."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fraudwatch_synth import reference as ref
from fraudwatch_synth.ids import bank_accounts, person_id_matrix, strings

REGION_CODES = np.array([code for code, _ in ref.REGIONS], dtype=np.int64)
PENSIONER_SHARE = 0.93


@dataclass(frozen=True)
class Calendar:
    """Benefit months: index 0 is `start`; negative indexes are months before the range."""

    start: np.datetime64  # datetime64[M]
    months: int

    @classmethod
    def from_period(cls, start_period: str, months: int) -> "Calendar":
        """Calendar of `months` months from 'YYYY-MM'."""
        return cls(np.datetime64(start_period, "M"), months)

    @property
    def last(self) -> int:
        """Index of the last month."""
        return self.months - 1

    def month_start(self, m: np.ndarray | int) -> np.ndarray:
        """First day of month index m (datetime64[D])."""
        return (self.start + np.asarray(m, dtype=np.int64)).astype("datetime64[D]")

    def month_of(self, dates: np.ndarray) -> np.ndarray:
        """Month index of dates (datetime64[D])."""
        return (np.asarray(dates).astype("datetime64[M]") - self.start).astype(np.int64)

    def day_in(self, m: np.ndarray, rng: np.random.Generator, lo: int = 1, hi: int = 28) -> np.ndarray:
        """A random date inside month index m (day lo..hi)."""
        m = np.asarray(m, dtype=np.int64)
        return self.month_start(m) + rng.integers(lo - 1, hi, m.shape)

    def period_text(self, m: int) -> str:
        """'YYYY-MM' of month index m."""
        return str(self.start + m)


@dataclass
class Population:
    """One row per person, as numpy arrays and polars string series of equal length."""

    region: np.ndarray      # home region code (int)
    birth: np.ndarray       # datetime64[D]
    male: np.ndarray        # bool
    pensioner: np.ndarray   # bool: receives a pension in principle
    scheme: np.ndarray      # 110 / 120 / 170 (0 for non-pensioners)
    amount: np.ndarray      # monthly pension in fen
    ids: pl.Series          # canonical 18-char IDs
    names: pl.Series
    accounts: pl.Series
    household: pl.Series    # 户号
    house_no: np.ndarray    # 户号 as a number (sort key)
    id_key: np.ndarray      # first 17 ID digits as a number: sorting by it sorts by ID
    # The region codes this population lives in (a national set: one province's counties) and the
    # first index of its bank-account numbers (distinct per province, so no account is shared by chance).
    codes: np.ndarray = field(default_factory=lambda: REGION_CODES)
    account_offset: int = 0

    def __len__(self) -> int:
        return len(self.region)


def _unique_seq(region: np.ndarray, birth: np.ndarray, male: np.ndarray) -> np.ndarray:
    """3-digit sequence numbers making (region, birth date, seq) unique, odd for men."""
    key = region * 100_000 + birth.astype(np.int64) + 40_000
    order = np.argsort(key, kind="stable")
    sk = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sk)) + 1]
    group = np.cumsum(np.r_[0, np.diff(sk) != 0])
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = np.arange(len(key)) - starts[group]
    if rank.max(initial=0) >= 200:
        raise ValueError("too many persons for the region/birth-date space")
    offset = (key * 2_654_435_761) % 290
    return 2 * (offset + rank) + male.astype(np.int64)


def _names(rng: np.random.Generator, male: np.ndarray, minority: np.ndarray) -> pl.Series:
    n = len(male)
    surnames = pl.Series([s for s, _ in ref.SURNAMES])
    weights = np.array([w for _, w in ref.SURNAMES], dtype=np.float64)
    surname = surnames.gather(rng.choice(len(surnames), n, p=weights / weights.sum()))
    m_chars, f_chars = pl.Series(ref.GIVEN_MALE), pl.Series(ref.GIVEN_FEMALE)

    def given() -> pl.Series:
        mi = m_chars.gather(rng.integers(0, len(m_chars), n))
        fi = f_chars.gather(rng.integers(0, len(f_chars), n))
        return pl.select(pl.when(pl.lit(male)).then(pl.lit(mi)).otherwise(pl.lit(fi))).to_series()

    two = pl.Series(rng.random(n) < 0.7)  # most given names have two characters
    first, second = given(), given()
    # a share of the generation's very common two-character names (秀英, 建国, …), Zipf-weighted
    common = rng.random(n) < ref.GIVEN_COMMON_SHARE

    def zipf(names: list[str]) -> pl.Series:
        weights = np.arange(1, len(names) + 1, dtype=np.float64) ** -0.8
        return pl.Series(names).gather(rng.choice(len(names), n, p=weights / weights.sum()))

    common_m, common_f = zipf(ref.GIVEN_COMMON_MALE), zipf(ref.GIVEN_COMMON_FEMALE)
    han = pl.select(
        pl.when(pl.lit(common)).then(pl.concat_str([pl.lit(surname), pl.when(pl.lit(male)).then(pl.lit(common_m))
                                                    .otherwise(pl.lit(common_f))]))
        .otherwise(pl.concat_str([pl.lit(surname), pl.lit(first),
                                  pl.when(pl.lit(two)).then(pl.lit(second)).otherwise(pl.lit(""))]))
    ).to_series()
    own_m = pl.Series(ref.MINORITY_MALE).gather(rng.integers(0, len(ref.MINORITY_MALE), n))
    own_f = pl.Series(ref.MINORITY_FEMALE).gather(rng.integers(0, len(ref.MINORITY_FEMALE), n))
    father = pl.Series(ref.MINORITY_FATHER).gather(rng.integers(0, len(ref.MINORITY_FATHER), n))
    uyghur = pl.select(
        pl.concat_str([pl.when(pl.lit(male)).then(pl.lit(own_m)).otherwise(pl.lit(own_f)), pl.lit("·"), pl.lit(father)])
    ).to_series()
    return pl.select(pl.when(pl.lit(minority)).then(pl.lit(uyghur)).otherwise(pl.lit(han))).to_series().alias("name")


def _dates(rng: np.random.Generator, n: int, first: str, last: str, skew: float) -> np.ndarray:
    """Birth dates between first and last, skewed towards later years when skew > 1."""
    lo, hi = np.datetime64(first, "D"), np.datetime64(last, "D")
    span = (hi - lo).astype(np.int64)
    return lo + (rng.random(n) ** (1 / skew) * span).astype(np.int64)


def build_population(rng: np.random.Generator, persons: int, codes: np.ndarray = REGION_CODES,
                     account_offset: int = 0) -> Population:
    """Draw `persons` persons living in the region `codes`; IDs are unique and valid by construction,
    bank accounts numbered from `account_offset`."""
    weights = rng.gamma(2.0, 1.0, len(codes))
    region = codes[rng.choice(len(codes), persons, p=weights / weights.sum())]
    male = rng.random(persons) < 0.48
    pensioner = rng.random(persons) < PENSIONER_SHARE
    birth = np.where(
        pensioner,
        _dates(rng, persons, "1930-01-01", "1965-12-31", 1.8),
        _dates(rng, persons, "1950-01-01", "2005-12-31", 1.0),
    )
    seq = _unique_seq(region, birth, male)
    id_chars = person_id_matrix(region, birth, seq)
    ids = strings(id_chars).alias("person_id")
    id_key = (id_chars[:, :17] - np.uint8(ord("0"))).astype(np.int64) @ (10 ** np.arange(16, -1, -1, dtype=np.int64))
    del id_chars
    minority = (region // 10_000 == ref.MINORITY_PREFIX) & (rng.random(persons) < 0.6)
    names = _names(rng, male, minority)

    scheme = np.array(ref.SCHEMES)[rng.choice(3, persons, p=[0.47, 0.1, 0.43])]
    scheme = np.where(pensioner, scheme, 0)
    employee = rng.integers(200_000, 600_000, persons)  # 2000-6000 元
    resident = rng.integers(15_000, 40_000, persons)    # 150-400 元
    amount = np.where(scheme == 170, resident, employee)
    amount = np.where(pensioner, amount, 0)


    accounts = bank_accounts(account_offset + np.arange(persons), rng).alias("bank_account")
    # Households of one to three persons in the same region: consecutive persons after sorting by region.
    by_region = np.argsort(region, kind="stable")
    new_house = np.r_[True, rng.random(persons - 1) < 0.6] | np.r_[True, np.diff(region[by_region]) != 0]
    house_no = np.empty(persons, dtype=np.int64)
    house_no[by_region] = np.cumsum(new_house)
    household = pl.select(
        pl.concat_str([pl.lit(region).cast(pl.String), pl.lit(house_no).cast(pl.String).str.zfill(9)])
    ).to_series().alias("household_id")
    return Population(region, birth, male, pensioner, scheme, amount, ids, names, accounts, household,
                      house_no, id_key, codes, account_offset)
