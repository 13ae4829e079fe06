"""Ground truth: the suspects a perfect run must report, computed from the planted
structure (runs, records, terms, transfers) with the semantics of suspects.md, and
checked against what each planted kind intended."""

from __future__ import annotations

import numpy as np
import polars as pl

from fraudwatch_synth.cases import CATEGORIES, DCR, DCS, PAD, PDI, RR, SAD, SERVING
from fraudwatch_synth.firms import DEADLINE_DAYS, Firms
from fraudwatch_synth.ids import uscc_valid
from fraudwatch_synth.payment_cases import payment_suspects
from fraudwatch_synth.plan import Plan
from fraudwatch_synth.population import Calendar, Population

GROUND_TRUTH_SCHEMA = {
    "category": pl.String, "subject_type": pl.String, "subject_id": pl.String,
    "amount_at_risk": pl.Decimal(18, 2), "first_period": pl.String, "last_period": pl.String,
    "region_code": pl.String,
}
STOPPING = [0, 1, 2, 3, 4]  # unknown, 有期徒刑, 拘役, 无期徒刑, 死刑缓期执行


def fen_to_decimal(fen: pl.Expr) -> pl.Expr:
    """Exact integer fen -> Decimal(18,2) yuan (via text, never a float)."""
    sign = pl.when(fen < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    a = fen.abs()
    return pl.concat_str([sign, (a // 100).cast(pl.String), pl.lit("."), (a % 100).cast(pl.String).str.zfill(2)]).cast(
        pl.Decimal(18, 2)
    )


def expand(runs: pl.DataFrame) -> pl.DataFrame:
    """One row per month of each run."""
    return runs.with_columns(period=pl.int_ranges("first", pl.col("last") + 1)).explode("period").drop("first", "last")


def _month_index(cal: Calendar, date: pl.Expr) -> pl.Expr:
    start = cal.start.astype(object)
    return (date.dt.year() - start.year) * 12 + date.dt.month() - start.month


def _summarise(rows: pl.DataFrame, category: str) -> pl.DataFrame:
    """One row per person; region = the region with the largest improper amount (tie: lower code),
    the convention the rules use."""
    top_region = (rows.group_by("person", "region").agg(rfen=pl.col("fen").sum())
                  .sort(["person", "rfen", "region"], descending=[False, True, False])
                  .group_by("person", maintain_order=True).first().select("person", "region"))
    return rows.group_by("person").agg(
        category=pl.lit(category), fen=pl.col("fen").sum(), first=pl.col("period").min(),
        last=pl.col("period").max(),
    ).join(top_region, on="person")


def person_suspects(plan: Plan, cal: Calendar, subjects: np.ndarray) -> pl.DataFrame:
    """(person, category, fen, first, last, region) for the given person indexes."""
    keep = pl.col("person").is_in(pl.Series(subjects).implode())
    pension = expand(plan.pension.frame().filter(keep))
    subsidy = expand(plan.subsidy.frame().filter(keep))
    died = pl.concat([
        plan.deaths.frame().filter(keep).select("person", "date"),
        plan.cancels.frame().filter(keep & (pl.col("reason") == 0)).select("person", "date"),
    ]).group_by("person").agg(death=_month_index(cal, pl.col("date").min()))

    out = [
        _summarise(pension.join(died, on="person").filter(pl.col("period") > pl.col("death")), PAD),
        _summarise(subsidy.join(died, on="person").filter(pl.col("period") > pl.col("death")), SAD),
    ]

    started = pension.group_by("person", "scheme", "region").agg(start=pl.col("period").min())
    kept = started.sort("start", "region").group_by("person", "scheme", maintain_order=True).first()
    overlap = (pension.group_by("person", "scheme", "period").agg(n=pl.col("region").n_unique())
               .filter(pl.col("n") > 1).drop("n"))
    cross_region = (pension.join(overlap, on=["person", "scheme", "period"])
                    .join(kept.select("person", "scheme", keep_region="region"), on=["person", "scheme"])
                    .filter(pl.col("region") != pl.col("keep_region")))
    out.append(_summarise(cross_region, DCR))

    both = (pension.group_by("person", "period")
            .agg(resident=(pl.col("scheme") == 170).any(), employee=pl.col("scheme").is_in([110, 120]).any())
            .filter("resident", "employee").select("person", "period"))
    out.append(_summarise(pension.filter(pl.col("scheme") == 170).join(both, on=["person", "period"]), DCS))

    terms = (plan.prisons.frame().filter(keep & pl.col("sentence").is_in(STOPPING))
             .select("person", a=_month_index(cal, pl.col("admission")),
                     r=_month_index(cal, pl.col("release")).fill_null(SERVING)))
    inside = (pension.with_row_index("row").join(terms, on="person")
              .filter((pl.col("period") > pl.col("a")) & (pl.col("period") < pl.col("r")))
              .unique("row").drop("row", "a", "r"))
    out.append(_summarise(inside, PDI))
    return pl.concat([o.select("person", "category", "fen", "first", "last", "region") for o in out])


def firm_suspects(firms: Firms) -> pl.DataFrame:
    """(firm, category, fen, region) for refund_retained."""
    own = firms.uscc
    t = firms.transfers
    paid = pl.Series(firms.paid_date)
    counted = t.filter(
        pl.Series(uscc_valid(t["recipient"]))
        & (t["recipient"] != own.gather(t["firm"]))
        & ((t["date"] - paid.gather(t["firm"])).dt.total_days() <= DEADLINE_DAYS)
    ).group_by("firm").agg(sent=pl.col("fen").sum())
    refunds = pl.DataFrame({
        "firm": np.arange(len(own)), "dispatch": firms.dispatch, "dispatched": firms.dispatched_fen,
        "region": firms.region,
    })
    return (refunds.filter("dispatch").join(counted, on="firm", how="left")
            .with_columns(fen=pl.col("dispatched") - pl.col("sent").fill_null(0))
            .filter(pl.col("fen") > 0)
            .select("firm", category=pl.lit(RR), fen="fen", region="region"))


def _check_intents(found: pl.DataFrame, intents: pl.DataFrame, subjects: np.ndarray, what: str) -> None:
    """The suspects among planted subjects must be exactly the intended ones."""
    expected = (intents.with_columns(category=pl.col("categories").str.split(",")).explode("category")
                .select(subject="subject", category="category"))
    got = found.filter(pl.col("subject").is_in(pl.Series(subjects).implode())).select("subject", "category")
    missing = expected.join(got, on=["subject", "category"], how="anti")
    extra = got.join(expected, on=["subject", "category"], how="anti")
    if len(missing) or len(extra):
        raise RuntimeError(f"synth bug: planted {what} cases do not fire as intended; "
                           f"missing {missing.head(5).rows()}, unexpected {extra.head(5).rows()}")


def ground_truth(pop: Population, cal: Calendar, plan: Plan, firms: Firms) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(ground_truth, near_misses) frames as written to the output folder."""
    intents, misses, same = plan.intents.frame(), plan.near_misses.frame(), plan.same_name.frame()
    subjects = np.unique(np.concatenate([
        intents["subject"].to_numpy(), misses["subject"].to_numpy(), same["person"].to_numpy(),
    ]))
    people = pl.concat([
        person_suspects(plan, cal, subjects), payment_suspects(pop, plan, cal, subjects, _summarise),
    ]).rename({"person": "subject"})
    _check_intents(people, intents, subjects, "person")
    firm_rows = firm_suspects(firms).rename({"firm": "subject"})
    firm_subjects = np.unique(np.r_[firms.intents["subject"].to_numpy(), firms.near_misses["subject"].to_numpy()])
    _check_intents(firm_rows, firms.intents, firm_subjects, "firm")
    # Background firms are clean by construction; only planted ones are reported.
    firm_rows = firm_rows.filter(pl.col("subject").is_in(pl.Series(firm_subjects).implode()))

    periods = pl.Series([cal.period_text(m) for m in range(cal.months)])
    person_gt = people.select(
        "category", subject_type=pl.lit("person"), subject_id=pop.ids.gather(people["subject"]),
        amount_at_risk=fen_to_decimal(pl.col("fen")),
        first_period=periods.gather(people["first"]), last_period=periods.gather(people["last"]),
        region_code=pl.col("region").cast(pl.String),
    )
    firm_gt = firm_rows.select(
        "category", subject_type=pl.lit("firm"), subject_id=firms.uscc.gather(firm_rows["subject"]),
        amount_at_risk=fen_to_decimal(pl.col("fen")),
        first_period=pl.lit(None, pl.String), last_period=pl.lit(None, pl.String),
        region_code=pl.col("region").cast(pl.String),
    )
    gt = pl.concat([person_gt, firm_gt]).cast(GROUND_TRUTH_SCHEMA).sort("category", "subject_id")
    assert set(gt["category"].unique()) <= set(CATEGORIES)

    near = pl.concat([
        misses.select("kind", subject_id=pop.ids.gather(misses["subject"]), category_it_must_not_fire="category"),
        firms.near_misses.select("kind", subject_id=firms.uscc.gather(firms.near_misses["subject"]),
                                 category_it_must_not_fire="category"),
    ]).sort("kind", "subject_id")
    return gt, near
