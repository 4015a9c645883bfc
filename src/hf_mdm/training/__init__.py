"""Training: the collator that noises batches and the masked-diffusion objective."""

from ..masked_diffusion_objective import masked_diffusion_loss
from .data_collator import DataCollatorForMaskedDiffusion
from .enable_diffusion_training import enable_diffusion_training


__all__ = ["DataCollatorForMaskedDiffusion", "enable_diffusion_training", "masked_diffusion_loss"]
