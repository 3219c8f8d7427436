"""`doc`: a function's or class's signature, docstring and home module, printed (fastai's `doc` opens a web page;
this one works offline, in a notebook or a terminal)."""
from __future__ import annotations

import functools
import inspect
from typing import Any

from .printable import printable

__all__ = ['doc']


def doc(elt: Any) -> None:
    """Print the signature of `elt` (a function, method, class or module; any other object, such as a transform or a
    model, is shown as its class), its docstring, and the module and file that define it."""
    documented = inspect.isroutine(elt) or inspect.isclass(elt) or inspect.ismodule(elt)
    obj = elt if documented or isinstance(elt, functools.partial) else type(elt)  # a Transform, a model: its class
    print(printable(_header(obj)))
    # a partial (`partial(Resize, 64)`) is documented by what it wraps, with its own remaining signature
    home = obj.func if isinstance(obj, functools.partial) else obj
    text = inspect.getdoc(home)
    print(printable(text) if text else '(no docstring)')
    where = _where(home)
    if where:
        print(printable(where))


def _header(obj: Any) -> str:
    name = _name(obj)
    if inspect.ismodule(obj):
        return f'module {name}'
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins (torch.sigmoid) have none; their docstring starts with one
        return name
    params = [p.replace(annotation=_Text(p.annotation)) if isinstance(p.annotation, str) else p
              for p in sig.parameters.values()]
    ret = sig.return_annotation
    sig = sig.replace(parameters=params, return_annotation=_Text(ret) if isinstance(ret, str) else ret)
    return f'{"class " if inspect.isclass(obj) else ""}{name}{sig}'


def _name(obj: Any) -> str:
    if isinstance(obj, functools.partial):
        return f'partial({_name(obj.func)})'
    func = getattr(obj, '__func__', obj)  # a bound method: named after its function
    if inspect.isbuiltin(func):  # torch.sigmoid's qualname is that of a hidden class
        return func.__name__
    return getattr(func, '__qualname__', None) or getattr(func, '__name__', None) or type(obj).__name__


def _where(obj: Any) -> str:
    """'In <module> (<file>, line <n>)', as much of it as Python knows."""
    target = inspect.unwrap(getattr(obj, '__func__', obj))
    module = target.__name__ if inspect.ismodule(target) else getattr(target, '__module__', None)
    if not isinstance(module, str):
        return ''
    try:
        file = inspect.getsourcefile(target)
        line = None if inspect.ismodule(target) else inspect.getsourcelines(target)[1]
    except (TypeError, OSError):  # builtins and classes made at run time have no source file
        return f'In {module}'
    if file is None:
        return f'In {module}'
    return f'In {module} ({file}' + (f', line {line})' if line else ')')


class _Text:
    """An annotation kept as text (`from __future__ import annotations`), shown without quotes."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text
