"""The WeightFormer model library (configs and costs: `wfsearch.arch`, re-exported); math: docs/MODEL.md.
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
