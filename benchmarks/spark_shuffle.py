"""What a Spark run moves: shuffle and input volumes per pipeline stage, linking step and rule,
measured from Spark's own event log (for the national plan in docs/spark.md).

The pipeline runs in this process (``run_pipeline``, no Prefect) on a SparkSession started here
with event logging on; each pipeline stage, each linking step and each rule runs under its own
Spark job group, so every Spark stage's metrics (shuffle bytes written and read, bytes read from
files, task time) can be attributed. Volumes do not depend on how busy the machine is, so this may
run beside other work (its wall times then mean little).

    python benchmarks/spark_shuffle.py --landing /tmp/fwspark2/p1000000_m12_s7/landing \\
        --workdir /tmp/fwshuffle --memory-limit 8GB [--spark-master local[2]]

Writes ``WORKDIR/spark_shuffle.json`` and prints a table (MB per group, and bytes per input row).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import shutil
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METRICS = {
    "internal.metrics.shuffle.write.bytesWritten": "shuffle_write",
    "internal.metrics.shuffle.read.remoteBytesRead": "shuffle_read",
    "internal.metrics.shuffle.read.localBytesRead": "shuffle_read",
    "internal.metrics.input.bytesRead": "input",
    "internal.metrics.executorRunTime": "task_ms",
}


def _session(args, log_dir: Path):
    from pipelines.engine.spark_session import driver_memory, session_config
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(args.spark_master).appName("fraudwatch-shuffle")
    config = session_config(args.spark_master, driver_memory=driver_memory(args.memory_limit),
                            local_dir=Path(args.workdir) / "spark-local", small_data=args.spark_master.startswith("local"))
    config |= {"spark.eventLog.enabled": "true", "spark.eventLog.dir": log_dir.as_uri(), "spark.eventLog.compress": "false"}
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _grouped(sc, label: str, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        name = label if isinstance(label, str) else label(*a, **k)
        previous = sc.getLocalProperty("spark.jobGroup.id")
        sc.setJobGroup(name, name)
        try:
            return fn(*a, **k)
        finally:
            if previous:
                sc.setJobGroup(previous, previous)
    return wrapper


def _run(args, sc) -> dict:
    from pipelines import pipeline, stages
    from pipelines.linking import link
    from pipelines.rules import engine as rules_engine

    original_stage = stages.run_stage

    def run_stage(ctx, name, *a, **k):
        sc.setJobGroup(name, name)
        return original_stage(ctx, name, *a, **k)

    patches = [(stages, "run_stage", run_stage),
               (rules_engine, "run_rule", _grouped(sc, lambda con, rule, *a, **k: f"detect:{rule.id}", rules_engine.run_rule))]
    for step in ("build_nodes", "generate_candidates", "score_candidates", "finish_link"):
        patches.append((link, step, _grouped(sc, f"link:{step}", getattr(link, step))))
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    for mod, name, value in patches:
        setattr(mod, name, value)
    try:
        out = Path(args.workdir) / "out"
        shutil.rmtree(out, ignore_errors=True)
        config = pipeline.RunConfig(input=Path(args.landing), output=out, as_of=date.fromisoformat(args.as_of),
                                    engine="spark", spark_master=args.spark_master, memory_limit=args.memory_limit)
        stages.run_pipeline(config)
        return json.loads((out / "latest" / "manifest.json").read_text(encoding="utf-8"))
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


def _events(log_dir: Path):
    """The events of the one application logged under ``log_dir`` (Spark 4 rolls its event log:
    ``eventlog_v2_<app>/events_<n>_<app>``, read in order)."""
    files = sorted((p for p in log_dir.rglob("events_*") if p.is_file()),
                   key=lambda p: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", p.name)])
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)


def _volumes(log_dir: Path) -> dict[str, dict[str, float]]:
    """Metrics per job group: the Spark stages of each job count for the job's group."""
    group_of_stage: dict[int, str] = {}
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for event in _events(log_dir):
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            group = (event.get("Properties") or {}).get("spark.jobGroup.id") or "(none)"
            for stage_id in event.get("Stage IDs", []):
                group_of_stage[stage_id] = group
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            group = group_of_stage.get(info["Stage ID"], "(none)")
            totals[group]["spark_stages"] += 1
            for acc in info.get("Accumulables", []):
                key = METRICS.get(acc.get("Name"))
                if key:
                    totals[group][key] += float(acc.get("Value") or 0)
    return {g: dict(v) for g, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing", required=True)
    parser.add_argument("--workdir", default="/tmp/fwshuffle")
    parser.add_argument("--as-of", default="2026-01-31")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--memory-limit", default="8GB")
    parser.add_argument("--parse-only", action="store_true", help="only read WORKDIR's event log and run again")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    log_dir = workdir / "eventlog"
    if args.parse_only:
        report(args, _volumes(log_dir), json.loads((workdir / "out" / "latest" / "manifest.json").read_text(encoding="utf-8")))
        return
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    session = _session(args, log_dir)
    manifest = _run(args, session.sparkContext)
    session.stop()
    report(args, _volumes(log_dir), json.loads((workdir / "out" / "latest" / "manifest.json").read_text(encoding="utf-8")))


def report(args, volumes: dict, manifest: dict) -> None:
    workdir = Path(args.workdir)
    rows = sum(manifest["rows_per_extract"].values())
    figures = {"landing": args.landing, "input_rows": rows, "timings_seconds": manifest["timings_seconds"],
               "groups": volumes}
    (workdir / "spark_shuffle.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    mb = 2 ** 20
    print(f"input rows {rows:,}")
    print("| group | Spark stages | read from files, MB | shuffle write, MB | shuffle read, MB | write B per input row | task s |")
    print("|---|---|---|---|---|---|---|")
    for group, v in sorted(volumes.items(), key=lambda kv: -kv[1].get("shuffle_write", 0)):
        print(f"| {group} | {v.get('spark_stages', 0):.0f} | {v.get('input', 0) / mb:,.0f} | {v.get('shuffle_write', 0) / mb:,.1f} "
              f"| {v.get('shuffle_read', 0) / mb:,.1f} | {v.get('shuffle_write', 0) / rows:.2f} | {v.get('task_ms', 0) / 1000:,.1f} |")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
