"""Deaths of people outside the payroll and the household extract: the province's death registers
record everyone who dies there, the payroll only pensioners. With realistic name frequencies some of
them share a pensioner's name and birth date — the namesakes a weak death match must not take for
the pensioner (suspects.md: a valid ID more than one typo away is another person).

Their IDs are valid, unique, and never within one typo (suspects.md's definition) of the ID of a
person born the same day, so by construction they fire nothing; a weak match on one of them is a
false alarm (benchmarks/namesake_bench.py counts them).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraudwatch_synth import reference as ref
from fraudwatch_synth.ids import person_id_matrix, strings
from fraudwatch_synth.population import Calendar, Population, _dates, _names

# Deaths of non-payees recorded in the province per pensioner and year (about 3 residents per
# pensioner, 0.7 % of them dying a year).
OUTSIDER_DEATHS_PER_PERSON_YEAR = 0.02
OUTSIDER_SCHEMA = {"person_id": pl.String, "name": pl.String, "date": pl.Date, "source": pl.Int64}


def _bodies(ids: pl.Series) -> np.ndarray:
    return np.frombuffer("".join(ids.str.slice(0, 17).to_list()).encode("ascii"), dtype=np.uint8).reshape(-1, 17)


def _near_someone(ids: pl.Series, birth: np.ndarray, pop: Population) -> np.ndarray:
    """True where an outsider's ID is within one typo of (or equal to) the ID of a person born the same day."""
    out = pl.DataFrame({"i": np.arange(len(ids)), "birth": birth, "id": ids})
    peers = pl.DataFrame({"birth": pop.birth, "peer": pop.ids})
    pairs = out.join(peers, on="birth")
    near = np.zeros(len(ids), dtype=bool)
    if not len(pairs):
        return near
    a, b = _bodies(pairs["id"]), _bodies(pairs["peer"])
    diff = a != b
    count = diff.sum(axis=1)
    first = np.argmax(diff, axis=1)
    rows = np.arange(len(a))
    nxt = np.minimum(first + 1, 16)
    swap = (count == 2) & diff[rows, nxt] & (a[rows, first] == b[rows, nxt]) & (a[rows, nxt] == b[rows, first])
    near[pairs["i"].to_numpy()[(count <= 1) | swap]] = True
    return near


def outsider_deaths(rng: np.random.Generator, pop: Population, cal: Calendar) -> pl.DataFrame:
    """Death records (person_id, name, date, source 0-2) of people outside the population."""
    n = int(round(len(pop) * OUTSIDER_DEATHS_PER_PERSON_YEAR * cal.months / 12))
    if n == 0:
        return pl.DataFrame(schema=OUTSIDER_SCHEMA)
    weights = rng.gamma(2.0, 1.0, len(pop.codes))
    region = pop.codes[rng.choice(len(pop.codes), n, p=weights / weights.sum())]
    male = rng.random(n) < 0.5
    birth = _dates(rng, n, "1925-01-01", "1975-12-31", 1.5)
    seq = rng.integers(0, 500, n) * 2 + male.astype(np.int64)
    ids = strings(person_id_matrix(region, birth, seq))
    minority = (region // 10_000 == ref.MINORITY_PREFIX) & (rng.random(n) < 0.6)
    names = _names(rng, male, minority)
    date = cal.day_in(rng.integers(0, cal.months, n), rng)
    source = rng.integers(0, 3, n)
    keep = ~_near_someone(ids, birth, pop) & ~ids.is_duplicated().to_numpy()
    return pl.DataFrame({"person_id": ids.filter(keep), "name": names.filter(keep), "date": date[keep],
                         "source": source[keep]}, schema=OUTSIDER_SCHEMA)


__all__ = ["outsider_deaths", "OUTSIDER_SCHEMA", "OUTSIDER_DEATHS_PER_PERSON_YEAR"]
