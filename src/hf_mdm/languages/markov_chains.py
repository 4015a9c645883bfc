"""Random sparse stochastic matrices and exact stationary distributions, shared by the n-gram and HMM languages."""

import numpy as np
import torch

from .input_checks import check_positive_real


def random_cycle(size: int, rng: np.random.Generator) -> torch.LongTensor:
    """`successor[i]`: the element after i on a uniformly random cyclic order of 0..size-1."""
    order = rng.permutation(size)
    successor = np.empty(size, dtype=np.int64)
    successor[order] = np.roll(order, -1)
    return torch.from_numpy(successor)


def random_sparse_rows(
    num_rows: int,
    num_cols: int,
    support: int,
    concentration: float,
    rng: np.random.Generator,
    forced: torch.LongTensor | None = None,
) -> torch.Tensor:
    """A (num_rows, num_cols) float64 stochastic matrix: `support` nonzeros per row, Dirichlet(concentration) weights.

    Row r's support is `forced[r]` (when given) plus columns drawn uniformly without replacement.
    """
    if not 1 <= support <= num_cols:
        raise ValueError(f"support must lie in 1..{num_cols}, got {support}.")
    check_positive_real(concentration, "The Dirichlet concentration")
    keys = rng.random((num_rows, num_cols))
    if forced is not None:
        keys[np.arange(num_rows), forced.numpy()] = -1.0
    columns = np.argsort(keys, axis=1)[:, :support]
    weights = rng.gamma(concentration, size=(num_rows, support))
    matrix = np.zeros((num_rows, num_cols))
    np.put_along_axis(matrix, columns, weights / weights.sum(1, keepdims=True), axis=1)
    return torch.from_numpy(matrix)


def draw_rows(cumulative: torch.Tensor, rows: torch.LongTensor, generator: torch.Generator | None) -> torch.LongTensor:
    """One draw from each distribution `rows` of a table of cumulative sums, by inverse CDF.

    u ~ U[0, 1) is scaled by the row's total, so the draw is the first column whose cumulative sum exceeds it and a
    zero-probability column (whose cumulative sum equals its predecessor's) is never drawn.
    """
    table = cumulative.index_select(0, rows)
    u = torch.rand(rows.shape[0], 1, generator=generator, dtype=table.dtype) * table[:, -1:]
    return torch.searchsorted(table, u, right=True)[:, 0]


def check_stochastic(matrix: torch.Tensor, name: str) -> torch.Tensor:
    """Return `matrix` as float64 after checking that its last axis holds probability distributions."""
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    if bool((matrix < 0).any()) or not torch.allclose(
        matrix.sum(-1), torch.ones((), dtype=torch.float64), atol=1e-6, rtol=0
    ):
        raise ValueError(f"Every row of {name} must be a probability distribution (non-negative, summing to 1).")
    return matrix / matrix.sum(-1, keepdim=True)


def _closure(start: torch.BoolTensor, edges: torch.BoolTensor) -> torch.BoolTensor:
    """States reachable from `start` along `edges[i, j]` (i -> j)."""
    reached = start
    while True:
        grown = reached | edges[reached].any(0)
        if bool((grown == reached).all()):
            return reached
        reached = grown


def _solve_stationary(transition: torch.Tensor) -> torch.Tensor:
    """A solution of pi T = pi, sum(pi) = 1 (least squares: any one of them when several exist)."""
    size = transition.shape[0]
    system = transition.T - torch.eye(size, dtype=transition.dtype)
    system[-1] = 1.0
    target = torch.zeros(size, 1, dtype=transition.dtype)
    target[-1] = 1.0
    return torch.linalg.lstsq(system, target).solution[:, 0]


def stationary_distribution(transition: torch.Tensor, recurrent_state: int | None = None) -> torch.Tensor:
    """The unique pi with pi T = pi and sum(pi) = 1, exactly 0 on transient states.

    A recurrent state (given, or the most probable state of a stationary solution) has a closed class C: the states it
    reaches. pi is unique iff every state reaches C; it is then solved on C alone (irreducible: a regular system).
    """
    edges = transition > 0
    if recurrent_state is None:
        recurrent_state = int(_solve_stationary(transition).argmax())
    start = torch.zeros(transition.shape[0], dtype=torch.bool)
    start[recurrent_state] = True
    closed = _closure(start, edges)
    if not bool(_closure(closed, edges.T).all()):
        raise ValueError(
            "The chain has several stationary distributions (more than one closed class); make every state reach "
            "one common state, e.g. include a cycle through all states in the support."
        )
    pi = torch.zeros(transition.shape[0], dtype=transition.dtype)
    pi[closed] = _solve_stationary(transition[closed][:, closed]).clamp_min(0.0)
    return pi / pi.sum()
