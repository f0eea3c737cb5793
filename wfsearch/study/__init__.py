"""The stored-study contract (no Ray import): naming rules first; everything that writes or reads a
study builds its paths and names through here."""
from .naming import check_study_name, mask_secrets, references_study_name, safe_url, study_dir

__all__ = ["check_study_name", "mask_secrets", "references_study_name", "safe_url", "study_dir"]
