"""Noise schedules alpha(t) of the masked forward process, shared by training and generation.

At time t in [0, 1] each token is kept with probability alpha(t) and replaced by [MASK] otherwise, independently;
alpha(0) = 1 and alpha decreases to (about) 0 at t = 1. Everything the rest of the library needs follows from alpha:

* training weight of the NELBO: w(t) = -alpha'(t) / (1 - alpha(t))            (1/t for the linear schedule)
* reverse step t -> s < t: a masked token is revealed with probability (alpha(s) - alpha(t)) / (1 - alpha(t))

A schedule is one small class registered by name; `get_schedule("cosine")` builds one, and a user adds their own with
`@register_schedule("name")` without editing anything else.
"""

import math

import torch

from .registry import Registry


SCHEDULES = Registry("noise schedule", "hf_mdm.register_schedule", "schedule_kwargs")
register_schedule = SCHEDULES.register


class NoiseSchedule:
    """Base class: subclasses implement `alpha(t)` and its derivative `alpha_derivative(t)`."""

    name: str = "base"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def alpha_derivative(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mask_probability(self, t: torch.Tensor) -> torch.Tensor:
        """1 - alpha(t): the probability that a token is masked at time t."""
        return 1.0 - self.alpha(t)

    def total_noise(self, t: torch.Tensor) -> torch.Tensor:
        """sigma(t) = -log alpha(t): the total noise a time-conditioned model (SEDD's DiT) is conditioned on."""
        return -torch.log(self.alpha(t))

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = -alpha'(t) / (1 - alpha(t)), the NELBO weight of a masked token's cross-entropy at time t."""
        return -self.alpha_derivative(t) / self.mask_probability(t)

    def reveal_probability(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(alpha(s) - alpha(t)) / (1 - alpha(t)): chance a token masked at t is revealed by time s < t."""
        return (self.alpha(s) - self.alpha(t)) / self.mask_probability(t)

    def to_dict(self) -> dict:
        return {"name": self.name, **vars(self)}

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in vars(self).items())
        return f"{type(self).__name__}({params})"


@register_schedule("linear")
class LinearSchedule(NoiseSchedule):
    """alpha(t) = 1 - t, alpha'(t) = -1, so w(t) = 1/t."""

    def alpha(self, t):
        return 1.0 - t

    def alpha_derivative(self, t):
        return torch.full_like(t, -1.0)


@register_schedule("cosine")
class CosineSchedule(NoiseSchedule):
    """alpha(t) = cos(pi t / 2), alpha'(t) = -(pi / 2) sin(pi t / 2)."""

    def alpha(self, t):
        return torch.cos(0.5 * math.pi * t)

    def alpha_derivative(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)


@register_schedule("log-linear")
class LogLinearSchedule(NoiseSchedule):
    """alpha(t) = 1 - (1 - eps) t (MDLM's log-linear noise, sigma(t) = -log(1 - (1 - eps) t)); alpha(1) = eps."""

    def __init__(self, eps: float = 1e-3):
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"log-linear schedule needs 0 <= eps < 1, got eps={eps}.")
        self.eps = eps

    def alpha(self, t):
        return 1.0 - (1.0 - self.eps) * t

    def alpha_derivative(self, t):
        return torch.full_like(t, -(1.0 - self.eps))

    def total_noise(self, t):
        """-log1p(-(1 - eps) t), as SEDD's and MDLM's `LogLinearNoise` compute it."""
        return -torch.log1p(-(1.0 - self.eps) * t)


@register_schedule("polynomial")
class PolynomialSchedule(NoiseSchedule):
    """alpha(t) = 1 - t^k, alpha'(t) = -k t^(k-1); k = 1 is the linear schedule."""

    def __init__(self, exponent: float = 2.0):
        if exponent <= 0:
            raise ValueError(f"polynomial schedule needs a positive exponent, got exponent={exponent}.")
        self.exponent = exponent

    def alpha(self, t):
        return 1.0 - t.pow(self.exponent)

    def alpha_derivative(self, t):
        return -self.exponent * t.pow(self.exponent - 1.0)


def get_schedule(schedule: "str | NoiseSchedule", **kwargs) -> NoiseSchedule:
    """Return a schedule instance from a registered name (with its keyword arguments) or pass an instance through."""
    if isinstance(schedule, NoiseSchedule):
        if kwargs:
            raise ValueError("Schedule keyword arguments are only accepted together with a schedule name.")
        return schedule
    return SCHEDULES.build(schedule, **kwargs)
