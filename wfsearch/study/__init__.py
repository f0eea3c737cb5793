"""The stored-trial contract: every command that writes or reads a study goes through here.

No Ray import (readers such as ``wfsearch show`` and ``report`` stay light), no torch.
"""
from .constraints import as_dicts, constraint_values, first_violation, holds, violations
from .front import dominated_hypervolume, hypervolume_history, nondominated_ranks, pareto_front, pareto_order, reference_point
from .naming import check_study_name, mask_secrets, references_study_name, safe_url, study_dir
from .outcome import Outcome, Proposal, Status, loss_sign, loss_signs
from .record import CONSTRAINTS_ATTR, TrialRecord, known_results
from .snapshot import GROUPS, StudySnapshot, objective_names, read_records, read_study, snapshot, study_attrs
from .storage import OpenStudy, archive_study, open_storage, open_study, sqlite_path
from .write import fail_stale_trials, set_study_attrs, tell, write_header, write_proposal

__all__ = [
    "as_dicts", "constraint_values", "first_violation", "holds", "violations",
    "dominated_hypervolume", "hypervolume_history", "nondominated_ranks", "pareto_front", "pareto_order", "reference_point",
    "check_study_name", "mask_secrets", "references_study_name", "safe_url", "study_dir",
    "Outcome", "Proposal", "Status", "loss_sign", "loss_signs",
    "CONSTRAINTS_ATTR", "TrialRecord", "known_results",
    "GROUPS", "StudySnapshot", "objective_names", "read_records", "read_study", "snapshot", "study_attrs",
    "OpenStudy", "archive_study", "open_storage", "open_study", "sqlite_path",
    "fail_stale_trials", "set_study_attrs", "tell", "write_header", "write_proposal",
]
