"""Splink (5.x, DuckDB backend) on the same person nodes and the same candidate pairs as
pipelines.linking, for `linking_bench.py splink`.

Like for like: our blocking produces the candidate pairs, Splink scores exactly those
(``register_blocked_pairs_for_predict``) with an unsupervised Fellegi-Sunter model (u by random
sampling, m by EM) over comparisons it can express in SQL: the ID by Damerau-Levenshtein (IDs
are ASCII, so DuckDB's byte-level functions are right here), the name by exact / simplified /
pinyin / Jaro-Winkler on pinyin (DuckDB measures UTF-8 bytes, so character-level similarity of
Chinese names is not available to Splink), birth date, gender digit and household registration.
Compared: pairs scored per second (predict vs our scoring step) and links vs the planted truth.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import polars as pl

from benchmarks import legacy_warehouse as warehouse
from pipelines.engine import as_engine
from pipelines.linking.blocking import generate_candidates
from pipelines.linking.records import build_nodes, present_person_extracts, registry_present
from pipelines.linking.scoring import score_candidates


def _export(work: Path) -> tuple[Path, Path, dict]:
    """Nodes and candidate pairs of the warehouse as Parquet, plus our scoring time on them."""
    con = warehouse.connect(work / "warehouse.duckdb", memory_limit="6GB", temp_directory=work / "tmp", threads=2)
    engine = as_engine(con)
    extracts = present_person_extracts(engine)
    build_nodes(engine, extracts, names="_lk_names", nodes="_lk_nodes")
    generate_candidates(engine, nodes="_lk_nodes", out="_lk_cand")
    registry = registry_present(engine, extracts)
    work = dict(nodes="_lk_nodes", names="_lk_names", candidates="_lk_cand", out="_lk_scored", registry=registry)
    stats = score_candidates(engine, **work)  # warm-up (imports, caches)
    stats = score_candidates(engine, **work)
    ours = {"pairs": stats.pairs_scored, "seconds": round(stats.seconds, 3),
            "pairs_per_second": round(stats.pairs_per_second), "links": stats.links}
    nodes, pairs = work / "splink_nodes.parquet", work / "splink_pairs.parquet"
    con.execute(f"""COPY (SELECT node AS unique_id, person_id, name, name_s, pinyin,
                                 coalesce(birth_decl, id_birth) AS birth, gender, registered,
                                 coalesce(substr(person_id, 1, 17), person_id) AS body
                          FROM _lk_nodes) TO '{nodes}' (FORMAT parquet)""")
    con.execute(f"""COPY (SELECT '0' AS match_key, a AS join_key_l, b AS join_key_r FROM _lk_cand)
                    TO '{pairs}' (FORMAT parquet)""")
    links = pl.from_arrow(con.sql("SELECT person_id_a, person_id_b FROM _lk_scored WHERE linked").to_arrow_table())
    ours["link_set"] = {tuple(sorted(r)) for r in links.iter_rows()}
    con.close()
    return nodes, pairs, ours


def _settings():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    id_cmp = cl.CustomComparison(
        output_column_name="person_id",
        comparison_levels=[
            cll.NullLevel("person_id"),
            cll.ExactMatchLevel("body").configure(label_for_charts="same body, other check char"),
            cll.CustomLevel("damerau_levenshtein(person_id_l, person_id_r) = 1", label_for_charts="one edit"),
            cll.CustomLevel("damerau_levenshtein(person_id_l, person_id_r) = 2", label_for_charts="two edits"),
            cll.ElseLevel(),
        ],
    )
    name_cmp = cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.NullLevel("name"),
            cll.ExactMatchLevel("name"),
            cll.ExactMatchLevel("name_s"),
            cll.ExactMatchLevel("pinyin"),
            cll.JaroWinklerLevel("pinyin", 0.88),
            cll.ElseLevel(),
        ],
    )
    registry_cmp = cl.CustomComparison(
        output_column_name="registered",
        comparison_levels=[
            cll.CustomLevel("registered_l AND registered_r", label_for_charts="both registered"),
            cll.CustomLevel("registered_l OR registered_r", label_for_charts="one registered"),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[id_cmp, name_cmp, cl.ExactMatch("birth"), cl.ExactMatch("gender"), registry_cmp],
        blocking_rules_to_generate_predictions=[block_on("birth", "pinyin")],
        retain_intermediate_calculation_columns=False,
    ), block_on


def run_splink(work: Path, threshold: float = 0.99) -> dict:
    """Train Splink on the nodes, score our candidate pairs, compare with the planted truth."""
    import splink
    from splink import DuckDBAPI, Linker

    nodes, pairs, ours = _export(work)
    settings, block_on = _settings()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    db_api = DuckDBAPI(con)
    linker = Linker(db_api.register(con.read_parquet(str(nodes)), table_name="nodes"), settings)
    timings = {}
    started = time.perf_counter()
    linker.training.estimate_probability_two_random_records_match([block_on("body")], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth", "pinyin"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("substr(person_id, 1, 14)"))
    timings["train_seconds"] = round(time.perf_counter() - started, 1)
    blocked = db_api.register(con.read_parquet(str(pairs)), table_name="our_pairs")
    linker.table_management.register_blocked_pairs_for_predict(blocked)
    started = time.perf_counter()
    predictions = linker.inference.predict()
    timings["predict_seconds"] = round(time.perf_counter() - started, 2)
    scored = pl.from_arrow(con.sql(f"SELECT unique_id_l, unique_id_r, match_probability, match_weight "
                                   f"FROM {predictions.physical_name}").to_arrow_table())
    n_pairs = scored.height
    out = scored.filter(pl.col("match_probability") >= threshold)
    ids = pl.read_parquet(nodes, columns=["unique_id", "person_id"])
    named = (out.join(ids.rename({"unique_id": "unique_id_l", "person_id": "a"}), on="unique_id_l")
             .join(ids.rename({"unique_id": "unique_id_r", "person_id": "b"}), on="unique_id_r"))
    splink_links = {tuple(sorted(r)) for r in named.select("a", "b").iter_rows()}
    everything = (scored.join(ids.rename({"unique_id": "unique_id_l", "person_id": "a"}), on="unique_id_l")
                  .join(ids.rename({"unique_id": "unique_id_r", "person_id": "b"}), on="unique_id_r"))
    best = {}
    for cut in (0.5, 0.9, 0.95):  # the same model at lower thresholds
        kept = everything.filter(pl.col("match_probability") >= cut)
        best[f"at_{cut}"] = _quality(work, {tuple(sorted(r)) for r in kept.select("a", "b").iter_rows()})
    params = linker.misc.save_model_to_json() if hasattr(linker, "misc") else {}
    return {
        "splink_version": splink.__version__,
        "pairs": n_pairs,
        "splink": {**timings, "pairs_per_second_predict": round(n_pairs / timings["predict_seconds"]),
                   **_quality(work, splink_links), "other_thresholds": best,
                   "prior_probability_two_random_records_match": params.get("probability_two_random_records_match")},
        "ours": {k: v for k, v in ours.items() if k != "link_set"} | _quality(work, ours["link_set"]),
    }


def _quality(work: Path, links: set[tuple[str, str]]) -> dict:
    """Links vs the planted truth: ID pairs that should link, near-miss pairs, and links between
    IDs the synthetic generator never related (false links)."""
    v = pl.read_parquet(work / "landing" / "identity_variants.parquet")
    should = {tuple(sorted((a, b))) for a, b, k in v.select("variant_id", "person_id", "kind").iter_rows()
              if k.startswith("di_") or k in ("wd_bad_check", "wd_typo_trad", "wd_unknown_valid", "twins_in_one_household")}
    near = {tuple(sorted((a, b))) for a, b, k in v.select("variant_id", "person_id", "kind").iter_rows()
            if k in ("id_typo_in_birth_digits", "death_id_birth_differs")}
    hh = pl.read_parquet(work / "landing" / "identity_variants.parquet")
    planted = set(hh["variant_id"]) | set(hh["person_id"])
    false = {p for p in links - should if not (p[0] in planted and p[1] in planted)}
    return {"links": len(links), "true_links_found": len(should & links), "true_links": len(should),
            "recall": round(len(should & links) / len(should), 4), "near_miss_pairs_linked": len(near & links),
            "links_between_unrelated_ids": len(false),
            "precision_vs_planted": round(len(should & links) / len(links), 4) if links else None}
