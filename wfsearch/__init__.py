"""wfsearch: design-space exploration for WeightFormer-style vision backbones.

``import wfsearch`` is light (the command line starts fast); ``import wfsearch.models`` loads torch
and timm and registers the ``weightformer_*`` models in timm.
"""
__version__ = "0.1.0"
