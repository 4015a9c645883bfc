"""The own-decoder registry and contract (`OwnDecoder`, see the package docstring), apart from the adapters that
subclass it and the finders that look them up."""

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


__all__ = ["OWN_DECODERS", "OwnDecoder", "register_own_decoder", "whole_blocks"]
