"""Inspecting a study: the HTML report, the terminal summary, the data behind both.

Data first (`study.StudyView` read once, then small frozen dataclasses in `data` and `scaling`,
tested by equality), plotly figures second (`figures`), one self-contained page last (`page`).

    view = load_view("studies/predictors")
    data = report_data(view, scaling=scaling_data(view, measure=False))
    write_report(data, view.folder / "report.html")
"""
from .data import (Axis, Curve, CurvesData, HypervolumeData, HypervolumeStep, Importances, ParallelData, ParetoData,
                   Point, Row, TrialRow, captions, curves_data, front_rows, hypervolume_data, importance_data, parallel_data, pareto_data, noise_data,
                   reference_rows, trial_rows)
from .page import ReportData, render_html, report_data, write_report
from .scaling import DEFAULT_RESOLUTIONS, ScalingData, ScalingSeries, macs_at, scaling_data
from .study import GROUPS, StudyView, load_view
from .text import show_text

__all__ = [
    "Axis", "Curve", "CurvesData", "TrialRow", "captions", "curves_data", "trial_rows", "HypervolumeData", "HypervolumeStep", "Importances", "ParallelData", "ParetoData", "Point", "Row",
    "front_rows", "hypervolume_data", "importance_data", "parallel_data", "pareto_data", "noise_data",
    "reference_rows", "ReportData", "render_html", "report_data", "write_report", "DEFAULT_RESOLUTIONS",
    "ScalingData", "ScalingSeries", "macs_at", "scaling_data", "GROUPS", "StudyView", "load_view", "show_text",
]
