"""Hub integration: model cards that publish the step-vs-error table, and the figures they and `hf-mdm reproduce`
draw."""

from .model_card import ModelCard
from .step_vs_error_plot import plot_step_vs_error
from .steps_needed_plot import plot_steps_needed


__all__ = ["ModelCard", "plot_step_vs_error", "plot_steps_needed"]
