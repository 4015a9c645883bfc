"""Evaluation: the NELBO perplexity bound, the autoregressive baseline row (trained, or a chain language's exact
one), step-vs-error sweeps (their columns defined once in `sweep_columns`), the lm-eval step sweep, and the search for
the steps needed at a target error (with a 95% interval per length) and the fit of how they grow with length, the
MDM's latency against the AR baseline at matched token and sequence error, d3LLM's accuracy under parallelism (AUP)
per decoder, and a sampler's exact distributional error (TV, KL) on a small formal language."""

from .accuracy_under_parallelism import AccuracyUnderParallelism, accuracy_under_parallelism, aup, aup_table
from .autoregressive_baseline import autoregressive_config, train_autoregressive_baseline
from .elbo_perplexity import elbo_perplexity
from .exact_autoregressive import ExactAutoregressiveLM
from .latency_at_matched_quality import MatchedQuality, latency_at_matched_quality, matched_quality_table
from .lm_eval_sweep import LMEvalTasks, lm_eval_step_sweep
from .sampler_distribution_error import SamplerDistributionError, sampler_distribution_error
from .step_scaling import StepScaling, fit_step_scaling
from .steps_needed import Probe, StepsNeeded
from .steps_search import search_steps, search_steps_needed
from .sweep import sweep_steps
from .sweep_columns import SWEEP_COLUMNS, SweepColumn, sweep_row_json_schema
from .sweep_resume import read_sweep_rows
from .sweep_table import markdown_table
from .sweep_tasks import LanguageTask, PromptTask


__all__ = [
    "elbo_perplexity",
    "ExactAutoregressiveLM",
    "autoregressive_config",
    "train_autoregressive_baseline",
    "StepScaling",
    "fit_step_scaling",
    "Probe",
    "StepsNeeded",
    "search_steps",
    "search_steps_needed",
    "sweep_steps",
    "SWEEP_COLUMNS",
    "SweepColumn",
    "sweep_row_json_schema",
    "LMEvalTasks",
    "lm_eval_step_sweep",
    "read_sweep_rows",
    "markdown_table",
    "LanguageTask",
    "PromptTask",
    "MatchedQuality",
    "latency_at_matched_quality",
    "matched_quality_table",
    "AccuracyUnderParallelism",
    "accuracy_under_parallelism",
    "aup",
    "aup_table",
    "SamplerDistributionError",
    "sampler_distribution_error",
]
