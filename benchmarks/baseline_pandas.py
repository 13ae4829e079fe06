"""Baseline 1: the six suspects.md categories as an analyst would write them in pandas.

Reads the CSV extracts of a landing folder (the clean ``fraudwatch synth`` layout) with
``pd.read_csv(dtype=str)`` -- only the columns the checks need -- canonicalises person IDs
(15 → 18 digits, GB 11643 checksum; computed once per distinct ID), turns money into integer fen
and computes each category with merges and group-bys. The semantics are those of suspects.md and
the rules (a period counts only when its payments net to more than zero; see baseline_sql.py).

Run it in a child process with a memory cap (``run_benchmark.py`` does): an allocation failure is
reported as "ran out of memory" (exit code 3) instead of taking the machine down.

    python -m benchmarks.baseline_pandas --landing DIR --as-of 2025-04-01 --out result.parquet [--max-memory-gb 20]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

OOM_EXIT = 3
CATEGORIES = ("paid_after_death", "subsidy_after_death", "duplicate_cross_region",
              "duplicate_cross_scheme", "paid_during_imprisonment", "refund_retained")
STOPPING_SENTENCES = {"有期徒刑", "拘役", "无期徒刑", "死刑缓期执行"}
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


# --------------------------------------------------------------------------- helpers


def canonical_person_id(raw) -> tuple[str | None, bool]:
    """(canonical 18-char ID, valid) for one raw ID string."""
    if raw is None or raw != raw:  # None / NaN
        return None, False
    g = str(raw).strip().upper()
    if not g:
        return None, False
    if len(g) == 18 and g[:17].isdigit() and (g[17].isdigit() or g[17] == "X"):
        body = g[:17]
    elif len(g) == 15 and g.isdigit():
        body = g[:6] + "19" + g[6:]
    else:
        return g, False
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS)) % 11]
    try:
        born = date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return g, False
    valid = born.year >= 1800 and (len(g) == 15 or g[17] == check)
    return (body + check if len(g) == 15 and valid else g), valid


def uscc_valid(raw) -> bool:
    if raw is None or raw != raw:
        return False
    g = str(raw).strip().upper()
    if len(g) != 18 or any(ch not in _USCC_CHARSET for ch in g):
        return False
    total = sum(_USCC_CHARSET.index(ch) * w for ch, w in zip(g, _USCC_WEIGHTS))
    return _USCC_CHARSET.index(g[17]) == (31 - total % 31) % 31


def add_person_ids(df):
    """Replace ``person_id`` by its canonical form and add ``person_id_valid`` (one Python call per distinct ID)."""
    import pandas as pd

    distinct = pd.unique(df["person_id"])
    pairs = [canonical_person_id(x) for x in distinct]
    canon = pd.Series([p[0] for p in pairs], index=distinct, dtype="str")
    valid = pd.Series([p[1] for p in pairs], index=distinct, dtype=bool)
    df["person_id_valid"] = df["person_id"].map(valid).fillna(False).astype(bool)
    df["person_id"] = df["person_id"].map(canon)
    return df


def to_fen(series):
    """Money text ('1234.5', '-3.07', '12') → int64 fen, exactly (no float)."""
    import numpy as np

    if len(series) == 0:
        return np.zeros(0, dtype="int64")
    text = series.str.strip()
    negative = text.str.startswith("-")
    text = text.str.lstrip("+-")
    parts = text.str.split(".", n=1, expand=True)
    whole = parts[0].replace("", "0").astype("int64")
    frac = parts[1].fillna("").str.ljust(2, "0").str.slice(0, 2).replace("", "00").astype("int64") \
        if parts.shape[1] > 1 else 0
    fen = whole * 100 + frac
    return np.where(negative, -fen, fen).astype("int64")


def files_of(landing: Path, extract: str) -> list[Path]:
    return sorted(p for p in Path(landing).glob(f"{extract}*.csv")
                  if p.stem == extract or p.stem[len(extract)] in "_-.")


def read(landing: Path, extract: str, columns: list[str]):
    import pandas as pd

    frames = [pd.read_csv(p, dtype=str, usecols=columns, keep_default_na=False, na_values=[""])
              for p in files_of(landing, extract)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def month_start(series):
    """'YYYY-MM-DD' / 'YYYY-MM' text → 'YYYY-MM' text (sortable like the month itself)."""
    return series.str.slice(0, 7)


# --------------------------------------------------------------------------- the categories


def death_months(deaths, household):
    import pandas as pd

    cancelled = household[(household["status"] == "注销") & (household["cancel_reason"] == "死亡")]
    records = pd.concat([
        deaths[["person_id", "person_id_valid", "death_date"]],
        cancelled[["person_id", "person_id_valid", "cancel_date"]].rename(columns={"cancel_date": "death_date"}),
    ])
    # every ID, valid or not: an invalid ID is an identifier too (suspects.md)
    records = records[records["person_id"].notna() & records["death_date"].notna()]
    first = records.groupby("person_id", as_index=False)["death_date"].min()
    first["death_month"] = month_start(first["death_date"])
    return first[["person_id", "death_month"]]


def after_death(payments, deaths_by_month, category: str):
    paid = payments.merge(deaths_by_month, on="person_id")
    paid = paid[paid["period"] > paid["death_month"]]
    per_month = paid.groupby(["person_id", "period"], as_index=False)["fen"].sum()
    per_month = per_month[per_month["fen"] > 0]
    out = per_month.groupby("person_id", as_index=False)["fen"].sum()
    return out.assign(category=category).rename(columns={"person_id": "subject_id"})


def cross_region(pay):
    valid = pay[pay["person_id"].notna()]
    regions = valid.groupby(["person_id", "scheme"])["region_code"].nunique()
    several = regions[regions >= 2].reset_index()[["person_id", "scheme"]]
    cand = valid.merge(several, on=["person_id", "scheme"])
    paid = cand.groupby(["person_id", "scheme", "region_code", "period"], as_index=False)["fen"].sum()
    paid = paid[paid["fen"] > 0]
    paid["started"] = paid.groupby(["person_id", "scheme", "region_code"])["period"].transform("min")
    paid = paid.sort_values(["person_id", "scheme", "period", "started", "region_code"])
    by_period = paid.groupby(["person_id", "scheme", "period"])
    paid["regions"] = by_period["region_code"].transform("size")
    paid["keep_rank"] = by_period.cumcount()
    improper = paid[(paid["regions"] >= 2) & (paid["keep_rank"] > 0)]
    out = improper.groupby("person_id", as_index=False)["fen"].sum()
    return out.assign(category="duplicate_cross_region").rename(columns={"person_id": "subject_id"})


def cross_scheme(pay):
    valid = pay[pay["person_id"].notna() & pay["scheme"].isin(["110", "120", "170"])].copy()
    valid["resident"] = valid["scheme"] == "170"
    kinds = valid.groupby(["person_id", "period", "resident"], as_index=False)["fen"].sum()
    kinds = kinds[kinds["fen"] > 0]
    both = kinds.groupby(["person_id", "period"])["resident"].transform("size") == 2
    resident = kinds[both & kinds["resident"]]
    out = resident.groupby("person_id", as_index=False)["fen"].sum()
    out = out[out["fen"] > 0]
    return out.assign(category="duplicate_cross_scheme").rename(columns={"person_id": "subject_id"})


def imprisonment(pay, prisoners, as_of: date):
    spells = prisoners[prisoners["person_id"].notna()
                       & (prisoners["sentence_type"].isna() | prisoners["sentence_type"].isin(STOPPING_SENTENCES))].copy()
    spells["admission_month"] = month_start(spells["admission_date"])
    spells["release_month"] = month_start(spells["release_date"])
    valid = pay[pay["person_id"].notna()]
    cand = valid.merge(spells[["person_id", "admission_month", "release_month", "release_date"]], on="person_id")
    serving = cand["release_date"].isna() & (cand["period"] <= as_of.strftime("%Y-%m"))
    inside = (cand["period"] > cand["admission_month"]) & ((cand["period"] < cand["release_month"]) | serving)
    inside = cand[inside].drop_duplicates("payment_id")  # a payment once, however many spells hold it
    per_month = inside.groupby(["person_id", "period"], as_index=False)["fen"].sum()
    per_month = per_month[per_month["fen"] > 0]
    out = per_month.groupby("person_id", as_index=False)["fen"].sum()
    return out.assign(category="paid_during_imprisonment").rename(columns={"person_id": "subject_id"})


def refund_retained(refunds, transfers, as_of: date, deadline_days: int = 60):
    """FIFO per firm, with an explicit loop: each refund takes the oldest unused eligible transfers
    dated within [paid_date, paid_date + deadline_days]."""
    import pandas as pd

    refunds = refunds[refunds["is_labor_dispatch"].str.strip().str.lower().isin(["true", "1", "y", "yes", "是"])
                      & refunds["dispatched_amount"].notna()].copy()
    refunds["need"] = to_fen(refunds["dispatched_amount"])
    refunds = refunds[refunds["need"] > 0]
    refunds["paid"] = pd.to_datetime(refunds["paid_date"]).dt.date
    refunds["firm_id"] = refunds["firm_id"].str.strip().str.upper()
    t = transfers.copy()
    t["firm_id"] = t["firm_id"].str.strip().str.upper()
    t["recipient_id"] = t["recipient_id"].str.strip().str.upper()
    t["fen"] = to_fen(t["amount"])
    t["day"] = pd.to_datetime(t["transfer_date"]).dt.date
    t = t[t["recipient_id"].map(uscc_valid) & (t["recipient_id"] != t["firm_id"]) & (t["fen"] > 0)]
    ledger = {firm: g.sort_values(["day", "transfer_id"])[["day", "fen"]].values.tolist()
              for firm, g in t.groupby("firm_id")}
    rows = []
    for firm, group in refunds.sort_values(["paid", "refund_id"]).groupby("firm_id", sort=False):
        left = [list(x) for x in ledger.get(firm, [])]
        retained = 0
        for paid, need in zip(group["paid"], group["need"]):
            deadline = paid + timedelta(days=deadline_days)
            got = 0
            for item in left:
                if got == need:
                    break
                day, amount = item
                if paid <= day <= deadline and amount > 0:
                    take = min(amount, need - got)
                    item[1] -= take
                    got += take
            if as_of > deadline and need - got > 0:
                retained += need - got
        if retained > 0:
            rows.append((firm, retained))
    out = pd.DataFrame(rows, columns=["subject_id", "fen"])
    return out.assign(category="refund_retained")


def run(landing: Path, as_of: date, deadline_days: int = 60) -> tuple:
    """All six categories. Returns (DataFrame category/subject_id/amount_at_risk as text 元, seconds per step)."""
    import pandas as pd

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        clock = now

    pay = read(landing, "pension_payments", ["payment_id", "person_id", "scheme", "region_code", "period", "amount"])
    pay["fen"] = to_fen(pay.pop("amount"))
    pay = add_person_ids(pay)
    lap("read_pension_payments")
    sub = read(landing, "subsidy_payments", ["person_id", "period", "amount"])
    sub["fen"] = to_fen(sub.pop("amount"))
    sub = add_person_ids(sub)
    deaths = add_person_ids(read(landing, "deaths", ["person_id", "death_date"]))
    household = add_person_ids(read(landing, "household", ["person_id", "status", "cancel_date", "cancel_reason"]))
    prisoners = add_person_ids(read(landing, "prisoners", ["person_id", "admission_date", "release_date", "sentence_type"]))
    refunds = read(landing, "stabilization_refunds", ["refund_id", "firm_id", "is_labor_dispatch", "dispatched_amount", "paid_date"])
    transfers = read(landing, "refund_transfers", ["transfer_id", "firm_id", "recipient_id", "amount", "transfer_date"])
    lap("read_other_extracts")

    months = death_months(deaths, household)
    parts = [after_death(pay, months, "paid_after_death")]
    lap("paid_after_death")
    parts.append(after_death(sub, months, "subsidy_after_death"))
    lap("subsidy_after_death")
    parts.append(cross_region(pay))
    lap("duplicate_cross_region")
    parts.append(cross_scheme(pay))
    lap("duplicate_cross_scheme")
    parts.append(imprisonment(pay, prisoners, as_of))
    lap("paid_during_imprisonment")
    parts.append(refund_retained(refunds, transfers, as_of, deadline_days))
    lap("refund_retained")

    out = pd.concat(parts, ignore_index=True)
    sign = out["fen"].map(lambda f: "-" if f < 0 else "")
    absolute = out["fen"].abs()
    out["amount_at_risk"] = sign + (absolute // 100).astype(str) + "." + (absolute % 100).astype(str).str.zfill(2)
    out = out[["category", "subject_id", "amount_at_risk"]].sort_values(["category", "subject_id"]).reset_index(drop=True)
    return out, seconds


def write(out, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from decimal import Decimal

    table = pa.table({
        "category": pa.array(out["category"].tolist(), pa.string()),
        "subject_id": pa.array(out["subject_id"].tolist(), pa.string()),
        "amount_at_risk": pa.array([Decimal(x) for x in out["amount_at_risk"]], pa.decimal128(18, 2)),
    })
    pq.write_table(table, path)


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or the parser's / Arrow's own ways of saying an allocation failed."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return isinstance(exc, MemoryError) or any(
        s in text for s in ("out of memory", "bad_alloc", "cannot allocate memory", "memoryerror", "failed to allocate"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, required=True)
    parser.add_argument("--deadline-days", type=int, default=60)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--max-memory-gb", type=float, help="address-space cap (RLIMIT_AS) for this process")
    args = parser.parse_args(argv)
    if args.max_memory_gb:
        cap = int(args.max_memory_gb * 1024 ** 3)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    started = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_started = usage.ru_utime + usage.ru_stime
    try:
        out, seconds = run(args.landing, args.as_of, args.deadline_days)
    except Exception as exc:  # noqa: BLE001 - allocation failures come as several exception types
        if not is_out_of_memory(exc):
            raise
        print(json.dumps({"status": "out_of_memory", "seconds": round(time.perf_counter() - started, 3)}))
        sys.stdout.flush()
        # leave without unwinding further: the interpreter may not be able to allocate anything
        import os
        os._exit(OOM_EXIT)
    total = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_started
    if args.out:
        write(out, args.out)
    result = {"status": "ok", "seconds": round(total, 3), "cpu_seconds": round(cpu, 2), "seconds_per_step": seconds,
              "rows_per_category": {k: int(v) for k, v in out["category"].value_counts().sort_index().items()}}
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
