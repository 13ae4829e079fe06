"""Hostile YAML: billion laughs, deep nesting, recursive aliases, huge files. Each is refused with
the file, line and limit before anything walks the document."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines import limits
from pipelines.contracts import load_contracts
from pipelines.errors import ConfigError, RuleError
from pipelines.rules import load_rule, load_rules

RULES = Path(__file__).resolve().parents[2] / "rules"
SHIPPED = (RULES / "refund_retained.yaml").read_text(encoding="utf-8")

# 9 levels of 9 aliases: 9**9 ≈ 387 million strings once expanded.
LAUGHS = ("  lol:\n    type: text\n    description: x\n    default: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
          + "".join(f"  l{c}:\n    type: text\n    description: x\n    default: &{c} [{','.join(['*' + p] * 9)}]\n"
                    for p, c in zip("abcdefgh", "bcdefghi")))


def rule_dir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "refund_retained.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_billion_laughs_parameter_default_is_refused_fast(tmp_path):
    # the compact 306-byte form of the attack from issue 15
    attack = "parameters:\n" + LAUGHS + "  deadline_days:"
    folder = rule_dir(tmp_path, SHIPPED.replace("parameters:\n  deadline_days:", attack, 1))
    started = time.perf_counter()
    with pytest.raises(RuleError) as info:
        load_rules(folder)
    assert time.perf_counter() - started < 5
    assert "limits.yaml_max_nodes" in str(info.value)
    assert info.value.file.endswith("refund_retained.yaml") and info.value.line


def test_deep_nesting_is_a_clear_error_not_a_recursion_error(tmp_path):
    deep = "[" * 20000 + "]" * 20000
    path = rule_dir(tmp_path, SHIPPED + f"\nextra: {deep}\n") / "refund_retained.yaml"
    with pytest.raises(RuleError) as info:
        load_rule(path)
    assert "limits.yaml_max_depth" in str(info.value)


def test_deep_nesting_through_aliases_is_refused(tmp_path):
    chain = "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
    path = tmp_path / "refund_retained.yaml"
    path.write_text("a0: &a0 [x]\n" + chain, encoding="utf-8")
    with pytest.raises(RuleError, match="levels deep through aliases"):
        load_rule(path)


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "refund_retained.yaml"
    path.write_text("tags: &t [a, *t]\n", encoding="utf-8")
    with pytest.raises(RuleError, match="recursive alias"):
        load_rule(path)


def test_oversized_yaml_is_refused_before_reading(tmp_path):
    path = rule_dir(tmp_path, SHIPPED + "#" + "x" * (2 * 1024 * 1024) + "\n") / "refund_retained.yaml"
    with pytest.raises(RuleError, match=r"limits.yaml_max_bytes"):
        load_rule(path)


def test_yaml_limits_are_settable_per_run(tmp_path):
    path = rule_dir(tmp_path, SHIPPED) / "refund_retained.yaml"
    load_rule(path)  # the shipped rule is within the defaults
    with limits.using(limits.DEFAULT.with_overrides({"yaml_max_bytes": "1KB"})):
        with pytest.raises(RuleError, match="more than the limit of 1000 bytes"):
            load_rule(path)


def test_contracts_are_held_to_the_same_limits(tmp_path):
    (tmp_path / "deaths.yaml").write_text("extract: &x [" + ",".join(["*y"] * 3) + "]\n", encoding="utf-8")
    with pytest.raises(ConfigError):  # an unknown anchor is a plain YAML error, with its line
        load_contracts(tmp_path)
    (tmp_path / "deaths.yaml").write_text("a: &a [x]\n" + "b: " + "[" * 100 + "]" * 100 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="limits.yaml_max_depth"):
        load_contracts(tmp_path)
