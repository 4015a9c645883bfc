"""transformers' DiffusionGemma (`DiffusionGemmaForBlockDiffusion`) measured through its own `generate()`.

DiffusionGemma decodes canvases of `config.canvas_length` tokens one after the other (its block size B), each in at
most `max_denoising_steps` entropy-bounded denoising steps, stopping a canvas early once it is stable and confident
(`stability_threshold`, `confidence_threshold`). The adapter maps the contract onto it:

- `steps`, the total budget, is `max_denoising_steps = steps / (length / B)` per canvas (a ceiling: the adaptive stop
  may use fewer, which the forwards show); `length` is `max_new_tokens` and must be a multiple of B (it generates
  whole canvases), and `steps` a multiple of the canvases;
- no EOS stop (`eos_token_id = pad_token_id = None`): every row generates `length` tokens, as the sweep's rows do;
- `suppress_tokens`: transformers' `SuppressTokensLogitsProcessor` on its logits (its output is their argmax);
- forwards: the decoder forwards of each row, read from the `tokens_per_forward` its output carries (generated tokens
  / decoder forwards, so forwards = length / tokens_per_forward); its encoder pass over each finished canvas (the KV
  cache of the prefix) is not counted, as its own `tokens_per_forward` does not count it;
- `seed`: its `generate()` samples from the global RNG, seeded with `seed` for the batch (the caller's RNG state is
  restored after), so a row depends on the batch it ran in, as the sweep's autoregressive row does;
- lm-eval: a task's greedy request (`do_sample=False`) is what it returns; other sampling keys are refused;
- options: the `DiffusionGemmaGenerationConfig` fields (`t_min`, `t_max`, `stability_threshold`,
  `confidence_threshold`, `sampler_config`, `cache_implementation`, ...), checked by building that config.
"""

import torch
from transformers import DiffusionGemmaForBlockDiffusion, LogitsProcessorList, SuppressTokensLogitsProcessor

from .base import OwnDecoder, register_own_decoder, whole_blocks


@register_own_decoder("diffusion_gemma")
class DiffusionGemmaDecoder(OwnDecoder):
    """`DiffusionGemmaForBlockDiffusion.generate()` under the sweep's contract (see the module docstring)."""

    strategy = "entropy_bound"
    set_here = ("max_new_tokens", "max_length", "max_denoising_steps", "eos_token_id", "pad_token_id",
                "return_dict_in_generate")  # fmt: skip
    model_types = ("diffusion_gemma",)

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, **kwargs):
        return DiffusionGemmaForBlockDiffusion.from_pretrained(model_name_or_path, **kwargs).eval()

    def sampling_options(self, sampling: dict) -> dict:
        """Greedy (`do_sample=False`) is what it returns: the argmax of its last logits; it has no other setting."""
        return super().sampling_options({} if sampling == {"do_sample": False} else sampling)

    sampling_fix = ("its output is the argmax of its last logits (greedy), and its sampling inside the refinement "
                    "is set by t_min and t_max: drop them from the task's generation_kwargs")  # fmt: skip

    @classmethod
    def wraps(cls, model) -> bool:
        return getattr(getattr(model, "config", None), "model_type", None) == "diffusion_gemma" and callable(
            getattr(model, "generate", None)
        )

    def block_size(self) -> int:
        return self.model.config.canvas_length

    def identity(self):
        """Its weights and the generation config whose fields it reads when the options leave them unset."""
        return [self.model, self.model.generation_config.to_dict()]

    def _config_class(self):
        return type(self.model.generation_config)

    def options(self) -> tuple[str, ...]:
        fields = vars(self._config_class()())
        return tuple(name for name in fields if not name.startswith("_") and name != "transformers_version")

    def check_cell(self, length, steps, block_size, options) -> None:
        canvases = whole_blocks(self.name, length, self.block_size(), "the length",
                                f"it generates whole canvases of canvas_length={self.block_size()}: pass lengths "
                                "that are multiples of it")  # fmt: skip
        whole_blocks(self.name, steps, canvases, f"the step budget over {canvases} canvases",
                     "each canvas gets steps / canvases denoising steps: pass steps that are multiples of "
                     "it")  # fmt: skip

    def check_option_values(self, options) -> None:
        try:
            self._config_class()(**options)
        except ValueError as error:
            raise ValueError(f"The {self.name!r} decoder's options {options}: {error}") from None

    def decode(self, input_ids, attention_mask, steps, length, block_size, suppress_tokens, seed, **options):
        device = self.model.device
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else None, device_type=device.type):
            torch.manual_seed(seed)
            output = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), max_new_tokens=length,
                max_denoising_steps=steps // (length // self.block_size()), eos_token_id=None, pad_token_id=None,
                return_dict_in_generate=True, **options,
                logits_processor=LogitsProcessorList([SuppressTokensLogitsProcessor(suppress_tokens, device)]
                                                     if suppress_tokens else []),
            )  # fmt: skip
        generated = output.sequences[:, input_ids.shape[1] :]
        return generated, (length / output.tokens_per_forward.float()).round()

    @staticmethod
    def usage_lines(model_id: str) -> list[str]:
        return [
            "from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion",
            "",
            f'model_id = "{model_id}"',
            "model = DiffusionGemmaForBlockDiffusion.from_pretrained(model_id)",
            "tokenizer = AutoTokenizer.from_pretrained(model_id)",
        ]
