"""Background life of every person not planted as a case: regular pensions, new
retirees, deaths (payments stop by the death month), moves without overlap, prison
terms (pensions suspended strictly inside), subsidies and household cancellations.
Each event is built so that no category can fire for these persons."""

from __future__ import annotations

import numpy as np

from fraudwatch_synth import reference as ref
from fraudwatch_synth.cases import NAT, SERVING, Ctx

MONTHLY_DEATH_RATE = 0.0025
SUBSIDY_SHARE = 0.05


def _draw(c: Ctx, free: np.ndarray, share: float) -> np.ndarray:
    """Indexes of free persons drawn with probability `share`; they stop being free."""
    picked = np.flatnonzero(free & (c.rng.random(len(free)) < share))
    free[picked] = False
    return picked


def plant_background(c: Ctx, planted: np.ndarray) -> None:
    """Add the background history of every person not in `planted`."""
    pop, cal, last = c.pop, c.cal, c.cal.last
    n = len(pop)
    background = np.ones(n, dtype=bool)
    background[planted] = False
    background[c.plan.same_name.frame()["person"].to_numpy()] = False
    pensioner = background & pop.pensioner

    first = np.where(c.rng.random(n) < 0.02, c.rng.integers(1, last + 1, n), 0)  # new retirees
    end = np.full(n, last)

    # Deaths: from a year before the range to its end; payments stop by the death month.
    free = background.copy()
    dead = _draw(c, free, MONTHLY_DEATH_RATE * (cal.months + 12))
    d = c.rng.integers(-12, last + 1, len(dead))
    end[dead] = np.minimum(last, d - (c.rng.random(len(dead)) < 0.3))
    date = cal.day_in(d, c.rng)
    in_household = c.rng.random(len(dead)) < 0.85
    c.plan.cancels.add(person=dead[in_household], date=date[in_household], reason=0)
    for source, share, lag in [(0, 0.6, 0), (1, 0.6, 7), (2, 0.5, 0)]:
        has = c.rng.random(len(dead)) < share
        if source == 0:
            has |= ~in_household  # every death is on record somewhere
        late = c.rng.integers(0, lag + 1, len(dead))
        c.plan.deaths.add(person=dead[has], date=date[has] + late[has], source=source)
    died_month = np.full(n, SERVING)  # beyond any month: alive
    died_month[dead] = d

    # Prison terms of non-pensioners: anything goes, nobody is paid.
    prisoners = _draw(c, free & ~pop.pensioner, 0.003)
    a = c.rng.integers(-36, last + 1, len(prisoners))
    sentence = c.rng.integers(0, len(ref.SENTENCE_TYPES), len(prisoners))
    released = (c.rng.random(len(prisoners)) < 0.6) & ~np.isin(sentence, [3, 4])
    r = a + c.rng.integers(1, 37, len(prisoners))
    c.plan.prisons.add(person=prisoners, admission=cal.day_in(a, c.rng),
                       release=np.where(released, cal.day_in(r, c.rng), NAT), sentence=sentence)

    # Pensioners in prison: a stopping sentence suspends the pension strictly inside the term.
    jailed = _draw(c, free & pensioner & (first == 0), 0.0005)
    a = c.rng.integers(0, last, len(jailed))
    r = a + c.rng.integers(1, 13, len(jailed))
    sentence = np.array(ref.STOPPING_SENTENCES)[c.rng.integers(0, len(ref.STOPPING_SENTENCES), len(jailed))]
    released = (r <= last) & ~np.isin(sentence, [3, 4])
    c.plan.prisons.add(person=jailed, admission=cal.day_in(a, c.rng),
                       release=np.where(released, cal.day_in(r, c.rng), NAT), sentence=sentence)
    c.pension(jailed, 0, a)
    c.pension(jailed[released], r[released], last)
    pensioner[jailed] = False  # their runs are written above
    soft = _draw(c, free & pensioner, 0.0003)
    a = c.rng.integers(-12, last + 1, len(soft))
    c.plan.prisons.add(person=soft, admission=cal.day_in(a, c.rng), release=NAT,
                       sentence=np.array(ref.NON_CUSTODIAL)[c.rng.integers(0, 3, len(soft))])

    # Moves: the old region pays up to month j, the new one from j+1.
    movers = _draw(c, free & pensioner & (first == 0), 0.001)
    j = c.rng.integers(0, last, len(movers))
    new = c.other_region(pop.region[movers])
    c.pension(movers, 0, j)
    c.pension(movers, j + 1, last, region=new)
    c.plan.moves.add(person=movers, region=new)
    pensioner[movers] = False

    runs = np.flatnonzero(pensioner)
    c.pension(runs, first[runs], end[runs])

    # Subsidies: the elderly get 高龄津贴, others 低保 / 特困供养 / 残疾人两项补贴; stop by death.
    takers = np.flatnonzero(background & ~np.isin(np.arange(n), np.r_[prisoners, jailed, soft, movers])
                            & (c.rng.random(n) < SUBSIDY_SHARE))
    age = (cal.month_start(0) - pop.birth[takers]).astype(np.int64) / 365.25
    program = np.where(age >= 80, 2, c.rng.choice([0, 1, 3], len(takers), p=[0.6, 0.15, 0.25]))
    both = (program == 0) & (c.rng.random(len(takers)) < 0.1)
    persons = np.r_[takers, takers[both]]
    program = np.r_[program, np.full(both.sum(), 3)]
    lo = np.array([x[1] for x in ref.PROGRAMS])[program]
    hi = np.array([x[2] for x in ref.PROGRAMS])[program]
    start = np.where(c.rng.random(len(persons)) < 0.05, c.rng.integers(0, last + 1, len(persons)), 0)
    stop = np.minimum(last, died_month[persons])
    c.plan.subsidy_run(persons, program, pop.region[persons], lo + c.rng.integers(0, hi - lo + 1), start, stop)

    # Other household cancellations (no death): moved out, emigrated, military service.
    leavers = _draw(c, free & ~pop.pensioner, 0.003)
    reason = c.rng.choice([1, 2, 3, 4], len(leavers), p=[0.6, 0.15, 0.15, 0.1])
    when = cal.day_in(c.rng.integers(-24, last + 1, len(leavers)), c.rng)
    c.plan.cancels.add(person=leavers, date=when, reason=reason)
