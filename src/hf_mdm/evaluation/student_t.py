"""Quantiles of Student's t distribution with an integer number of degrees of freedom, without scipy.

For T ~ t(nu) and theta = atan(t / sqrt(nu)), A(t) = P(|T| <= t) has a finite closed form (Abramowitz & Stegun 26.7.3
and 26.7.4):

    nu odd:  A = (2 / pi) * (theta + sin(theta) cos(theta) * [1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ... (nu - 3 terms)])
    nu even: A = sin(theta) * [1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... (up to cos^(nu - 2))]

and is increasing in t, so the two-sided quantile is found by bisection on theta in (0, pi/2). Exact to rounding for
every nu; one function instead of a table that would end somewhere.
"""

import math


def _central_probability(theta: float, dof: int) -> float:
    """A(t) = P(|T| <= t) at theta = atan(t / sqrt(dof))."""
    cos2 = math.cos(theta) ** 2
    term, total = 1.0, 1.0
    first = 2 if dof % 2 else 1  # odd: 2/3, 2*4/(3*5), ...; even: 1/2, 1*3/(2*4), ...
    for k in range(first, dof - 1, 2):
        term *= cos2 * k / (k + 1)
        total += term
    if dof % 2:
        return 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total if dof > 1 else 0.0))
    return math.sin(theta) * total


def t_quantile(probability: float, dof: int) -> float:
    """The t with P(T <= t) = `probability` for T ~ t(dof), e.g. t_quantile(0.975, n - 2) for a 95% interval."""
    if not 0.5 <= probability < 1:
        raise ValueError(f"probability must lie in [0.5, 1), got {probability}.")
    if int(dof) != dof or dof < 1:
        raise ValueError(f"dof must be a positive integer, got {dof}.")
    central = 2 * probability - 1
    low, high = 0.0, math.pi / 2
    for _ in range(200):
        middle = (low + high) / 2
        if _central_probability(middle, int(dof)) < central:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    return math.sqrt(dof) * math.tan((low + high) / 2)
