"""The optimizer: Adam and SGD numbers, per-group hypers, slices, freezing with train_bn, no wd on norm/bias."""
import math

import pytest
import torch
import torch.nn as nn

from blocklearn.learner.optimizer import SGD, Adam, lr_range, norm_bias_params
from synth import synth_learner, three_group_learner


def adam_by_hand(p, grads, lr, wd, mom=0.9, sqr_mom=0.99, eps=1e-5):
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        p *= 1 - lr * wd
        m = mom * m + (1 - mom) * g
        v = sqr_mom * v + (1 - sqr_mom) * g * g
        p -= lr * (m / (1 - mom ** t)) / (math.sqrt(v / (1 - sqr_mom ** t)) + eps)
    return p


def run_steps(opt, param, grads):
    for g in grads:
        param.grad = torch.tensor(g, dtype=param.dtype)
        opt.step()
        opt.zero_grad()


def test_adam_step_matches_a_hand_computation():
    p = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    grads = [[0.5, 0.1], [-0.3, 0.2], [0.05, -0.4]]
    opt = Adam([p], lr=0.1, wd=0.01)
    run_steps(opt, p, grads)
    expected = [adam_by_hand(p0, [g[i] for g in grads], lr=0.1, wd=0.01) for i, p0 in enumerate([1.0, -2.0])]
    assert p.tolist() == pytest.approx(expected, rel=1e-12)


def test_adam_defaults_are_fastais():
    p = nn.Parameter(torch.zeros(1))
    assert Adam([p]).hypers == [{'lr': 1e-3, 'mom': 0.9, 'sqr_mom': 0.99, 'eps': 1e-5, 'wd': 0.01}]


def test_sgd_momentum_and_decoupled_wd():
    p = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = SGD([p], lr=0.1, mom=0.9, wd=0.1)
    run_steps(opt, p, [[1.0], [1.0]])
    p1 = 1.0 * (1 - 0.01) - 0.1 * 1.0            # buffer = grad on the first step
    p2 = p1 * (1 - 0.01) - 0.1 * (0.9 * 1.0 + 1.0)
    assert p.item() == pytest.approx(p2, rel=1e-12)


def test_l2_weight_decay_when_not_decoupled():
    p = nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    opt = SGD([p], lr=0.1, wd=0.5, decouple_wd=False)
    run_steps(opt, p, [[1.0]])
    assert p.item() == pytest.approx(2.0 - 0.1 * (1.0 + 0.5 * 2.0))


def test_hypers_per_group_and_mom_maps_to_beta1():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = Adam([[a], [b]], lr=1e-3)
    opt.set_hyper('lr', [1e-4, 1e-2])
    opt.set_hyper('mom', 0.85)
    assert [h['lr'] for h in opt.hypers] == [1e-4, 1e-2]
    assert [g['betas'] for g in opt.param_groups] == [(0.85, 0.99), (0.85, 0.99)]
    with pytest.raises(ValueError, match='3 values for 2 parameter groups'):
        opt.set_hyper('lr', [1, 2, 3])


def test_lr_range_slice_semantics():
    assert lr_range(slice(1e-5, 1e-3), 3) == pytest.approx([1e-5, 1e-4, 1e-3])
    assert lr_range(slice(1e-3), 3) == pytest.approx([1e-4, 1e-4, 1e-3])
    assert lr_range(slice(1e-5, 1e-3), 1) == [1e-3]
    assert lr_range(1e-3, 2) == [1e-3, 1e-3]


def test_fit_with_a_slice_sets_each_groups_lr():
    learn = three_group_learner()
    with learn.no_logging(), learn.no_bar():
        learn.fit(1, lr=slice(1e-6, 1e-4))
    assert [h['lr'] for h in learn.opt.hypers] == pytest.approx([1e-6, 1e-5, 1e-4])


def test_freeze_keeps_norm_params_trainable():
    learn = three_group_learner()
    learn.freeze()
    model = learn.model
    assert not model[0].weight.requires_grad and not model[3].weight.requires_grad
    assert model[1].weight.requires_grad and model[1].bias.requires_grad
    assert model[5].weight.requires_grad
    learn.freeze_to(1)
    assert not model[0].weight.requires_grad and model[3].weight.requires_grad
    learn.unfreeze()
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_groups_do_not_move_but_norm_layers_do():
    learn = three_group_learner()
    learn.freeze()
    frozen, bn = learn.model[0].weight.detach().clone(), learn.model[1].weight.detach().clone()
    with learn.no_logging(), learn.no_bar():
        learn.fit(1, lr=1e-2)
    assert torch.equal(frozen, learn.model[0].weight) and not torch.equal(bn, learn.model[1].weight)


def test_train_bn_false_freezes_norm_params_too():
    learn = three_group_learner(train_bn=False)
    learn.freeze()
    assert not learn.model[1].weight.requires_grad


@pytest.mark.parametrize('wd_bn_bias', [False, True])
def test_no_weight_decay_on_norm_params_and_biases(wd_bn_bias):
    learn = three_group_learner(wd_bn_bias=wd_bn_bias, lr=0.1)
    learn.create_opt()
    learn.opt.set_hyper('wd', 0.1)
    before = {n: p.detach().clone() for n, p in learn.model.named_parameters()}
    for p in learn.model.parameters():
        p.grad = torch.zeros_like(p)   # Adam's update is then 0: only weight decay moves the params
    learn.opt.step()
    for name, p in learn.model.named_parameters():
        decays = wd_bn_bias or (name.endswith('weight') and not name.startswith('1.'))
        assert torch.allclose(p, before[name] * (1 - 0.1 * 0.1 if decays else 1.0)), name


def test_norm_bias_params_finds_norm_layers_and_biases():
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 1, bias=False))
    assert {id(p) for p in norm_bias_params(model)} == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}
    assert {id(p) for p in norm_bias_params(model, with_bias=False)} == {id(model[1].weight), id(model[1].bias)}


def test_state_dict_round_trip_restores_moments():
    learn = synth_learner()
    with learn.no_logging(), learn.no_bar():
        learn.fit(1)
    state = learn.opt.state_dict()
    saved = {k: v.clone() for k, v in state['state'][0].items()}
    learn.opt.clear_state()
    assert len(learn.opt.torch_opt.state) == 0
    learn.opt.load_state_dict(state)
    assert all(torch.equal(learn.opt.torch_opt.state[learn.model.weight][k], v) for k, v in saved.items())


def test_a_torch_optimizer_class_works_as_opt_func():
    learn = synth_learner(opt_func=torch.optim.RMSprop, lr=1e-2)
    with learn.no_logging(), learn.no_bar():
        learn.fit(1)
    assert type(learn.opt.torch_opt) is torch.optim.RMSprop
    assert learn.opt.hypers[0]['lr'] == 1e-2 and learn.opt.hypers[0]['sqr_mom'] == 0.99


def test_opt_func_must_build_an_optimizer():
    learn = synth_learner(opt_func=lambda params, lr: torch.optim.SGD(params, lr=lr))
    with pytest.raises(TypeError, match='opt_func must return'):
        learn.create_opt()
