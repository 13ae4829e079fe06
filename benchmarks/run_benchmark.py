"""The provincial-scale benchmark (issue 6): synth data → the full pipeline, stage by stage →
two baselines on the same data → a check that the pipeline's suspects equal the hand-written
SQL's → a markdown table on stdout and the figures as JSON.

    python benchmarks/run_benchmark.py --persons 1000000 [3000000 10000000] [--months 12] [--seed 7]
        [--workdir /tmp/fwbench] [--skip-pandas] [--memory-limit 12GB] [--json PATH]
    python benchmarks/run_benchmark.py --report /tmp/fwbench/benchmark.json      # table only

Every step runs in its own child process under ``/usr/bin/time -v`` (wall clock, peak RSS):
``fraudwatch synth`` (CSV, not messy; reused when the folder already holds the same persons,
months and seed), the pipeline (``pipelines.stages.run_pipeline``, no Prefect, fresh output
folder), the CSV → Parquet conversion for the SQL baseline, the SQL baseline and the pandas
baseline (address space capped with RLIMIT_AS, so running out of memory is reported, not fatal
to the machine). See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.report import CATEGORIES, figures_row, machine, render  # noqa: E402


# --------------------------------------------------------------------------- child processes


def run_timed(cmd: list[str], *, log: Path, timeout: float | None = None, env: dict | None = None) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``; stdout+stderr go to ``log``.
    Returns returncode, wall seconds, peak RSS (MiB), whether it timed out, and the signal if killed."""
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        time_file = Path(tf.name)
    started = time.perf_counter()
    timed_out = False
    with open(log, "w") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(time_file), *cmd], stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, 9)
            proc.wait()
    wall = time.perf_counter() - started
    text = time_file.read_text(errors="replace") if time_file.exists() else ""
    time_file.unlink(missing_ok=True)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    status = re.search(r"Exit status: (\d+)", text)
    signal = re.search(r"Command terminated by signal (\d+)", text)
    returncode = int(status.group(1)) if status else proc.returncode
    if signal and not returncode:
        returncode = -int(signal.group(1))  # killed: never report success
    return {
        "returncode": returncode,
        "signal": int(signal.group(1)) if signal else None,
        "seconds": round(wall, 3),
        "peak_rss_mb": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "cpu_seconds": round(float(user.group(1)) + float(system.group(1)), 2) if user and system else None,
        "timed_out": timed_out,
        "log": str(log),
    }


def _tail(path: str | Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _last_json(path: str | Path) -> dict | None:
    """The last top-level JSON object a child printed (children print their figures last)."""
    text = Path(path).read_text(errors="replace")
    start = text.rfind("\n{")
    start = 0 if start < 0 and text.startswith("{") else start
    try:
        return json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError:
        return None


# --------------------------------------------------------------------------- the pipeline child


def _hwm_mb() -> float | None:
    """Peak RSS of this process since the last reset (VmHWM), MiB."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so each stage's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def pipeline_child(landing: Path, output: Path, as_of: date, memory_limit: str | None, threads: int | None) -> dict:
    """One plain pipeline run (``run_pipeline``, no Prefect), recording each stage's own peak RSS."""
    import pipelines
    from pipelines.pipeline import RunConfig
    from pipelines.stages import run_pipeline

    import resource

    order: list[str] = []
    own_peak: dict[str, float | None] = {}
    cpu: dict[str, float] = {}
    resettable = True

    def cpu_now() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    mark = cpu_now()

    def progress(stage: str) -> None:
        nonlocal resettable, mark
        now = cpu_now()
        if order:
            own_peak[order[-1]] = _hwm_mb()
            cpu[order[-1]] = round(now - mark, 2)
        mark = now
        order.append(stage)
        resettable = _reset_hwm() and resettable

    started = time.perf_counter()
    summary = run_pipeline(RunConfig(input=landing, output=output, as_of=as_of, memory_limit=memory_limit,
                                     threads=threads), progress=progress)
    wall = time.perf_counter() - started
    if order:
        own_peak[order[-1]] = _hwm_mb()
        cpu[order[-1]] = round(cpu_now() - mark, 2)
    manifest = json.loads((summary.run_dir / "manifest.json").read_text())
    rows_read = sum(i["rows_read"] for i in manifest["inputs"])
    return {
        "seconds": round(wall, 3),
        "stages": order,
        "timings_seconds": dict(summary.timings),
        "stage_peak_rss_mb": own_peak if resettable else {},
        "stage_cpu_seconds": cpu,  # user + system, all threads: cpu / wall = cores kept busy
        # manifest peak_rss_mb (getrusage) is lowered by the per-stage resets; kept for reference only
        "manifest_peak_rss_mb": manifest.get("peak_rss_mb", {}),
        "process_peak_rss_mb": summary.peak_rss_mb,
        "rows_read": rows_read,
        "rows_per_extract": manifest.get("rows_per_extract", {}),
        "rules": [{"id": r["id"], "rows": r["rows"], "seconds": r["seconds"]} for r in manifest["rules"]],
        "suspects": str(summary.suspects),
        "manifest": str(summary.run_dir / "manifest.json"),
        "hits_per_rule": summary.hits_per_rule,
        "held_back": manifest.get("held_back"),
        "pipelines_package": str(Path(pipelines.__file__).parent),
    }


# --------------------------------------------------------------------------- comparisons


def compare_suspects(pipeline_suspects: Path, expected: Path, categories=CATEGORIES, examples: int = 5) -> dict:
    """Compare (category, subject_id, amount_at_risk) of the pipeline's suspects (restricted to
    ``categories``) with a baseline result, as multisets. Returns counts and a few differing rows."""
    import duckdb

    cats = ", ".join(f"'{c}'" for c in categories)
    con = duckdb.connect()
    try:
        columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pipeline_suspects}')").fetchall()}
        # The spec rules carry their category's name as rule id; add-on rules filed under the same
        # category (paid_after_death_weak_match: death records matched by name and birth date in the
        # link stage) are outside what the baselines compute and are counted apart.
        spec_rules = f"AND rule_id IN ({cats})" if "rule_id" in columns else ""
        add_ons = {}
        if "rule_id" in columns:
            add_ons = dict(con.execute(
                f"SELECT rule_id, count(*) FROM read_parquet('{pipeline_suspects}') "
                f"WHERE category IN ({cats}) AND rule_id NOT IN ({cats}) GROUP BY 1 ORDER BY 1").fetchall())
        # Rows the pipeline found through identity links (a payment or death under a second ID of one
        # person: evidence via_identity_link) are outside what the baselines compute too, counted apart.
        linked = ""
        if "evidence" in columns:
            linked = "AND coalesce(json_extract_string(evidence, '$.via_identity_link'), 'false') <> 'true'"
            add_ons.update({"via_identity_link": con.execute(
                f"SELECT count(*) FROM read_parquet('{pipeline_suspects}') WHERE category IN ({cats}) {spec_rules} "
                f"AND json_extract_string(evidence, '$.via_identity_link') = 'true'").fetchone()[0]})
        con.execute(f"""CREATE TEMP VIEW p AS SELECT category, subject_id, CAST(amount_at_risk AS DECIMAL(18,2)) AS amount_at_risk
                        FROM read_parquet('{pipeline_suspects}') WHERE category IN ({cats}) {spec_rules} {linked}""")
        e_columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{expected}')").fetchall()}
        e_spec_rules = f"AND rule_id IN ({cats})" if "rule_id" in e_columns else ""
        con.execute(f"""CREATE TEMP VIEW e AS SELECT category, subject_id, CAST(amount_at_risk AS DECIMAL(18,2)) AS amount_at_risk
                        FROM read_parquet('{expected}') WHERE category IN ({cats}) {e_spec_rules}""")
        only_p = con.execute(f"SELECT * FROM (SELECT * FROM p EXCEPT ALL SELECT * FROM e) ORDER BY ALL LIMIT {examples}").fetchall()
        only_e = con.execute(f"SELECT * FROM (SELECT * FROM e EXCEPT ALL SELECT * FROM p) ORDER BY ALL LIMIT {examples}").fetchall()
        n_p = con.execute("SELECT count(*) FROM (SELECT * FROM p EXCEPT ALL SELECT * FROM e)").fetchone()[0]
        n_e = con.execute("SELECT count(*) FROM (SELECT * FROM e EXCEPT ALL SELECT * FROM p)").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM p").fetchone()[0]
        per_cat = dict(con.execute("SELECT category, count(*) FROM p GROUP BY 1 ORDER BY 1").fetchall())
    finally:
        con.close()
    return {
        "equal": n_p == 0 and n_e == 0, "rows": rows, "rows_per_category": per_cat, "add_on_rule_rows": add_ons,
        "only_in_pipeline": n_p, "only_in_expected": n_e,
        "examples_only_in_pipeline": [[str(x) for x in r] for r in only_p],
        "examples_only_in_expected": [[str(x) for x in r] for r in only_e],
    }


def recheck(result: dict, workdir: Path) -> None:
    """Redo one size's comparisons from WORKDIR/p<N>_m<M>_s<S>/results (after a change to the comparison)."""
    data = workdir / f"p{result['persons']}_m{result['months']}_s{result['seed']}"
    results_dir = data / "results"
    files = {name: results_dir / f"{name}_suspects.parquet" for name in ("pipeline", "sql", "sql_tables", "pandas")}
    pairs = {"pipeline_vs_sql": ("pipeline", "sql"), "sql_tables_vs_sql": ("sql_tables", "sql"),
             "pandas_vs_sql": ("pandas", "sql")}
    for key, (a, b) in pairs.items():
        if files[a].exists() and files[b].exists() and key in result:
            result[key] = compare_suspects(files[a], files[b])
    if files["sql"].exists() and (data / "landing" / "ground_truth.parquet").exists():
        result["sql_vs_ground_truth"] = compare_suspects(files["sql"], data / "landing" / "ground_truth.parquet")
    result["figures"] = figures_row(result)


# --------------------------------------------------------------------------- one size


def _meta_matches(landing: Path, persons: int, months: int, seed: int) -> bool:
    meta = landing / "synth_meta.json"
    if not meta.exists():
        return False
    m = json.loads(meta.read_text())
    return (m.get("persons"), m.get("months"), m.get("seed"), m.get("format"), m.get("messy")) == \
        (persons, months, seed, "csv", False)


def _mem_available_gb() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 ** 2
    return 0.0


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(args: argparse.Namespace, say, what: str) -> dict:
    """With --wait-load: wait (polling each 30 s, at most --wait-max seconds in all steps together)
    until the 1-minute load average is below the threshold, so others' jobs do not skew the figure."""
    if not args.wait_load:
        return {}
    started = time.perf_counter()
    while os.getloadavg()[0] >= args.wait_load and args.wait_budget > 0:
        say(f"{what}: load {_load()[0]} >= {args.wait_load}, waiting")
        time.sleep(30)
        args.wait_budget -= 30
    return {"waited_seconds": round(time.perf_counter() - started), "load_at_start": _load()}


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def bench_one(persons: int, args: argparse.Namespace, say) -> dict:
    data = Path(args.workdir) / f"p{persons}_m{args.months}_s{args.seed}"
    landing, logs = data / "landing", data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    result: dict = {"persons": persons, "months": args.months, "seed": args.seed,
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_before": _load()}

    # 1. synthetic CSV extracts
    if not args.regenerate and _meta_matches(landing, persons, args.months, args.seed):
        say(f"[{persons:,}] synth: reusing {landing}")
        result["synth"] = {"reused": True}
    else:
        say(f"[{persons:,}] synth → {landing}")
        shutil.rmtree(landing, ignore_errors=True)
        fraudwatch = str(Path(python).with_name("fraudwatch"))
        synth = run_timed([fraudwatch, "synth", "--persons", str(persons), "--months", str(args.months),
                           "--seed", str(args.seed), "--format", "csv", "--out", str(landing)], log=logs / "synth.log")
        if synth["returncode"] != 0:
            raise SystemExit(f"synth failed:\n{_tail(synth['log'])}")
        result["synth"] = synth
    meta = json.loads((landing / "synth_meta.json").read_text())
    as_of = args.as_of or date.fromisoformat(meta["valid_as_of_from"])
    result["as_of"] = as_of.isoformat()
    result["input_rows"] = meta["rows"]
    result["input_bytes"] = sum(p.stat().st_size for p in landing.glob("*.csv"))
    result["ground_truth"] = meta["ground_truth"]

    # 2. the pipeline
    out = data / "pipeline"
    shutil.rmtree(out, ignore_errors=True)
    result["pipeline_wait"] = wait_for_quiet(args, say, f"[{persons:,}] pipeline")
    say(f"[{persons:,}] pipeline (load {_load()})")
    child_json = logs / "pipeline.json"
    cmd = [python, str(Path(__file__).resolve()), "_pipeline", "--landing", str(landing), "--output", str(out),
           "--as-of", as_of.isoformat(), "--json", str(child_json)]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = None
    if args.pipeline_path:  # benchmark a candidate copy of the code (pipelines/, rules/, data_contracts/)
        env = dict(os.environ, FW_PIPELINE_PATH=str(Path(args.pipeline_path).resolve()))
    proc = run_timed(cmd, log=logs / "pipeline.log", env=env)
    if proc["returncode"] != 0 or not child_json.exists():
        raise SystemExit(f"the pipeline failed:\n{_tail(proc['log'], 30)}")
    pipe = json.loads(child_json.read_text())
    # Resetting VmHWM per stage also resets what /usr/bin/time reports (the kernel's hiwater mark):
    # the process peak is the largest stage peak.
    stage_peaks = [v for v in (pipe.get("stage_peak_rss_mb") or {}).values() if v]
    proc["peak_rss_mb"] = max(stage_peaks + [proc["peak_rss_mb"] or 0])
    pipe["process"] = proc
    pipe["code"] = str(args.pipeline_path or REPO)
    pipe["warehouse_bytes"] = (out / "warehouse.duckdb").stat().st_size if (out / "warehouse.duckdb").exists() else None
    result["pipeline"] = pipe
    results_dir = data / "results"
    results_dir.mkdir(exist_ok=True)
    suspects = results_dir / "pipeline_suspects.parquet"
    shutil.copy(pipe["suspects"], suspects)
    shutil.copy(pipe["manifest"], results_dir / "pipeline_manifest.json")
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)

    # 3. the SQL floor: CSV → Parquet once, then the six queries
    parquet = data / "parquet"
    sql_out = results_dir / "sql_suspects.parquet"
    if args.skip_sql:
        result["sql"] = None
    else:
        shutil.rmtree(parquet, ignore_errors=True)
        say(f"[{persons:,}] CSV → Parquet for the SQL baseline")
        common = (["--memory-limit", args.memory_limit] if args.memory_limit else []) + \
                 (["--threads", str(args.threads)] if args.threads else [])
        conv = run_timed([python, "-m", "benchmarks.baseline_sql", "convert", "--landing", str(landing),
                          "--out", str(parquet), *common], log=logs / "parquet.log")
        if conv["returncode"] != 0:
            raise SystemExit(f"Parquet conversion failed:\n{_tail(conv['log'])}")
        conv["extracts"] = _last_json(conv["log"])
        conv["parquet_bytes"] = _dir_bytes(parquet)
        result["parquet_conversion"] = conv
        result["sql_wait"] = wait_for_quiet(args, say, f"[{persons:,}] SQL baseline")
        say(f"[{persons:,}] SQL baseline (load {_load()})")
        sql = run_timed([python, "-m", "benchmarks.baseline_sql", "run", "--parquet", str(parquet), "--as-of",
                         as_of.isoformat(), "--out", str(sql_out), *common], log=logs / "sql.log")
        if sql["returncode"] != 0:
            raise SystemExit(f"the SQL baseline failed:\n{_tail(sql['log'])}")
        sql["figures"] = _last_json(sql["log"])
        result["sql"] = sql
        say(f"[{persons:,}] SQL baseline over DuckDB tables (load {_load()})")
        sql_t_out = results_dir / "sql_tables_suspects.parquet"
        sql_t = run_timed([python, "-m", "benchmarks.baseline_sql", "run", "--tables", "--parquet", str(parquet),
                           "--as-of", as_of.isoformat(), "--out", str(sql_t_out), *common], log=logs / "sql_tables.log")
        if sql_t["returncode"] != 0:
            raise SystemExit(f"the SQL baseline (tables) failed:\n{_tail(sql_t['log'])}")
        sql_t["figures"] = _last_json(sql_t["log"])
        result["sql_tables"] = sql_t
        result["sql_tables_vs_sql"] = compare_suspects(sql_t_out, sql_out)
        result["pipeline_vs_sql"] = compare_suspects(suspects, sql_out)
        result["sql_vs_ground_truth"] = compare_suspects(sql_out, landing / "ground_truth.parquet")
        if not args.keep_outputs:
            shutil.rmtree(parquet, ignore_errors=True)

    # 4. pandas, memory-capped
    if args.skip_pandas:
        result["pandas"] = None
    else:
        result["pandas_wait"] = wait_for_quiet(args, say, f"[{persons:,}] pandas")
        cap = min(args.pandas_max_memory_gb, max(_mem_available_gb() - 2, 1))
        say(f"[{persons:,}] pandas baseline (address space cap {cap:.1f} GB, load {_load()})")
        pd_out = results_dir / "pandas_suspects.parquet"
        pd_out.unlink(missing_ok=True)
        pdr = run_timed([python, "-m", "benchmarks.baseline_pandas", "--landing", str(landing), "--as-of",
                         as_of.isoformat(), "--out", str(pd_out), "--max-memory-gb", f"{cap:.2f}"],
                        log=logs / "pandas.log", timeout=args.pandas_timeout)
        pdr["memory_cap_gb"] = round(cap, 2)
        figures = _last_json(pdr["log"]) or {}
        log_text = Path(pdr["log"]).read_text(errors="replace")
        if pdr["timed_out"]:
            pdr["status"] = f"did not finish within {args.pandas_timeout:.0f} s"
        elif pdr["returncode"] == 0:
            pdr["status"] = "ok"
        elif figures.get("status") == "out_of_memory" or "MemoryError" in log_text or pdr["signal"] == 9 \
                or "std::bad_alloc" in log_text or "ArrowMemoryError" in log_text:
            pdr["status"] = "ran out of memory"
        else:
            pdr["status"] = f"failed (exit {pdr['returncode']})"
        pdr["figures"] = figures
        result["pandas"] = pdr
        if pdr["status"] == "ok" and sql_out.exists():
            result["pandas_vs_sql"] = compare_suspects(pd_out, sql_out)
    result["load_after"] = _load()
    result["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return result


# --------------------------------------------------------------------------- report


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_pipeline":
        if os.environ.get("FW_PIPELINE_PATH"):
            sys.path.insert(0, os.environ["FW_PIPELINE_PATH"])
        p = argparse.ArgumentParser(prog="run_benchmark.py _pipeline")
        p.add_argument("--landing", type=Path, required=True)
        p.add_argument("--output", type=Path, required=True)
        p.add_argument("--as-of", type=date.fromisoformat, required=True)
        p.add_argument("--memory-limit")
        p.add_argument("--threads", type=int)
        p.add_argument("--json", type=Path, required=True)
        a = p.parse_args(argv[1:])
        figures = pipeline_child(a.landing, a.output, a.as_of, a.memory_limit, a.threads)
        a.json.write_text(json.dumps(figures, indent=2) + "\n")
        return 0

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, nargs="+", default=[10_000_000])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fwbench"))
    parser.add_argument("--as-of", type=date.fromisoformat, help="default: synth's valid_as_of_from")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory_limit for the pipeline and the SQL baseline, e.g. 12GB")
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--pipeline-path", type=Path,
                        help="run the pipeline from this copy of the code (a folder holding pipelines/, rules/, "
                             "data_contracts/) instead of the repository -- to measure a candidate change")
    parser.add_argument("--skip-sql", action="store_true")
    parser.add_argument("--pandas-max-memory-gb", type=float, default=20.0,
                        help="RLIMIT_AS for the pandas child (lowered to MemAvailable - 2 GB)")
    parser.add_argument("--pandas-timeout", type=float, default=3600.0)
    parser.add_argument("--regenerate", action="store_true", help="regenerate synth data even when present")
    parser.add_argument("--wait-load", type=float, help="before each measured step wait until the 1-minute load average is below this")
    parser.add_argument("--wait-max", type=float, default=2400, help="total seconds --wait-load may wait (default 2400)")
    parser.add_argument("--keep-outputs", action="store_true", help="keep the warehouse and the Parquet copies")
    parser.add_argument("--json", type=Path, help="figures file (default: WORKDIR/benchmark.json); sizes are merged into it")
    parser.add_argument("--report", type=Path, help="only print the table of an existing figures file")
    parser.add_argument("--recheck", action="store_true",
                        help="with --report: redo the suspect comparisons from the kept result files and update the figures file")
    args = parser.parse_args(argv)
    args.wait_budget = args.wait_max

    if args.report:
        doc = json.loads(args.report.read_text())
        if args.recheck:
            for r in doc["results"]:
                recheck(r, Path(args.workdir))
            args.report.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
        print(render(doc["results"], doc["machine"]))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    json_path = args.json or args.workdir / "benchmark.json"
    doc = json.loads(json_path.read_text()) if json_path.exists() else {"results": []}
    doc["machine"] = machine()

    def say(msg: str) -> None:
        print(f"{datetime.now().strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    for persons in args.persons:
        result = bench_one(persons, args, say)
        result["figures"] = figures_row(result)
        result["command"] = " ".join([Path(sys.executable).name, "benchmarks/run_benchmark.py", *argv])
        doc["results"] = [r for r in doc["results"]
                          if (r["persons"], r["months"], r["seed"]) != (persons, args.months, args.seed)] + [result]
        json_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
        say(f"[{persons:,}] done: pipeline {result['pipeline']['process']['seconds']:.0f} s; figures in {json_path}")
    wanted = {(p, args.months, args.seed) for p in args.persons}
    print(render([r for r in doc["results"] if (r["persons"], r["months"], r["seed"]) in wanted], doc["machine"]))
    bad = [r for r in doc["results"] if (r["persons"], r["months"], r["seed"]) in wanted
           and r.get("pipeline_vs_sql") and not r["pipeline_vs_sql"]["equal"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
