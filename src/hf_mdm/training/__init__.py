"""Training: the collator that noises batches and the masked-diffusion objective."""

from .data_collator import DataCollatorForMaskedDiffusion
from .enable_diffusion_training import enable_diffusion_training
from .masked_diffusion_loss import masked_diffusion_loss


__all__ = ["DataCollatorForMaskedDiffusion", "enable_diffusion_training", "masked_diffusion_loss"]
