"""The notebooks: committed without outputs, and they execute end to end (nbclient)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["run_overview.ipynb", "investigate_person.ipynb"]


def test_the_notebooks_exist():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before committing"
    assert "widgets" not in nb.metadata


def test_notebooks_import_the_package_instead_of_copying_logic():
    for name in NAMES:
        source = "\n".join(c.source for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells)
        assert "from pipelines." in source and "read_parquet" not in source and "SELECT" not in source


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    from fraudwatch_synth import generate

    folder = tmp_path_factory.mktemp("landing")
    # 1000 persons: small landings can fall under the deaths contract's 80% valid-ID minimum (planted bad IDs)
    generate(persons=1000, months=6, seed=20241, out=folder)
    return folder


@pytest.mark.slow
def test_notebooks_execute_on_a_fresh_output_folder(landing, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    output = tmp_path / "out"
    monkeypatch.setenv("FRAUDWATCH_INPUT", str(landing))
    monkeypatch.setenv("FRAUDWATCH_OUTPUT", str(output))
    monkeypatch.setenv("FRAUDWATCH_AS_OF", "2025-06-30")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for name in NAMES:  # the first one runs the pipeline (no run yet), the second reuses it
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} drew no plot"
        said = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert "reading run " in said and "(job full-audit, as of 2025-06-30)" in said, f"{name} does not say which run"
    assert (output / "latest" / "suspects.parquet").exists()
