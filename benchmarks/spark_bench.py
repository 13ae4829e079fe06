"""Spark local mode against DuckDB on this machine: the same pipeline, the same synthetic landing
folder, one child process per engine (`fraudwatch run --no-prefect --engine E`).

Per engine: wall seconds per stage (the run's manifest), CPU seconds of the whole process tree
(user + system from ``/usr/bin/time``, JVM included), the peak of the process tree's summed RSS
(sampled every 0.25 s with psutil: the JVM is a child of the Python driver) and the 1-minute load
average before and after (the machine is shared). Then the two suspect lists are compared
(rule, subject, amount, periods, reason), and each with the generator's ground truth (category,
subject, amount, periods, region: missing and unexpected rows). Figures go to ``WORKDIR/spark_bench.json``.

    python benchmarks/spark_bench.py --persons 300000 --months 12 --workdir /tmp/fwspark
    python benchmarks/spark_bench.py --persons 100000 --provinces 11,44,51 --engines duckdb   # national mode
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-01-31"
TRUTH = ["category", "subject_id", "amount_at_risk", "first_period", "last_period", "region_code"]
COMPARED = ["rule_id", "subject_id", "category", "amount_at_risk", "first_period", "last_period", "reason", "evidence"]


def landing(args) -> Path:
    if args.landing:
        return Path(args.landing)
    national = f"_prov{args.provinces.replace(',', '-')}" if args.provinces else ""
    folder = Path(args.workdir) / f"p{args.persons}_m{args.months}_s{args.seed}{national}" / "landing"
    if not (folder / "ground_truth.parquet").exists():
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pipelines.cli", "synth", "--persons", str(args.persons), "--months",
                        str(args.months), "--seed", str(args.seed), "--out", str(folder), "--format", "parquet"]
                       + (["--provinces", args.provinces] if args.provinces else []),
                       check=True, cwd=ROOT)
    return folder


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def against_truth(folder: Path, suspects: Path) -> dict:
    """Missing and unexpected suspects against the generator's ground truth (strict and identity),
    over the categories the truth covers."""
    truth = [r for name in ("ground_truth.parquet", "ground_truth_identity.parquet")
             for r in pq.read_table(folder / name).select(TRUTH).to_pylist()]
    covered = {r["category"] for r in truth}
    found = [r for r in pq.read_table(suspects).select(TRUTH).to_pylist() if r["category"] in covered]
    expected, got = Counter(tuple(map(str, r.values())) for r in truth), Counter(tuple(map(str, r.values())) for r in found)
    return {"truth_rows": len(truth), "truth_missing": sum((expected - got).values()),
            "truth_unexpected": sum((got - expected).values())}


def run_engine(engine: str, folder: Path, args) -> dict:
    out = Path(args.workdir) / f"out-{engine}-{args.persons}{'-' + args.provinces if args.provinces else ''}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["/usr/bin/time", "-f", "CPU %U %S", sys.executable, "-m", "pipelines.cli", "run", "--no-prefect",
           "--input", str(folder), "--output", str(out), "--as-of", AS_OF, "--engine", engine,
           "--spark-master", args.spark_master] + (["--memory-limit", args.memory_limit] if args.memory_limit else [])
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(watched))
        time.sleep(0.25)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed ({proc.returncode}):\n{stderr[-3000:]}")
    user, system = map(float, re.findall(r"CPU ([\d.]+) ([\d.]+)", stderr)[-1])
    manifest = json.loads((out / "latest" / "manifest.json").read_text(encoding="utf-8"))
    suspects = sorted(pq.read_table(out / "latest" / "suspects.parquet").select(COMPARED).to_pylist(),
                      key=lambda r: (r["rule_id"], r["subject_id"]))
    return {"engine": engine, "wall_s": round(wall, 1), "cpu_s": round(user + system, 1),
            "peak_tree_rss_mb": round(peak / 2**20), "load_before": round(load_before, 1),
            "load_after": round(os.getloadavg()[0], 1), "stages_s": manifest["timings_seconds"],
            "suspects": len(suspects), **against_truth(folder, out / "latest" / "suspects.parquet"), "_rows": suspects}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=300_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default="/tmp/fwspark")
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"])
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--provinces", help="a national set (synth --provinces, e.g. 11,44,51): --persons per province")
    parser.add_argument("--landing", help="an existing landing folder (e.g. run_benchmark.py's) instead of generating one")
    parser.add_argument("--memory-limit", help="--memory-limit of both runs (Spark: its driver memory)")
    args = parser.parse_args()
    folder = landing(args)
    results = [run_engine(e, folder, args) for e in args.engines]
    rows = [r.pop("_rows") for r in results]
    same = all(r == rows[0] for r in rows[1:])
    figures = {"persons": args.persons, "provinces": args.provinces, "months": args.months, "cpus": os.cpu_count(), "results": results,
               "suspects_equal": same, "landing": str(folder)}
    path = Path(args.workdir) / "spark_bench.json"
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + [figures], indent=1, ensure_ascii=False))
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    if not same:
        raise SystemExit("the engines' suspects differ")


if __name__ == "__main__":
    main()
