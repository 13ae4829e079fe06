"""The daily death check after one new deaths file (issue 10, item 4): how long the data team waits
each morning once the month's full audit has run.

    python benchmarks/daily_bench.py --persons 300000 1000000 10000000 [--months 12] [--seed 7]
        [--workdir /tmp/fwbench] [--new-deaths 1000] [--new-typos 0] [--memory-limit 12GB] [--json PATH]

Per size, each step a child process under ``/usr/bin/time -v`` (wall clock, peak RSS), the CLI
exactly as the data team runs it (``fraudwatch run --no-prefect``):

1. ``fraudwatch synth`` (clean CSV; reused from ``WORKDIR/p<N>_m<M>_s<S>/landing``, the folder
   ``run_benchmark.py`` uses, when it holds the same persons, months and seed);
2. the monthly full audit (job ``full-audit``) into a fresh output folder;
3. a new file ``deaths_<as-of>.csv`` lands: ``--new-deaths`` people paid in the last month, each
   (and ``--new-typos`` more under their ID with one digit mistyped: IDs nobody has, which
   identity linking must link and match weakly)
   recorded dead two months before it (so each is a new suspect);
4. the daily death check, as the ``daily-death-check`` deployment runs it (job ``death-check``,
   its categories from ``prefect.yaml``: paid_after_death, subsidy_after_death, certified_after_death) —
   the measured figure;
5. the same check again with nothing new (what a day without deaths costs).

The stage timings come from each run's manifest; the table goes to stdout, the figures to JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.run_benchmark import _load, _meta_matches, _tail, run_timed  # noqa: E402



def _daily_categories() -> tuple[str, ...]:
    """The categories the ``daily-death-check`` deployment runs (prefect.yaml, defined there once)."""
    import yaml

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    daily = next(d for d in spec["deployments"] if d["name"] == "daily-death-check")
    return tuple(daily["parameters"]["categories"])


DAILY_CATEGORIES = _daily_categories()


def _fraudwatch() -> str:
    return str(Path(sys.executable).with_name("fraudwatch"))


def _run(landing: Path, out: Path, as_of: date, log: Path, args: argparse.Namespace, *, daily: bool) -> dict:
    cmd = [_fraudwatch(), "run", "-i", str(landing), "-o", str(out), "--no-prefect", "--as-of", as_of.isoformat()]
    if daily:
        cmd += ["--job", "death-check"]
        for category in DAILY_CATEGORIES:
            cmd += ["--category", category]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    load = _load()
    proc = run_timed(cmd, log=log)
    if proc["returncode"] != 0:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed:\n{_tail(log, 30)}")
    job = "death-check" if daily else "full-audit"
    run_dir = (out / "jobs" / job / "latest").resolve()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {
        "seconds": proc["seconds"], "peak_rss_mb": proc["peak_rss_mb"], "cpu_seconds": proc["cpu_seconds"],
        "load_before": load, "stages": manifest["timings_seconds"],
        "linking": {k: (manifest.get("identity_linking") or {}).get(k) for k in ("mode", "seconds", "incremental")},
        "files_read": manifest.get("files_read"),
        "suspects": sum(r["rows"] for r in manifest["rules"]),
        "rules": [r["id"] for r in manifest["rules"]],
        "run_id": manifest["run_id"],
    }


def _death_suspects(run_dir: Path) -> int:
    """Suspects of the daily categories in a run's manifest."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return sum(r["rows"] for r in manifest["rules"] if r["id"] in _daily_rule_ids(manifest))


def _daily_rule_ids(manifest: dict) -> set[str]:
    from pipelines.rules import load_rules

    return {r.id for r in load_rules(REPO / "rules") if r.category in DAILY_CATEGORIES}


def write_new_deaths(lake: Path, landing: Path, as_of: date, count: int, seed: int, typos: int = 0) -> Path:
    """``count`` payees of the last paid month, recorded dead two months before it, and ``typos`` more
    under their ID with the 16th digit mistyped (set-based, DuckDB)."""
    import duckdb

    target = landing / f"deaths_{as_of:%Y%m%d}.csv"
    files = sorted(str(p) for p in (lake / "pension_payments").glob("*.parquet") if "quarantine" not in p.name)
    con = duckdb.connect()
    con.execute("SELECT setseed(?)", [1 / (seed + 1)])
    con.execute(
        """
        COPY (
          WITH last AS (SELECT max(period) AS p FROM read_parquet($files)),
          payees AS (
            SELECT DISTINCT person_id, name FROM read_parquet($files), last
            WHERE period = last.p AND person_id_valid
          )
          , picked AS (
            SELECT *, row_number() OVER (ORDER BY hash(person_id, $seed)) AS k FROM payees
            ORDER BY hash(person_id, $seed) LIMIT $count + $typos
          )
          SELECT CASE WHEN k <= $count THEN person_id
                      ELSE substr(person_id, 1, 15) || CAST((CAST(substr(person_id, 16, 1) AS INTEGER) + 1) % 10 AS VARCHAR)
                           || substr(person_id, 17) END AS person_id,
                 name,
                 strftime((SELECT p FROM last) - INTERVAL 2 MONTH + INTERVAL 9 DAY, '%Y-%m-%d') AS death_date,
                 'civil_affairs' AS source,
                 'BENCH' || lpad(CAST(k AS VARCHAR), 10, '0') AS record_id
          FROM picked
        ) TO '""" + str(target).replace("'", "''") + "' (HEADER, DELIMITER ',')",
        {"files": files, "count": count, "seed": seed, "typos": typos},
    )
    return target


def bench_one(persons: int, args: argparse.Namespace, say) -> dict:
    data = Path(args.workdir) / f"p{persons}_m{args.months}_s{args.seed}"
    landing, logs = data / "landing", data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result: dict = {"persons": persons, "months": args.months, "seed": args.seed, "new_deaths": args.new_deaths,
                    "new_typos": args.new_typos,
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if not _meta_matches(landing, persons, args.months, args.seed):
        say(f"[{persons:,}] synth → {landing}")
        shutil.rmtree(landing, ignore_errors=True)
        synth = run_timed([_fraudwatch(), "synth", "--persons", str(persons), "--months", str(args.months),
                           "--seed", str(args.seed), "--format", "csv", "--out", str(landing)], log=logs / "synth.log")
        if synth["returncode"]:
            raise SystemExit(f"synth failed:\n{_tail(synth['log'])}")
    for old in landing.glob("deaths_2*.csv"):  # a previous benchmark's new file
        old.unlink()
    meta = json.loads((landing / "synth_meta.json").read_text())
    as_of = date.fromisoformat(meta["valid_as_of_from"])
    out = data / "daily"
    shutil.rmtree(out, ignore_errors=True)

    say(f"[{persons:,}] monthly full audit (load {_load()})")
    result["full_audit"] = _run(landing, out, as_of, logs / "daily_full.log", args, daily=False)
    result["full_audit_death_suspects"] = _death_suspects(out / "jobs" / "full-audit" / "latest")
    new_file = write_new_deaths(out / "lake", landing, as_of, args.new_deaths, args.seed, args.new_typos)
    day = as_of + timedelta(days=1)
    try:
        say(f"[{persons:,}] daily death check after {new_file.name} (load {_load()})")
        result["daily_new_file"] = _run(landing, out, day, logs / "daily_new.log", args, daily=True)
        say(f"[{persons:,}] daily death check, nothing new (load {_load()})")
        result["daily_nothing_new"] = _run(landing, out, day, logs / "daily_same.log", args, daily=True)
    finally:
        new_file.unlink(missing_ok=True)
    result["new_suspects"] = result["daily_new_file"]["suspects"]
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
    return result


def render(rows: list[dict]) -> str:
    lines = ["| persons | full audit s | daily check after a new deaths file s (stages) | peak RSS MB | "
             "daily, nothing new s | daily suspects |", "|---|---|---|---|---|---|"]
    for r in rows:
        d = r["daily_new_file"]
        stages = ", ".join(f"{k} {v:.1f}" for k, v in d["stages"].items())
        lines.append(f"| {r['persons']:,} | {r['full_audit']['seconds']:.0f} | **{d['seconds']:.1f}** ({stages}) | "
                     f"{d['peak_rss_mb']:,.0f} | {r['daily_nothing_new']['seconds']:.1f} | {d['suspects']:,} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, nargs="+", default=[300_000])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fwbench"))
    parser.add_argument("--new-deaths", type=int, default=1000)
    parser.add_argument("--new-typos", type=int, default=0)
    parser.add_argument("--memory-limit")
    parser.add_argument("--keep-outputs", action="store_true")
    parser.add_argument("--json", type=Path, help="figures file (default: WORKDIR/daily.json); sizes are merged")
    args = parser.parse_args(argv)
    figures = args.json or args.workdir / "daily.json"
    known = json.loads(figures.read_text()) if figures.exists() else {}

    def say(msg: str) -> None:
        print(f"{datetime.now():%H:%M:%S} {msg}", file=sys.stderr, flush=True)

    for persons in args.persons:
        known[str(persons)] = bench_one(persons, args, say)
        figures.parent.mkdir(parents=True, exist_ok=True)
        figures.write_text(json.dumps(known, indent=2, default=str))
    print(render([known[k] for k in sorted(known, key=int)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
