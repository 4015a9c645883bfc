"""`pipeline("text-generation", model=...)` for masked diffusion LMs: a folder or an instance, ours or a stock masked
LM given `enable_diffusion_generation`, bare or wrapped in a PEFT adapter, with the step budget as generation
keywords.

    generator = pipeline("text-generation", model="path/to/mdm")
    generator("the cat", max_new_tokens=16, steps=8, strategy="confidence", block_length=8)

`import hf_mdm` registers `TextGenerationPipelineRouter` for the task (`register_text_generation_pipeline`, through
transformers' public `PIPELINE_REGISTRY.register_pipeline`); it builds transformers' own `TextGenerationPipeline` for
every other model, so causal LMs are untouched. For a diffusion model (`DiffusionTextGenerationPipeline`):
- generation follows the model's generation_config, as `model.generate()` does: none of the pipeline's defaults for
  causal LMs (256 new tokens, sampling at temperature 0.7) is added, so when nothing sets the length it is
  `generate()`'s default (32 new tokens cut to the positions the model has left after the prompt and to a multiple of
  `block_length`; 0 when the prompt has [MASK] tokens to fill; a prompt that leaves no room is a ValueError);
- the full text is the prompt as typed followed by the rest of the decoded canvas, spaced as the tokenizer decodes
  it (transformers appends the new tokens decoded alone, which glues words for word-level and WordPiece tokenizers);
  a prompt with [MASK] tokens is filled in place, so its full text is the decoded canvas (the prompt as typed would
  show the [MASK] tokens unfilled).
"""

import functools
import logging

from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.text_generation import ReturnType, TextGenerationPipeline

from .generation.mixin import DiffusionGenerationMixin
from .transformers_compat import TextGenerationPipelineWithoutDefaults


TASK = "text-generation"


def pipeline_model(args: tuple, kwargs: dict):
    """The model a pipeline class is built with (`pipeline()` passes it as `model=`)."""
    return kwargs["model"] if "model" in kwargs else args[0]


def has_diffusion_generate(model) -> bool:
    """Whether `model.generate()` decodes by masked diffusion: the model has it, or it is a PEFT wrapper (such as
    `PeftModelForCausalLM`) whose generate() runs its base model's."""
    base = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    return isinstance(base, DiffusionGenerationMixin)


class DiffusionTextGenerationPipeline(TextGenerationPipelineWithoutDefaults):
    """The text-generation pipeline for a model with diffusion `generate()` (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        model = pipeline_model(args, kwargs)
        if not has_diffusion_generate(model):
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
        diffusion = has_diffusion_generate(pipeline_model(args, kwargs))
        return (DiffusionTextGenerationPipeline if diffusion else TextGenerationPipeline)(*args, **kwargs)


def _not_an_overwrite_notice(record: logging.LogRecord) -> bool:
    return "is already registered" not in record.getMessage()


def register_text_generation_pipeline(model_class: type) -> None:
    """Make `pipeline("text-generation", ...)` build `TextGenerationPipelineRouter`, and load a folder with
    `model_class` when the task's Auto classes decline it, with transformers' public
    `PIPELINE_REGISTRY.register_pipeline` (the task's default model and type are kept). Registering over the built-in
    task is the intent, so its "already registered" notice is not logged."""
    _, entry, _ = PIPELINE_REGISTRY.check_task(TASK)
    classes = tuple(entry["pt"]) + ((model_class,) if model_class not in entry["pt"] else ())
    registry_logger = logging.getLogger(type(PIPELINE_REGISTRY).__module__)
    registry_logger.addFilter(_not_an_overwrite_notice)
    try:
        PIPELINE_REGISTRY.register_pipeline(
            TASK, TextGenerationPipelineRouter, pt_model=classes, default=entry.get("default"), type=entry.get("type")
        )
    finally:
        registry_logger.removeFilter(_not_an_overwrite_notice)
