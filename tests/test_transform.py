import typing

import torch

from blocklearn.blocks.tensors import TensorBase, TensorCategory
from blocklearn.blocks.transform import ItemTransform, Pipeline, RandTransform, Transform
from blocklearn.vision.core import TensorImage


class AddOne(Transform):
    def encodes(self, x: int):
        return x + 1

    def decodes(self, x: int):
        return x - 1


class Twice(Transform):
    order = 5

    def encodes(self, x: int):
        return x * 2

    def encodes(self, x: float):
        return x * 10

    def decodes(self, x: int):
        return x // 2


def test_tuple_mapped_and_retuppled_lists_not():
    assert AddOne()((1, 'a', 2.)) == (2, 'a', 2.0)
    assert AddOne()([1, 2]) == [1, 2]


def test_several_encodes_dispatch_on_annotation():
    t = Twice()
    assert t(3) == 6 and t(1.5) == 15.0 and t('x') == 'x'


def test_most_specific_class_wins():
    class T(Transform):
        def encodes(self, x: TensorBase):
            return 'base'

        def encodes(self, x: TensorImage):
            return 'image'
    assert T()(torch.zeros(1).as_subclass(TensorImage)) == 'image'
    assert T()(torch.zeros(1).as_subclass(TensorCategory)) == 'base'
    assert T()(torch.zeros(1)) is not None and torch.equal(T()(torch.zeros(1)), torch.zeros(1))


def test_subclass_inherits_and_extends_encodes():
    class More(Twice):
        def encodes(self, x: str):
            return x + '!'
    assert More()(2) == 4 and More()('a') == 'a!'


def test_split_idx_restricts_to_its_split():
    t = AddOne(split_idx=0)
    assert t(1, split_idx=0) == 2
    assert t(1, split_idx=1) == 1 and t(1) == 1


def test_return_type_retained_for_typed_tensors():
    class Plain(Transform):
        def encodes(self, x: TensorImage):
            return x.as_subclass(torch.Tensor) * 2
    out = Plain()(torch.ones(2).as_subclass(TensorImage))
    assert type(out) is TensorImage and out.tolist() == [2., 2.]


def test_function_transform_uses_its_annotation():
    def f(x: int) -> int:
        return x + 10
    assert Transform(f)((1, 'a')) == (11, 'a')
    assert Transform(lambda x: x * 3)(3) == 9


def test_pipeline_sorts_by_order_stably_and_decodes_backwards():
    p = Pipeline([Twice(), AddOne()])
    assert repr(p) == 'Pipeline: AddOne -> Twice'
    assert p(3) == 8 and p.decode(8) == 3


def test_item_transform_sees_whole_tuple():
    class Swap(ItemTransform):
        def encodes(self, x):
            return x[1], x[0]
    assert Swap()((1, 2)) == (2, 1)


def test_rand_transform_decides_once_per_sample():
    class Neg(RandTransform):
        def encodes(self, x: int):
            return -x
    t = Neg(p=0.5)
    outs = [t((1, 1), split_idx=0) for _ in range(200)]
    assert all(a == b for a, b in outs)          # both parts of a sample share the draw
    assert 40 < sum(a == -1 for a, _ in outs) < 160
    assert t((1, 1), split_idx=1) == (1, 1)      # train only


def test_dispatch_is_cached_per_type():
    t = AddOne()
    t(1)
    assert t._encodes.cache[int][0].__name__ == 'encodes'
    t('a')
    assert t._encodes.cache[str] is None


class Seen(Transform):
    """Remembers the items it was set up on."""
    order = 10

    def setups(self, items):
        self.items = list(items)


def test_setup_shows_each_transform_the_items_through_those_before_it():
    from blocklearn.blocks.datasets import TfmdLists
    seen = Seen()
    tl = TfmdLists([1, 2, 3], [Twice(), AddOne(), seen], splits=[[0, 1], [2]])
    assert seen.items == [4, 6] and tl[2] == 8          # AddOne (order 0) then Twice (5) ran before it
    raw = Seen()
    pipe = Pipeline([AddOne(), raw])
    pipe.setup([1, 2])
    assert raw.items == [1, 2] and len(pipe) == 2     # a plain list is handed over as it is


def test_steps_apply_like_call():
    p = Pipeline([Twice(), AddOne()])
    assert [(t.name, x) for t, x in p.steps(3)] == [('AddOne', 4), ('Twice', 8)] and p(3) == 8


class ToList(Transform):
    def encodes(self, x: torch.Tensor) -> typing.Any:
        return x.tolist()


def test_a_method_annotated_to_return_any_returns_what_it_gives():
    # typing.Any is a class since Python 3.11; casting to it raised "cannot be used with isinstance()"
    assert ToList()(torch.tensor([1., 2.])) == [1., 2.]
