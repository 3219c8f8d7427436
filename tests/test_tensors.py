import torch

from blocklearn.blocks.tensors import TensorCategory, to_cpu


def test_to_cpu_moves_every_tensor_of_a_batch_and_keeps_types_and_containers():
    x, y = torch.zeros(2, 3), torch.tensor([1, 0]).as_subclass(TensorCategory)
    out = to_cpu((x, [y], {'n': 3, 'y': y}))
    assert isinstance(out, tuple) and isinstance(out[1], list) and out[2]['n'] == 3
    assert type(out[1][0]) is TensorCategory and out[2]['y'].device.type == 'cpu' and out[0].device.type == 'cpu'
    if torch.cuda.is_available():
        assert to_cpu(x.cuda()).device.type == 'cpu'


def test_an_op_on_typed_tensors_of_unrelated_kinds_gives_a_plain_tensor():
    # fastbook ch6: `nn.BCEWithLogitsLoss()(learn.model(x), y)` with TensorImage activations and a one-hot target
    from torch import nn
    from blocklearn.blocks.tensors import TensorMultiCategory
    from blocklearn.vision.core import TensorImage, TensorImageBW
    activs = torch.zeros(2, 3).as_subclass(TensorImage)
    y = torch.ones(2, 3).as_subclass(TensorMultiCategory)
    loss = nn.BCEWithLogitsLoss()(activs, y)
    assert type(loss) is torch.Tensor and abs(loss.item() - 0.6931) < 1e-4
    assert type(activs + y) is torch.Tensor
    # related kinds keep the more specific one, as torch does; one kind keeps its type
    assert type(activs + torch.ones(2, 3).as_subclass(TensorImageBW)) is TensorImageBW
    assert type(activs * 2) is TensorImage and type(y.sum()) is TensorMultiCategory
