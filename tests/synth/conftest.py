"""Small synthetic landing folders shared by the synth tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudwatch_synth import generate

PERSONS, MONTHS, SEED = 300, 6, 20241


@pytest.fixture(scope="session")
def synth_args() -> tuple[int, int, int]:
    return PERSONS, MONTHS, SEED


@pytest.fixture(scope="session")
def clean_csv(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean_csv")
    generate(PERSONS, MONTHS, SEED, out)
    return out


@pytest.fixture(scope="session")
def messy_csv(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("messy_csv")
    generate(PERSONS, MONTHS, SEED, out, messy=True)
    return out


@pytest.fixture(scope="session")
def clean_parquet(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean_parquet")
    generate(PERSONS, MONTHS, SEED, out, fmt="parquet")
    return out


@pytest.fixture(scope="session")
def messy_parquet(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("messy_parquet")
    generate(PERSONS, MONTHS, SEED, out, fmt="parquet", messy=True)
    return out
