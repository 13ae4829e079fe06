"""When link state may be updated incrementally (pipelines/linking/state.py: plan_update)."""

from __future__ import annotations

from pathlib import Path

from pipelines.linking import state as link_state


def st(files: dict, run: str = "R1", **meta) -> link_state.LinkState:
    base = link_state.meta(registry=True, threshold=0.99, max_block_size=1000, files=files)
    return link_state.LinkState(Path("/out/runs") / run, base | meta)


OLD = {"deaths": [["deaths.csv", "d1"]], "pension_payments": [["pension_payments_202401.csv", "p1"]]}
NOW = {"deaths": [("deaths.csv", "d1"), ("deaths_20250101.csv", "d2")],
       "pension_payments": [("pension_payments_202401.csv", "p1")]}


def plan(states, files=NOW, **kw):
    return link_state.plan_update(states, files, threshold=0.99, max_block_size=1000, **kw)


def test_added_files_are_the_update():
    got = plan([st(OLD)])
    assert isinstance(got, link_state.Plan) and got.added == {"deaths": [("deaths_20250101.csv", "d2")]}


def test_a_new_extract_counts_as_added_files():
    got = plan([st(OLD)], NOW | {"prisoners": [("prisoners.csv", "x")]})
    assert got.added["prisoners"] == [("prisoners.csv", "x")]


def test_removed_or_changed_files_refuse():
    assert plan([st(OLD)], {"deaths": NOW["deaths"]}) == \
        "run R1: pension_payments file pension_payments_202401.csv was removed"
    changed = NOW | {"pension_payments": [("pension_payments_202401.csv", "p2")]}
    assert plan([st(OLD)], changed) == "run R1: pension_payments file pension_payments_202401.csv changed"


def test_other_code_or_parameters_refuse():
    assert "other linking code" in plan([st(OLD, code="x")])
    assert "other linking parameters" in plan([st(OLD, max_block_size=10)])
    assert plan([]) == "no earlier run with link state"


def test_an_added_file_sorting_before_earlier_ones_refuses_where_unique_ids_are_checked():
    now = NOW | {"pension_payments": [("pension_payments_202312.csv", "p0"), ("pension_payments_202401.csv", "p1")]}
    assert "sorts before earlier files" in plan([st(OLD)], now, ordered_extracts={"pension_payments"})
    assert isinstance(plan([st(OLD)], now), link_state.Plan)


def test_the_first_fitting_state_is_used():
    got = plan([st(OLD, run="R2", code="x"), st(OLD, run="R1")])
    assert got.state.run_dir.name == "R1"
