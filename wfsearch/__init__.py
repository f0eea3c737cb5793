"""wfsearch: design-space exploration for WeightFormer-style vision backbones.

``import wfsearch`` is light (no torch, no timm) yet registers the ``weightformer_*`` models with timm: at once
when timm is imported, otherwise the moment it is (a one-shot import hook); ``import wfsearch.models`` does it too.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"


def _register() -> None:
    import wfsearch.models  # noqa: F401  (registers weightformer_* in timm's registry)


class _RegisterAfterTimm(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps timm's loader so that the models register once timm has loaded."""

    def find_spec(self, name, path=None, target=None):  # noqa: D102
        if name != "timm":
            return None
        sys.meta_path.remove(self)  # one shot; the real finders locate timm
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


if "timm" in sys.modules:
    _register()
elif not any(isinstance(f, _RegisterAfterTimm) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTimm())
