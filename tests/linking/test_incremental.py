"""Incremental linking equals a full relink: after a full audit, a new deaths file lands and the daily
death check updates the link state; its four link tables and its suspects must equal those of a
full relink of the same landing folder (a fresh output folder). One case per kind of added death
record, plus the cases that must fall back to a full relink."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines import publish, stages
from pipelines.linking import LINK_TABLES
from pipelines.linking import state as link_state
from pipelines.pipeline import RunConfig
from pipelines.rules.scratch import person_id_check_char
from fraudwatch_synth import generate

pytestmark = pytest.mark.slow

AS_OF = date(2024, 8, 1)
DAILY = ("paid_after_death", "subsidy_after_death")
CAP = 2  # max_block_size in these tests: a name/birth block of three IDs is skipped


def vid(body17: str) -> str:
    return body17 + person_id_check_char(body17)


# Crafted people beside the generated ones (region 650101 is not generated: no ID relatives there).
A1, A2, A3 = vid("65010119400101011"), vid("65010119400101023"), vid("65010119400101035")  # 甘霖, born 1940-01-01
B1, B2, B3 = vid("65010119410202011"), vid("65010119410202023"), vid("65010119410202035")  # 丁戊, born 1941-02-02
FRESH = vid("65010119420303047")


def death(pid: str, name: str, when: str = "2024-02-10", source: str = "民政", record: str = "") -> dict:
    return {"person_id": pid, "name": name, "death_date": when, "source": source, "record_id": record}


BASE_EXTRA = [death(A1, "甘霖", record="X1"), death(A2, "甘霖", record="X2"),
              death(B1, "丁戊", record="X3"), death(B2, "丁戊", record="X4"), death(B3, "丁戊", record="X5")]


def write_deaths(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["person_id", "name", "death_date", "source", "record_id"])
        writer.writeheader()
        writer.writerows(rows)


def run(landing: Path, output: Path, *, daily: bool = True):
    config = RunConfig(input=landing, output=output, as_of=AS_OF, **({"job": "death-check", "categories": DAILY}
                                                                      if daily else {}))
    summary = stages.run_pipeline(config)
    return summary.run_dir, json.loads((summary.run_dir / publish.MANIFEST_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A generated landing folder (+ the crafted people) and its full audit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "MAX_BLOCK_SIZE", CAP)
        landing = tmp_path_factory.mktemp("landing")
        generate(persons=300, months=4, seed=3, out=landing)
        write_deaths(landing / "deaths_base.csv", BASE_EXTRA)
        output = tmp_path_factory.mktemp("out")
        run_dir, manifest = run(landing, output, daily=False)
        assert manifest["identity_linking"]["mode"] == "full"
        assert link_state.LinkState.read(run_dir) is not None
        yield landing, output, mp


@pytest.fixture(scope="module")
def people(base):
    """A payee registered in the household (ID, name, birth date) and a second one."""
    landing = base[0]
    pay = pl.read_csv(landing / "pension_payments_202404.csv", infer_schema=False)
    house = pl.read_csv(landing / "household.csv", infer_schema=False)
    dead = pl.read_csv(landing / "deaths.csv", infer_schema=False)["person_id"]
    ok = (pay.filter(pl.col("person_id").str.contains(r"^\d{17}[\dX]$") & ~pl.col("person_id").is_in(dead.implode()))
          .join(house.select("person_id", "birth_date"), on="person_id").unique("person_id").sort("person_id"))
    return ok.rows(named=True)[:4]


def daily_pair(base, tmp_path: Path, rows: list[dict], *, change=None):
    """The daily check after ``rows`` land as a new deaths file, run on a copy of the full audit's
    output (incremental) and on a fresh output (full relink); returns both (run_dir, manifest)."""
    landing0, output0, _ = base
    landing, output = tmp_path / "landing", tmp_path / "out"
    shutil.copytree(landing0, landing)
    shutil.copytree(output0, output, symlinks=True)
    if rows:
        write_deaths(landing / "deaths_20240801.csv", rows)
    if change:
        change(landing)
    return run(landing, output), run(landing, tmp_path / "fresh")


def table_rows(path: Path, drop: tuple[str, ...] = ()) -> list[str]:
    frame = pl.read_parquet(path).drop(drop, strict=False)
    return sorted(json.dumps(r, default=str, ensure_ascii=False, sort_keys=True) for r in frame.rows(named=True))


def assert_same(incremental: Path, full: Path) -> None:
    for table in LINK_TABLES:
        got, want = (table_rows(r / "derived" / f"{table}.parquet") for r in (incremental, full))
        assert got == want, table
    got, want = (table_rows(r / publish.SUSPECTS_FILE, ("run_id", "status")) for r in (incremental, full))
    assert got == want


def typo(pid: str) -> str:
    """The ID with its 16th digit changed (the checksum then fails)."""
    return pid[:15] + str((int(pid[15]) + 1) % 10) + pid[16:]


CASES = {
    "new_id": lambda p: [death(FRESH, "柏舟", record="N1")],
    "payee": lambda p: [death(p[0]["person_id"], p[0]["name"], record="N2")],
    "typo_id": lambda p: [death(typo(p[1]["person_id"]), p[1]["name"], record="N3")],
    "namesake": lambda p: [death(vid("650102" + p[2]["birth_date"].replace("-", "") + "091"), p[2]["name"],
                                 record="N4")],
    "payee_other_name": lambda p: [death(p[3]["person_id"], "欧阳" + p[3]["name"], record="N5")],
    "representative_name_changes": lambda p: [death(B3, "庚辛", record="N6"), death(B3, "庚辛", record="N7")],
    "block_over_cap": lambda p: [death(A3, "甘霖", record="N8")],
    "all_at_once": lambda p: [r for k, f in CASES.items() if k != "all_at_once" for r in f(p)],
}


@pytest.mark.parametrize("case", list(CASES))
def test_daily_check_after_a_new_deaths_file_equals_a_full_relink(base, people, tmp_path, case):
    (inc_dir, inc), (full_dir, full) = daily_pair(base, tmp_path, CASES[case](people))
    assert inc["identity_linking"]["mode"] == "incremental", inc["notes"]
    assert full["identity_linking"]["mode"] == "full"
    assert_same(inc_dir, full_dir)
    info = inc["identity_linking"]["incremental"]
    assert info["touched_ids"] >= 1 and inc["identity_linking"]["state_bytes"] > 0
    if case == "payee":  # a death record under the payee's own ID and name changes no node
        assert info["changed_ids"] == 0 and info["pairs_rescored"] == 0
    if case in ("new_id", "typo_id", "namesake", "block_over_cap", "representative_name_changes"):
        assert info["changed_ids"] >= 1 and info["blocks_recomputed"] >= 1


def test_the_cases_change_what_they_claim(base, people, tmp_path):
    """The crafted cases are not vacuous: the block over the cap loses its pair, the renamed ID's old
    block gains one, the typo'd ID is linked to the payee and the payee's death is a new suspect."""
    (inc_dir, inc), _ = daily_pair(base, tmp_path, CASES["all_at_once"](people))
    before = link_state.LinkState.read(Path(base[1]) / "runs" / publish.latest_run_id(base[1]))
    pairs = {(r["person_id_a"], r["person_id_b"]) for r in
             pl.read_parquet(before.candidates).select("person_id_a", "person_id_b").rows(named=True)}
    after = {(r["person_id_a"], r["person_id_b"]) for r in
             pl.read_parquet(inc_dir / "derived" / "person_link_candidates.parquet").rows(named=True)}
    assert (A1, A2) in pairs and (A1, A2) not in after
    assert (B1, B2) not in pairs and (B1, B2) in after
    payee = people[1]["person_id"]
    assert tuple(sorted((payee, typo(payee)))) in after
    suspects = pl.read_parquet(inc_dir / publish.SUSPECTS_FILE)
    assert people[0]["person_id"] in suspects["subject_id"].to_list()


def test_two_daily_files_in_a_row_build_on_the_updated_state(base, people, tmp_path):
    """The second daily check starts from the first one's state (base + delta)."""
    (first_dir, first), _ = daily_pair(base, tmp_path, CASES["typo_id"](people))
    landing, output = tmp_path / "landing", tmp_path / "out"
    write_deaths(landing / "deaths_20240802.csv", CASES["representative_name_changes"](people)
                 + CASES["new_id"](people))
    inc_dir, inc = run(landing, output)
    full_dir, full = run(landing, tmp_path / "fresh2")
    assert inc["identity_linking"]["mode"] == "incremental"
    assert inc["identity_linking"]["incremental"]["from_run"] == first_dir.name
    assert_same(inc_dir, full_dir)


@pytest.mark.parametrize("change, reason", [
    (lambda landing: (landing / "deaths_base.csv").unlink(), "deaths file deaths_base.csv was removed"),
    (lambda landing: (landing / "prisoners.csv").open("a", encoding="utf-8").write(
        f"{FRESH},柏舟,2024-03-01,,有期徒刑\n"), "prisoners file prisoners.csv changed"),
])
def test_a_removed_or_changed_file_falls_back_to_a_full_relink(base, people, tmp_path, change, reason):
    (inc_dir, inc), (full_dir, _) = daily_pair(base, tmp_path, CASES["payee"](people), change=change)
    assert inc["identity_linking"]["mode"] == "full"
    assert any(reason in n and n.startswith("identity linking in full") for n in inc["notes"]), inc["notes"]
    assert_same(inc_dir, full_dir)
