"""The stored-trial contract: every command that writes or reads a study goes through here.

No Ray import (readers such as ``wfsearch show`` and ``report`` stay light), no torch.

- `record`: `TrialRecord` (one trial, typed) and its `Status`, to and from Optuna user attributes.
- `storage`: `open_storage` (writers), `open_study` (readers), stale-trial cleanup, archiving.
- `naming`: study names, the study folder, the references study.
- `front`: the one Pareto front (one point per architecture), ranks, hypervolume.
- `constraints`: the one constraint evaluator.
- `snapshot`: a study read once (`read_study`), what report, export and show compute from.
"""
from .constraints import as_dicts, constraint_values, first_violation, holds, violations
from .front import dominated_hypervolume, hypervolume_history, nondominated_ranks, pareto_front, pareto_order, reference_point
from .naming import check_study_name, mask_secrets, references_study_name, safe_url, study_dir
from .record import CONSTRAINTS_ATTR, Status, TrialRecord, cached_result, known_results, outcome_attrs
from .snapshot import GROUPS, StudySnapshot, objective_names, read_records, read_study, snapshot, study_attrs
from .storage import OpenStudy, archive_study, fail_stale_trials, open_storage, open_study, sqlite_path

__all__ = [
    "as_dicts", "constraint_values", "first_violation", "holds", "violations",
    "dominated_hypervolume", "hypervolume_history", "nondominated_ranks", "pareto_front", "pareto_order", "reference_point",
    "check_study_name", "mask_secrets", "references_study_name", "safe_url", "study_dir",
    "CONSTRAINTS_ATTR", "Status", "TrialRecord", "cached_result", "known_results", "outcome_attrs",
    "GROUPS", "StudySnapshot", "objective_names", "read_records", "read_study", "snapshot", "study_attrs",
    "OpenStudy", "archive_study", "fail_stale_trials", "open_storage", "open_study", "sqlite_path",
]
