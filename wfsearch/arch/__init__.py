"""What an architecture is, without torch: `ArchConfig`, the predictor names, the released sizes and the
analytic cost, for readers of a study that need nothing of the model code (`wfsearch.models` imports torch)."""
from .config import ENUMS, MODEL_SIZES, PREDICTORS, ArchConfig, parse_placement
from .cost import cost

__all__ = ["ENUMS", "MODEL_SIZES", "PREDICTORS", "ArchConfig", "parse_placement", "cost"]
