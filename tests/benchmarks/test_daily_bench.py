"""The daily-death-check benchmark end to end on a tiny set: the new deaths file is the only file
read, its people come out as suspects, and a day with nothing new reads nothing and re-links nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import daily_bench  # noqa: E402


@pytest.mark.slow
def test_daily_bench_small(tmp_path, capsys):
    assert daily_bench.main(["--persons", "1500", "--new-deaths", "15", "--workdir", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "daily.json").read_text())["1500"]
    new, same = figures["daily_new_file"], figures["daily_nothing_new"]
    assert new["rules"] == same["rules"] and set(new["rules"]) >= {"paid_after_death", "subsidy_after_death"}
    assert [Path(f).name for f in new["files_read"]] == ["deaths_20250401.csv"]
    assert same["files_read"] == []
    assert new["suspects"] >= figures["full_audit_death_suspects"] + 15
    assert same["suspects"] == new["suspects"]
    assert "| 1,500 |" in capsys.readouterr().out
    assert not list((tmp_path / "p1500_m12_s7" / "landing").glob("deaths_2*.csv"))  # the benchmark's file is gone
