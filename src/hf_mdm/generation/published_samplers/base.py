"""`PublishedSampler`: the base of the authors' samplers, and the checks every one of them makes before any forward.

A sampler is built with its own options (`PUBLISHED_SAMPLERS.build(name, **options)`) and run on a model with
`sample(model, batch_size=, length=, steps=, generator=, numpy_random_state=)`. It calls only
`model(input_ids, sigma=sigma).logits` (the DiT API of `DiTForMaskedDiffusion`), through `CountedModel`.
"""

import torch

from ...registry import Registry
from ...value_checks import check_integer, is_real


PUBLISHED_SAMPLERS = Registry(
    "published sampler", "hf_mdm.generation.published_samplers.register_published_sampler", "sampler arguments"
)
register_published_sampler = PUBLISHED_SAMPLERS.register


def build_published_sampler(name, prompted: bool, **kwargs):
    """`PUBLISHED_SAMPLERS.build(name, **kwargs)`, after refusing a sampler of the other kind: a prompted one
    (continues a prompt: `decode_like_authors`) where an unprompted one is asked for (`sample_like_authors`), and the
    reverse."""
    PUBLISHED_SAMPLERS.check(name)
    if PUBLISHED_SAMPLERS[name].prompted != prompted:
        fix = (
            "decode_like_authors(model, name, input_ids, ...)"
            if PUBLISHED_SAMPLERS[name].prompted
            else "sample_like_authors(model, name, batch_size=, length=, steps=, generator=)"
        )
        kind = "continues a prompt" if PUBLISHED_SAMPLERS[name].prompted else "samples without a prompt"
        raise ValueError(f"The {name!r} published sampler {kind}: call {fix}.")
    return PUBLISHED_SAMPLERS.build(name, **kwargs)


class CountedModel:
    """The model as the samplers call it: float32 logits of `model(input_ids, sigma=sigma)`, calls counted."""

    def __init__(self, model):
        self.model, self.device, self.calls = model, model.device, 0

    def __call__(self, input_ids: torch.LongTensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(input_ids, sigma=sigma).logits.float()


def check_token(value, name: str, config) -> int:
    """`value` as a token id of the model's vocabulary other than [MASK], else a ValueError naming `name`."""
    token = check_integer(value, name, 0)
    if token >= config.vocab_size or token == config.mask_token_id:
        raise ValueError(
            f"{name}={token} is not a token of this model: ids are 0..{config.vocab_size - 1} and "
            f"{config.mask_token_id} is [MASK]."
        )
    return token


def check_final_time(eps) -> float:
    """`eps` of MDLM's and SEDD's grid as a float in (0, 1), else a ValueError."""
    if not is_real(eps) or not 0.0 < eps < 1.0:
        raise ValueError(f"eps (the last time of the grid linspace(1, eps, steps + 1)) must be in (0, 1): {eps!r}.")
    return float(eps)


def reverse_time_steps(steps: int, eps: float, batch_size: int, device):
    """MDLM's and SEDD's grid: timesteps = linspace(1, eps, steps + 1), dt = (1 - eps) / steps. Yields the steps'
    (t, s = t - dt) as (batch_size, 1) float32, then (eps, None) for the final denoising forward."""
    timesteps = torch.linspace(1, eps, steps + 1, device=device)
    dt = (1 - eps) / steps
    ones = torch.ones(batch_size, 1, device=device)
    for i in range(steps):
        t = timesteps[i] * ones
        yield t, t - dt
    yield timesteps[-1] * ones, None


class PublishedSampler:
    """Base class. `output_parametrization` and `block_causal` say which DiT models the authors' sampler was made for;
    `uses_numpy_random_state`: it makes numpy draws (BD3-LM's first-hitting times); `prompted`: False (the samplers
    that continue a prompt are `PromptedPublishedSampler`s, run by `decode_like_authors`)."""

    name: str
    family: str
    output_parametrization: str
    block_causal = False
    uses_numpy_random_state = False
    prompted = False

    def sample(self, model, *, batch_size, length, steps, generator, numpy_random_state=None):
        """(ids (batch_size, length), number of model forwards). Every argument is checked before the first forward."""
        config = self.check_model(model)
        batch_size = check_integer(batch_size, "batch_size", 1)
        length = check_integer(length, "length", 1)
        steps = check_integer(steps, "steps", 1)
        if not isinstance(generator, torch.Generator):
            raise ValueError(
                f"generator must be a torch.Generator (the authors' global torch RNG after `manual_seed(seed)` is "
                f"`torch.Generator().manual_seed(seed)`), got {type(generator).__name__}."
            )
        if generator.device.type != model.device.type:
            raise ValueError(
                f"generator is on {generator.device} but the model on {model.device}: the draws are made where the "
                f"model's probabilities are; pass torch.Generator(device=model.device).manual_seed(seed)."
            )
        if numpy_random_state is not None and not self.uses_numpy_random_state:
            raise ValueError(f"The {self.name!r} sampler makes no numpy draws: pass numpy_random_state=None.")
        options = self.check_run(config, batch_size, length, steps, numpy_random_state)
        counted = CountedModel(model)
        with torch.no_grad():
            ids = self.run(counted, config, batch_size, length, steps, generator, numpy_random_state, **options)
        return ids, counted.calls

    def check_model(self, model):
        """The model's config, after refusing a model this sampler was not published for or one in training mode."""
        config = getattr(model, "config", None)
        if getattr(config, "output_parametrization", None) is None or getattr(config, "mask_token_id", None) is None:
            raise ValueError(
                f"The {self.name!r} sampler needs a DiT model (hf_mdm.DiTForMaskedDiffusion, e.g. a {self.family} "
                "checkpoint loaded with from_pretrained); this model's config has no output_parametrization/"
                "mask_token_id."
            )
        if config.output_parametrization != self.output_parametrization:
            others = sorted(
                name
                for name, sampler in PUBLISHED_SAMPLERS.items()
                if not sampler.prompted and sampler.output_parametrization == config.output_parametrization
            )
            raise ValueError(
                f"The {self.name!r} sampler reads {self.family}'s {self.output_parametrization!r} output, but this "
                f"model's output_parametrization is {config.output_parametrization!r}: use one of {others}."
            )
        block_size = getattr(config, "block_size", None)
        if (block_size is not None) != self.block_causal:
            kind = "block-causal" if self.block_causal else "bidirectional"
            fix = "bd3lm_semi_ar" if block_size is not None else "mdlm_ddpm_cache, sedd_euler or sedd_analytic"
            raise ValueError(
                f"The {self.name!r} sampler was published for a {kind} model, but this model has "
                f"block_size={block_size!r}: use {fix}."
            )
        if getattr(config, "schedule", None) != "log-linear":
            raise ValueError(
                f"The authors' samplers assume the log-linear noise sigma(t) = -log(1 - (1 - eps) t); this model's "
                f"schedule is {getattr(config, 'schedule', None)!r}. Use model.generate() for other schedules."
            )
        if model.training:
            raise ValueError("The model is in training mode (dropout changes the draws): call model.eval() first.")
        return config

    def check_run(self, config, batch_size, length, steps, numpy_random_state) -> dict:
        """Refuse what this sampler's authors do not support; return the options resolved against this model, which
        `run` gets as keywords (the sampler itself is not changed). Here: a canvas longer than the model's positions
        (MDLM and SEDD sample the whole sequence in one window)."""
        if length > config.max_position_embeddings:
            raise ValueError(
                f"length={length} exceeds the model's max_position_embeddings ({config.max_position_embeddings}): "
                f"{self.family}'s sampler denoises the whole sequence at once; pass length <= "
                f"{config.max_position_embeddings}."
            )
        return {}

    def run(self, model, config, batch_size, length, steps, generator, numpy_random_state, **options):
        raise NotImplementedError
