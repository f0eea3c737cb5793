"""From a study's winner to a full training run: `Recipe` (`recipe_from_trial`, `save_recipe`, `load_recipe`),
the ``--pick`` language (`parse_pick`, `select`), timm's own ``train.py`` args (`timm_train_args`), and the
trainer `wfsearch.export.train.train`, imported lazily so that exporting never pays for its imports.
"""
from .pick import Condition, Pick, parse_pick, select
from .recipe import (AugmentSection, DataSection, ModelSection, OptimizerSection, Recipe, ScheduleSection,
                     TrainSection, drop_path_for, load_recipe, recipe_to_yaml, save_recipe)
from .timm_args import timm_args_to_yaml, timm_train_args
from .trial import find_trial, launch_commands, recipe_from_trial, recipe_path_for, timm_model_for
