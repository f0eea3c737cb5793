"""wfsearch: design-space exploration for WeightFormer-style vision backbones."""
__version__ = "0.1.0"

from . import models  # noqa: E402,F401  (registers the weightformer_* models in timm)
