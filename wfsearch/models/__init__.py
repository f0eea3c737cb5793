"""The WeightFormer model library: configs, dynamic layers, predictors, the backbone, costs, ERFs.

The math of the released model and the definition of every predictor: docs/MODEL.md.

Importing it registers ``weightformer_tiny/small/base/test`` in timm's registry.
"""
from .config import ArchConfig, PREDICTORS, parse_placement
from .convert import convert_official_state_dict
from .cost import cost
from .layers import DynamicDWConv, DynamicLinear, reference_mode
from .predictors import DWCONV_PREDICTORS, FC1_PREDICTORS
from .weightformer import MODEL_SIZES, WeightFormer, WeightFormerBlock, build

__all__ = [
    "ArchConfig", "PREDICTORS", "parse_placement", "convert_official_state_dict", "cost",
    "DynamicDWConv", "DynamicLinear", "reference_mode", "DWCONV_PREDICTORS", "FC1_PREDICTORS", "MODEL_SIZES",
    "WeightFormer", "WeightFormerBlock", "build",
]
