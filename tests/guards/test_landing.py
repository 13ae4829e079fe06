"""The landing folder is a boundary: links, special files and content never leak through."""

from __future__ import annotations

import os

import pytest
from hostile import assert_clean_failure, assert_no_personal_data, deaths_csv, landing, run

from pipelines.contracts import load_contracts
from pipelines.errors import ExtractError
from pipelines.ingest import discover_extracts


@pytest.fixture
def contracts():
    return load_contracts()


def test_link_to_an_outside_deaths_file_is_refused(tmp_path, contracts):
    folder = landing(tmp_path / "landing")
    (folder / "deaths.csv").unlink()
    outside = tmp_path / "elsewhere" / "deaths.csv"
    outside.parent.mkdir()
    outside.write_text(deaths_csv(), encoding="utf-8")
    (folder / "deaths_extra.csv").symlink_to(outside)
    with pytest.raises(ExtractError) as info:
        discover_extracts(folder, contracts)
    assert "deaths_extra.csv is a symbolic link" in str(info.value)
    assert "elsewhere" not in str(info.value)  # names the link, not where it goes


def test_link_to_etc_passwd_is_refused_without_quoting_it(tmp_path):
    folder = landing(tmp_path / "landing")
    (folder / "deaths.csv").unlink()
    (folder / "deaths.csv").symlink_to("/etc/passwd")
    proc = run(folder, tmp_path / "out")
    out = assert_clean_failure(proc, "deaths.csv is a symbolic link")
    first_line = open("/etc/passwd", encoding="utf-8").readline().strip()
    assert first_line not in out and "root:" not in out
    assert not (tmp_path / "out" / "latest").exists()


def test_linked_folder_and_nested_links_are_refused(tmp_path, contracts):
    folder = landing(tmp_path / "landing")
    outside = tmp_path / "parts"
    outside.mkdir()
    (outside / "part-0001.csv").write_text(deaths_csv(), encoding="utf-8")
    (folder / "household").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ExtractError, match="household is a symbolic link"):
        discover_extracts(folder, contracts)
    (folder / "household").unlink()
    (folder / "household").mkdir()
    (folder / "household" / "part-0001.csv").symlink_to(outside / "part-0001.csv")
    with pytest.raises(ExtractError, match="household/part-0001.csv is a symbolic link"):
        discover_extracts(folder, contracts)


def test_a_dangling_or_dot_dot_link_is_refused_too(tmp_path, contracts):
    folder = landing(tmp_path / "landing")
    (folder / "prisoners.csv").symlink_to("../../../../../../etc/shadow")
    with pytest.raises(ExtractError, match="prisoners.csv is a symbolic link"):
        discover_extracts(folder, contracts)


def test_fifo_named_like_an_extract_is_refused_instead_of_hanging(tmp_path, contracts):
    folder = landing(tmp_path / "landing")
    os.mkfifo(folder / "prisoners.csv")
    with pytest.raises(ExtractError, match="prisoners.csv is a named pipe"):
        discover_extracts(folder, contracts)


def test_hidden_links_are_never_read_and_do_not_matter(tmp_path, contracts):
    folder = landing(tmp_path / "landing")
    (folder / ".deaths.csv").symlink_to("/etc/passwd")
    assert set(discover_extracts(folder, contracts)) == {"pension_payments", "deaths"}


def test_landing_folder_reached_through_a_link_is_fine(tmp_path, contracts):
    real = landing(tmp_path / "real")
    (tmp_path / "landing").symlink_to(real, target_is_directory=True)
    assert set(discover_extracts(tmp_path / "landing", contracts)) == {"pension_payments", "deaths"}


def test_a_headerless_file_is_not_quoted_in_the_error(tmp_path):
    folder = landing(tmp_path / "landing")
    text = (folder / "pension_payments.csv").read_text(encoding="utf-8")
    (folder / "pension_payments.csv").write_text(text.split("\n", 1)[1], encoding="utf-8")  # no header row
    proc = run(folder, tmp_path / "out")
    out = assert_clean_failure(proc, "pension_payments.csv", "is the header row missing?")
    assert_no_personal_data(out)
