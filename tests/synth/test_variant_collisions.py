"""Planted variant IDs never collide with another generated ID (issue 12): at 1M persons a namesake's
death-record ID once equalled another person's ID, giving that person a death record (a false
paid_after_death against the truth). Forced here: the first draw returns another person's ID."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fraudwatch_synth import identity
from fraudwatch_synth.cases import Ctx
from fraudwatch_synth.ids import person_id_matrix
from fraudwatch_synth.plan import Plan
from fraudwatch_synth.population import Calendar, build_population


@pytest.fixture
def ctx() -> Ctx:
    rng = np.random.default_rng(7)
    return Ctx(rng, Calendar.from_period("2024-01", 6), build_population(rng, 300), Plan())


def test_a_namesake_id_equal_to_another_persons_is_drawn_again(ctx, monkeypatch):
    p, other = np.array([0]), 1
    taken = identity.id_matrix(ctx.pop.ids.gather([other]))
    calls = []

    def first_draw_collides(region, birth, seq):
        calls.append(len(region))
        return taken.copy() if len(calls) == 1 else person_id_matrix(region, birth, seq)

    monkeypatch.setattr(identity, "person_id_matrix", first_draw_collides)
    identity.nm_namesake_died(ctx, p)
    variant = ctx.plan.variants.frame()["person_id"].to_list()
    assert len(calls) == 2 and len(variant) == 1
    assert variant[0] not in set(ctx.pop.ids.to_list())


def test_a_variant_equal_to_an_earlier_variant_is_drawn_again(ctx):
    p = np.array([2, 3])
    identity.di_substitution(ctx, p[:1])
    first = ctx.plan.variants.frame()["person_id"][0]

    def remake(rows):
        return identity.wrong_check(identity.id_matrix(ctx.pop.ids.gather(p[1:][rows])), ctx.rng)

    mat = identity.unused(ctx, identity.id_matrix(pl.Series([first])), remake)
    assert identity._text(mat)[0] not in {first, *ctx.pop.ids.to_list()}


def test_a_collision_without_a_way_to_redraw_is_refused(ctx):
    with pytest.raises(ValueError, match="collides"):
        identity.unused(ctx, identity.id_matrix(ctx.pop.ids.gather([4])), None)
