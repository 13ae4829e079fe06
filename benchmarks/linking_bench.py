"""Identity-resolution benchmark: quality on planted cases, linking throughput, Splink comparison.

    # precision / recall of duplicate_identity and weak death matches (synth → ingest → load → link → rules)
    .venv/bin/python benchmarks/linking_bench.py quality --persons 1000000 --months 12 --work /tmp/lk/q1m

    # throughput: synth → warehouse (direct SQL load) → link in a separate process under /usr/bin/time -v
    .venv/bin/python benchmarks/linking_bench.py throughput --persons 10000000 --months 4 --work /tmp/lk/t10m

    # the same candidate pairs scored by Splink (needs `pip install splink`); run after `quality`
    .venv/bin/python benchmarks/linking_bench.py splink --work /tmp/lk/q1m

Each command prints a JSON summary and writes it to <work>/<command>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import legacy_warehouse as warehouse  # noqa: E402
from pipelines.contracts import load_contracts  # noqa: E402
from pipelines.linking import link_persons  # noqa: E402

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synth(args, landing: Path) -> dict:
    """Generate the landing folder unless it already holds the same arguments."""
    from fraudwatch_synth import generate

    meta_path = landing / "synth_meta.json"
    want = {"persons": args.persons, "months": args.months, "seed": args.seed, "messy": args.messy}
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in want.items()) and meta.get("format") == args.format:
            return meta
    started = time.perf_counter()
    generate(args.persons, args.months, args.seed, landing, fmt=args.format, messy=args.messy)
    meta = json.loads(meta_path.read_text())
    meta["generate_seconds"] = round(time.perf_counter() - started, 1)
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2))
    return meta


# --- loading ---------------------------------------------------------------------------


def load_pipeline(landing: Path, db: Path, work: Path, memory_limit: str) -> dict:
    """The real path: ingest (polars, per contract) + warehouse load + views."""
    from pipelines.ingest import discover_extracts, ingest_extract

    contracts = load_contracts()
    staging = work / "staging"
    con = warehouse.connect(db, memory_limit=memory_limit, temp_directory=work / "tmp", threads=2)
    found = discover_extracts(landing, contracts)
    for name, files in found.items():
        result = ingest_extract(contracts[name], files, landing, staging)
        warehouse.load_extract(con, contracts[name], result)
    warehouse.create_views(con)
    counts = warehouse.table_counts(con)
    con.close()
    return counts


def _valid_sql(col: str) -> str:
    body = f"(CASE WHEN length({col}) = 15 THEN substr({col}, 1, 6) || '19' || substr({col}, 7, 9) ELSE substr({col}, 1, 17) END)"
    n = f"TRY_CAST({body} AS BIGINT)"
    total = " + ".join(f"(({n} // {10 ** (16 - i)}) % 10) * {w}" for i, w in enumerate(WEIGHTS))
    check = f"substr('10X98765432', 1 + CAST(({total}) % 11 AS INTEGER), 1)"
    birth = f"CAST(try_strptime(substr({body}, 7, 8), '%Y%m%d') AS DATE)"
    ok = (f"(regexp_full_match(upper({col}), '[0-9]{{17}}[0-9X]') AND {check} = upper(substr({col}, 18, 1)) "
          f"OR regexp_full_match({col}, '[0-9]{{15}}')) AND {birth} IS NOT NULL AND year({birth}) >= 1800")
    canon = f"CASE WHEN length({col}) = 15 AND {ok} THEN {body} || {check} ELSE upper({col}) END"
    return (f"{canon} AS {col}, coalesce({ok}, false) AS {col}_valid, CASE WHEN {ok} THEN {birth} END AS {col}_birth_date, "
            f"CASE WHEN {ok} THEN CASE WHEN CAST(substr({body}, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END END AS {col}_gender")


def load_direct(landing: Path, db: Path, work: Path, memory_limit: str) -> dict:
    """A fast SQL loader for clean Parquet synth output (no quarantine, no messy values): the
    warehouse tables with the derived columns the link stage and the rules read."""
    contracts = load_contracts()
    con = warehouse.connect(db, memory_limit=memory_limit, temp_directory=work / "tmp", threads=2)
    for name, contract in contracts.items():
        files = sorted(str(p) for p in landing.glob(f"{name}*.parquet"))
        if not files:
            continue
        columns = warehouse.table_columns(contract)
        con.execute(f"DROP TABLE IF EXISTS {name}")
        body = ", ".join(f'"{c}" {t}' for c, t in columns.items())
        con.execute(f"CREATE TABLE {name} ({body})")
        select = []
        for col in contract.columns:
            kind = col.type.value
            if kind == "person_id":
                select.append(_valid_sql(col.name))
            elif kind == "name":
                select.append(f"regexp_replace({col.name}, '\\s+', '', 'g') AS {col.name}, {col.name} AS {col.name}_raw")
            elif kind == "period":
                select.append(f"CAST(strptime({col.name}, '%Y-%m') AS DATE) AS {col.name}")
            elif kind == "firm_id":
                select.append(f"upper({col.name}) AS {col.name}, true AS {col.name}_valid")
            else:
                select.append(col.name)
        file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
        con.execute(f"INSERT INTO {name} BY NAME SELECT {', '.join(select)}, filename AS _source_file, "
                    f"CAST(file_row_number + 1 AS BIGINT) AS _source_row, 'bench' AS _file_sha256 "
                    f"FROM read_parquet({file_list}, filename = true, file_row_number = true)")
    warehouse.create_views(con)
    counts = warehouse.table_counts(con)
    con.close()
    return counts


# --- quality ---------------------------------------------------------------------------


def _pr(expected: set, got: set) -> dict:
    tp = len(expected & got)
    return {"expected": len(expected), "reported": len(got), "true_positives": tp,
            "precision": round(tp / len(got), 4) if got else None,
            "recall": round(tp / len(expected), 4) if expected else None,
            "missed": sorted(expected - got)[:10], "false_positives": sorted(got - expected)[:10]}


def evaluate(con: duckdb.DuckDBPyConnection, landing: Path, as_of: date) -> dict:
    """Run every rule and compare with the ground truth files."""
    from pipelines.rules.engine import run_rules
    from pipelines.rules.loader import load_rules

    hits = pl.from_arrow(run_rules(con, load_rules(), as_of).table)
    gt = pl.read_parquet(landing / "ground_truth.parquet")
    gti = pl.read_parquet(landing / "ground_truth_identity.parquet")
    out: dict = {}
    for rule_id in ("duplicate_identity", "paid_after_death_weak_match"):
        want = gti.filter(pl.col("rule_id") == rule_id)
        got = hits.filter(pl.col("rule_id") == rule_id)
        res = _pr(set(want["subject_id"]), set(got["subject_id"]))
        both = want.join(got.select("subject_id", "amount_at_risk", "first_period", "last_period", "region_code"),
                         on="subject_id", suffix="_got")
        res["exact_amount_period_region"] = int(both.filter(
            (pl.col("amount_at_risk") == pl.col("amount_at_risk_got")) & (pl.col("first_period") == pl.col("first_period_got"))
            & (pl.col("last_period") == pl.col("last_period_got")) & (pl.col("region_code") == pl.col("region_code_got"))).height)
        res["per_kind_recall"] = {k: round(v, 4) for k, v in want.with_columns(
            found=pl.col("subject_id").is_in(got["subject_id"].implode())).group_by("kind").agg(
            pl.col("found").mean()).sort("kind").iter_rows()}
        out[rule_id] = res
    near = pl.read_parquet(landing / "near_misses_identity.parquet")
    fired = near.join(hits, left_on=["subject_id", "category_it_must_not_fire"], right_on=["subject_id", "category"])
    out["near_misses"] = {"rows": near.height, "kinds": near.group_by("kind").len().sort("kind").rows(),
                          "fired": fired.select("kind", "subject_id", "rule_id").rows()[:10], "fired_count": fired.height}
    strict = hits.filter(pl.col("category").is_in(gt["category"].unique().implode())
                         & (pl.col("rule_id") != "paid_after_death_weak_match"))
    diff = gt.join(strict, on=["category", "subject_id"], how="full", coalesce=True).filter(
        pl.col("rule_id").is_null() | pl.col("subject_type").is_null()
        | (pl.col("amount_at_risk") != pl.col("amount_at_risk_right")))
    out["strict_categories_mismatches"] = diff.height
    out["hits_per_rule"] = dict(hits.group_by("rule_id").len().sort("rule_id").iter_rows())
    return out


def link_quality(con: duckdb.DuckDBPyConnection, landing: Path) -> dict:
    """Link-level precision/recall: planted payee variants must be linked to their person, and
    nothing else may be linked (background IDs are all distinct registered people)."""
    v = pl.read_parquet(landing / "identity_variants.parquet")
    links = pl.from_arrow(con.sql("SELECT person_id_a, person_id_b FROM person_links").to_arrow_table())
    pairs = {tuple(sorted(p)) for p in links.iter_rows()}
    ids = set(v["variant_id"]) | set(v["person_id"])
    # wd_garbled death IDs are two edits away: matched by name and birth date, not linked
    truth = {tuple(sorted((a, b))) for a, b, k in v.select("variant_id", "person_id", "kind").iter_rows()
             if k.startswith("di_") or k in ("wd_bad_check", "wd_typo_trad", "wd_unknown_valid", "twins_in_one_household")}
    negatives = {tuple(sorted((a, b))) for a, b, k in v.select("variant_id", "person_id", "kind").iter_rows()
                 if k in ("id_typo_in_birth_digits", "death_id_birth_differs")}
    planted_links = {p for p in pairs if p[0] in ids or p[1] in ids}
    unexplained = pairs - truth - {p for p in planted_links if p[0] in ids and p[1] in ids}
    deaths = v.filter(pl.col("role") == "death")
    matches = pl.from_arrow(con.sql("SELECT death_person_id AS variant_id, status, matched_person_id FROM death_matches")
                            .to_arrow_table())
    dm = deaths.join(matches, on="variant_id", how="left")
    death_quality = {k: {"records": n, "matched_to_own_person": m, "ambiguous": a, "unmatched": u}
                     for k, n, m, a, u in dm.group_by("kind").agg(
                         pl.len().alias("n"), (pl.col("matched_person_id") == pl.col("person_id")).sum().alias("m"),
                         (pl.col("status") == "ambiguous").sum().alias("a"),
                         pl.col("status").is_null().sum().alias("u")).sort("kind").iter_rows()}
    return {"death_matches": death_quality,
            "links": len(pairs), "planted_true_pairs": len(truth), "found": len(truth & pairs),
            "recall": round(len(truth & pairs) / len(truth), 4) if truth else None,
            "near_miss_pairs_linked": len(negatives & pairs),
            "links_outside_planted_ids": len(unexplained), "examples": sorted(unexplained)[:5]}


def cmd_quality(args) -> dict:
    work = Path(args.work)
    landing = work / "landing"
    meta = synth(args, landing)
    db = work / "warehouse.duckdb"
    summary: dict = {"persons": args.persons, "months": args.months, "seed": args.seed, "loader": args.loader,
                     "synth_identity": meta.get("identity"), "ground_truth_identity": meta.get("ground_truth_identity")}
    if not db.exists() or args.reload:
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        loader = load_pipeline if args.loader == "pipeline" else load_direct
        summary["rows"] = loader(landing, db, work, args.memory_limit)
        summary["load_seconds"] = round(time.perf_counter() - started, 1)
    con = warehouse.connect(db, memory_limit=args.memory_limit, temp_directory=work / "tmp", threads=2)
    started = time.perf_counter()
    result = link_persons(con)
    summary["link_seconds"] = round(time.perf_counter() - started, 1)
    summary["link"] = result.as_dict()
    summary["link_quality"] = link_quality(con, landing)
    as_of = date.fromisoformat(meta["valid_as_of_from"])
    started = time.perf_counter()
    summary["rules"] = evaluate(con, landing, as_of)
    summary["detect_seconds"] = round(time.perf_counter() - started, 1)
    con.close()
    summary["peak_rss_mb"] = round(rss_mb())
    return summary


# --- throughput ------------------------------------------------------------------------


def cmd_link_only(args) -> dict:
    """Link an existing warehouse (run by `throughput` under /usr/bin/time -v)."""
    work = Path(args.work)
    con = warehouse.connect(work / "warehouse.duckdb", memory_limit=args.memory_limit, temp_directory=work / "tmp",
                            threads=2)
    started = time.perf_counter()
    result = link_persons(con)
    wall = time.perf_counter() - started
    records = sum(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in result.extracts)
    con.close()
    return {"wall_seconds": round(wall, 1), "person_records": records, **result.as_dict(),
            "candidate_pairs_per_second_overall": round(result.pairs_scored / wall), "peak_rss_mb_self": round(rss_mb())}


def cmd_throughput(args) -> dict:
    work = Path(args.work)
    landing = work / "landing"
    args.format = "parquet"
    args.messy = False
    meta = synth(args, landing)
    db = work / "warehouse.duckdb"
    summary: dict = {"persons": args.persons, "months": args.months, "generate_seconds": meta.get("generate_seconds")}
    if not db.exists() or args.reload:
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        summary["rows"] = load_direct(landing, db, work, args.memory_limit)
        summary["load_seconds"] = round(time.perf_counter() - started, 1)
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "link-only", "--work", str(work),
           "--memory-limit", args.memory_limit]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-4000:])
    summary["link"] = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    summary["time_v"] = {"max_rss_mb": round(int(peak[1]) / 1024) if peak else None,
                         "elapsed_process": wall[1] if wall else None}
    return summary


# --- splink ----------------------------------------------------------------------------


def cmd_splink(args) -> dict:
    """Score the same nodes with Splink (DuckDB backend) using our blocking keys; compare links."""
    from benchmarks.splink_compare import run_splink  # noqa: PLC0415

    return run_splink(Path(args.work))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("quality", "throughput", "link-only", "splink"):
        p = sub.add_parser(name)
        p.add_argument("--work", required=True)
        p.add_argument("--persons", type=int, default=1_000_000)
        p.add_argument("--months", type=int, default=12)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--format", default="parquet", choices=["csv", "parquet"])
        p.add_argument("--messy", action="store_true")
        p.add_argument("--loader", default="pipeline", choices=["pipeline", "direct"])
        p.add_argument("--memory-limit", default="6GB")
        p.add_argument("--reload", action="store_true")
    args = parser.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    summary = {"quality": cmd_quality, "throughput": cmd_throughput, "link-only": cmd_link_only,
               "splink": cmd_splink}[args.command](args)
    text = json.dumps(summary, ensure_ascii=False, default=str)
    if args.command != "link-only":
        (Path(args.work) / f"{args.command}.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()
