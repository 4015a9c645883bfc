"""`pipeline("text-generation", model=...)` for masked diffusion LMs: a folder or an instance, ours or a stock masked
LM given `enable_diffusion_generation`, with the step budget as generation keywords.

    generator = pipeline("text-generation", model="path/to/mdm")
    generator("the cat", max_new_tokens=16, steps=8, strategy="confidence", block_length=8)

`import hf_mdm` routes the task through `TextGenerationPipelineRouter`, which builds transformers' own
`TextGenerationPipeline` for every other model, so causal LMs are untouched. For a diffusion model
(`DiffusionTextGenerationPipeline`):
- generation follows the model's generation_config, as `model.generate()` does: none of the pipeline's defaults for
  causal LMs (256 new tokens, sampling at temperature 0.7) is added;
- when nothing sets the length (no max_new_tokens or max_length in the call, the pipeline's keywords or the generation
  config), it is `generate()`'s default (32 new tokens; 0 when the prompt has [MASK] tokens to fill), cut to the
  positions the model has left after the prompt and to a multiple of `block_length`; a prompt that leaves no room is
  a ValueError naming the sizes;
- the full text is the prompt as typed followed by the rest of the decoded canvas, spaced as the tokenizer decodes
  it (transformers appends the new tokens decoded alone, which glues words for word-level and WordPiece tokenizers);
  a prompt with [MASK] tokens is filled in place, so its full text is the decoded canvas (the prompt as typed would
  show the [MASK] tokens unfilled).
"""

import functools

from transformers.pipelines.text_generation import ReturnType, TextGenerationPipeline

from .generation.mixin import DEFAULT_MAX_NEW_TOKENS, DiffusionGenerationMixin
from .transformers_compat import TextGenerationPipelineWithoutDefaults, generation_kwargs_given_at_init


LENGTH_KEYS = ("max_new_tokens", "max_length")


def pipeline_model(args: tuple, kwargs: dict):
    """The model a pipeline class is built with (`pipeline()` passes it as `model=`)."""
    return kwargs["model"] if "model" in kwargs else args[0]


class DiffusionTextGenerationPipeline(TextGenerationPipelineWithoutDefaults):
    """The text-generation pipeline for a model with diffusion `generate()` (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        model = pipeline_model(args, kwargs)
        if not isinstance(model, DiffusionGenerationMixin):
            raise ValueError(
                f"DiffusionTextGenerationPipeline needs a model with diffusion generate(), got "
                f"{type(model).__name__}; wrap a stock masked LM with `hf_mdm.enable_diffusion_generation`."
            )
        super().__init__(*args, **kwargs)

    def check_model_type(self, supported_models):
        """Supported: the model has diffusion `generate()` (checked at init); transformers' list names causal LMs."""

    def fills_prompt_masks(self, input_ids) -> bool:
        """Whether the prompt holds [MASK] tokens, which `generate()` fills in place."""
        mask_token_id = self.model.generation_config.mask_token_id
        return input_ids is not None and mask_token_id is not None and bool((input_ids == mask_token_id).any())

    def default_max_new_tokens(self, input_ids, requested: dict) -> int | None:
        """`generate()`'s default length cut to the room the prompt leaves; None when the request sets a length or the
        prompt has [MASK] tokens (then `generate()` fills only those)."""
        config = requested.get("generation_config") or self.model.generation_config
        if any(requested.get(key) is not None or getattr(config, key, None) is not None for key in LENGTH_KEYS):
            return None
        if self.fills_prompt_masks(input_ids):
            return None
        prompt_length = 0 if input_ids is None else input_ids.shape[1]
        room = getattr(self.model.config, "max_position_embeddings", None)
        new_tokens = DEFAULT_MAX_NEW_TOKENS if room is None else min(DEFAULT_MAX_NEW_TOKENS, room - prompt_length)
        block_length = requested.get("block_length", getattr(config, "block_length", None))
        if block_length:
            new_tokens -= new_tokens % block_length
        if new_tokens < 1:
            raise ValueError(
                f"The prompt has {prompt_length} tokens and the model accepts {room} positions: no room for new "
                f"tokens{f' in blocks of {block_length}' if block_length else ''}. Shorten the prompt."
            )
        return new_tokens

    def _forward(self, model_inputs, **generate_kwargs):
        requested = {**generation_kwargs_given_at_init(self), **generate_kwargs}
        new_tokens = self.default_max_new_tokens(model_inputs["input_ids"], requested)
        if new_tokens is not None:
            generate_kwargs["max_new_tokens"] = new_tokens
        return super()._forward(model_inputs, **generate_kwargs)

    def postprocess(self, model_outputs, return_type=ReturnType.FULL_TEXT, **kwargs):
        """transformers' records, with the full text read from the canvas: the prompt as typed, then the rest of the
        decoded canvas with its spacing (word-level and WordPiece tokenizers decode new tokens without the space
        that joins them to the prompt); when the prompt's [MASK] tokens were filled, the decoded canvas itself."""
        records = super().postprocess(model_outputs, return_type=return_type, **kwargs)
        prompt_text, input_ids = model_outputs["prompt_text"], model_outputs["input_ids"]
        if return_type != ReturnType.FULL_TEXT or not isinstance(prompt_text, str):
            return records
        skip_special_tokens = kwargs.get("skip_special_tokens")
        decode = functools.partial(
            self.tokenizer.decode,
            skip_special_tokens=True if skip_special_tokens is None else skip_special_tokens,
            clean_up_tokenization_spaces=kwargs.get("clean_up_tokenization_spaces"),
        )
        filled, prompt_length = self.fills_prompt_masks(input_ids), 0 if input_ids is None else input_ids.shape[-1]
        texts = []
        for sequence in model_outputs["generated_sequence"][0]:
            canvas, prompt = decode(sequence), decode(sequence[:prompt_length])
            texts.append(canvas if filled or not canvas.startswith(prompt) else prompt_text + canvas[len(prompt) :])
        return [{**record, "generated_text": text} for record, text in zip(records, texts)]


class TextGenerationPipelineRouter(TextGenerationPipeline):
    """What `pipeline("text-generation")` builds once hf-mdm is imported: `DiffusionTextGenerationPipeline` for a
    model with diffusion `generate()`, transformers' `TextGenerationPipeline` (exactly as before) for any other. It
    subclasses the latter only for the class attributes `pipeline()` reads before building (what to load)."""

    def __new__(cls, *args, **kwargs):
        diffusion = isinstance(pipeline_model(args, kwargs), DiffusionGenerationMixin)
        return (DiffusionTextGenerationPipeline if diffusion else TextGenerationPipeline)(*args, **kwargs)
