"""DiTPretrainedMixin: `DiffusionPretrainedMixin` for `DiTForMaskedDiffusion`, plus saving back in the folder's own
format (SEDD, MDLM or BD3-LM) for users of the authors' code."""

from .base import CHECKPOINT_FORMATS
from .pretrained_mixin import DiffusionPretrainedMixin


class DiTPretrainedMixin(DiffusionPretrainedMixin):
    """`save_pretrained(original_format=True)` writes the format the model was read from."""

    def save_pretrained(self, save_directory, *args, original_format: bool = False, **kwargs):
        """`DiffusionPretrainedMixin.save_pretrained`, plus

        original_format: write the folder in the format the model was read from (`config.checkpoint_format`): its
            config.json as read and the weights under the authors' names (`DiTCheckpointFormat.save_original`).
        """
        if not original_format:
            return super().save_pretrained(save_directory, *args, **kwargs)
        if self.config.checkpoint_format not in CHECKPOINT_FORMATS:
            raise ValueError(
                "original_format=True writes the format the model was read from, and this model was not read from "
                "a SEDD, MDLM or BD3-LM folder (config.checkpoint_format is None). Save it as an hf-mdm folder."
            )
        if args or kwargs:
            raise ValueError(f"original_format=True writes config.json and model.safetensors only; drop {kwargs}.")
        CHECKPOINT_FORMATS[self.config.checkpoint_format].save_original(self, save_directory)


__all__ = ["DiTPretrainedMixin"]
