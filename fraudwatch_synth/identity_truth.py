"""Ground truth of the identity cases (issue 4), computed from the planted structure with the
semantics of suspects.md and the rules ``duplicate_identity`` / ``paid_after_death_weak_match``.

Written next to (never into) ``ground_truth.parquet``, so the strict categories keep their exact,
independently recomputed truth:

* ``ground_truth_identity.parquet`` — the ground-truth columns plus ``rule_id``, ``severity``
  (high for duplicate_identity and for the paid_after_death / duplicate_cross_region rows found
  through a linked second ID, medium for weak death matches) and the planted ``kind``;
* ``near_misses_identity.parquet`` — ``kind, subject_id, category_it_must_not_fire``;
* ``identity_variants.parquet`` — every planted variant ID, the real ID it stands for, names, role.

duplicate_identity: the person's own ID is canonical (valid, registered, paid from the first
month); the payments under the variant ID in the months both IDs are paid are at risk.

Weak death matches follow the spec literally: a death record whose ID is not paid, and is invalid,
or valid, unregistered and one typo from the payee's (one body digit changed, or two
adjacent body digits swapped), is matched when exactly one pension payee with a valid ID has the
same name (in simplified characters) and birth date and no contradicting gender digit; pension paid
to that payee for periods after the death month is at risk (the payee has no exact death record by
construction).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fraudwatch_synth.cluster_cases import DCR, LINKED_VARIANT_KINDS
from fraudwatch_synth.identity import DI, PAD, WEAK_RULE, _opencc, checks, id_matrix
from fraudwatch_synth.plan import Plan
from fraudwatch_synth.population import Calendar, Population
from fraudwatch_synth.truth import GROUND_TRUTH_SCHEMA, _summarise, expand, fen_to_decimal, person_suspects

IDENTITY_TRUTH_SCHEMA = GROUND_TRUTH_SCHEMA | {"rule_id": pl.String, "severity": pl.String, "kind": pl.String}
NEAR_MISS_IDENTITY_SCHEMA = {"kind": pl.String, "subject_id": pl.String, "category_it_must_not_fire": pl.String}
VARIANTS_OUT_SCHEMA = {"kind": pl.String, "role": pl.String, "variant_id": pl.String, "variant_valid": pl.Boolean,
                       "variant_name": pl.String, "person_id": pl.String, "name": pl.String}


def final_names(pop: Population, plan: Plan) -> pl.Series:
    """Names as written to the extracts (namesake overrides applied), without changing ``pop``."""
    same = plan.same_name.frame()
    if not len(same):
        return pop.names
    return pop.names.scatter(same["person"].to_numpy(), pop.names.gather(same["name_of"]))


def _simplified(names: pl.Series) -> pl.Series:
    t2s = _opencc("t2s")
    return pl.Series([t2s.convert(n) for n in names.to_list()], dtype=pl.String)


def _embedded_birth(ids: pl.Series) -> pl.Series:
    return ids.str.slice(6, 8).str.strptime(pl.Date, "%Y%m%d", strict=False)


def _variants(pop: Population, plan: Plan) -> pl.DataFrame:
    v = plan.variants.frame()
    mat = id_matrix(v["person_id"])
    return v.with_columns(valid=pl.Series(mat[:, 17] == checks(mat)) if len(v) else pl.Series([], dtype=pl.Boolean),
                          real_id=pop.ids.gather(v["person"]))


def _finish(rows: pl.DataFrame, pop: Population, cal: Calendar, category: str, rule_id: str,
            severity: str) -> pl.DataFrame:
    periods = pl.Series([cal.period_text(m) for m in range(cal.months)])
    return rows.select(
        category=pl.lit(category), subject_type=pl.lit("person"), subject_id=pop.ids.gather(rows["person"]),
        amount_at_risk=fen_to_decimal(pl.col("fen")), first_period=periods.gather(rows["first"]),
        last_period=periods.gather(rows["last"]), region_code=pl.col("region").cast(pl.String),
        rule_id=pl.lit(rule_id), severity=pl.lit(severity), kind="kind",
    )


def duplicate_identity_rows(pop: Population, cal: Calendar, plan: Plan, variants: pl.DataFrame) -> pl.DataFrame:
    """One row per person paid under a planted duplicate ID in months the own ID is paid the same
    benefit too: a pension (any scheme), or the same subsidy program."""
    intents = plan.identity_intents.frame().filter(pl.col("rule_id") == DI)
    subjects = pl.Series(intents["subject"]).implode()
    own = (expand(plan.pension.frame().filter(pl.col("person").is_in(subjects)))
           .select("person", "period").unique())
    runs = (plan.variant_pension.frame()
            .join(variants.select("variant", "person", "kind"), on="variant")
            .filter(pl.col("person").is_in(subjects)))
    own_subsidy = (expand(plan.subsidy.frame().filter(pl.col("person").is_in(subjects)))
                   .select("person", "program", "period").unique())
    subsidy_runs = (plan.variant_subsidy.frame()
                    .join(variants.select("variant", "person", "kind"), on="variant")
                    .filter(pl.col("person").is_in(subjects)))
    columns = ["person", "region", "fen", "period", "kind"]
    dup = pl.concat([expand(runs).join(own, on=["person", "period"]).select(columns),
                     expand(subsidy_runs).join(own_subsidy, on=["person", "program", "period"]).select(columns)])
    if not len(dup):
        return pl.DataFrame(schema=IDENTITY_TRUTH_SCHEMA)
    summary = _summarise(dup.select("person", "region", "fen", "period"), DI)
    kinds = dup.group_by("person").agg(kind=pl.col("kind").min())
    return _finish(summary.join(kinds, on="person"), pop, cal, DI, DI, "high")


def cluster_rows(pop: Population, cal: Calendar, plan: Plan, variants: pl.DataFrame) -> pl.DataFrame:
    """paid_after_death and duplicate_cross_region rows of persons paid under a second ID the linker
    joins to theirs (``cluster_cases.LINKED_VARIANT_KINDS``): the rules' strict semantics applied to
    the person's payments under both IDs, and to the deaths recorded under the own ID or under the
    paid second ID (a death under an unpaid variant is a weak match's, never counted here)."""
    linked = variants.filter(pl.col("kind").is_in(sorted(LINKED_VARIANT_KINDS)) & (pl.col("role") == "payee"))
    persons = np.unique(linked["person"].to_numpy())
    if not len(persons):
        return pl.DataFrame(schema=IDENTITY_TRUTH_SCHEMA)
    keep = pl.col("person").is_in(pl.Series(persons).implode())
    merged = Plan()
    own = plan.pension.frame().filter(keep)
    if len(own):
        merged.pension.add(**{k: own[k].to_numpy() for k in own.columns})
    second = plan.variant_pension.frame().join(linked.select("variant", "person"), on="variant")
    if len(second):
        merged.pension_run(second["person"].to_numpy(), second["region"].to_numpy(), second["scheme"].to_numpy(),
                           second["fen"].to_numpy(), second["first"].to_numpy(), second["last"].to_numpy())
    for parts, name in ((plan.deaths, "deaths"), (plan.cancels, "cancels")):
        frame = parts.frame().filter(keep)
        if len(frame):
            getattr(merged, name).add(**{k: frame[k].to_numpy() for k in frame.columns})
    paid = plan.variant_deaths.frame().join(linked.select("variant", "person"), on="variant")
    if len(paid):
        merged.deaths.add(person=paid["person"].to_numpy(), date=paid["date"].to_numpy(), source=paid["source"].to_numpy())
    rows = person_suspects(merged, cal, persons).filter(pl.col("category").is_in([PAD, DCR]))
    kinds = linked.group_by("person").agg(kind=pl.col("kind").min())
    out = []
    for category in (PAD, DCR):
        part = rows.filter(pl.col("category") == category).join(kinds, on="person")
        if len(part):
            out.append(_finish(part, pop, cal, category, category, "high"))
    return pl.concat(out) if out else pl.DataFrame(schema=IDENTITY_TRUTH_SCHEMA)


def weak_death_rows(pop: Population, cal: Calendar, plan: Plan, variants: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """(rows, ambiguous records): weak death matches of the death records filed under variant IDs."""
    names = final_names(pop, plan)
    paid_persons = np.unique(plan.pension.frame()["person"].to_numpy())
    real = pl.DataFrame({"paid_id": pop.ids.gather(paid_persons), "name_s": names.gather(paid_persons),
                         "birth": pl.Series(pop.birth[paid_persons]), "person": paid_persons})
    forged = (variants.filter(pl.col("valid") & (pl.col("role") == "payee"))
              .join(plan.variant_pension.frame().select("variant").unique(), on="variant"))
    forged_keys = forged.select(paid_id="person_id", name_s=_simplified(forged["name"]),
                                birth=_embedded_birth(forged["person_id"]), person="person")
    paid = pl.concat([real, forged_keys.cast(real.schema)])
    registered = set(pop.ids.to_list())
    paid_ids = set(paid["paid_id"].to_list()) | set(
        variants.join(plan.variant_pension.frame().select("variant").unique(), on="variant")["person_id"].to_list())
    deaths = plan.variant_deaths.frame().join(variants, on="variant")
    eligible = deaths.filter(~pl.col("person_id").is_in(pl.Series(sorted(paid_ids)).implode())
                             & (~pl.col("valid") | ~pl.col("person_id").is_in(pl.Series(sorted(registered)).implode())))
    keyed = eligible.with_columns(name_s=_simplified(eligible["name"]), birth=_embedded_birth(eligible["person_id"]))
    hits = keyed.join(paid.select("name_s", "birth", "paid_id", match="person"), on=["name_s", "birth"])
    hits = hits.filter(pl.lit(_no_gender_contradiction(hits["person_id"], hits["paid_id"]))
                       & (~pl.col("valid") | pl.lit(_one_typo(hits["person_id"], hits["paid_id"]))))
    counts = hits.group_by("variant").agg(n=pl.col("paid_id").n_unique(), match=pl.col("match").first())
    ambiguous = int((counts["n"] > 1).sum())
    matched = (keyed.join(counts.filter(pl.col("n") == 1), on="variant")
               .group_by("match").agg(death=pl.col("date").min(), kind=pl.col("kind").min()))
    exact = pl.concat([plan.deaths.frame().select("person"),
                       plan.cancels.frame().filter(pl.col("reason") == 0).select("person")])["person"]
    matched = matched.filter(~pl.col("match").is_in(exact.implode()))
    start = cal.start.astype(object)
    matched = matched.with_columns(
        death_month=(pl.col("death").dt.year() - start.year) * 12 + pl.col("death").dt.month() - start.month)
    pension = expand(plan.pension.frame().filter(pl.col("person").is_in(matched["match"].implode())))
    after = (pension.join(matched.select(person="match", death_month="death_month"), on="person")
             .filter(pl.col("period") > pl.col("death_month")))
    if not len(after):
        return pl.DataFrame(schema=IDENTITY_TRUTH_SCHEMA), ambiguous
    summary = _summarise(after.select("person", "region", "fen", "period"), PAD)
    kinds = matched.select(person="match", kind="kind")
    return _finish(summary.join(kinds, on="person"), pop, cal, PAD, WEAK_RULE, "medium"), ambiguous


def _no_gender_contradiction(a: pl.Series, b: pl.Series) -> pl.Series:
    """False where both 17th characters are digits of different parity."""
    x = a.str.slice(16, 1).cast(pl.Int64, strict=False) % 2
    y = b.str.slice(16, 1).cast(pl.Int64, strict=False) % 2
    return (x.is_null() | y.is_null() | (x == y)).fill_null(True)


def _one_typo(a: pl.Series, b: pl.Series) -> pl.Series:
    """True where the 17-character bodies differ in exactly one position, or in two adjacent positions
    holding swapped characters (suspects.md: one digit changed, or two adjacent digits swapped)."""
    out = []
    for x, y in zip(a.to_list(), b.to_list()):
        d = [i for i in range(17) if x[i:i + 1] != y[i:i + 1]]
        out.append(len(d) == 1 or (len(d) == 2 and d[1] == d[0] + 1 and x[d[0]] == y[d[1]] and x[d[1]] == y[d[0]]))
    return pl.Series(out, dtype=pl.Boolean)


def identity_truth(pop: Population, cal: Calendar, plan: Plan) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, dict]:
    """(ground_truth_identity, near_misses_identity, identity_variants, facts) as written to the output folder.

    Raises RuntimeError (a synth bug) when an identity subject would fire a strict category, a planted
    duplicate finds no overlap, or a near miss is among the expected findings."""
    variants = _variants(pop, plan)
    intents = plan.identity_intents.frame()
    misses = plan.identity_near_misses.frame()
    subjects = np.unique(np.r_[intents["subject"].to_numpy(), misses["subject"].to_numpy()])
    strict = person_suspects(plan, cal, subjects)
    if len(strict):
        raise RuntimeError(f"synth bug: identity subjects fire strict categories: {strict.head(5).rows()}")
    di = duplicate_identity_rows(pop, cal, plan, variants)
    weak, ambiguous = weak_death_rows(pop, cal, plan, variants)
    clustered = cluster_rows(pop, cal, plan, variants)
    gt = pl.concat([di, weak, clustered]).cast(IDENTITY_TRUTH_SCHEMA).sort("rule_id", "subject_id")
    want_di = set(pop.ids.gather(intents.filter(pl.col("rule_id") == DI)["subject"]).to_list())
    if want_di != set(di["subject_id"].to_list()):
        raise RuntimeError("synth bug: a planted duplicate identity has no overlapping month")
    for rule in (PAD, DCR):  # the cluster kinds' intents fire (duplicate_identity kinds may add cross-region rows)
        want = set(pop.ids.gather(intents.filter(pl.col("rule_id") == rule)["subject"]).to_list())
        if not want <= set(clustered.filter(pl.col("rule_id") == rule)["subject_id"].to_list()):
            raise RuntimeError(f"synth bug: a planted {rule} case through a second ID does not fire")
    near = misses.select("kind", subject_id=pop.ids.gather(misses["subject"]), category_it_must_not_fire="category")
    near = near.cast(NEAR_MISS_IDENTITY_SCHEMA).unique().sort("kind", "subject_id", "category_it_must_not_fire")
    # Among millions of persons a planted near miss can meet a real namesake born the same day: the
    # truth (computed per the spec) then says it fires, so it is no longer a near miss. Small sets never
    # hit this, and tests/synth/test_identity_truth.py checks the truth independently there.
    near = near.join(gt, left_on=["subject_id", "category_it_must_not_fire"], right_on=["subject_id", "category"],
                     how="anti")
    names = final_names(pop, plan)
    out = variants.select(
        "kind", "role", variant_id="person_id", variant_valid="valid", variant_name="name",
        person_id="real_id", name=names.gather(variants["person"]),
    ).cast(VARIANTS_OUT_SCHEMA).sort("kind", "variant_id")
    want_weak = intents.filter(pl.col("rule_id") == WEAK_RULE)
    facts = {"planted_duplicate_identity": len(want_di), "planted_weak_death": len(want_weak),
             "cluster_rows": {rule: int((clustered["rule_id"] == rule).sum()) for rule in (PAD, DCR)},
             "weak_death_records_ambiguous": ambiguous}
    return gt, near, out, facts

