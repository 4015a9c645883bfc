"""Diffusion LMs that bring their own decoder, measured like ours: one small adapter class each, found by name.

`sweep_steps`, `ModelCard.from_sweep`, `hf-mdm sweep`/`card` and the lm-eval model type `hf-mdm` decode our models
with hf-mdm's `generate()`. A model whose decoding loop is its own (transformers' DiffusionGemma `generate()`,
diffusers' `LLaDA2Pipeline`) is decoded by that loop, through an `OwnDecoder` adapter registered in `OWN_DECODERS`
(`@register_own_decoder(name)`); `own_decoder(model)` finds the adapter of a model. The contract:

    decode(input_ids, attention_mask, steps, length, block_size, suppress_tokens, seed, **options)
        -> (ids (B, length), forwards (B,))

the `length` generated ids of every row and the model forwards each row took, in `steps` total reverse steps
(a budget over the ceil(length / block_size) blocks: `steps / blocks` per block, the sweep's `steps_per_block`),
never generating the ids in `suppress_tokens` (a task's non-symbols; None: none).
The sweep scores the ids as it scores ours and reports tokens per forward = generated tokens / forwards.

`check(strategy, length, steps, block_size, options)` refuses, before any cell runs, what the decoder cannot honour
(another strategy than its own, a length or step budget it cannot split, an option it does not read), naming the fix.
"""

from transformers import PreTrainedConfig

from ..registry import Registry


OWN_DECODERS = Registry("own-decoder adapter", "register_own_decoder", "adapter arguments")
register_own_decoder = OWN_DECODERS.register


class OwnDecoder:
    """An adapter from a model's own decoding loop to the sweep's contract (see the module docstring).

    Subclasses set `strategy` (the name the sweep's rows give the decoder's one decoding rule), `set_here` (the
    decoder arguments the adapter sets from the contract, refused in `options`) and implement `wraps`, `options`,
    `check_cell`, `decode` and `usage_lines`; `block_size()` is None when the block size is the sweep's axis."""

    name: str
    strategy: str
    set_here: tuple[str, ...] = ()
    install_extra: str = ""  # the pip extra the decoder needs, e.g. "[llada2-pipeline]"
    model_types: tuple[str, ...] = ()  # the config.json model_types whose folders `from_pretrained` loads

    @classmethod
    def from_pretrained(cls, model_name_or_path: str, **kwargs):
        """The model of a folder of one of `model_types` (for `hf-mdm sweep`/`card` and lm-eval's `pretrained`)."""
        raise NotImplementedError

    def sampling_options(self, sampling: dict) -> dict:
        """The decoder's options for an lm-eval task's sampling keys (`do_sample`, `temperature`, `top_p`, `top_k`;
        `{"do_sample": False}` is greedy); a ValueError for what it cannot do."""
        if sampling:
            raise ValueError(f"The {self.name!r} decoder has no sampling setting for {sampling}; {self.sampling_fix}")
        return {}

    sampling_fix = "drop those generation_kwargs from the task (lm-eval: --gen_kwargs)"

    def __init__(self, model):
        self.model = model

    @classmethod
    def wraps(cls, model) -> bool:
        """Whether `model` decodes with this adapter's loop."""
        raise NotImplementedError

    @property
    def module(self):
        """The `torch.nn.Module` holding the weights (what a card reports)."""
        return self.model

    def block_size(self) -> int | None:
        """The decoder's own block size, or None when it decodes at the sweep's block size."""
        return None

    def identity(self):
        """What makes two runs of the decoder the same, for a resumed sweep's fingerprint (not its run-time state):
        by default the model (its weights)."""
        return self.model

    def options(self) -> tuple[str, ...]:
        """The keyword arguments of the decoder that a caller may set (the others are set by the adapter)."""
        raise NotImplementedError

    def check(self, strategy, length: int, steps: int, block_size: int, options: dict) -> None:
        """Refuse a cell the decoder cannot run as asked: `check_options`, then the decoder's checks of the cell
        (`check_cell`: the length and steps it can split, its own argument checks)."""
        self.check_options(strategy, options)
        self.check_cell(length, steps, block_size, options)

    def check_options(self, strategy, options: dict) -> None:
        """Refuse another strategy than the decoder's, an option it does not read or that the sweep sets, and an
        option value it refuses (`check_option_values`)."""
        if strategy != self.strategy:
            raise ValueError(
                f"{type(self.model).__name__} decodes with its own {self.strategy!r} rule (the {self.name!r} "
                f"adapter); it has no strategy {strategy!r}. Pass strategies=[{self.strategy!r}] (or leave it unset)."
            )
        fixed = sorted(set(options) & set(self.set_here))
        unknown = sorted(set(options) - set(self.options()) - set(self.set_here))
        if fixed or unknown:
            raise ValueError(
                f"The {self.name!r} decoder " + (f"has its arguments {fixed} set by the sweep (steps, lengths, "
                "block_sizes, seed)" if fixed else f"does not read {unknown}, which would be ignored")
                + f"; it reads {sorted(self.options())}."
            )  # fmt: skip
        self.check_option_values(options)

    def check_option_values(self, options: dict) -> None:
        """The decoder's own checks of its options that need no cell (none by default)."""

    def check_cell(self, length: int, steps: int, block_size: int, options: dict) -> None:
        raise NotImplementedError

    def decode(self, input_ids, attention_mask, steps, length, block_size, suppress_tokens, seed, **options):
        """(generated ids (B, length), forwards per row (B,) float) for one batch, sampled from `seed`, never
        generating `suppress_tokens`."""
        raise NotImplementedError

    @staticmethod
    def usage_lines(model_id: str) -> list[str]:
        """The card snippet's imports and the lines that load `model` (and `tokenizer`) from `model_id`."""
        raise NotImplementedError

    @classmethod
    def usage(cls, record: dict, model_id: str) -> list[str]:
        """The card's snippet: load the model from `model_id` and decode the first batch of a cell as the sweep did,
        from the cell's `generation` record (`sweep_steps`)."""
        cell, samples = record["generate"], record["samples"]
        prompts = samples["prompts"]
        inputs = (
            [f"prompts = {prompts!r}",
             'inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")']
            if prompts is not None
            else [f"input_ids = torch.full(({samples['rows']}, 1), tokenizer.bos_token_id)",
                  "inputs = {'input_ids': input_ids, 'attention_mask': torch.ones_like(input_ids)}"]
        )  # fmt: skip
        options = "".join(f", {key}={value!r}" for key, value in cell["options"].items())
        return [
            "```bash",
            f"pip install hf-mdm{cls.install_extra}",
            "```",
            "",
            "```python",
            "import torch",
            *cls.usage_lines(model_id),
            "",
            "from hf_mdm.own_decoders import OWN_DECODERS",
            "",
            f"# The cell strategy={cell['strategy']},length={cell['length']},steps={cell['steps']},"
            f"block_size={cell['block_size']}: its first batch as the sweep decoded it (seed {samples['seed']}),",
            f"# with the model's own decoder through hf-mdm's {cls.name!r} adapter.",
            f"decoder = OWN_DECODERS.build({cls.name!r}, model=model)",
            *inputs,
            f"ids, forwards = decoder.decode(inputs['input_ids'], inputs['attention_mask'], steps={cell['steps']}, "
            f"length={cell['length']}, block_size={cell['block_size']}, suppress_tokens={cell['suppress_tokens']!r}, "
            f"seed={samples['seed']}{options})",
            "print(tokenizer.batch_decode(ids, skip_special_tokens=True), forwards)",
            "```",
        ]


def whole_blocks(name: str, total: int, parts: int, what: str, fix: str) -> int:
    """total / parts when it is a whole number, else a ValueError naming `what` and the `fix`."""
    if total % parts:
        raise ValueError(f"The {name!r} decoder: {what} ({total}) is not a multiple of {parts}; {fix}.")
    return total // parts


def own_decoder_class(source) -> type[OwnDecoder] | None:
    """The adapter of a model folder (by its config.json `model_type`, before loading it) or of a model instance,
    else None."""
    if isinstance(source, str):
        model_type = PreTrainedConfig.get_config_dict(source)[0].get("model_type")
        return next((adapter for adapter in OWN_DECODERS.values() if model_type in adapter.model_types), None)
    decoder = own_decoder(source)
    return None if decoder is None else type(decoder)


def load_own_decoder_model(model_name_or_path: str, **from_pretrained_kwargs):
    """The model of a folder whose config.json `model_type` an adapter loads (DiffusionGemma's), else None."""
    adapter = own_decoder_class(model_name_or_path)
    return None if adapter is None else adapter.from_pretrained(model_name_or_path, **from_pretrained_kwargs)


def own_decoder(model) -> OwnDecoder | None:
    """The adapter of a model that brings its own decoder (the model itself when it is an adapter), else None."""
    if isinstance(model, OwnDecoder):
        return model
    for name, adapter in OWN_DECODERS.items():
        if adapter.wraps(model):
            return OWN_DECODERS.build(name, model=model)
    return None


from . import diffusion_gemma, llada2_pipeline  # noqa: E402, F401  (registers the adapters)


__all__ = [
    "OWN_DECODERS",
    "OwnDecoder",
    "load_own_decoder_model",
    "own_decoder",
    "own_decoder_class",
    "register_own_decoder",
]
