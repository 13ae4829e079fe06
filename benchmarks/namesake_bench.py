"""Namesake false alarms of the weak death match (issue 12, item 2), per million persons.

    python benchmarks/namesake_bench.py --persons 1000000 --seed 7 --workdir /tmp/fwnamesake
    python benchmarks/namesake_bench.py ... --code /path/to/another/checkout   # e.g. the code before

Generates (or reuses) a synthetic landing folder with ``fraudwatch synth`` — realistic name
frequencies (王伟, 李娜, 王秀英 repeat hundreds of times per million) and the deaths of people
outside the payroll (``fraudwatch_synth/outsiders.py``), among them namesakes born the same day as
a pensioner — then runs ``fraudwatch run --no-prefect`` with the paid_after_death rules using the
pipeline and rules of ``--code`` (default: this checkout), and compares the weak matches with the
ground truth (``ground_truth_identity.parquet``):

* false alarms: weak-match suspects not in the ground truth (living people reported dead);
* missed: ground-truth weak matches not reported.

Prints one JSON line with the counts and the false alarms per million persons.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
WEAK = "paid_after_death_weak_match"


def _landing(args) -> Path:
    landing = Path(args.workdir) / f"landing-{args.persons}-{args.seed}"
    meta = landing / "synth_meta.json"
    if meta.exists() and json.loads(meta.read_text())["persons"] == args.persons:
        return landing
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "pipelines.cli", "synth", "--persons", str(args.persons), "--months", "12",
                    "--seed", str(args.seed), "--format", "parquet", "--out", str(landing)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return landing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fwnamesake"))
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose pipelines/ and rules/ run")
    args = parser.parse_args()
    landing = _landing(args)
    meta = json.loads((landing / "synth_meta.json").read_text())
    out = Path(args.workdir) / f"out-{args.persons}-{args.seed}-{abs(hash(str(args.code.resolve()))) % 10**8}"
    env = {**os.environ, "PYTHONPATH": str(args.code.resolve())}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--no-prefect", "--input", str(landing),
                    "--output", str(out), "--as-of", meta["valid_as_of_from"], "--rules", "paid_after_death", "--rules", WEAK],
                   check=True, env=env, cwd=args.code, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    suspects = pl.read_parquet(out / "latest" / "suspects.parquet").filter(pl.col("rule_id") == WEAK)
    truth = pl.read_parquet(landing / "ground_truth_identity.parquet").filter(pl.col("rule_id") == WEAK)
    got, want = set(suspects["subject_id"].to_list()), set(truth["subject_id"].to_list())
    false_alarms = len(got - want)
    print(json.dumps({
        "persons": args.persons, "seed": args.seed, "code": str(args.code), "outsider_deaths": meta.get("outsider_deaths"),
        "weak_reported": len(got), "weak_truth": len(want), "false_alarms": false_alarms, "missed": len(want - got),
        "false_alarms_per_million_persons": round(false_alarms / args.persons * 1_000_000, 1),
        "run_seconds": round(seconds, 1),
    }))


if __name__ == "__main__":
    main()
