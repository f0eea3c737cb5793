"""Inspecting a study: the HTML report, the terminal summary, the data behind both.

Data first (`wfsearch.study.StudySnapshot` read once, then small frozen dataclasses in `data` and `scaling`,
tested by equality), plotly figures second (`figures`), one self-contained page last (`page`).

    view = read_study("studies/predictors")
    data = report_data(view, scaling=scaling_data(view, measure=False))
    write_report(data, view.folder / "report.html")
"""
from .data import (Axis, Curve, CurvesData, HypervolumeData, HypervolumeStep, Importances, ParallelData, ParetoData,
                   Point, TrialRow, captions, curves_data, distinct_trained, front_rows, hypervolume_data,
                   importance_data, noise_data, parallel_data, pareto_data,
                   reference_rows, trial_rows)
from .page import ReportData, render_html, report_data, write_report
from .scaling import DEFAULT_RESOLUTIONS, ScalingData, ScalingSeries, macs_at, scaling_data
from .table import Row, text_table, trial_dict, trials_csv, trials_json
from .text import all_trials_text, show_text

__all__ = [
    "Axis", "Curve", "CurvesData", "TrialRow", "captions", "curves_data", "HypervolumeData", "HypervolumeStep",
    "Importances", "ParallelData", "ParetoData", "Point", "Row", "distinct_trained", "noise_data",
    "front_rows", "hypervolume_data", "importance_data", "parallel_data", "pareto_data",
    "reference_rows", "ReportData", "render_html", "report_data", "write_report", "DEFAULT_RESOLUTIONS",
    "ScalingData", "ScalingSeries", "macs_at", "scaling_data", "show_text", "all_trials_text", "trial_rows",
    "text_table", "trial_dict", "trials_csv", "trials_json",
]
