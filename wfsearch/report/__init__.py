"""Inspecting a study: the HTML report, the terminal summary, the data behind both.

Data first (small frozen dataclasses in `data` and `scaling`), plotly figures second (`figures`), one
self-contained page last (`page`): ``write_report(report_data(read_study(folder)), folder / "report.html")``.
"""
from .data import (Axis, Curve, CurvesData, HypervolumeData, HypervolumeStep, Importances, ParallelData, ParetoData,
                   Point, TrialRow, captions, curves_data, distinct_trained, front_rows, hypervolume_data,
                   importance_data, noise_data, parallel_data, pareto_data, reference_rows, trial_rows)
from .page import ReportData, render_html, report_data, write_report
from .scaling import DEFAULT_RESOLUTIONS, ScalingData, ScalingSeries, macs_at, scaling_data
from .table import Row, text_table, trial_dict, trials_csv, trials_json
from .text import all_trials_text, show_text
