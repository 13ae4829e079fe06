"""A run's request is checked before any work: every mistake refused at once, with the valid values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.errors import RunError
from pipelines.pipeline import RunConfig
from pipelines.runcheck import check_request

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


def config(tmp_path, **kw) -> RunConfig:
    return RunConfig(**{"input": SAMPLE, "output": tmp_path / "out", "as_of": date(2026, 1, 31), **kw})


def refused(cfg) -> str:
    with pytest.raises(RunError) as caught:
        check_request(cfg)
    return str(caught.value)


def test_a_good_request_passes_and_names_its_rules(tmp_path):
    rules = check_request(config(tmp_path, categories=("paid_after_death",)))
    assert {r.id for r in rules} == {"paid_after_death", "paid_after_death_weak_match"}
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("kw, expected", [
    ({"rule_ids": ("paid_after_deth",)}, ["unknown rule id(s): paid_after_deth", "valid: certified_after_death, duplicate_cross_region"]),
    ({"categories": ("paid_after_deth",)}, ["unknown categor(y/ies): paid_after_deth", "valid: certified_after_death, duplicate_cross_region"]),
    ({"parameters": {"refund_retained": {"deadline_dayz": "90"}}},
     ["rule refund_retained has no parameter 'deadline_dayz'", "its parameters: deadline_days (int)"]),
    ({"parameters": {"refund_retained": {"deadline_days": "ninety"}}},
     ["parameter refund_retained.deadline_days (int): 'ninety' is not an integer"]),
    ({"parameters": {"no_such_rule": {"x": "1"}}}, ["parameter for unknown rule 'no_such_rule'"]),
    ({"memory_limit": "16 gigs"}, ["memory limit '16 gigs'", "e.g. 16GB"]),
    ({"job": "Monthly Audit"}, ["job name 'Monthly Audit'"]),
    ({"rule_ids": ("paid_after_death",), "categories": ("refund_retained",)}, ["no rule matches both"]),
    ({"input": Path("/no/such/landing")}, ["input folder /no/such/landing does not exist"]),
])
def test_each_mistake_is_refused_with_the_valid_values(tmp_path, kw, expected):
    message = refused(config(tmp_path, **kw))
    for part in expected:
        assert part in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("input, output, missing", [("", "/o", "FRAUDWATCH_LANDING"), ("/i", " ", "FRAUDWATCH_OUTPUT")])
def test_empty_deployment_paths_are_refused(input, output, missing):
    from pipelines.runcheck import require_paths

    with pytest.raises(RunError, match=missing):
        require_paths(input, output)


def test_a_folder_without_extracts_is_refused(tmp_path):
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "notes.txt").write_text("hello")
    assert "holds no extract" in refused(config(tmp_path, input=tmp_path / "landing"))


def test_every_problem_is_listed_at_once(tmp_path):
    message = refused(config(tmp_path, rule_ids=("nope",), categories=("nada",), memory_limit="lots"))
    assert message.count("\n  - ") == 3


def test_the_cli_refuses_before_starting_prefect_or_taking_the_lock(tmp_path):
    from pipelines.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "-i", str(SAMPLE), "-o", str(out), "--category", "paid_after_deth"])
    assert result.exit_code == 2
    assert "unknown categor(y/ies): paid_after_deth" in result.output
    assert "paid_after_death" in result.output  # the valid values
    assert not out.exists()  # no lock file, no run folder, no warehouse
