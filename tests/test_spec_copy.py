"""docs/spec/ is the project's copy of the user contract in ../shared/spec/ (a clean clone has no
../shared). When the shared spec is present, the copy must equal it byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COPY = ROOT / "docs" / "spec"
SHARED = ROOT.parent / "shared" / "spec"


def test_the_copy_holds_both_spec_files():
    assert sorted(p.name for p in COPY.glob("*.md")) == ["extracts.md", "suspects.md"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/spec beside this checkout")
def test_the_copy_equals_the_shared_spec():
    shared = {p.name: p.read_bytes() for p in SHARED.glob("*.md")}
    copy = {p.name: p.read_bytes() for p in COPY.glob("*.md")}
    assert copy == shared, "docs/spec/ differs from ../shared/spec/: copy the shared spec over (cp ../shared/spec/*.md docs/spec/)"
