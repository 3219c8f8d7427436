"""lr_find: the lr formula, stopping, exact restoration of model and optimizer, and the suggestions."""
import functools
import math

import matplotlib
import pytest
import torch

from blocklearn.learner.lr_find import minimum, slide, steep, suggestion_points, valley
from synth import synth_learner

matplotlib.use('Agg')


def quiet_lr_find(learn, **kwargs):
    with learn.no_bar():
        return learn.lr_find(show_plot=False, **kwargs)


def test_lrs_grow_exponentially_from_start_to_end():
    learn = synth_learner()
    quiet_lr_find(learn, num_it=20, stop_div=False)
    assert learn.recorder.lrs == pytest.approx([1e-7 * (10 / 1e-7) ** (i / 20) for i in range(20)])
    assert [row[1] for row in learn.recorder.values] == [None]      # one whole epoch, never validated


def test_stops_when_the_smoothed_loss_passes_4x_the_best():
    learn = synth_learner()
    quiet_lr_find(learn, start_lr=1e-2, end_lr=1e6, num_it=100)
    losses = learn.recorder.losses
    assert len(losses) < 100
    assert losses[-1] > 4 * min(losses) and all(l <= 4 * min(losses[:i + 1]) for i, l in enumerate(losses[:-1]))


def test_model_and_optimizer_state_restored_bitwise():
    learn = synth_learner(lr=1e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)                              # so the optimizer has moments to restore
    model_before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_before = learn.opt.state_dict()
    opt_tensors = {(i, k): v.clone() for i, s in opt_before['state'].items() for k, v in s.items()}
    groups_before = [{k: v for k, v in g.items()} for g in opt_before['param_groups']]
    quiet_lr_find(learn, num_it=30)
    model_after, opt_after = learn.model.state_dict(), learn.opt.state_dict()
    assert model_after.keys() == model_before.keys()
    assert all(torch.equal(model_after[k], v) for k, v in model_before.items())
    assert {(i, k) for i, s in opt_after['state'].items() for k in s} == opt_tensors.keys()
    assert all(torch.equal(opt_after['state'][i][k], v) for (i, k), v in opt_tensors.items())
    assert opt_after['param_groups'] == groups_before


def test_fresh_optimizer_stays_empty():
    learn = synth_learner()
    quiet_lr_find(learn, num_it=20)
    assert len(learn.opt.torch_opt.state) == 0


def test_course_api_unpacks_minimum_and_steep():
    learn = synth_learner()
    lr_min, lr_steep = quiet_lr_find(learn, num_it=50)
    lrs, losses = suggestion_points(learn.recorder.lrs, learn.recorder.losses, 50)
    assert lr_min == pytest.approx(minimum(lrs, losses)) and lr_steep == pytest.approx(steep(lrs, losses))
    res = quiet_lr_find(learn, num_it=50, suggest_funcs=(minimum, steep, valley, slide))
    assert res._fields == ('minimum', 'steep', 'valley', 'slide')
    assert quiet_lr_find(learn, num_it=50, suggest_funcs=(valley,))._fields == ('valley',)


def test_every_result_has_the_four_standard_suggestions():
    learn = synth_learner()
    res = quiet_lr_find(learn, num_it=50)
    lr_min, lr_steep = res
    lrs, losses = suggestion_points(learn.recorder.lrs, learn.recorder.losses, 50)
    assert (res.minimum, res.steep) == (lr_min, lr_steep)
    assert res.valley == pytest.approx(valley(lrs, losses)) and res.slide == pytest.approx(slide(lrs, losses))
    assert repr(res) == (f'SuggestedLRs(minimum={lr_min:.2e}, steep={lr_steep:.2e}, valley={res.valley:.2e}, '
                         f'slide={res.slide:.2e})')
    with pytest.raises(AttributeError, match="no 'foo'; it has minimum, steep, valley, slide"):
        _ = res.foo


def test_valley_and_slide_unpack_as_those_two_and_the_others_stay_reachable():
    learn = synth_learner()
    res = quiet_lr_find(learn, num_it=50, suggest_funcs=(valley, functools.partial(slide, adjust_value=0.5)))
    lrs, losses = suggestion_points(learn.recorder.lrs, learn.recorder.losses, 50)
    lr_valley, lr_slide = res
    assert lr_valley == pytest.approx(valley(lrs, losses))
    assert lr_slide == pytest.approx(slide(lrs, losses) / 2) and res.slide == lr_slide   # the one asked for
    assert res._fields == ('valley', 'slide') and len(res) == 2
    assert res.minimum == pytest.approx(minimum(lrs, losses)) and res.steep == pytest.approx(steep(lrs, losses))
    assert repr(res).startswith(f'SuggestedLRs(valley={lr_valley:.2e}, slide={lr_slide:.2e}, minimum=')


def test_plot_marks_each_suggestion():
    import matplotlib.pyplot as plt
    learn = synth_learner()
    with learn.no_bar():
        res = learn.lr_find(num_it=50, suggest_funcs=(minimum, valley))
    ax = plt.gcf().axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels[1:] == [f'minimum: {res.minimum:.2e}', f'valley: {res.valley:.2e}']
    assert ax.get_xscale() == 'log'
    plt.close('all')


def synthetic_curve():
    """Flat, then falling fastest at index 40, bottom at index 60, then diverging."""
    lrs = torch.logspace(-7, 1, 100, dtype=torch.float64)
    idx = torch.arange(100, dtype=torch.float64)
    losses = 2 - torch.sigmoid((idx - 40) / 4) + 0.002 * (idx - 60).clamp(min=0) ** 2
    return lrs, losses


def test_minimum_is_a_tenth_of_the_lr_at_the_lowest_loss():
    lrs, losses = synthetic_curve()
    i = int(losses.argmin())
    assert 58 <= i <= 62
    assert minimum(lrs, losses) == pytest.approx(lrs[i].item() / 10)


def test_steep_is_where_the_loss_falls_fastest():
    lrs, losses = synthetic_curve()
    # The sigmoid falls fastest at 40: the steepest step is 39->40 or 40->41, equal by symmetry up to rounding.
    assert steep(lrs, losses) in (pytest.approx(lrs[39].item()), pytest.approx(lrs[40].item()))


def test_valley_is_halfway_along_the_longest_descent():
    lrs = torch.logspace(-7, 1, 50, dtype=torch.float64)
    losses = torch.full((50,), 2.0, dtype=torch.float64)
    losses[10:41] = torch.linspace(2.5, 1.0, 31, dtype=torch.float64)   # strictly falling over 10..40
    # The 2.0 plateau can join only the lower part of the descent (points 21..40): a shorter valley.
    losses[41:] = torch.linspace(1.5, 4.0, 9, dtype=torch.float64)
    assert valley(lrs, losses) == pytest.approx(lrs[25].item())


def test_slide_stops_where_the_slope_settles():
    lrs = torch.logspace(-7, 1, 90, dtype=torch.float64)
    idx = torch.arange(90, dtype=torch.float64)
    # Linear descent (slope -0.04) until 70, then a quadratic rise whose slope keeps changing.
    losses = torch.where(idx < 70, 2.8 - 0.04 * idx, 0.0 + 0.002 * (idx - 70) ** 2)
    # Windows of 15 points slide left while their end slopes differ; the first settled window is [54, 69],
    # so the suggestion is the left end of the window before it.
    assert slide(lrs, losses) == pytest.approx(lrs[55].item())
    assert slide(lrs, losses, adjust_value=0.5) == pytest.approx(lrs[55].item() / 2)


def test_suggestion_points_drop_the_ends_and_stop_at_nan():
    lrs = [10.0 ** (i / 10) for i in range(100)]
    losses = [1.0] * 80 + [math.nan] * 20
    lrs_t, losses_t = suggestion_points(lrs, losses, num_it=100)
    assert lrs_t[0].item() == pytest.approx(lrs[10]) and len(losses_t) == 70


@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_an_error_mid_search_still_restores_model_and_optimizer_bitwise(exc):
    from blocklearn.callbacks.core import Callback

    class FailAt(Callback):
        order = 100

        def after_batch(self):
            if self.learn.train_iter == 15:      # well into the exploding lrs
                raise exc('interrupted')
    learn = synth_learner(lr=1e-2)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1)
    model_before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_state = learn.opt.state_dict()
    opt_before = {(i, k): v.clone() for i, s in opt_state['state'].items() for k, v in s.items()}
    learn.add_cb(FailAt())
    with pytest.raises(exc):
        learn.lr_find(show_plot=False, start_lr=1e-2, end_lr=1e3, num_it=20)   # default progress bar on
    assert learn.recorder.lrs[-1] > 1                                           # it did reach a large lr
    assert all(torch.equal(learn.model.state_dict()[k], v) for k, v in model_before.items())
    opt_after = learn.opt.state_dict()
    assert all(torch.equal(opt_after['state'][i][k], v) for (i, k), v in opt_before.items())
    assert opt_after['param_groups'] == opt_state['param_groups']
    assert learn.progress.pbar is None and learn.progress.mbar is None and not learn.model.training
