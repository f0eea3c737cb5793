"""What an architecture is, without torch: `ArchConfig` (every knob, validated), the predictor names,
the released sizes and the analytic cost (params, MACs, activation memory).

Readers of a study (``wfsearch show``, ``report``, ``export``) need these and nothing of the model
code, so they live below `wfsearch.models` (which imports torch and timm and registers the models).
"""
from .config import ENUMS, MODEL_SIZES, PREDICTORS, ArchConfig, parse_placement
from .cost import cost

__all__ = ["ENUMS", "MODEL_SIZES", "PREDICTORS", "ArchConfig", "parse_placement", "cost"]
