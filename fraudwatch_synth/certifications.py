"""Proof of life (资格认证, the optional ``certifications`` extract) and the certified_after_death
cases (suspects.md): a passed certification dated after the person's death date.

Planted kinds: ``cad_impersonation`` (the pensioner died, someone passes a face-recognition
certification afterwards and the pension goes on: paid_after_death and certified_after_death) and
``cad_wrong_death`` (the pensioner is alive and paid, a wrong death record exists, a community or home
visit certifies her afterwards: both fire too — the auditor must not stop the pension). Near misses:
``cad_failed_after_death`` (a failed certification after the death: paid_after_death only) and
``cad_before_death`` (a certification before the death, payments stop at the death month: nothing).
Background: about half of the living background pensioners certify once before the last generated
month; nobody with a death record does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from fraudwatch_synth.plan import CERT_SCHEMA, Parts

if TYPE_CHECKING:
    from fraudwatch_synth.cases import Ctx
    from fraudwatch_synth.population import Calendar, Population
    from fraudwatch_synth.plan import Plan

CAD = "certified_after_death"
PAD = "paid_after_death"
METHODS = ["人脸识别", "社区认证", "上门认证", "数据比对"]
RESULTS = ["通过", "未通过"]
BACKGROUND_SHARE = 0.5


def _certs(c: Ctx) -> Parts:
    return c.plan.certs


def _died_then_paid(c: Ctx, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = c.between(0, c.cal.last - 1, len(p))
    end = d + c.between(1, np.minimum(4, c.cal.last - d))
    c.pension(p, 0, end)
    date = c.die(p, d, c.rng.integers(0, 3, len(p)))
    return d, end, date


def cad_impersonation(c: Ctx, p: np.ndarray) -> None:
    _, _, died = _died_then_paid(c, p)
    _certs(c).add(person=p, date=died + c.between(5, 90, len(p)), method=0, passed=True, region=c.pop.region[p])
    c.intend("cad_impersonation", p, PAD)  # and CAD: certified_after_death_truth


def cad_wrong_death(c: Ctx, p: np.ndarray) -> None:
    c.pension(p, 0, c.cal.last)
    died = c.die(p, c.between(0, c.cal.last - 1, len(p)), np.full(len(p), 2))  # a wrong health record
    _certs(c).add(person=p, date=died + c.between(5, 90, len(p)), method=c.rng.integers(1, 3, len(p)), passed=True,
                  region=c.pop.region[p])
    c.intend("cad_wrong_death", p, PAD)  # and CAD: certified_after_death_truth


def cad_failed_after_death(c: Ctx, p: np.ndarray) -> None:
    _, _, died = _died_then_paid(c, p)
    _certs(c).add(person=p, date=died + c.between(5, 90, len(p)), method=0, passed=False, region=c.pop.region[p])
    c.intend("cad_failed_after_death", p, PAD)
    c.near_miss("cad_failed_after_death", p, CAD)


def cad_before_death(c: Ctx, p: np.ndarray) -> None:
    d = c.between(1, c.cal.last - 1, len(p))
    c.pension(p, 0, d)
    died = c.die(p, d, c.rng.integers(0, 3, len(p)))
    _certs(c).add(person=p, date=died - c.between(1, 25, len(p)), method=0, passed=True, region=c.pop.region[p])
    c.near_miss("cad_before_death", p, CAD)
    c.near_miss("cad_before_death", p, PAD)


CERT_KINDS = {
    "cad_impersonation": (cad_impersonation, 1),
    "cad_wrong_death": (cad_wrong_death, 1),
    "cad_failed_after_death": (cad_failed_after_death, 1),
    "cad_before_death": (cad_before_death, 1),
}


def plant_background_certifications(c: Ctx, planted: np.ndarray) -> None:
    """One certification (97 % passed) for about half of the living background pensioners, in a month
    before the last generated one: the next month's payroll (payroll.py) plants deaths of clean
    pensioners in the last month, and a background certification after such a death would be a
    certified_after_death case nobody planted."""
    plan, pop = c.plan, c.pop
    dead = np.unique(np.r_[plan.deaths.frame()["person"].to_numpy(), plan.cancels.frame()["person"].to_numpy(),
                           plan.variants.frame()["person"].to_numpy()]).astype(np.int64)
    free = pop.pensioner.copy()
    free[planted] = False
    free[dead] = False
    who = np.flatnonzero(free & (c.rng.random(len(pop)) < BACKGROUND_SHARE))
    _certs(c).add(person=who, date=c.cal.day_in(c.rng.integers(0, max(1, c.cal.months - 1), len(who)), c.rng),
                  method=c.rng.choice(4, len(who), p=[0.6, 0.2, 0.1, 0.1]), passed=c.rng.random(len(who)) < 0.97,
                  region=pop.region[who])


def certifications_extract(pop: Population, plan: Plan) -> pl.DataFrame:
    """The certifications extract: record_id, person_id, name, cert_date, method, result, region_code."""
    certs = plan.certs.frame()
    df = certs.sort("date", "person").select(
        person_id=pop.ids.gather(certs.sort("date", "person")["person"]),
        name=pop.names.gather(certs.sort("date", "person")["person"]),
        cert_date=pl.col("date").dt.to_string("%Y-%m-%d"),
        method=pl.Series(METHODS).gather(certs.sort("date", "person")["method"]),
        result=pl.when(pl.col("passed")).then(pl.lit(RESULTS[0])).otherwise(pl.lit(RESULTS[1])),
        region_code=pl.col("region").cast(pl.String),
    )
    return df.select(record_id=pl.lit("RZ") + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(9),
                     *df.columns)


def certified_after_death_truth(pop: Population, plan: Plan) -> pl.DataFrame:
    """Ground-truth rows of certified_after_death: a passed certification after the earliest death date
    recorded on the person's own ID (deaths extract or household cancellation for death)."""
    from fraudwatch_synth.truth import GROUND_TRUTH_SCHEMA

    certs = plan.certs.frame()
    deaths = pl.concat([plan.deaths.frame().select("person", "date"),
                        plan.cancels.frame().filter(pl.col("reason") == 0).select("person", "date")])
    first = deaths.group_by("person").agg(died=pl.col("date").min())
    after = (certs.filter("passed").join(first, on="person").filter(pl.col("date") > pl.col("died"))
             .sort("date").group_by("person").agg(region=pl.col("region").last()))
    return after.sort("person").select(
        category=pl.lit(CAD), subject_type=pl.lit("person"), subject_id=pop.ids.gather(after.sort("person")["person"]),
        amount_at_risk=pl.lit(None, pl.Decimal(18, 2)), first_period=pl.lit(None, pl.String),
        last_period=pl.lit(None, pl.String), region_code=pl.col("region").cast(pl.String),
    ).cast(GROUND_TRUTH_SCHEMA)
