"""The command line: commands registered without import cycles; errors become one message at one place."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_module_imports_the_cli_entry_point():
    importers = [p.name for p in PIPELINES.rglob("*.py") if p.name != "cli.py" and "pipelines.cli" in imports_of(p)]
    assert importers == []


def test_the_audit_commands_import_without_the_main_cli():
    code = "import sys, pipelines.cli_audit; print('pipelines.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "False", out.stderr


def test_audit_commands_are_registered_on_the_main_app():
    from pipelines.cli import app

    result = CliRunner().invoke(app, ["--help"])
    for command in ("run", "export", "person", "outcomes", "rules"):
        assert command in result.output


def test_an_error_in_any_command_is_one_message_and_exit_2(tmp_path):
    from pipelines.cli import app

    for args in (["rules", "list", "--rules-dir", str(tmp_path / "none")],  # a sub-command
                 ["outcomes", "report", "--output", str(tmp_path)],        # a command of cli_audit's group
                 ["run", "-i", str(tmp_path / "none"), "-o", str(tmp_path / "o"), "--no-prefect"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("error:") == 1 and "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_text_in_an_error_is_printed_literally(tmp_path):
    from pipelines.cli import app

    folder = tmp_path / "[bold]x:x:"
    result = CliRunner().invoke(app, ["run", "-i", str(folder), "-o", str(tmp_path / "o"), "--no-prefect"])
    assert "[bold]x:x:" in result.output
