"""Turn the generated structure into the seven extracts as canonical text columns
(contract column names, ISO dates, 'YYYY-MM' periods, '1234.50' amounts). Pension
payments are produced one month at a time from a sorted table of payment runs."""

from __future__ import annotations

import numpy as np
import polars as pl

from fraudwatch_synth import reference as ref
from fraudwatch_synth.firms import Firms
from fraudwatch_synth.ids import bank_accounts, legacy15
from fraudwatch_synth.plan import NONE, Plan
from fraudwatch_synth.population import Calendar, Population


def money_text(fen: pl.Expr) -> pl.Expr:
    """Integer fen -> '1234.50' (non-negative amounts)."""
    return pl.concat_str([(fen // 100).cast(pl.String), pl.lit("."), (fen % 100).cast(pl.String).str.zfill(2)])


def date_text(days: np.ndarray) -> pl.Series:
    """datetime64[D] (NaT allowed) -> 'YYYY-MM-DD' or null."""
    return pl.Series(np.asarray(days, dtype="datetime64[D]")).dt.to_string("%Y-%m-%d")


def pay_day(region: pl.Expr) -> pl.Expr:
    """Each region pays on its own fixed day of the month (5th-20th)."""
    return region % 16 + 5


def apply_names(pop: Population, plan: Plan) -> None:
    """Give namesakes the name of the person they copy."""
    same = plan.same_name.frame()
    if len(same):
        pop.names = pop.names.scatter(same["person"].to_numpy(), pop.names.gather(same["name_of"]))


def variant_pension_runs(pop: Population, plan: Plan) -> pl.DataFrame:
    """Pension runs paid under planted variant IDs (identity cases), with the variant's ID and name
    and a bank account of its own; columns as the runs of :func:`pension_book` before sorting."""
    runs = plan.variant_pension.frame().join(plan.variants.frame(), on="variant")
    accounts = bank_accounts(pop.account_offset + len(pop) + runs["variant"].to_numpy(),
                             np.random.default_rng(len(pop)))
    return runs.select(
        "person", "first", "last", pay_month=pl.lit(NONE, pl.Int64), legacy=pl.lit(False), region="region", scheme="scheme",
        fen="fen", person_id="person_id", name="name", bank_account=accounts,
        key=pop.id_key[runs["person"].to_numpy()],
    )


def pension_book(pop: Population, plan: Plan) -> pl.DataFrame:
    """All pension runs with their person's text columns, sorted as the agency exports them."""
    runs = plan.pension.frame()
    ids = pop.ids.gather(runs["person"])
    own = runs.with_columns(
        person_id=pl.when(pl.col("legacy")).then(pl.lit(legacy15(ids))).otherwise(pl.lit(ids)),
        name=pop.names.gather(runs["person"]),
        bank_account=pop.accounts.gather(runs["person"]),
        key=pop.id_key[runs["person"].to_numpy()],
    )
    variants = variant_pension_runs(pop, plan)
    if len(variants):
        own = pl.concat([own, variants.select(own.columns).cast(own.schema)])
    return (
        own.with_columns(
            region_code=pl.col("region").cast(pl.String),
            scheme_text=pl.col("scheme").cast(pl.String),
            amount=money_text(pl.col("fen")),
            day=pay_day(pl.col("region")),
        )
        .sort("region", "key", "scheme", "first", "person_id")
        .select("first", "last", "pay_month", "day", "person_id", "name", "scheme_text", "region_code", "amount",
                "bank_account")
    )


def pension_month(book: pl.DataFrame, cal: Calendar, m: int) -> pl.DataFrame:
    """pension_payments rows for benefit month m."""
    rows = book.filter((pl.col("first") <= m) & (pl.col("last") >= m))
    paid_in = np.where(rows["pay_month"].to_numpy() == NONE, m, rows["pay_month"].to_numpy())
    pay_date = cal.month_start(paid_in) + rows["day"].to_numpy() - 1
    period = cal.period_text(m)
    return rows.select(
        payment_id=pl.lit(period.replace("-", "")) + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(10),
        person_id="person_id", name="name", scheme="scheme_text", region_code="region_code",
        period=pl.lit(period), amount="amount", pay_date=date_text(pay_date), bank_account="bank_account",
    )


def subsidy_payments(pop: Population, cal: Calendar, plan: Plan) -> pl.DataFrame:
    """All subsidy payment rows, ordered by period, region, person and programme."""
    own = plan.subsidy.frame()
    own = own.with_columns(person_id=pop.ids.gather(own["person"]), name=pop.names.gather(own["person"]))
    # subsidies paid under planted variant IDs (identity cases), with the variant's ID and name
    variant = plan.variant_subsidy.frame().join(plan.variants.frame().select("variant", "person", "person_id", "name"),
                                                on="variant")
    runs = pl.concat([own, variant.select(own.columns).cast(own.schema)])
    runs = runs.with_columns(period=pl.int_ranges("first", pl.col("last") + 1)).explode("period")
    periods = pl.Series([cal.period_text(m) for m in range(cal.months)])
    runs = runs.with_columns(key=pop.id_key[runs["person"].to_numpy()]).sort("period", "region", "key", "program",
                                                                               "person_id")
    df = runs.select(
        person_id="person_id", name="name",
        program=pl.Series([p for p, _, _ in ref.PROGRAMS]).gather(runs["program"]),
        region_code=pl.col("region").cast(pl.String), period=periods.gather(runs["period"]),
        amount=money_text(pl.col("fen")),
    )
    return df.select(
        payment_id=pl.lit("BZ") + pl.col("period").str.replace("-", "") + pl.int_range(1, pl.len() + 1)
        .over("period").cast(pl.String).str.zfill(9),
        *[c for c in df.columns],
    )


def deaths(pop: Population, plan: Plan, outsiders: pl.DataFrame | None = None) -> pl.DataFrame:
    """The deaths extract (police / civil affairs / health records), with the deaths of people outside
    the population (``outsiders.py``) when given."""
    return number_deaths(death_rows(pop, plan, outsiders))


def death_rows(pop: Population, plan: Plan, outsiders: pl.DataFrame | None = None) -> pl.DataFrame:
    """The records of :func:`deaths` before they are sorted and numbered (with the record-id prefix)."""
    d = plan.deaths.frame()
    df = d.select(
        person_id=pop.ids.gather(d["person"]), name=pop.names.gather(d["person"]),
        death_date=pl.col("date").dt.to_string("%Y-%m-%d"),
        source=pl.Series(ref.DEATH_SOURCES).gather(d["source"]),
        prefix=pl.Series(["GA", "MZ", "WJ"]).gather(d["source"]),
    )
    v = plan.variant_deaths.frame().join(plan.variants.frame(), on="variant")
    if len(v):  # death records filed under planted variant IDs (identity cases)
        df = pl.concat([df, v.select(
            "person_id", "name", death_date=pl.col("date").dt.to_string("%Y-%m-%d"),
            source=pl.Series(ref.DEATH_SOURCES).gather(v["source"]),
            prefix=pl.Series(["GA", "MZ", "WJ"]).gather(v["source"]),
        )])
    if outsiders is not None and len(outsiders):
        df = pl.concat([df, outsiders.select(
            "person_id", "name", death_date=pl.col("date").dt.to_string("%Y-%m-%d"),
            source=pl.Series(ref.DEATH_SOURCES).gather(outsiders["source"]),
            prefix=pl.Series(["GA", "MZ", "WJ"]).gather(outsiders["source"]),
        )])
    return df


def number_deaths(df: pl.DataFrame) -> pl.DataFrame:
    """Death records sorted by date, source and ID, numbered per source and date."""
    df = df.sort("death_date", "source", "person_id")
    return df.select(
        "person_id", "name", "death_date", "source",
        record_id=pl.col("prefix") + pl.col("death_date").str.replace_all("-", "")
        + pl.int_range(1, pl.len() + 1).over("prefix", "death_date").cast(pl.String).str.zfill(6),
    )


def household(pop: Population, plan: Plan) -> pl.DataFrame:
    """One household-registration row per person; cancellations and moves applied."""
    n = len(pop)
    region = pop.region.copy()
    moves = plan.moves.frame()
    region[moves["person"].to_numpy()] = moves["region"].to_numpy()
    cancels = plan.cancels.frame().sort("date").group_by("person", maintain_order=True).first()
    reason = np.full(n, -1)
    reason[cancels["person"].to_numpy()] = cancels["reason"].to_numpy()
    cancel_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    cancel_date[cancels["person"].to_numpy()] = cancels["date"].to_numpy()
    cancelled = reason >= 0
    df = pl.DataFrame({
        "person_id": pop.ids, "name": pop.names,
        "gender": pl.Series(["女", "男"]).gather(pop.male.astype(np.int64)),
        "birth_date": date_text(pop.birth), "household_id": pop.household,
        "region_code": pl.Series(region).cast(pl.String),
        "status": pl.Series(["正常", "注销"]).gather(cancelled.astype(np.int64)),
        "cancel_date": date_text(cancel_date),
        "cancel_reason": pl.Series(ref.CANCEL_REASONS).gather(np.maximum(reason, 0)),
    })
    order = np.lexsort((pop.id_key, pop.house_no, region))
    return df.with_columns(cancel_reason=pl.when(pl.lit(cancelled)).then("cancel_reason"))[order]


def prisoners(pop: Population, plan: Plan) -> pl.DataFrame:
    """Prison admissions and releases."""
    p = plan.prisons.frame()
    return p.select(
        person_id=pop.ids.gather(p["person"]), name=pop.names.gather(p["person"]),
        admission_date=pl.col("admission").dt.to_string("%Y-%m-%d"),
        release_date=pl.col("release").dt.to_string("%Y-%m-%d"),
        sentence_type=pl.Series(ref.SENTENCE_TYPES).gather(p["sentence"]).replace("", None),
    ).sort("admission_date", "person_id")


def refunds(firms: Firms) -> pl.DataFrame:
    """stabilization_refunds: one refund per firm."""
    df = pl.DataFrame({
        "firm_id": firms.uscc, "firm_name": firms.name,
        "is_labor_dispatch": np.where(firms.dispatch, "true", "false"),
        "region_code": pl.Series(firms.region).cast(pl.String),
        "fen": firms.refund_fen, "dispatched": firms.dispatched_fen, "paid_date": date_text(firms.paid_date),
    }).sort("paid_date", "firm_id")
    return df.select(
        refund_id=pl.lit("WG") + pl.col("paid_date").str.slice(0, 7).str.replace("-", "")
        + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(8),
        firm_id="firm_id", firm_name="firm_name", is_labor_dispatch="is_labor_dispatch", region_code="region_code",
        amount=money_text(pl.col("fen")),
        dispatched_amount=pl.when(pl.col("dispatched") >= 0).then(money_text(pl.col("dispatched"))),
        paid_date="paid_date",
    )


def transfers(firms: Firms) -> pl.DataFrame:
    """refund_transfers from dispatch firms to client employers."""
    t = firms.transfers
    df = t.select(
        firm_id=firms.uscc.gather(t["firm"]), recipient_id="recipient", amount=money_text(pl.col("fen")),
        transfer_date=pl.col("date").dt.to_string("%Y-%m-%d"),
    ).sort("transfer_date", "firm_id", "recipient_id", "amount")
    return df.select(
        transfer_id=pl.lit("ZB") + pl.col("transfer_date").str.replace_all("-", "")
        + pl.int_range(1, pl.len() + 1).over("transfer_date").cast(pl.String).str.zfill(6),
        *df.columns,
    )

