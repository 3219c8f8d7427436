"""Schedules: the values SPEC gives, per-group arrays, and combinations."""
import numpy as np
import pytest

from blocklearn.learner.schedules import SchedCos, SchedExp, SchedLin, SchedNo, SchedPoly, combine_scheds, combined_cos

POS = [0, .25, .5, .75, 1]


def test_sched_cos_values():
    assert [SchedCos(0, 2)(p) for p in POS] == pytest.approx([0, 0.29289, 1, 1.70711, 2], abs=1e-5)


def test_combined_cos_values():
    f = combined_cos(0.25, 0.5, 1., 0.)
    assert [f(p) for p in [0, .1, .25, .5, 1]] == pytest.approx([0.5, 0.67275, 1, 0.75, 0], abs=1e-5)


def test_other_schedules():
    assert [SchedLin(0, 2)(p) for p in POS] == pytest.approx([0, 0.5, 1, 1.5, 2])
    assert [SchedNo(3, 7)(p) for p in POS] == [3] * 5
    assert [SchedExp(1e-4, 1)(p) for p in POS] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1])
    assert [SchedPoly(0, 16, 2)(p) for p in POS] == pytest.approx([0, 1, 4, 9, 16])


def test_schedules_broadcast_over_groups():
    lrs = SchedCos([1e-3, 1e-2], [2e-3, 2e-2])(0.5)
    assert isinstance(lrs, np.ndarray) and lrs == pytest.approx([1.5e-3, 1.5e-2])


def test_combine_scheds_picks_the_segment_and_rescales_pos():
    f = combine_scheds([0.3, 0.7], [SchedLin(0, 1), SchedLin(10, 20)])
    assert [f(p) for p in [0, 0.15, 0.3, 0.65, 1]] == pytest.approx([0, 0.5, 10, 15, 20])


def test_combine_scheds_rejects_pcts_that_do_not_sum_to_one():
    with pytest.raises(ValueError, match='sum to 1'):
        combine_scheds([0.3, 0.3], [SchedLin(0, 1), SchedLin(1, 2)])
