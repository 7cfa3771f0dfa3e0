"""Declarative experiments: configs (grid x seeds), a resumable parallel runner, the analysis of
results (``analysis``), Markdown reports (``report``) and plots (``plots``).

``plots`` (matplotlib) is imported only when a report draws figures.
"""

from .analysis import rate_slopes, sign_paper_table, summarize
from .config import ExperimentConfig, load_config, packaged_configs
from .report import write_report
from .runner import ResultStore, read_results, run_experiment

__all__ = [
    "ExperimentConfig",
    "load_config",
    "packaged_configs",
    "run_experiment",
    "read_results",
    "ResultStore",
    "write_report",
    "summarize",
    "sign_paper_table",
    "rate_slopes",
]
