"""The link stage on small warehouses: every planted variant links, every near miss does not,
clusters choose the canonical ID as documented, the tables are replaced idempotently."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from engines import on_engines
from linkhelpers import (
    NS1, NS2, WANG, WANG_SWAP, WANG_TWIN, ZHANG, ZHANG_BAD_CHECK, ZHANG_BIRTH_TYPO, ZHANG_FORGED, ZHANG_SUB_REGION,
    ZHANG_SUB_SEQ, ZHANG_SWAP, house, link_of, pay, rows, valid,
)

from pipelines.linking import LINK_TABLES
from pipelines.engine import connect
from pipelines.linking.clusters import components_sql


def zhang_and(variant: str, name: str = "张三", registered: bool = True):
    tables = {"pension_payments": [pay(ZHANG, "张三"), pay(variant, name, region="310101")]}
    if registered:
        tables["household"] = [house(ZHANG, "张三", "1950-03-15")]
    return tables


@pytest.mark.parametrize("variant, name, id_level, block", [
    (ZHANG_SUB_SEQ, "张三", "substitution", "substitution"),
    (ZHANG_SUB_REGION, "张三", "substitution", "substitution"),
    (ZHANG_SWAP, "张三", "transposition", "transposition"),
    (ZHANG_BAD_CHECK, "张三", "check_char", "check_char"),
    (ZHANG_SUB_SEQ, "張三", "substitution", "substitution"),     # traditional characters
    (ZHANG_BAD_CHECK, "张叁", "check_char", "check_char"),       # homophone
    (ZHANG_FORGED, "张三", "revalidated_seq", "substitution"),   # valid, unknown to the register
])
def test_each_variant_links(link, variant, name, id_level, block):
    con, result = link(zhang_and(variant, name))
    got = link_of(con, ZHANG, variant, "person_links")
    assert got is not None, link_of(con, ZHANG, variant)
    assert got["id_level"] == id_level and block in got["blocks"]
    assert {"id", "name", "birth_date"} <= set(got["agreed_fields"])
    assert got["score"] >= 0.99 and result.links == 1
    cluster = rows(con, "SELECT person_id, canonical_id, rank FROM identity_clusters ORDER BY rank")
    assert cluster == [{"person_id": ZHANG, "canonical_id": ZHANG, "rank": 1},
                       {"person_id": variant, "canonical_id": ZHANG, "rank": 2}]


def test_typo_links_without_a_household_extract(link):
    con, _ = link(zhang_and(ZHANG_SUB_SEQ, registered=False))
    assert link_of(con, ZHANG, ZHANG_SUB_SEQ, "person_links")["registry_level"] == "unknown"


def test_fifteen_digit_id_is_the_same_person_without_a_link(link):
    con, result = link({"pension_payments": [pay(ZHANG, "张三"), pay("110101500315001", "张三", region="440300")]})
    assert result.person_ids == 1 and result.links == 0
    assert rows(con, "SELECT count(*) AS n FROM identity_clusters") == [{"n": 0}]


@pytest.mark.parametrize("tables, a, b", [
    pytest.param({"household": [house(WANG, "王伟", "1945-11-11", "H3"), house(WANG_TWIN, "王玮", "1945-11-11", "H3")],
                  "pension_payments": [pay(WANG, "王伟"), pay(WANG_TWIN, "王玮")]}, WANG, WANG_TWIN, id="twins_homophone"),
    pytest.param({"household": [house(WANG, "王建伟", "1945-11-11", "H3"), house(WANG_TWIN, "王建丽", "1945-11-11", "H3")],
                  "pension_payments": [pay(WANG, "王建伟"), pay(WANG_TWIN, "王建丽")]}, WANG, WANG_TWIN, id="twins_similar"),
    pytest.param({"pension_payments": [pay(WANG, "王伟"), pay(WANG_TWIN, "王玮")]}, WANG, WANG_TWIN,
                 id="twins_without_household"),
    pytest.param({"household": [house(NS1, "王伟", "1948-06-20", "H4"), house(NS2, "王伟", "1948-06-20", "H5")],
                  "pension_payments": [pay(NS1, "王伟"), pay(NS2, "王伟", region="110102")]}, NS1, NS2,
                 id="common_name_neighbouring_regions"),
    pytest.param({"pension_payments": [pay(NS1, "王伟"), pay(NS2, "王伟", region="110102")]}, NS1, NS2,
                 id="common_name_without_household"),
    pytest.param(zhang_and(ZHANG_BIRTH_TYPO), ZHANG, ZHANG_BIRTH_TYPO, id="typo_in_birth_digits"),
    pytest.param(zhang_and(ZHANG_SUB_SEQ, "李四"), ZHANG, ZHANG_SUB_SEQ, id="other_name"),
    pytest.param(zhang_and(ZHANG_SUB_SEQ, "张山"), ZHANG, ZHANG_SUB_SEQ, id="similar_name"),
])
def test_near_misses_are_candidates_but_not_linked(link, tables, a, b):
    con, result = link(tables)
    candidate = link_of(con, a, b)
    assert candidate is not None and not candidate["linked"], candidate
    assert link_of(con, a, b, "person_links") is None and result.links == 0


def test_twins_show_why_they_are_two_people(link):
    con, _ = link({"household": [house(WANG, "王伟", "1945-11-11", "H3"), house(WANG_TWIN, "王玮", "1945-11-11", "H3")],
                   "pension_payments": [pay(WANG, "王伟"), pay(WANG_TWIN, "王玮")]})
    c = link_of(con, WANG, WANG_TWIN)
    assert c["registry_level"] == "both_registered" and c["name_level"] == "homophone"
    assert {"birth_date", "household"} <= set(c["agreed_fields"])


def test_transposition_link_is_found_for_swaps_inside_the_sequence(link):
    con, _ = link({"household": [house(WANG, "王伟", "1945-11-11")],
                   "pension_payments": [pay(WANG, "王伟"), pay(WANG_SWAP, "王玮")]})
    got = link_of(con, WANG, WANG_SWAP, "person_links")
    assert got["id_level"] == "transposition" and got["id_position"] == 16 and got["name_level"] == "homophone"


def test_unrelated_ids_with_same_name_and_birth_are_scored_not_linked(link):
    other = valid("32010219500315005")
    con, _ = link({"pension_payments": [pay(ZHANG, "张三"), pay(other, "张三")]})
    c = link_of(con, ZHANG, other)
    assert c["id_level"] == "none" and c["blocks"] == ["name_birth"] and not c["linked"]


# --- clusters and the canonical ID --------------------------------------------------------


def test_canonical_prefers_valid_then_registered_then_earliest_then_most_paid(link):
    forged = ZHANG_FORGED
    tables = {
        "household": [house(forged, "张三", "1950-03-15")],
        "pension_payments": [pay(ZHANG_SUB_SEQ, "张三", "2023-01"), pay(ZHANG, "张三", "2024-01"), pay(forged, "张三", "2024-02")],
    }
    con, _ = link(tables)
    got = rows(con, "SELECT person_id, canonical_id, rank, is_canonical, cluster_size, rank_basis FROM identity_clusters "
                    "ORDER BY rank")
    # the forged ID is valid and registered here, so it wins; then ZHANG (valid); the invalid ID last
    assert [r["person_id"] for r in got] == [forged, ZHANG, ZHANG_SUB_SEQ]
    assert {r["canonical_id"] for r in got} == {forged} and got[0]["is_canonical"] and got[0]["cluster_size"] == 3
    assert got[0]["rank_basis"].startswith("valid checksum; in household register")


def test_canonical_earliest_then_most_payments_then_smaller_id(link):
    a, b = ZHANG, ZHANG_FORGED  # both valid, neither registered
    con, _ = link({"pension_payments": [pay(a, "张三", "2024-02"), pay(b, "张三", "2024-01")]})
    assert rows(con, "SELECT canonical_id FROM identity_clusters LIMIT 1")[0]["canonical_id"] == b
    con, _ = link({"pension_payments": [pay(a, "张三", "2024-01"), pay(a, "张三", "2024-02"), pay(b, "张三", "2024-01")]})
    assert rows(con, "SELECT canonical_id FROM identity_clusters LIMIT 1")[0]["canonical_id"] == a
    con, _ = link({"pension_payments": [pay(a, "张三", "2024-01"), pay(b, "张三", "2024-01")]})
    assert rows(con, "SELECT canonical_id FROM identity_clusters LIMIT 1")[0]["canonical_id"] == min(a, b)


def test_clusters_list_the_best_link_of_each_member(link):
    con, _ = link(zhang_and(ZHANG_BAD_CHECK, "張三"))
    member = rows(con, f"SELECT * FROM identity_clusters WHERE person_id = '{ZHANG_BAD_CHECK}'")[0]
    assert member["linked_to"] == ZHANG and member["link_id_level"] == "check_char" and member["link_name_level"] == "t2s"
    assert member["link_score"] > 0.99 and not member["valid"]


def _components(engine, a: list[int], b: list[int]) -> dict[int, int]:
    engine.register("edges", pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64())}))
    rounds = components_sql(engine, "edges", "labels")
    return dict(engine.query("SELECT node, label FROM labels").to_pylist() and
                [(r["node"], r["label"]) for r in engine.query("SELECT node, label FROM labels").to_pylist()]), rounds


@on_engines()
def test_components_are_connected_sets(engine_name, engine_factory):
    engine = engine_factory() if engine_factory else connect()
    try:
        labels, _ = _components(engine, [5, 1, 7, 9], [1, 3, 9, 8])
        assert labels == {1: 1, 3: 1, 5: 1, 7: 7, 8: 7, 9: 7}
        assert _components(engine, [], [])[0] == {}
        chain = list(range(40))
        labels, rounds = _components(engine, chain[1:], chain[:-1])  # a path: labels travel one hop per round
        assert set(labels.values()) == {0} and rounds <= 41
    finally:
        engine.close()


# --- tables -------------------------------------------------------------------------------


def test_tables_are_created_and_replaced_deterministically(link):
    tables = zhang_and(ZHANG_SUB_SEQ)
    con, first = link(tables)
    snapshot = {t: rows(con, f"SELECT * FROM {t} ORDER BY ALL") for t in LINK_TABLES}
    from pipelines.linking import link_persons

    again = link_persons(con)
    assert {t: rows(con, f"SELECT * FROM {t} ORDER BY ALL") for t in LINK_TABLES} == snapshot
    assert again.links == first.links == 1
    temps = rows(con, "SELECT table_name FROM duckdb_tables() WHERE temporary")
    assert sorted(t["table_name"] for t in temps) == sorted(LINK_TABLES)  # no work relation is left


def test_empty_warehouse_gives_empty_tables(link):
    con, result = link({})
    assert result.person_ids == 0 and result.candidate_pairs == 0
    for t in LINK_TABLES:
        assert rows(con, f"SELECT count(*) AS n FROM {t}") == [{"n": 0}]
    types = {r["column_name"]: r["data_type"] for r in rows(
        con, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'person_links'")}
    assert types["score"] == "DOUBLE" and types["agreed_fields"] == "VARCHAR[]"


def test_oversized_name_birth_blocks_are_skipped(link):
    people = [valid(f"{r}19500315{s:03d}") for r in ("110101", "310101", "440300") for s in (11, 21, 31)]
    con, result = link({"pension_payments": [pay(p, "张三") for p in people]}, max_block_size=5)
    assert result.blocks["skipped_name_birth_groups"] == 1
    assert result.blocks.get("pairs_name_birth", 0) == 0
    con, result = link({"pension_payments": [pay(p, "张三") for p in people]})
    assert result.blocks["pairs_name_birth"] == 36  # 9 people: 9*8/2 pairs


def test_scoring_runs_in_batches(link):
    people = [valid(f"110101195003150{s:02d}") for s in range(0, 60, 2)]
    con, small = link({"pension_payments": [pay(p, "张三") for p in people]}, batch_rows=7)
    con2, big = link({"pension_payments": [pay(p, "张三") for p in people]})
    assert small.pairs_scored == big.pairs_scored > 7
    assert rows(con, "SELECT * FROM person_link_candidates ORDER BY ALL") == rows(
        con2, "SELECT * FROM person_link_candidates ORDER BY ALL")


def test_a_broken_id_between_two_registered_twins_does_not_merge_them(link):
    """From the 1M synth run: twin a (…0042) died under …0043 (her ID, wrong check character), which
    is also an adjacent transposition of twin b's ID (…0034). Both links hold, but the register says
    a and b are two people: the broken ID joins a, its best link; b stays alone."""
    a, b, broken = "110111193608110042", "110111193608110034", "110111193608110043"
    con, _ = link({
        "household": [house(a, "朱静雪", "1936-08-11", "H7"), house(b, "朱静学", "1936-08-11", "H7")],
        "pension_payments": [pay(a, "朱静雪"), pay(b, "朱静学"), pay(b, "朱静学", "2024-02")],
        "deaths": [{"person_id": broken, "name": "朱静雪", "death_date": "2024-01-20", "source": "民政"}],
    })
    assert link_of(con, b, broken, "person_links")["id_level"] == "transposition"
    assert link_of(con, a, broken, "person_links")["id_level"] == "check_char"
    clusters = rows(con, "SELECT person_id, canonical_id FROM identity_clusters ORDER BY person_id")
    assert clusters == [{"person_id": a, "canonical_id": a}, {"person_id": broken, "canonical_id": a}]


def test_without_a_register_components_are_not_split(link):
    a, b, broken = "110111193608110042", "110111193608110034", "110111193608110043"
    con, _ = link({"pension_payments": [pay(a, "朱静雪"), pay(b, "朱静学")],
                   "deaths": [{"person_id": broken, "name": "朱静雪", "death_date": "2024-01-20", "source": "民政"}]})
    assert {r["canonical_id"] for r in rows(con, "SELECT canonical_id FROM identity_clusters")} == {b}


def test_check_character_x_swapped_into_the_body(link):
    """From the 1M synth run: ...572X with its last two characters swapped is ...57X2, not even
    17 digits + check; the transposition block still finds it and the birth date still compares."""
    real = "31015119620403572X"
    swapped = "3101511962040357X2"
    con, _ = link({"household": [house(real, "刘建国", "1962-04-03")],
                   "pension_payments": [pay(real, "刘建国"), pay(swapped, "劉建國", region="310101")]})
    got = link_of(con, real, swapped, "person_links")
    assert got["id_level"] == "transposition" and got["id_position"] == 17 and got["birth_level"] == "equal"
    assert got["gender_level"] == "unknown" and got["name_level"] == "t2s"
