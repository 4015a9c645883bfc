"""Hub integration: model cards that publish the step-vs-error table."""

from .model_card import ModelCard
from .step_vs_error_plot import plot_step_vs_error


__all__ = ["ModelCard", "plot_step_vs_error"]
