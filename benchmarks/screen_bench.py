"""Benchmark of ``fraudwatch screen``: an N-row payroll against an N-person warehouse.

Per size: ``fraudwatch synth`` writes N persons x 13 months (clean CSV); the first 12 months (and
every other extract) are the landing folder of a full audit (``run_pipeline``, no Prefect); the
13th month's pension file is the coming payroll. Then ``fraudwatch screen`` runs in a child
process under ``/usr/bin/time -v`` (wall clock, peak RSS) and the screen's own manifest gives its
stage timings and hold counts. The synthetic data and the audit are kept in WORKDIR and reused.

    .venv/bin/python benchmarks/screen_bench.py --persons 1000000 --workdir /tmp/fwscreen [--wait-load 3] [--oracle]

``--oracle`` also audits all 13 months (the payroll as paid) and checks that the payroll rows the
rules then count as at risk (by their evidence) are exactly the rows the last screen held, reason
by reason: the screen's exactness at scale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.run_benchmark import run_timed  # noqa: E402

PYTHON = sys.executable
FRAUDWATCH = [PYTHON, "-c", "from pipelines.cli import app; app()"]  # the CLI with every command registered


def _load() -> float:
    return os.getloadavg()[0]


def _wait(limit: float | None, say) -> None:
    waited = 0
    while limit and _load() > limit and waited < 1800:
        say(f"load {_load():.1f} > {limit}: waiting")
        time.sleep(30)
        waited += 30


def prepare(persons: int, seed: int, workdir: Path, say) -> tuple[Path, Path]:
    """(landing folder of 12 months, payroll file of month 13), generated once per size and seed."""
    base = workdir / f"p{persons}_s{seed}"
    full, landing, payroll_dir = base / "synth13", base / "landing", base / "payroll"
    if not (full / "synth_meta.json").exists():
        say(f"synth {persons} persons x 13 months")
        base.mkdir(parents=True, exist_ok=True)
        res = run_timed([*FRAUDWATCH, "synth", "--persons", str(persons), "--months", "13", "--seed", str(seed),
                         "--format", "csv", "--out", str(full)], log=base / "synth.log")
        if res["returncode"]:
            raise SystemExit(f"synth failed: see {res['log']}")
    months = sorted(full.glob("pension_payments_*.csv"))
    payroll = months[-1]
    landing.mkdir(parents=True, exist_ok=True)
    payroll_dir.mkdir(parents=True, exist_ok=True)
    for path in full.iterdir():
        link = (payroll_dir if path == payroll else landing) / path.name
        if not link.exists():
            link.symlink_to(path)
    return landing, payroll_dir / payroll.name


# where each rule's evidence lists the payments it counts as at risk
AT_RISK_IDS = {
    "paid_after_death": lambda e: e["payment_ids"],
    "paid_after_death_weak_match": lambda e: e["payment_ids"],
    "paid_during_imprisonment": lambda e: e["payment_ids"],
    "duplicate_cross_region": lambda e: e["improper_payment_ids"],
    "duplicate_cross_scheme": lambda e: e["resident_payment_ids"],
    "duplicate_identity": lambda e: e["improper_payment_ids"],
    "duplicate_payment_same_period": lambda e: [i for d in e["duplicates"] for i in d["duplicate_payment_ids"]],
}


def oracle(full: Path, payroll: Path, screen_dir: Path, memory_limit: str | None, say) -> dict:
    """Audit every month with the payroll paid; compare the rules' at-risk payroll rows with the holds."""
    import polars as pl

    out13 = full.parent / "out13"
    if not (out13 / "latest").exists():
        say(f"oracle: full audit of {full} (the payroll as paid)")
        code = (f"from datetime import date; from pathlib import Path; from pipelines.pipeline import RunConfig; "
                f"from pipelines.stages import run_pipeline; run_pipeline(RunConfig(input=Path({str(full)!r}), "
                f"output=Path({str(out13)!r}), as_of=date(2026, 1, 31), memory_limit={memory_limit!r}))")
        res = run_timed([PYTHON, "-c", code], log=full.parent / "oracle_audit.log")
        if res["returncode"]:
            raise SystemExit(f"oracle audit failed: see {res['log']}")
    # the payroll's paying rows (synth writes clean CSV with the canonical headers)
    payroll_ids = set(pl.read_csv(payroll, columns=["payment_id", "amount"], infer_schema=False)
                      .filter(pl.col("amount").cast(pl.Float64) > 0)["payment_id"])
    suspects = pl.read_parquet(out13 / "latest" / "suspects.parquet")
    found, incomplete = set(), 0
    for row in suspects.filter(pl.col("rule_id").is_in(list(AT_RISK_IDS))).iter_rows(named=True):
        evidence = json.loads(row["evidence"])
        incomplete += not (evidence.get("payment_ids_complete", True) and evidence.get("duplicates_complete", True))
        found |= {(i, row["category"]) for i in AT_RISK_IDS[row["rule_id"]](evidence) if i in payroll_ids}
    holds = pl.read_parquet(screen_dir / "holds.parquet")
    held = {(r["payment_id"], reason) for r in holds.iter_rows(named=True) for reason in r["hold_reasons"].split(",")}
    return {"rules_at_risk_payroll_rows": len(found), "held_row_reasons": len(held), "equal": held == found,
            "only_held": sorted(held - found)[:10], "only_rules": sorted(found - held)[:10],
            "suspects_with_truncated_evidence": incomplete}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/fwscreen"))
    ap.add_argument("--memory-limit", default=None)
    ap.add_argument("--wait-load", type=float, default=None, help="wait until the 1-minute load is below this")
    ap.add_argument("--repeat", type=int, default=1, help="screens per size (the figures of each are kept)")
    ap.add_argument("--oracle", action="store_true", help="check the holds against the rules run with the payroll paid")
    args = ap.parse_args(argv)

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    figures = []
    for persons in args.persons:
        landing, payroll = prepare(persons, args.seed, args.workdir, say)
        output = landing.parent / "out"
        logs = landing.parent
        if not (output / "latest").exists():
            say(f"full audit of {landing}")
            _wait(args.wait_load, say)
            code = (f"from datetime import date; from pathlib import Path; from pipelines.pipeline import RunConfig; "
                    f"from pipelines.stages import run_pipeline; run_pipeline(RunConfig(input=Path({str(landing)!r}), "
                    f"output=Path({str(output)!r}), as_of=date(2026, 1, 31), memory_limit={args.memory_limit!r}))")
            audit = run_timed([PYTHON, "-c", code], log=logs / "audit.log")
            if audit["returncode"]:
                raise SystemExit(f"audit failed: see {audit['log']}")
            say(f"audit: {audit['seconds']} s, peak {audit['peak_rss_mb']} MiB")
        for i in range(args.repeat):
            _wait(args.wait_load, say)
            load = _load()
            cmd = [*FRAUDWATCH, "screen", "--payroll", str(payroll), "--output", str(output), "--as-of", "2026-01-05"]
            if args.memory_limit:
                cmd += ["--memory-limit", args.memory_limit]
            res = run_timed(cmd, log=logs / f"screen{i}.log")
            if res["returncode"]:
                raise SystemExit(f"screen failed: see {res['log']}")
            newest = sorted(p for p in (output / "screens").iterdir() if not p.name.startswith("."))[-1]
            manifest = json.loads((newest / "manifest.json").read_text(encoding="utf-8"))
            row = {"persons": persons, "payroll_rows": manifest["counts"]["rows_read"],
                   "payroll_mb": round(manifest["payroll"]["size_bytes"] / 2**20, 1),
                   "seconds": res["seconds"], "peak_rss_mb": res["peak_rss_mb"],
                   "cpu_seconds": res["cpu_seconds"], "load_at_start": round(load, 1),
                   "stages": manifest["timings_seconds"], "held": manifest["counts"]["rows_held"],
                   "amount_held": manifest["counts"]["amount_held"],
                   "per_reason": {k: v["rows"] for k, v in manifest["counts"]["per_reason"].items()},
                   "date": date.today().isoformat()}
            figures.append(row)
            say(json.dumps(row, ensure_ascii=False))
        if args.oracle:
            figures[-1]["oracle"] = oracle(landing.parent / "synth13", payroll, newest, args.memory_limit, say)
            say(f"oracle: {json.dumps(figures[-1]['oracle'], ensure_ascii=False)}")
    (args.workdir / "screen_bench.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    print("| persons | payroll rows | screen wall s | peak RSS MiB | read payroll | gather | checks | write | held |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in figures:
        s = f["stages"]
        print(f"| {f['persons']:,} | {f['payroll_rows']:,} | {f['seconds']} | {f['peak_rss_mb']} | {s['read_payroll']} | "
              f"{s['gather']} | {s['checks']} | {s['write']} | {f['held']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
