"""More fastbook names after `from blocklearn.vision.all import *`: `plot_function` (chapters 4 and 5) and `doc`,
which prints a signature and docstring offline."""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import blocklearn.vision.all as va

matplotlib.use('Agg')


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


# ---- plot_function ----------------------------------------------------------------------------------------------
def test_plot_function_draws_f_of_x_with_labels():
    def f(x):
        return x**2
    assert va.plot_function(f, 'x', 'x**2') is None                 # as fastai: a cell shows the plot, not a repr
    ax = plt.gca()
    (line,) = ax.get_lines()
    x, y = line.get_xdata(), line.get_ydata()
    assert len(x) == 100 and x[0] == pytest.approx(-2) and x[-1] == pytest.approx(2)
    assert np.allclose(y, np.asarray(x) ** 2)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ('x', 'x**2', '')
    assert tuple(ax.figure.get_size_inches()) == (6, 4)
    plt.scatter(-1.5, f(-1.5), color='red')                          # ch4's next line draws on the same axes
    assert len(ax.collections) == 1


def test_plot_function_takes_torch_functions_and_a_range():
    va.plot_function(torch.sigmoid, title='Sigmoid', min=-4, max=4)
    ax = plt.gca()
    (line,) = ax.get_lines()
    x = torch.as_tensor(np.asarray(line.get_xdata()), dtype=torch.float32)
    assert x[0] == -4 and x[-1] == 4
    assert np.allclose(line.get_ydata(), torch.sigmoid(x).numpy(), atol=1e-6)
    assert ax.get_title() == 'Sigmoid' and ax.get_xlabel() == ''


def test_plot_function_draws_a_function_of_parameters_and_a_constant():
    w = torch.tensor(3., requires_grad=True)
    va.plot_function(lambda x: w * x + 1, figsize=(3, 2))       # carries a graph: drawn without .detach() by the user
    assert np.allclose(plt.gca().get_lines()[0].get_ydata(), 3 * np.asarray(plt.gca().get_lines()[0].get_xdata()) + 1)
    va.plot_function(lambda x: 1)
    assert np.all(plt.gca().get_lines()[0].get_ydata() == 1)
    with pytest.raises(ValueError, match=r'plot_function: .*lambda.* gave shape \(100, 2\).*one value per point'):
        va.plot_function(lambda x: torch.stack([x, x], 1))


# ---- doc --------------------------------------------------------------------------------------------------------
def test_doc_prints_signature_docstring_and_module(capsys):
    va.doc(va.Learner.fit_one_cycle)
    out = capsys.readouterr().out
    lines = out.splitlines()
    first_doc_line = va.Learner.fit_one_cycle.__doc__.strip().splitlines()[0]
    assert lines[0].startswith('fit_one_cycle(') and 'n_epoch: int' in lines[0] and 'div: float = 25.0' in lines[0]
    assert "'int'" not in lines[0]                                    # annotations shown as written, unquoted
    assert lines[1] == first_doc_line
    assert lines[-1].startswith('In blocklearn.learner.fit (') and 'fit.py, line ' in lines[-1]


def test_doc_of_an_instance_a_bound_method_and_a_builtin(capsys):
    va.doc(va.Resize(64))                                              # an instance: its class
    out = capsys.readouterr().out
    assert out.startswith('class Resize(size: int | tuple[int, int], method: str = ')
    assert 'In blocklearn.vision.resize (' in out
    va.doc(va.Path('.').ls)                                            # a bound method: no `self`
    out = capsys.readouterr().out
    assert out.startswith('Path.ls(n_max') and 'In blocklearn.blocks.files' in out
    va.doc(torch.sigmoid)                                              # no signature: the name, then torch's text
    out = capsys.readouterr().out
    assert out.splitlines()[0] == 'sigmoid' and 'sigmoid(input' in out and out.splitlines()[-1] == 'In torch'
