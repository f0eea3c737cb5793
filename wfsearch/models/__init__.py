"""The WeightFormer model library: dynamic layers, predictors, the backbone, ERFs (configs and costs,
which need no torch, are `wfsearch.arch`, re-exported here).

The math of the released model and the definition of every predictor: docs/MODEL.md.

Importing it registers ``weightformer_tiny/small/base/test`` in timm's registry.
"""
from wfsearch.arch import MODEL_SIZES, PREDICTORS, ArchConfig, cost, parse_placement
from .convert import convert_official_state_dict
from .layers import DynamicDWConv, DynamicLinear, reference_mode
from .predictors import DWCONV_PREDICTORS, FC1_PREDICTORS
from .weightformer import WeightFormer, WeightFormerBlock, build

__all__ = [
    "ArchConfig", "PREDICTORS", "parse_placement", "convert_official_state_dict", "cost",
    "DynamicDWConv", "DynamicLinear", "reference_mode", "DWCONV_PREDICTORS", "FC1_PREDICTORS", "MODEL_SIZES",
    "WeightFormer", "WeightFormerBlock", "build",
]
