"""Evaluation: the NELBO perplexity bound, the autoregressive baseline row, and step-vs-error sweeps."""

from .autoregressive_baseline import autoregressive_config, train_autoregressive_baseline
from .elbo_perplexity import elbo_perplexity
from .step_scaling import StepScaling, fit_step_scaling
from .sweep import sweep_steps
from .sweep_resume import read_sweep_rows
from .sweep_table import markdown_table
from .sweep_tasks import LanguageTask, PromptTask


__all__ = [
    "elbo_perplexity",
    "autoregressive_config",
    "train_autoregressive_baseline",
    "StepScaling",
    "fit_step_scaling",
    "sweep_steps",
    "read_sweep_rows",
    "markdown_table",
    "LanguageTask",
    "PromptTask",
]
