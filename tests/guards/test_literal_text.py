"""Text from data is printed literally: no rich markup, no emoji codes, control characters visible
and never stored raw."""

from __future__ import annotations


import pytest
import xlsxwriter
from hostile import NAME, PERSON_ID, assert_clean_failure, fraudwatch, landing, payments_csv, run

from pipelines.lake import open_published
from pipelines.textsafe import visible


def test_markup_and_emoji_in_a_header_are_printed_literally(tmp_path):
    folder = landing(tmp_path / "landing")
    text = payments_csv().replace("region_code", "[/bold]").replace("pay_date", ":x: [red]\x1b[2J")
    (folder / "pension_payments.csv").write_text(text, encoding="utf-8")
    proc = run(folder, tmp_path / "out")
    out = assert_clean_failure(proc, "required column 'region_code' is missing", "'[/bold]'", ":x: [red]\\x1b[2J")
    assert "❌" not in out and "\x1b" not in out


def test_visible_escapes_every_control_character():
    assert visible("a\x1bb\x00c\x07d\u202ee") == "a\\x1bb\\x00c\\x07d\\u202ee"
    assert visible("line\nnext\ttab") == "line\nnext\ttab"
    assert visible("line\nnext", newlines=False) == "line\\x0anext"


@pytest.mark.slow
def test_control_characters_from_a_workbook_are_not_stored_or_printed_raw(tmp_path):
    folder = landing(tmp_path / "landing")
    (folder / "deaths.csv").unlink()
    workbook = xlsxwriter.Workbook(folder / "deaths.xlsx")
    sheet = workbook.add_worksheet()
    sheet.write_row(0, 0, ["person_id", "name", "death_date", "source"])
    sheet.write_row(1, 0, [PERSON_ID, "张\x1b[31m三\x00\x07", "2024-01-15", "police"])
    workbook.close()
    out = tmp_path / "out"
    proc = run(folder, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    published = open_published(out)  # the run's data as stored in the lake, through its views.sql
    stored = published.query("SELECT name_raw FROM deaths").column("name_raw").to_pylist()
    published.close()
    assert stored == ["张\\x1b[31m三\\x00\\x07"]
    shown = fraudwatch("person", PERSON_ID, "--output", str(out))
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x00" not in shown.stdout and "\x07" not in shown.stdout
    assert "\\x1b[31m" in shown.stdout and NAME in shown.stdout


@pytest.mark.slow
def test_markup_in_a_name_does_not_crash_the_person_view(tmp_path):
    folder = landing(tmp_path / "landing")
    (folder / "deaths.csv").write_text(f"person_id,name,death_date,source\n{PERSON_ID},[/bold]:x:,2024-01-15,police\n",
                                       encoding="utf-8")
    out = tmp_path / "out"
    assert run(folder, out).returncode == 0
    shown = fraudwatch("person", PERSON_ID, "--output", str(out))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "[/bold]:x:" in shown.stdout and "❌" not in shown.stdout
