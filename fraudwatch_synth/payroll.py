"""The next month's payroll (`fraudwatch synth --payroll-next DIR`), for `fraudwatch screen`.

After the generated months, the pension payroll of the month that follows: every pensioner whose
history is clean by construction (no planted case, near miss, identity variant, death, prison
term or move) and who was paid in the last generated month is paid again. Into it are planted,
on such pensioners, the holds of every hold reason of docs/spec/suspects.md "Pre-payment
screening" and near misses that must not be held; the audit facts they need (a death record, a
prison admission, a proof-of-life certification) go into three extra landing files,
``deaths_payroll_next.csv``, ``prisoners_payroll_next.csv`` and ``certifications_payroll_next.csv``,
chosen so that the audit of the generated months finds nothing new (a death in the last month is
payable; an admission month is payable) — except the certification after a death, which the audit
reports as ``certified_after_death`` (no money: the pension was last paid in the payable death month).

``DIR/pension_payments_<YYYYMM>.csv`` is the payroll; ``DIR/payroll_truth.parquet`` says, for
every planted row (``payment_id``), its ``kind``, whether the screen must ``hold`` it, and the
``hold_reason`` (a category), ``severity`` and ``rule_id`` it must be held under. Every payroll
row not listed as a hold must pass: the truth is exact for the whole file.

"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from fraudwatch_synth import reference as ref
from fraudwatch_synth.extracts import date_text, money_text, pay_day
from fraudwatch_synth.ids import ID_CHECK, ID_WEIGHTS, legacy15
from fraudwatch_synth.plan import NONE, Plan
from fraudwatch_synth.population import REGION_CODES, Calendar, Population
from fraudwatch_synth.writer import write_parquet

TRUTH_FILE = "payroll_truth.parquet"
DEATHS_FILE, PRISONERS_FILE = "deaths_payroll_next.csv", "prisoners_payroll_next.csv"
CERTIFICATIONS_FILE = "certifications_payroll_next.csv"

CAD = "certified_after_death"
PAD, PDI, DCR, DCS, DI, DPSP = ("paid_after_death", "paid_during_imprisonment", "duplicate_cross_region",
                                "duplicate_cross_scheme", "duplicate_identity", "duplicate_payment_same_period")
# kind -> (hold_reason, severity, rule_id) of its planted row; None: a near miss, never held
KINDS: dict[str, tuple[str, str, str] | None] = {
    "hold_died_last_month": (PAD, "high", PAD),                      # death in the last audited month
    "hold_weak_death_record": (PAD, "medium", "paid_after_death_weak_match"),  # died under a broken ID
    "hold_certified_after_death": (CAD, "high", CAD),                # died; a passed certification afterwards
    "hold_died_failed_certification_after": (PAD, "high", PAD),      # a failed certification after the death
    "hold_died_certified_before": (PAD, "high", PAD),                # certified alive before the death
    "hold_died_paid_under_typo_id": (PAD, "high", PAD),              # died; paid on under a typo of the ID
    "hold_serving_prisoner": (PDI, "high", PDI),                     # admitted last month, still serving
    "hold_second_region": (DCR, "high", DCR),                        # a second region pays the same scheme
    "hold_resident_and_employee": (DCS, "high", DCS),                # a resident pension beside the employee one
    "hold_new_typo_id": (DI, "high", DI),                            # paid again under a typo of the ID, new in the file
    "hold_paid_twice": (DPSP, "medium", DPSP),                       # the same payment twice in the file
    "near_died_in_payroll_month": None,                              # the death month is payable
    "near_died_after_payroll_month": None,                           # a death record after the period
    "near_probation": None,                                          # 缓刑 does not stop a pension
    "near_admitted_in_payroll_month": None,                          # the admission month is payable
    "near_released_in_payroll_month": None,                          # released: the release month is payable
    "near_moved_region": None,                                       # the old region stopped, the new one pays
    "near_resident_only": None,                                      # the employee pension stopped
    "near_namesake_new_id": None,                                    # same name and birth date, another valid ID
    "near_typo_id_other_name": None,                                 # a typo of the ID under another name
    "near_reversed_and_repaid": None,                                # a reversal and the corrected payment
}
_ROWS = {"person": pl.Int64, "region": pl.Int64, "scheme": pl.Int64, "fen": pl.Int64, "kind": pl.String,
         "person_id": pl.String, "name": pl.String, "extra": pl.Int8}


@dataclass(frozen=True)
class PayrollSummary:
    """What :func:`write_next_payroll` wrote."""

    payroll: Path
    truth: Path
    period: str
    rows: int
    holds: dict[str, int]     # planted holds per hold_reason
    near_misses: int


def cases_per_kind(persons: int) -> int:
    return max(2, persons // 20_000)


def write_next_payroll(out: Path, payroll_dir: Path, pop: Population, plan: Plan, cal: Calendar,
                       rng: np.random.Generator) -> PayrollSummary:
    """Write the payroll of month ``cal.months`` into ``payroll_dir`` and the audit facts of its
    planted cases into the landing folder ``out`` (see the module doc)."""
    payroll_dir = Path(payroll_dir)
    payroll_dir.mkdir(parents=True, exist_ok=True)
    m, last = cal.months, cal.months - 1
    runs = plan.pension.frame()
    base = _clean_base(runs, plan, len(pop), last)
    n = cases_per_kind(len(pop))
    eligible = base.filter(~pl.col("legacy"))
    picks = _pick(eligible, pop, n, rng)

    rows = [base.select("person", "region", "scheme", "fen", kind=pl.lit(None, pl.String),
                        person_id=pl.lit(None, pl.String), name=pl.lit(None, pl.String), extra=pl.lit(0, pl.Int8))]
    replaced: list[np.ndarray] = []   # persons whose base row a near miss replaces
    deaths, prisons, certs = [], [], []

    def add(kind: str, frame: pl.DataFrame, **cols) -> None:
        rows.append(frame.select("person", "region", "scheme", "fen").with_columns(
            kind=pl.lit(kind), person_id=pl.lit(None, pl.String), name=pl.lit(None, pl.String), extra=pl.lit(1, pl.Int8))
            .with_columns(**cols).select(list(_ROWS)).cast(_ROWS))

    def mark(kind: str, frame: pl.DataFrame) -> None:  # the planted row is the person's base row
        add(kind, frame)
        replaced.append(frame["person"].to_numpy())

    def died(frame: pl.DataFrame, month: int, person_id: pl.Series | None = None, on: np.ndarray | None = None) -> None:
        """Death records of ``frame``'s persons in ``month`` (on a random day, or on the dates ``on``)."""
        p = frame["person"].to_numpy()
        deaths.append(pl.DataFrame({
            "person_id": person_id if person_id is not None else pop.ids.gather(p), "name": pop.names.gather(p),
            "death_date": date_text(on if on is not None else cal.day_in(np.full(len(p), month), rng)),
            "source": pl.Series(ref.DEATH_SOURCES).gather(rng.integers(0, 3, len(p)))}))

    def certified(frame: pl.DataFrame, days_after_death: int, passed: bool) -> None:
        """A death early in the last month (day 1–10) and a certification ``days_after_death`` later."""
        p = frame["person"].to_numpy()
        death = cal.day_in(np.full(len(p), last), rng, 1, 10)
        died(frame, last, on=death)
        certs.append(pl.DataFrame({
            "person_id": pop.ids.gather(p), "name": pop.names.gather(p),
            "cert_date": date_text(death + days_after_death), "method": ["人脸识别"] * len(p),
            "result": ["通过" if passed else "未通过"] * len(p), "region_code": pl.Series(frame["region"]).cast(pl.String)}))

    def jailed(frame: pl.DataFrame, admitted: int, released: int | None, sentence: str) -> None:
        p = frame["person"].to_numpy()
        release = date_text(cal.day_in(np.full(len(p), released), rng)) if released is not None \
            else pl.Series([None] * len(p), dtype=pl.String)
        prisons.append(pl.DataFrame({
            "person_id": pop.ids.gather(p), "name": pop.names.gather(p),
            "admission_date": date_text(cal.day_in(np.full(len(p), admitted), rng)), "release_date": release,
            "sentence_type": [sentence] * len(p)}))

    k = picks
    died(k["hold_died_last_month"], last)
    mark("hold_died_last_month", k["hold_died_last_month"])
    weak = k["hold_weak_death_record"]
    died(weak, last, _wrong_check(pop.ids.gather(weak["person"].to_numpy())))
    mark("hold_weak_death_record", weak)
    for kind, days, passed in (("hold_certified_after_death", 12, True),
                               ("hold_died_failed_certification_after", 12, False),
                               ("hold_died_certified_before", -3, True)):
        certified(k[kind], days, passed)
        mark(kind, k[kind])
    under_typo = k["hold_died_paid_under_typo_id"]  # the typo's row replaces the dead man's own
    died(under_typo, last)
    add("hold_died_paid_under_typo_id", under_typo,
        person_id=_substituted(pop.ids.gather(under_typo["person"].to_numpy()), rng))
    replaced.append(under_typo["person"].to_numpy())
    jailed(k["hold_serving_prisoner"], last, None, "有期徒刑")
    mark("hold_serving_prisoner", k["hold_serving_prisoner"])
    second = k["hold_second_region"]
    add("hold_second_region", second, region=pl.Series(_other_region(second["region"].to_numpy(), rng)))
    resident = k["hold_resident_and_employee"]
    add("hold_resident_and_employee", resident, scheme=pl.lit(170, pl.Int64),
        fen=pl.Series(rng.integers(15_000, 40_000, resident.height)))
    typo = k["hold_new_typo_id"]
    add("hold_new_typo_id", typo, person_id=_substituted(pop.ids.gather(typo["person"].to_numpy()), rng))
    add("hold_paid_twice", k["hold_paid_twice"])

    died(k["near_died_in_payroll_month"], m)
    mark("near_died_in_payroll_month", k["near_died_in_payroll_month"])
    died(k["near_died_after_payroll_month"], m + 1)
    mark("near_died_after_payroll_month", k["near_died_after_payroll_month"])
    jailed(k["near_probation"], last - 1, None, "缓刑")
    mark("near_probation", k["near_probation"])
    jailed(k["near_admitted_in_payroll_month"], m, None, "有期徒刑")
    mark("near_admitted_in_payroll_month", k["near_admitted_in_payroll_month"])
    jailed(k["near_released_in_payroll_month"], last, m, "拘役")
    mark("near_released_in_payroll_month", k["near_released_in_payroll_month"])
    moved = k["near_moved_region"]
    mark("near_moved_region", moved.with_columns(region=pl.Series(_other_region(moved["region"].to_numpy(), rng))))
    only = k["near_resident_only"]
    mark("near_resident_only", only.with_columns(scheme=pl.lit(170, pl.Int64),
                                                 fen=pl.Series(rng.integers(15_000, 40_000, only.height))))
    namesake = k["near_namesake_new_id"]
    add("near_namesake_new_id", namesake, person_id=_namesake_ids(pop, namesake["person"].to_numpy(), rng))
    other = k["near_typo_id_other_name"]
    add("near_typo_id_other_name", other, person_id=_substituted(pop.ids.gather(other["person"].to_numpy()), rng),
        name=_other_surname(pop.names.gather(other["person"].to_numpy()), rng))
    repaid = k["near_reversed_and_repaid"]
    add("near_reversed_and_repaid", repaid, fen=-pl.col("fen"))
    add("near_reversed_and_repaid", repaid)

    frame = pl.concat(rows)
    gone = np.concatenate(replaced) if replaced else np.zeros(0, np.int64)
    frame = frame.filter(~((pl.col("extra") == 0) & pl.col("person").is_in(gone.tolist())))
    payroll, truth = _finish(frame, base, pop, cal, m)
    period = cal.period_text(m)
    path = payroll_dir / f"pension_payments_{period.replace('-', '')}.csv"
    payroll.write_csv(path)
    write_parquet(truth, payroll_dir / TRUTH_FILE)
    _record_ids(pl.concat(deaths), "XP").write_csv(Path(out) / DEATHS_FILE)
    pl.concat(prisons).write_csv(Path(out) / PRISONERS_FILE)
    _record_ids(pl.concat(certs), "XC", "cert_date").select(
        "record_id", "person_id", "name", "cert_date", "method", "result", "region_code").write_csv(
        Path(out) / CERTIFICATIONS_FILE)
    holds = truth.filter(pl.col("expect") == "hold")
    return PayrollSummary(path, payroll_dir / TRUTH_FILE, period, payroll.height,
                          {r: int(c) for r, c in holds.group_by("hold_reason").len().sort("hold_reason").iter_rows()},
                          truth.filter(pl.col("expect") == "pass").height)


def _clean_base(runs: pl.DataFrame, plan: Plan, persons: int, last: int) -> pl.DataFrame:
    """One run per pensioner paid in the last month whose whole history is clean by construction."""
    touched = np.zeros(persons, dtype=bool)
    for parts, cols in ((plan.intents, ("subject",)), (plan.near_misses, ("subject",)),
                        (plan.identity_intents, ("subject",)), (plan.identity_near_misses, ("subject",)),
                        (plan.variants, ("person",)), (plan.deaths, ("person",)), (plan.cancels, ("person",)),
                        (plan.prisons, ("person",)), (plan.moves, ("person",)), (plan.same_name, ("person", "name_of"))):
        frame = parts.frame()
        for col in cols:
            touched[frame[col].to_numpy()] = True
    several = runs.group_by("person").len().filter(pl.col("len") > 1)["person"].to_numpy()
    touched[several] = True
    return runs.filter((pl.col("last") == last) & (pl.col("pay_month") == NONE)
                       & ~pl.Series(touched).gather(runs["person"])).sort("person")


def _pick(eligible: pl.DataFrame, pop: Population, n: int, rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """n distinct clean pensioners per kind (employee pensioners for the cross-scheme kinds)."""
    needs_employee = ("hold_resident_and_employee", "near_resident_only")
    employees = eligible.filter(pl.col("scheme") != 170)
    order_e = rng.permutation(employees.height)
    chosen_e = {kind: employees[order_e[i * n:(i + 1) * n]] for i, kind in enumerate(needs_employee)}
    used = np.concatenate([f["person"].to_numpy() for f in chosen_e.values()])
    rest = eligible.filter(~pl.col("person").is_in(used.tolist()))
    order = rng.permutation(rest.height)
    kinds = [kind for kind in KINDS if kind not in needs_employee]
    if rest.height < n * len(kinds) or employees.height < 2 * n:
        raise ValueError("too few clean pensioners for the payroll cases: generate more persons")
    return {**{kind: rest[order[i * n:(i + 1) * n]] for i, kind in enumerate(kinds)}, **chosen_e}


def _finish(frame: pl.DataFrame, base: pl.DataFrame, pop: Population, cal: Calendar, m: int):
    """The payroll rows (canonical columns, payment ids in file order) and the truth of planted rows."""
    persons = frame["person"].to_numpy()
    legacy = base.select("person", "legacy")
    frame = frame.join(legacy, on="person", how="left").with_columns(pl.col("legacy").fill_null(False))
    own = pop.ids.gather(persons)
    own_id = pl.when(pl.col("legacy")).then(pl.lit(legacy15(own))).otherwise(pl.lit(own))
    period = cal.period_text(m)
    frame = frame.with_columns(
        person_id=pl.coalesce(pl.col("person_id"), own_id), name=pl.coalesce(pl.col("name"), pl.lit(pop.names.gather(persons))),
        bank_account=pl.lit(pop.accounts.gather(persons)), key=pl.lit(pop.id_key[persons]),
    ).sort("region", "key", "person", "extra", "fen", descending=[False, False, False, False, True])
    days = frame.select(pay_day(pl.col("region")))[:, 0].to_numpy()
    pay_date = date_text(cal.month_start(np.full(frame.height, m)) + days - 1)
    amount = pl.when(pl.col("fen") < 0).then(pl.lit("-") + money_text(-pl.col("fen"))).otherwise(money_text(pl.col("fen")))
    frame = frame.with_columns(
        payment_id=pl.lit(period.replace("-", "")) + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(10),
        amount=amount, pay_date=pay_date)
    payroll = frame.select("payment_id", "person_id", "name", scheme=pl.col("scheme").cast(pl.String),
                           region_code=pl.col("region").cast(pl.String), period=pl.lit(period), amount="amount",
                           pay_date="pay_date", bank_account="bank_account")
    meta = pl.DataFrame([(k, *(v or (None, None, None))) for k, v in KINDS.items()],
                        schema={"kind": pl.String, "hold_reason": pl.String, "severity": pl.String, "rule_id": pl.String},
                        orient="row")
    planted = frame.filter(pl.col("kind").is_not_null()).join(meta, on="kind", how="left")
    # the held row of a kind: its planted row, except for a reversal pair (neither is held)
    truth = planted.select(
        "payment_id", "person_id", "kind",
        expect=pl.when(pl.col("hold_reason").is_not_null()).then(pl.lit("hold")).otherwise(pl.lit("pass")),
        hold_reason="hold_reason", severity="severity", rule_id="rule_id",
    ).sort("payment_id")
    return payroll, truth


def _record_ids(records: pl.DataFrame, prefix: str, dated: str = "death_date") -> pl.DataFrame:
    return records.sort(dated, "person_id").with_columns(
        record_id=pl.lit(prefix) + pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(8))


def _digits(ids: pl.Series) -> np.ndarray:
    return np.frombuffer("".join(ids.to_list()).encode("ascii"), dtype=np.uint8).reshape(-1, 18).copy()


def _text(mat: np.ndarray) -> pl.Series:
    return pl.Series([bytes(row).decode("ascii") for row in mat], dtype=pl.String)


def _wrong_check(ids: pl.Series) -> pl.Series:
    """The same IDs with another (wrong) check character."""
    mat = _digits(ids)
    mat[:, 17] = np.where(mat[:, 17] == ord("0"), ord("1"), ord("0"))
    return _text(mat)


def _substituted(ids: pl.Series, rng: np.random.Generator) -> pl.Series:
    """One sequence digit (position 15 or 16) changed, the check character kept: the checksum fails
    (GB 11643 detects every single-digit change) and the birth date and gender stay."""
    mat = _digits(ids)
    pos = 14 + rng.integers(0, 2, len(mat))
    rows = np.arange(len(mat))
    mat[rows, pos] = ord("0") + (mat[rows, pos] - ord("0") + rng.integers(1, 10, len(mat))) % 10
    return _text(mat)


def _namesake_ids(pop: Population, persons: np.ndarray, rng: np.random.Generator) -> pl.Series:
    """Valid IDs of namesakes born the same day: another region, another sequence, the same gender."""
    mat = _digits(pop.ids.gather(persons))
    region = _other_region(pop.region[persons], rng)
    mat[:, :6] = np.array([list(str(r).encode()) for r in region], dtype=np.uint8)
    seq = (mat[:, 14:16] - ord("0")) @ np.array([10, 1]) + rng.integers(1, 99, len(mat))
    mat[:, 14] = ord("0") + (seq % 100) // 10
    mat[:, 15] = ord("0") + seq % 10
    body = (mat[:, :17] - ord("0")).astype(np.int64)
    mat[:, 17] = ID_CHECK[(body @ ID_WEIGHTS) % 11]
    return _text(mat)


def _other_region(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    codes = np.sort(REGION_CODES)
    pos = np.searchsorted(codes, region)
    return codes[(pos + rng.integers(1, len(codes), len(region))) % len(codes)]


def _other_surname(names: pl.Series, rng: np.random.Generator) -> pl.Series:
    """Each name under a surname it does not have (another person, not a typo of the name)."""
    surnames = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"]
    picks = rng.integers(0, len(surnames), len(names))
    out = []
    for name, i in zip(names.to_list(), picks):
        surname = surnames[i] if surnames[i] != name[0] else surnames[(i + 1) % len(surnames)]
        out.append(surname + name[1:])
    return pl.Series(out, dtype=pl.String)
