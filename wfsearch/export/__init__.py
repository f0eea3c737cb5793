"""From a study's winner to a full training run: recipes, the ``--pick`` language, the trainer.

- `recipe_from_trial` turns a stored search trial into a `Recipe` (the released WeightFormer
  training recipe around the searched architecture); `save_recipe` / `load_recipe` write and read it.
- `parse_pick` / `select` choose a trial of the front by a rule such as
  ``max accuracy where throughput_ratio >= 1.2`` (the front is `wfsearch.study`'s).
- `timm_train_args` writes the same recipe for timm's own ``train.py``.
- `wfsearch.export.train.train` runs a recipe (one process or DDP under torchrun); it is imported
  lazily so that exporting never pays for the trainer's imports.
"""
from .pick import Condition, Pick, parse_pick, select
from .recipe import (AugmentSection, DataSection, ModelSection, OptimizerSection, Recipe, ScheduleSection,
                     TrainSection, drop_path_for, load_recipe, recipe_to_yaml, save_recipe)
from .timm_args import save_timm_args, timm_args_to_yaml, timm_train_args
from .trial import find_trial, launch_commands, recipe_from_trial, recipe_path_for, timm_model_for

__all__ = [
    "Condition", "Pick", "parse_pick", "select",
    "AugmentSection", "DataSection", "ModelSection", "OptimizerSection", "Recipe", "ScheduleSection",
    "TrainSection", "drop_path_for", "load_recipe", "recipe_to_yaml", "save_recipe",
    "save_timm_args", "timm_args_to_yaml", "timm_train_args",
    "find_trial", "launch_commands", "recipe_from_trial", "recipe_path_for", "timm_model_for",
]
