"""The README's 'Adding a rule' example is a real rule: it loads, passes the SQL check and its own cases."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.rules.casetest import run_rule_cases
from pipelines.rules.loader import load_rule

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_rule_loads_and_its_cases_pass(tmp_path):
    block = re.search(r"```yaml\n(id: (\w+).*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README lost its example rule"
    path = tmp_path / f"{block.group(2)}.yaml"
    path.write_text(block.group(1), encoding="utf-8")
    results = run_rule_cases(load_rule(path))
    assert len(results) == 2
    assert all(r.passed for r in results), [r.problems for r in results]


def test_readme_names_the_two_commands_the_makefile_has():
    text = README.read_text(encoding="utf-8")
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    for target in ("run", "test"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, re.M)
