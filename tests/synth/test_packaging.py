"""The synthetic-data generator is its own package beside the product (``fraudwatch_synth``,
the ``[synth]`` extra): the product never imports it, and ``fraudwatch synth`` says what to
install when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_no_product_module_imports_the_generator():
    code = (
        "import importlib, pkgutil, sys, pipelines\n"
        "for m in pkgutil.walk_packages(pipelines.__path__, 'pipelines.'):\n"
        "    importlib.import_module(m.name)\n"
        "leaked = sorted(n for n in sys.modules if n.split('.')[0] == 'fraudwatch_synth')\n"
        "print(len(list(pkgutil.walk_packages(pipelines.__path__))), leaked)\n"
        "assert not leaked, leaked\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr[-3000:]


def test_synth_command_without_the_extra_says_what_to_install(tmp_path):
    # A meta-path finder that makes the generator package unimportable, as in an install
    # without the [synth] extra; then the real CLI.
    code = (
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'fraudwatch_synth':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from pipelines.cli import app\n"
        f"app(['synth', '--persons', '10', '--out', {str(tmp_path / 'o')!r}])\n"
    )
    done = _python(code)
    assert done.returncode == 2
    assert "fraudwatch[synth]" in done.stderr
    assert "fraudwatch_synth" in done.stderr
    assert not (tmp_path / "o").exists()


def test_synth_command_writes_extracts(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["synth", "--persons", "200", "--months", "4", "--seed", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ground_truth.parquet").is_file()
    assert sorted(tmp_path.glob("pension_payments*.csv"))


def test_pyproject_ships_the_generator_as_the_synth_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    names = lambda reqs: {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in reqs}  # noqa: E731
    assert "synth" in extras
    assert names(extras["synth"]) <= names(extras["dev"]), "make test installs .[dev]: it must have the generator's packages"
    assert not names(extras["synth"]) & names(project["project"]["dependencies"]), "the product does not need the generator's packages"
    assert "fraudwatch_synth*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert (ROOT / "fraudwatch_synth" / "__init__.py").is_file()
    assert not (ROOT / "pipelines" / "synth").exists()
