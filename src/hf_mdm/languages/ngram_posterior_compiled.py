r"""Exact symbol posteriors of an order-n Markov chain, compiled with numba: forward-backward over the context
windows each row *reaches*, row by row.

The same posterior as `ngram_posterior` (see its docstring for the notation, pi and the ignored symbols), in a loop
that numba compiles. With m = n - 1 the state at position i is the window w_i = (x_{i-m+1}, ..., x_i), and the
virtual window at position -1 is distributed as pi. The forward message is kept only on the windows it reaches, as a
list:

    alpha_i(t) = sum_{s -> t} alpha_{i-1}(s) P(x_i | s),     t = (s without its oldest digit, x_i),

where a masked x_i adds alpha_{i-1}(s) P(. | s) to the V windows of s's successor *block* (one contiguous row of P
times a scalar, which vectorises), and a revealed x_i adds only its own entry and renormalises by the evidence (0
ignores the symbol, which is then spread as masked). A revealed symbol collapses the reached set: at half the tokens
masked a trigram over 32 symbols reaches about 128 of its 1,024 windows per position. A window that cannot emit a
revealed x_{i+1} is dropped as well (its beta is 0); if x_{i+1} turns out to be ignored, the step runs again keeping
it. The backward message is needed only on the kept windows, since every successor with P > 0 of a kept window is
kept (or has beta 0):

    beta_{i-1}(s) = sum_y P(y | s) beta_i(s without its oldest digit, y)        (y = x_i alone if it is revealed),

renormalised at every step; the posterior of a free x_i, sum over reached windows s ending in v of alpha_i(s) beta_i(s)
normalised, is summed in the same loop. Cost per position and pass: (reached windows) x V multiply-adds; memory: the
reached windows of one row with their two messages.
"""

import functools

import numpy as np
import torch


try:
    import numba
except ImportError:  # `ngram_posterior` uses its torch implementation
    numba = None


def _solve_rows(
    rows, symbols, observed, lengths, initial, probabilities, shift, out, log_masked, lowest
):  # pragma: no cover - compiled by numba; tests compare it with the torch implementation
    """Fill out[r, i] for every position i < lengths[r] of the rows r in `rows`: the posterior where x_i is free, a
    point mass where it is revealed. With `log_masked`, only the masked positions are written, with log p (`lowest`
    for log 0)."""
    num_states, vocab_size = probabilities.shape
    width = symbols.shape[1]
    # the reached windows of positions -1..width-1 of one row, flat; position i's are first[i + 1]:first[i + 2]
    states = np.empty(num_states * (width + 1), np.int64)
    alpha = np.empty(num_states * (width + 1), np.float64)
    beta = np.empty(num_states * (width + 1), np.float64)
    first = np.empty(width + 2, np.int64)
    scratch = np.zeros(num_states, np.float64)  # a dense message over all windows, kept zero between uses
    touched = np.zeros(shift, np.bool_)  # the blocks a step wrote to (block b: the windows b * V + y)
    touched_list = np.empty(shift, np.int64)
    ignored = np.zeros(width, np.bool_)
    keep_all = np.zeros(width, np.bool_)  # steps that keep every window (the next revealed symbol is ignored)
    weights = np.empty(vocab_size, np.float64)
    can_emit = (probabilities != 0.0).T.copy()  # can_emit[y, s]: P(y | s) > 0
    everything = np.ones(num_states, np.bool_)
    # The loops of the masked steps (most of the work) index with np.uint64: numba fixes up negative indices on every
    # access with a signed index, which costs 10-25% there (measured at 50% masked); in the revealed steps it made no
    # difference. A window s's row of P is flat[s * stride : (s + 1) * stride], and block b of a dense message is
    # scratch[b * stride : (b + 1) * stride].
    flat = probabilities.ravel()
    stride = np.uint64(vocab_size)
    for row in rows:
        length = lengths[row]
        # 1. position -1: the windows pi gives weight
        count = 0
        for s in range(num_states):
            if initial[s] > 0.0:
                states[count] = s
                alpha[count] = initial[s]
                count += 1
        first[0], first[1] = 0, count
        # 2. forward: each reached window adds alpha * P(. | window) to its successor block in scratch (only x_i's
        #    entry when x_i is revealed; evidence 0 ignores x_i, which is then spread as masked), then the nonzero
        #    windows of the touched blocks are listed, except those that cannot emit x_{i+1} when it is revealed
        #    (their beta is 0). If x_{i+1} then turns out ignored, step i runs again keeping them.
        keep_all[:length] = False
        i = 0
        while i < length:
            begin, end = first[i], first[i + 1]
            fill = end
            num_touched = 0
            y = symbols[row, i]
            if i + 1 < length and observed[row, i + 1] and not keep_all[i]:
                allowed = can_emit[symbols[row, i + 1]]
            else:
                allowed = everything
            evidence = 0.0
            if observed[row, i]:
                for j in range(begin, end):
                    s = states[j]
                    mass = alpha[j] * probabilities[s, y]
                    block = s % shift  # the successor block: the window's digits but the oldest
                    scratch[block * vocab_size + y] += mass
                    evidence += mass
                    touched_list[num_touched] = block
                    num_touched += not touched[block]
                    touched[block] = True
                inverse_evidence = 1.0 / evidence if evidence > 0.0 else 0.0
                for b in range(num_touched):
                    t = touched_list[b] * vocab_size + y
                    states[fill] = t
                    alpha[fill] = scratch[t] * inverse_evidence
                    fill += (scratch[t] != 0.0) & allowed[t]
                    scratch[t] = 0.0
                    touched[touched_list[b]] = False
            ignored[i] = observed[row, i] and evidence == 0.0  # probability 0 given the revealed symbols before it
            if ignored[i] and i > 0 and not keep_all[i - 1]:
                keep_all[i - 1] = True  # step i - 1 dropped windows by x_i: run it again keeping them
                i -= 1
                continue
            if not observed[row, i] or ignored[i]:  # T is stochastic: the sum is kept
                num_touched = 0
                for j in range(np.uint64(begin), np.uint64(end)):
                    s = states[j]
                    weight = alpha[j]
                    block = s % shift
                    into, spread = np.uint64(block) * stride, np.uint64(s) * stride
                    for c in range(stride):
                        scratch[into + c] += weight * flat[spread + c]
                    touched_list[num_touched] = block
                    num_touched += not touched[block]
                    touched[block] = True
                for b in range(num_touched):
                    base = np.uint64(touched_list[b]) * stride
                    for c in range(stride):
                        t = base + c
                        value = scratch[t]
                        states[np.uint64(fill)] = t
                        alpha[np.uint64(fill)] = value
                        fill += (value != 0.0) & allowed[t]
                        scratch[t] = 0.0
                    touched[touched_list[b]] = False
            first[i + 2] = fill
            i += 1
        # 3. backward from beta = 1 at the row's end: beta_{i-1} from beta_i renormalised (by `scale`), and with it
        #    the posterior weights of position i - 1, sum over windows ending in v of alpha * beta
        beta[first[length] : first[length + 1]] = 1.0
        scale = 1.0
        weights[:] = 0.0
        for j in range(first[length], first[length + 1]):
            weights[states[j] % vocab_size] += alpha[j]
        for i in range(length - 1, -1, -1):
            if log_masked:
                if not observed[row, i]:
                    norm = 1.0 / weights.sum()
                    for v in range(vocab_size):
                        out[row, i, v] = np.log(weights[v] * norm) if weights[v] > 0.0 else lowest
            elif not observed[row, i] or ignored[i]:
                norm = 1.0 / weights.sum()
                for v in range(vocab_size):
                    out[row, i, v] = weights[v] * norm
            else:  # a point mass
                out[row, i, :] = 0.0
                out[row, i, symbols[row, i]] = 1.0
            if i == 0:
                break
            begin, end = first[i + 1], first[i + 2]
            for j in range(np.uint64(begin), np.uint64(end)):
                scratch[np.uint64(states[j])] = beta[j] * scale
            weights[:] = 0.0
            total = 0.0
            if not observed[row, i] or ignored[i]:
                for j in range(np.uint64(first[i]), np.uint64(begin)):
                    s = states[j]
                    following, spread = np.uint64(s % shift) * stride, np.uint64(s) * stride
                    value = 0.0
                    for c in range(stride):
                        value += flat[spread + c] * scratch[following + c]
                    beta[j] = value
                    total += value
                    weights[s % vocab_size] += alpha[j] * value
            else:
                y = symbols[row, i]
                for j in range(first[i], begin):
                    s = states[j]
                    value = probabilities[s, y] * scratch[(s % shift) * vocab_size + y]
                    beta[j] = value
                    total += value
                    weights[s % vocab_size] += alpha[j] * value
            scale = 1.0 / total
            for j in range(np.uint64(begin), np.uint64(end)):
                scratch[np.uint64(states[j])] = 0.0


def compiled_available() -> bool:
    """Whether numba is installed (`pip install "hf-mdm[oracle]"`), so the compiled posterior can run."""
    return numba is not None


@functools.cache
def _kernel():
    """`_solve_rows` compiled (a few seconds, once per process; cached on disk where numba can write)."""
    # reassociated sums (vectorised dot products) change results by rounding only; no ZeroDivisionError checks
    options = {"nogil": True, "fastmath": {"reassoc", "contract"}, "error_model": "numpy"}
    try:
        return numba.njit(cache=True, **options)(_solve_rows)
    except RuntimeError:  # no writable cache location: compile in memory
        return numba.njit(**options)(_solve_rows)


def compiled_ngram_posterior(language, rows, symbols, observed, lengths, out, log_masked: bool = False):
    """Write p(x_i = v | revealed symbols) into `out` (num, width, V) at each position i < lengths[r] of the rows r in
    `rows` (a point mass at a revealed symbol that is not ignored). With `log_masked`, write log p at the masked
    positions only, the lowest value of out's dtype for log 0, and leave the other positions as they are.

    `rows` (k,) long, `symbols` (num, width) long, `observed` (num, width) bool, `lengths` (num,) long; `out` may be
    strided (the first V columns of an oracle's logits).
    """
    if numba is None:
        raise ImportError('The compiled n-gram posterior needs numba: pip install "hf-mdm[oracle]".')
    _kernel()(
        rows.numpy(),
        symbols.contiguous().numpy(),
        observed.contiguous().numpy(),
        lengths.contiguous().numpy(),
        language.initial.numpy(),
        language.probabilities.numpy(),
        language._shift,
        out.numpy(),
        log_masked,
        torch.finfo(out.dtype).min,
    )
