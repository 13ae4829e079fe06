"""Benchmark of ``fraudwatch screen``: an N-row payroll against an N-person audit.

Per size: ``fraudwatch synth --payroll-next`` writes N persons x 12 months (clean CSV, the landing
folder of a full audit) and the 13th month's payroll with planted holds, near misses and their
truth (``fraudwatch_synth/payroll.py``). The full audit runs once (``run_pipeline``, no Prefect);
then ``fraudwatch screen`` runs in a child process under ``/usr/bin/time -v`` (wall clock, peak
RSS) and the screen's own manifest gives its stage timings and hold counts. Every screen is checked
against the synth's truth (exact: every planted hold, nothing else). The synthetic data and the
audit are kept in WORKDIR and reused.

    .venv/bin/python benchmarks/screen_bench.py --persons 1000000 --workdir /tmp/fwscreen [--wait-load 3] [--oracle]
    .venv/bin/python benchmarks/screen_bench.py --persons 10000000 --workdir /data/fwscreen --memory-limit 12GB

``--oracle`` also audits the landing folder with the payroll as paid and checks that the payroll
rows the rules then count as at risk (by their evidence) are exactly the rows the last screen held,
reason by reason (``benchmarks/screen_oracle.py``).

Disk at 10 M: the landing CSVs (~12 GB), the audit's lake and run (~3 GB), the payroll (~1 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.run_benchmark import run_timed  # noqa: E402
from benchmarks.screen_oracle import against_rules, against_truth  # noqa: E402

PYTHON = sys.executable
FRAUDWATCH = [PYTHON, "-c", "from pipelines.cli import app; app()"]  # the CLI with every command registered
AS_OF = date(2025, 1, 5)  # the 2025-01 payroll, screened after the 2024 audit
TRUTH_FILE = "payroll_truth.parquet"


def _load() -> float:
    return os.getloadavg()[0]


def _wait(limit: float | None, say) -> None:
    waited = 0
    while limit and _load() > limit and waited < 1800:
        say(f"load {_load():.1f} > {limit}: waiting")
        time.sleep(30)
        waited += 30


def prepare(persons: int, seed: int, workdir: Path, say) -> tuple[Path, Path]:
    """(landing folder of 12 months, the next month's payroll file), generated once per size and seed."""
    base = workdir / f"p{persons}_s{seed}"
    landing, payroll_dir = base / "landing", base / "payroll"
    if not (landing / "synth_meta.json").exists() or not (payroll_dir / TRUTH_FILE).exists():
        say(f"synth {persons} persons x 12 months + the next month's payroll")
        base.mkdir(parents=True, exist_ok=True)
        res = run_timed([*FRAUDWATCH, "synth", "--persons", str(persons), "--months", "12", "--seed", str(seed),
                         "--format", "csv", "--out", str(landing), "--payroll-next", str(payroll_dir)],
                        log=base / "synth.log")
        if res["returncode"]:
            raise SystemExit(f"synth failed: see {res['log']}")
        say(f"synth: {res['seconds']} s, peak {res['peak_rss_mb']} MiB")
    return landing, next(payroll_dir.glob("pension_payments_*.csv"))


def _audit(code: str, log: Path) -> dict:
    res = run_timed([PYTHON, "-c", code], log=log)
    if res["returncode"]:
        raise SystemExit(f"audit failed: see {res['log']}")
    return res


def oracle(landing: Path, payroll: Path, screen_dir: Path, memory_limit: str | None, say) -> dict:
    """Audit the landing folder with the payroll paid (a child process); compare the rules' at-risk payroll rows."""
    work = landing.parent / "oracle"
    suspects = work / "suspects.txt"
    if not suspects.exists():
        say(f"oracle: full audit of {landing} with {payroll.name} paid")
        _audit(f"from datetime import date; from pathlib import Path; from benchmarks.screen_oracle import audit_with_payroll; "
               f"s = audit_with_payroll(Path({str(landing)!r}), Path({str(payroll)!r}), Path({str(work)!r}), "
               f"date.fromisoformat({AS_OF.isoformat()!r}), {memory_limit!r}); "
               f"Path({str(suspects)!r}).write_text(str(s))", landing.parent / "oracle_audit.log")
    return against_rules(pl.read_parquet(screen_dir / "holds.parquet"), payroll, Path(suspects.read_text().strip()))


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
        if not (output / "jobs" / "full-audit" / "latest").exists():
            say(f"full audit of {landing}")
            _wait(args.wait_load, say)
            audit = _audit(f"from datetime import date; from pathlib import Path; from pipelines.pipeline import RunConfig; "
                           f"from pipelines.stages import run_pipeline; run_pipeline(RunConfig(input=Path({str(landing)!r}), "
                           f"output=Path({str(output)!r}), as_of=date.fromisoformat({AS_OF.isoformat()!r}), "
                           f"memory_limit={args.memory_limit!r}))", logs / "audit.log")
            say(f"audit: {audit['seconds']} s, peak {audit['peak_rss_mb']} MiB")
        truth = pl.read_parquet(payroll.parent / TRUTH_FILE)
        for i in range(args.repeat):
            _wait(args.wait_load, say)
            load = _load()
            cmd = [*FRAUDWATCH, "screen", "--payroll", str(payroll), "--output", str(output), "--as-of", AS_OF.isoformat()]
            if args.memory_limit:
                cmd += ["--memory-limit", args.memory_limit]
            res = run_timed(cmd, log=logs / f"screen{i}.log")
            if res["returncode"]:
                raise SystemExit(f"screen failed: see {res['log']}")
            newest = sorted(p for p in (output / "screens").iterdir() if not p.name.startswith("."))[-1]
            manifest = json.loads((newest / "manifest.json").read_text(encoding="utf-8"))
            exact = against_truth(pl.read_parquet(newest / "holds.parquet"), truth,
                                  pl.read_parquet(output / "jobs" / "full-audit" / "latest" / "suspects.parquet"))
            row = {"persons": persons, "payroll_rows": manifest["counts"]["rows_read"],
                   "payroll_mb": round(manifest["payroll"]["size_bytes"] / 2**20, 1),
                   "seconds": res["seconds"], "peak_rss_mb": res["peak_rss_mb"],
                   "cpu_seconds": res["cpu_seconds"], "load_at_start": round(load, 1),
                   "stages": manifest["timings_seconds"], "held": manifest["counts"]["rows_held"],
                   "amount_held": manifest["counts"]["amount_held"], "new_ids": manifest.get("new_ids"),
                   "per_reason": {k: v["rows"] for k, v in manifest["counts"]["per_reason"].items()},
                   "truth": {k: (v if not isinstance(v, list) else v[:10]) for k, v in exact.items()},
                   "date": date.today().isoformat()}
            figures.append(row)
            say(json.dumps(row, ensure_ascii=False))
        if args.oracle:
            figures[-1]["oracle"] = oracle(landing, payroll, newest, args.memory_limit, say)
            say(f"oracle: {json.dumps(figures[-1]['oracle'], ensure_ascii=False)}")
    (args.workdir / "screen_bench.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    print("| persons | payroll rows | screen wall s | CPU s | peak RSS MiB | load | read payroll | link new IDs | gather "
          "| checks | write | held | exact vs truth |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for f in figures:
        s = f["stages"]
        print(f"| {f['persons']:,} | {f['payroll_rows']:,} | {f['seconds']} | {f['cpu_seconds']} | {f['peak_rss_mb']} | "
              f"{f['load_at_start']} | {s['read_payroll']} | {s.get('link_new_ids', '-')} | {s['gather']} | {s['checks']} | "
              f"{s['write']} | {f['held']:,} | {f['truth']['exact']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
