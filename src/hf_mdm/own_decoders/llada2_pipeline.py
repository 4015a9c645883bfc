"""diffusers' `LLaDA2Pipeline` (the `[llada2-pipeline]` extra) measured through its own block refinement.

The pipeline refines a masked canvas block by block (`block_length`, its `BlockRefinementScheduler`): each step
commits the masked tokens above `threshold` confidence (at least the scheduled count, at least `minimal_topk`), and
with `editing_threshold` it keeps refining a finished block for up to `max_post_steps` more forwards, replacing
tokens it now predicts differently. Its model is any module taking `(input_ids, attention_mask, position_ids)` and
returning `.logits` (hf-mdm's models do). The adapter maps the contract onto it:

- `block_size` is `block_length`: the sweep's block-size axis, or a block-causal model's own size (hf-mdm's LLaDA 2.x
  `LLaDA2MoeForMaskedDiffusion`: others are refused); the generated region is ceil(length / B) blocks, so
  `length` must be a multiple of B, and `steps` (the total budget) a multiple of the blocks:
  `num_inference_steps = steps / blocks` per block, at most B / minimal_topk (what a block can take);
- prompts are left-padded to a multiple of B (padding masked out), so the pipeline's blocks, which start at multiples
  of B counted from the first prompt token, are exactly the generated region's blocks;
- forwards: the calls of the pipeline's model for the batch, counted by a forward hook (editing forwards included),
  which also sets the logits of `suppress_tokens` to -inf;
  every row of the batch is charged the batch's forwards, as each ran in all of them;
- `seed` seeds the `torch.Generator` the pipeline samples with; sampling is at temperature 1 unless the options say
  otherwise (the pipeline's own default is greedy, under which a task's samples would not be independent draws);
- options: the pipeline's other arguments (`threshold`, `editing_threshold`, `max_post_steps`, `minimal_topk`,
  `temperature`, `top_p`, `top_k`, `sampling_method`, `eos_early_stop`, `eos_token_id`, `mask_token_id`: refused
  when it is not the model config's), checked by its own `check_inputs`.
"""

import inspect

import torch

from ..generation import DENOISERS
from .base import OwnDecoder, register_own_decoder, whole_blocks


@register_own_decoder("llada2_pipeline")
class LLaDA2PipelineDecoder(OwnDecoder):
    """`diffusers.LLaDA2Pipeline.__call__` under the sweep's contract (see the module docstring)."""

    strategy = "block_refinement"
    set_here = ("prompt", "messages", "input_ids", "attention_mask", "use_chat_template", "add_generation_prompt",
                "gen_length", "block_length", "num_inference_steps", "generator", "output_type", "return_dict",
                "callback_on_step_end", "callback_on_step_end_tensor_inputs")  # fmt: skip
    defaults = {"temperature": 1.0}
    install_extra = "[llada2-pipeline]"

    @classmethod
    def wraps(cls, model) -> bool:
        return any(c.__name__ == "LLaDA2Pipeline" and c.__module__.startswith("diffusers.")
                   for c in type(model).__mro__)  # fmt: skip

    def sampling_options(self, sampling: dict) -> dict:
        """An lm-eval task's sampling keys are the pipeline's own (`do_sample=False`: temperature 0, its greedy)."""
        sampling = dict(sampling)
        if sampling.pop("do_sample", True) is False:
            sampling["temperature"] = 0.0
        return sampling

    @property
    def module(self):
        return self.model.model

    def identity(self):
        """The model's weights, the scheduler's config and the pipeline's token ids (the scheduler's run-time state,
        its timesteps, changes with every call)."""
        return [self.module, dict(self.model.scheduler.config), self.model.mask_token_id, self.model.eos_token_id]

    def block_size(self) -> int | None:
        """A block-causal model's own block size (hf-mdm's LLaDA 2.x: `config.block_size`), which the pipeline must
        refine block by block; None for a bidirectional model (the sweep's block-size axis)."""
        adapter = getattr(self.module, "denoiser_adapter", None)
        return None if adapter is None else DENOISERS.build(adapter, model=self.module).block_size()

    def options(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.model.__call__).parameters)

    def _arguments(self, options: dict) -> dict:
        return {**self.defaults, **options}

    def check_cell(self, length, steps, block_size, options) -> None:
        blocks = whole_blocks(self.name, length, block_size, f"the length at block size {block_size}",
                              "pass lengths that are multiples of the block size (block_sizes)")  # fmt: skip
        per_block = whole_blocks(self.name, steps, blocks, f"the step budget over {blocks} blocks",
                                 "each block gets steps / blocks steps: pass steps that are multiples of "
                                 "it")  # fmt: skip
        arguments = self._arguments(options)
        minimal_topk = arguments.get("minimal_topk", 1)
        if isinstance(minimal_topk, int) and per_block * minimal_topk > block_size:
            raise ValueError(
                f"The {self.name!r} decoder commits at least minimal_topk={minimal_topk} tokens per step, so a block "
                f"of {block_size} takes at most {block_size // minimal_topk} steps, not {per_block}: lower steps to "
                f"{block_size // minimal_topk * blocks} or fewer."
            )
        mask_token_id = arguments.get("mask_token_id", self.model.mask_token_id)
        model_mask_token_id = getattr(getattr(self.module, "config", None), "mask_token_id", None)
        if mask_token_id is None or model_mask_token_id not in (None, mask_token_id):
            raise ValueError(
                f"The {self.name!r} decoder " + ("needs a mask token id" if mask_token_id is None else
                f"would fill with mask id {mask_token_id}, its model was trained with {model_mask_token_id}")
                + f": give the pipeline the model's tokenizer, or pass mask_token_id={model_mask_token_id or '<id>'}."
            )  # fmt: skip
        checked = ("minimal_topk", "threshold", "sampling_method")
        self.model.check_inputs(
            prompt=None, messages=None, input_ids=torch.zeros(1, 1, dtype=torch.long), gen_length=length,
            block_length=block_size, num_inference_steps=per_block, output_type="seq", callback_on_step_end=None,
            callback_on_step_end_tensor_inputs=None,
            **{name: arguments.get(name, inspect.signature(self.model.__call__).parameters[name].default)
               for name in checked},
        )  # fmt: skip

    def decode(self, input_ids, attention_mask, steps, length, block_size, suppress_tokens, seed, **options):
        pad = -input_ids.shape[1] % block_size
        input_ids = torch.nn.functional.pad(input_ids, (pad, 0), value=0)
        attention_mask = torch.nn.functional.pad(attention_mask, (pad, 0), value=0)
        forwards = []

        def count_and_suppress(module, args, output):
            forwards.append(1)
            if suppress_tokens:
                output.logits[..., suppress_tokens] = float("-inf")

        hook = self.module.register_forward_hook(count_and_suppress)
        try:
            output = self.model(
                input_ids=input_ids, attention_mask=attention_mask, gen_length=length, block_length=block_size,
                num_inference_steps=steps // (length // block_size), output_type="seq",
                generator=torch.Generator(self.model.device).manual_seed(seed), **self._arguments(options),
            )  # fmt: skip
        finally:
            hook.remove()
        return output.sequences, torch.full((input_ids.shape[0],), float(len(forwards)))

    @staticmethod
    def usage_lines(model_id: str) -> list[str]:
        return [
            "from diffusers import BlockRefinementScheduler, LLaDA2Pipeline",
            "from transformers import AutoModel, AutoTokenizer",
            "",
            f'model_id = "{model_id}"',
            "tokenizer = AutoTokenizer.from_pretrained(model_id)",
            "model = LLaDA2Pipeline(model=AutoModel.from_pretrained(model_id), scheduler=BlockRefinementScheduler(),",
            "                       tokenizer=tokenizer)",
        ]
