"""SEDD's samplers (`sampling.get_pc_sampler` of louaaron/Score-Entropy-Discrete-Diffusion@0605786): the Euler and
analytic predictors, the final Denoiser step, and the prefix/suffix projection of `run_sample_cond.py`."""

import torch

from ...value_checks import is_integer
from .base import PublishedSampler, check_final_time, check_token, register_published_sampler, reverse_time_steps
from .categorical import keep_unmasked, reveal_weights, sample_categorical


def check_tokens(tokens, name: str, config) -> list[int]:
    """A list/tuple/1-D tensor of token ids as a list of ints, else a ValueError naming `name`."""
    if isinstance(tokens, torch.Tensor):
        if tokens.ndim != 1:
            raise ValueError(f"{name} must be one sequence of token ids (1-D), got shape {tuple(tokens.shape)}.")
        tokens = tokens.tolist()
    if not isinstance(tokens, (list, tuple)) or not all(is_integer(token) for token in tokens):
        raise ValueError(f"{name} must be a list of token ids (the same for every row), got {tokens!r}.")
    return [check_token(token, name, config) for token in tokens]


@register_published_sampler("sedd_euler")
class SEDDEuler(PublishedSampler):
    """x_T = all [MASK]; on the grid linspace(1, eps, steps + 1) each step t -> s = t - dt calls the model at
    sigma(t) and draws each masked position from Euler's reverse rates of the absorbing graph,

        [dt sigma'(t) s_j (j a token),  1 - dt sigma'(t) sum_j s_j]  =  [p̂_j (t - s),  t - (t - s) sum_j p̂_j] / t

    (s_j = p̂_j / expm1(sigma(t)) and dt sigma'(t) / expm1(sigma(t)) = dt / t for the log-linear noise), p̂ = exp(logits)
    UNNORMALISED as SEDD's samplers use it (normalising changes the samples); one float32 uniform tensor (B, L, V) per
    step. The Denoiser at t = eps then draws every masked position from p̂ over the tokens (a sample, not an argmax; a
    (B, L, V - 1) uniform tensor). Revealed tokens never change.

    `prefix`, `suffix`: `run_sample_cond.py`'s infilling: the tokens are written at positions 0.. and ..length-1
    before every step and after the last (the same tokens in every row). SEDD has no other prompt or padding support.
    """

    family = "SEDD"
    output_parametrization = "score"

    def __init__(self, prefix=(), suffix=(), eps=1e-5):
        self.prefix, self.suffix, self.eps = prefix, suffix, check_final_time(eps)

    def check_run(self, config, batch_size, length, steps, numpy_random_state):
        super().check_run(config, batch_size, length, steps, numpy_random_state)
        prefix, suffix = check_tokens(self.prefix, "prefix", config), check_tokens(self.suffix, "suffix", config)
        if len(prefix) + len(suffix) > length:
            raise ValueError(
                f"prefix ({len(prefix)} tokens) and suffix ({len(suffix)} tokens) do not fit in length={length}: "
                "raise length."
            )
        return {"prefix": prefix, "suffix": suffix}

    def run(self, model, config, batch_size, length, steps, generator, numpy_random_state, prefix, suffix):
        mask, schedule = config.mask_token_id, config.noise_schedule
        locations = list(range(len(prefix))) + list(range(length - len(suffix), length))
        given = torch.tensor(prefix + suffix, dtype=torch.long, device=model.device)
        x = torch.full((batch_size, length), mask, device=model.device)
        for t, s in reverse_time_steps(steps, self.eps, batch_size, model.device):
            x[:, locations] = given
            probs = model(x, schedule.total_noise(t).reshape(-1)).exp()
            if s is None:
                proposal = sample_categorical(probs[..., :-1], generator)  # [MASK] is the last id (DiTConfig)
            else:
                weights = reveal_weights(probs, t[..., None], s[..., None], mask, normalized=False)
                proposal = sample_categorical(weights, generator)
            x = keep_unmasked(x, proposal, mask)
        x[:, locations] = given
        return x


@register_published_sampler("sedd_analytic")
class SEDDAnalytic(SEDDEuler):
    """SEDD's analytic (Tweedie tau-leaping) predictor: a masked position goes to token j with weight
    s_j (e^{sigma(t) - sigma(s)} - 1) and stays masked with 1 - (e^{sigma(t) - sigma(s)} - 1) sum_j s_j. For the
    log-linear noise e^{sigma(t) - sigma(s)} - 1 = dt sigma'(t) exactly, so these are Euler's weights and the ids are
    the same (the authors' fixture agrees); the class exists so that the authors' name selects it."""
