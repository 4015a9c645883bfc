r"""Exact symbol posteriors of an order-n Markov chain given some revealed symbols, by forward-backward over the
*free digits* of each context window, segment by segment.

Notation: m = n - 1, the chain's state at position i is its context window w_i = (x_{i-m+1}, ..., x_i) (positions
before the sequence are virtual and always free), P(y | w) the successor table, pi the stationary distribution of
the window at position 0 (the chain is stationary, so pi T = pi). A digit of a window is *fixed* when its position
is revealed (and not ignored, below) and *free* otherwise; the window's *pattern* says which digits are free.

**Messages over free digits.** The forward message alpha_i(w) = P(w_i = w, revealed x_<=i) vanishes unless w agrees
with the fixed digits, so it is a tensor over the free digits only: V^f numbers for f free digits, not V^m. One step

    alpha_{i+1}(w_2..w_m, y) = sum_{w_1} alpha_i(w_1..w_m) P(y | w_1..w_m)           (y = x_{i+1} if revealed)

sums over w_1 only when it is free and adds a digit only when y is free, so a step costs V^(f + [y free]) multiply-adds
at most, on one block of the successor table: P permuted to (fixed digits, free digits) and flattened, so the
block of a step is the row `base` (the flat index of the fixed digits). The backward message
beta_i(w) = P(revealed x_>i | w_i = w) obeys the transposed step, summing over y when it is free. The posterior of
a free x_i is the marginal of alpha_i beta_i over the window's last digit. Only a window with every digit free and a
free successor (a run of at least n masked positions) needs the dense step, V^(m+1) multiply-adds as a batched
matrix product, one (rows x V) @ (V x V) product per value of the other m-1 digits; for it the forward message keeps
its oldest digit last, so the product reads it in place. Messages are needed only up to a constant: a step to a
masked symbol keeps the forward sum (T is stochastic) and averages the backward message, so only a step to a
revealed symbol rescales (the forward message after it, the backward message before it).

**Segments.** Where m consecutive revealed symbols make the window fully fixed (a *cut*), alpha is a point mass and
beta a constant, so the chain splits: the positions between two cuts are an independent problem (a *segment*),
solved by a job that starts with a point mass at one cut (or with pi at the sequence start) and ends at the next cut
(beta = 1) or at the sequence end (beta = 1, since T 1 = 1). Revealed symbols past a cut whose context window is
revealed are read directly (their posterior is a point mass); a job starts only where something is unknown: at a
masked position, or at a revealed symbol whose probability given its revealed window is 0. All jobs advance one
position per step together, grouped by pattern, so a step is a few batched ops per pattern present and the Python
loops run as long as the longest segment, not the sequence. A sequence with no revealed symbol has posterior
emit(pi) everywhere and needs no loop.

**Ignored symbols.** A revealed symbol of probability 0 given the revealed symbols before it (a zero forward
evidence) is ignored in both passes: its digit becomes free, exactly as the position-by-position forward filter did.
A cut is real only if none of its m symbols is ignored, which only the job reaching it can tell. Jobs are therefore
speculative: each starts as if its cut were real, and a job that finds the cut at its end broken carries on to the
next real cut, so it covers the positions of the job after it. The first job of each row is real, and so is the job
starting after the cut where a real job ends; only real jobs write posteriors.

**Memory.** The forward messages of fully free windows are kept for the backward pass (V^m numbers each), so rows
are solved in chunks of about `budget` bytes of them.
"""

import torch

from .base import log_or_lowest
from .ngram_posterior_compiled import compiled_available, compiled_ngram_posterior


class StepType:
    """One step type: the pattern of the window at i (bit m-1-j set: digit j free) and whether x_{i+1} is free.

    Its successor table is P permuted to (fixed digits, free digits) and flattened to a matrix, so the block of a step
    is one row, `block_table[base]`, with `base` the flat index of the fixed digits. Messages are flat over their free
    digits, oldest first, except the forward message of a fully free window, which keeps its oldest digit last: the
    dense step then reads it in place as a batch of (rows x V) matrices, one per value of the other digits.
    """

    def __init__(self, language, pattern: int, successor_free: bool):
        V, m = language.vocab_size, language.n - 1
        full = 2**m - 1
        free = [bool(pattern >> (m - 1 - j) & 1) for j in range(m)] + [successor_free]
        fixed_digits = [j for j in range(m + 1) if not free[j]]
        free_digits = [j for j in range(m + 1) if free[j]]
        self.pattern = pattern
        self.target_pattern = ((pattern << 1) & full) | int(successor_free)
        self.dense = not fixed_digits  # every digit free: a batched matrix product
        self.vocab_size = V
        self.sums_first = free[0]  # the forward step sums over the oldest digit
        self.successor_width = V if successor_free else 1
        self.rest = V ** sum(free[1:m])  # free window digits other than the oldest
        # with m = 1 a window is one digit and the rotated order is the natural one
        self.source_rotated = pattern == full and m > 1  # alpha in: oldest digit last
        self.target_rotated = self.target_pattern == full and m > 1  # alpha out: oldest digit last
        table = language.probabilities.view((V,) * (m + 1))
        if self.dense:
            # forward[r, d_0, y] = P(y | d_0, r), backward[r, y, d_0] = the same, r = the other window digits
            self.forward_table = table.reshape(V, self.rest, V).permute(1, 0, 2).contiguous()
            self.backward_table = self.forward_table.transpose(1, 2).contiguous()
            return
        if self.source_rotated:  # the block is laid out like alpha: the other digits, then the oldest
            free_digits = free_digits[1:] + free_digits[:1]
        self.fixed_place = torch.zeros(m + 1, dtype=torch.long)
        for k, j in enumerate(fixed_digits):
            self.fixed_place[j] = V ** (len(fixed_digits) - 1 - k)
        table = table.permute(fixed_digits + free_digits)
        self.block_table = table.reshape(V ** len(fixed_digits), V ** len(free_digits)).contiguous()

    def forward(self, alpha, base):
        """alpha over the target window's free digits: sum over the oldest digit (when free) of alpha * P.

        A message for a fully free target window comes back as a (rows, rest, y, oldest) view in its rotated order.
        """
        rows, V, R, Y = alpha.shape[0], self.vocab_size, self.rest, self.successor_width
        if self.dense:  # (R, rows, V) @ (R, V, Y): alpha is read in place, the oldest digit is unit-stride
            out = torch.bmm(alpha.view(rows, R, V).transpose(0, 1), self.forward_table)
            if not self.target_rotated:
                return out[0]
            return out.view(V, R // V, rows, Y).permute(2, 1, 3, 0)
        block = self.block_table.index_select(0, base)
        if self.source_rotated:  # (rows, R, oldest): y is fixed, the target is not rotated
            return (block.view(rows, R, V) * alpha.view(rows, R, V)).sum(-1)
        if self.sums_first:
            out = (block.view(rows, V, R, Y) * alpha.view(rows, V, R, 1)).sum(1)
        else:
            out = block.view(rows, R, Y).mul_(alpha.view(rows, R, 1))
        if self.target_rotated:  # natural (d_1, rest', y) -> rotated (rest', y, d_1)
            return out.view(rows, V, R // V, Y).permute(0, 2, 3, 1)
        return out.view(rows, R * Y)

    def backward(self, beta, base):
        """beta over the source window's free digits (oldest first): sum over y (when free) of P * beta.

        The dense step comes back as a (rows, V, rest) view.
        """
        rows, R, Y = beta.shape[0], self.rest, self.successor_width
        if self.dense:  # (R, rows, Y) @ (R, Y, V)
            out = torch.bmm(beta.view(rows, R, Y).transpose(0, 1), self.backward_table)
            return out.permute(1, 2, 0)
        block = self.block_table.index_select(0, base)
        if self.source_rotated:  # block (rows, R, oldest); y fixed
            return block.view(rows, R, self.vocab_size).transpose(1, 2) * beta.view(rows, 1, R)
        first = self.vocab_size if self.sums_first else 1
        product = block.view(rows, first, R, Y).mul_(beta.view(rows, 1, R, Y))
        return (product if Y == 1 else product.sum(-1)).view(rows, first * R)


class _Part:
    """Rows of a group that take one step type, and the rows their messages fill in the next step's group."""

    __slots__ = ("kind", "rows", "base", "destination")

    def __init__(self, kind, rows, base):
        self.kind, self.rows, self.base, self.destination = kind, rows, base, None


class _Group:
    """The jobs whose windows share a pattern at one step, sorted: those whose row ends here, then those whose next
    symbol is revealed, then those whose next symbol is free (so each step type is a slice)."""

    __slots__ = ("pattern", "jobs", "alpha", "ending", "revealed", "parts")

    def __init__(self, pattern, jobs, alpha, ending, revealed):
        self.pattern, self.jobs, self.alpha, self.ending, self.revealed = pattern, jobs, alpha, ending, revealed
        self.parts = []


def _reachable(successor, num_first):
    """Jobs reachable from jobs 0..num_first-1 along `successor` (-1: none); successors lie strictly to the right."""
    first = torch.zeros_like(successor, dtype=torch.bool)
    first[:num_first] = True
    real = torch.ones_like(first)
    while True:
        has_real_predecessor = torch.zeros_like(first)
        has_real_predecessor[successor[real & (successor >= 0)]] = True
        updated = first | has_real_predecessor
        if bool((updated == real).all()):
            return real
        real = updated


class _Smoother:
    """One forward-backward over the jobs of a batch of rows (see the module docstring)."""

    def __init__(self, language, symbols, observed, lengths):
        self.language = language
        self.V, self.m = language.vocab_size, language.n - 1
        self.full = 2**self.m - 1
        self.lengths, self.observed = lengths, observed
        self.width = symbols.shape[1]
        # column c holds position c - m (m virtual positions in front)
        self.padded = torch.cat([symbols.new_zeros(symbols.shape[0], self.m), symbols], 1)
        self.window = torch.arange(1, self.m + 2)
        # what a job at position i (column i + 1) does next: 0 its row ends, 1 the next symbol is revealed, 2 free
        following = torch.arange(self.width + 1)
        revealed_next = torch.cat([observed, observed.new_zeros(observed.shape[0], 1)], 1)
        self.next_kind = torch.where(following >= lengths[:, None], 0, torch.where(revealed_next, 1, 2)).view(-1)

    def kind(self, pattern, successor_free):
        kinds = self.language._step_types
        if (pattern, successor_free) not in kinds:
            kinds[pattern, successor_free] = StepType(self.language, pattern, successor_free)
        return kinds[pattern, successor_free]

    def base(self, kind, rows, position):
        """Flat index of the fixed digits of (x_{i-m+1}, ..., x_i, x_{i+1}) in the kind's block table."""
        if kind.dense:
            return rows  # unused: the dense step reads the whole table
        flat = (rows * self.padded.shape[1] + position)[:, None] + self.window
        return self.padded.view(-1).take(flat) @ kind.fixed_place

    def jobs(self):
        """The speculative jobs: one from each row's start, one after every revealed window whose next symbol is
        masked or has probability 0 given it. Returns the number of first jobs; sets job_row and job_start (the
        position of a job's first message: -1 for a row's start, else the revealed window's last position)."""
        V, m, observed = self.V, self.m, self.observed
        num = observed.shape[0]
        inside = torch.arange(self.width) < self.lengths[:, None]
        revealed = torch.cat([observed.new_zeros(num, m), observed], 1)
        window_revealed = revealed.unfold(1, m, 1)[:, 1:].all(-1)  # x_{i-m+1..i} all revealed
        table = self.language.probabilities.reshape(-1)
        possible = table[self.padded.unfold(1, m + 1, 1) @ (V ** torch.arange(m, -1, -1))] > 0
        starts = torch.zeros_like(observed)
        starts[:, 1:] = window_revealed[:, :-1] & (~observed[:, 1:] | ~possible[:, 1:]) & inside[:, 1:]
        start_rows, start_positions = starts.nonzero(as_tuple=True)
        first_rows = torch.arange(num)
        self.job_row = torch.cat([first_rows, start_rows])
        self.job_start = torch.cat([torch.full_like(first_rows, -1), start_positions - 1])
        return num

    def group(self, pattern, pieces, step):
        """The group of `pattern` at `step` from (part, jobs, messages) pieces; sets each part's destination rows."""
        jobs = torch.cat([jobs for _, jobs, _ in pieces]) if len(pieces) > 1 else pieces[0][1]
        key = self.next_kind.take(self.job_row[jobs] * (self.width + 1) + self.job_start[jobs] + step + 1)
        order = torch.argsort(key, stable=True)
        destination = torch.empty_like(order)
        destination[order] = torch.arange(order.shape[0])
        alpha = torch.empty(order.shape[0], self.V ** bin(pattern).count("1"), dtype=torch.float64)
        offset = 0
        for part, part_jobs, message in pieces:
            where = destination[offset : offset + part_jobs.shape[0]]
            offset += part_jobs.shape[0]
            alpha.view((-1,) + message.shape[1:]).index_copy_(0, where, message)
            if part is not None:
                part.destination = where
        return _Group(pattern, jobs[order], alpha, int((key == 0).sum()), int((key == 1).sum()))

    def step(self, group, step, pieces):
        """Move every job of `group` one position on; each step type's output joins `pieces[target pattern]`."""
        pattern, jobs, alpha = group.pattern, group.jobs, group.alpha
        start, middle = group.ending, group.ending + group.revealed
        position = self.job_start[jobs] + step
        rows = self.job_row[jobs]

        def add(part, message):
            group.parts.append(part)
            pieces.setdefault(part.kind.target_pattern, []).append((part, jobs[part.rows], message))

        if group.revealed:
            span = slice(start, middle)
            kind = self.kind(pattern, False)
            base = self.base(kind, rows[span], position[span])
            new = kind.forward(alpha[span], base)
            evidence = new.sum(-1, keepdim=True)
            if not bool(evidence.all()):
                # zero evidence: the revealed symbol is ignored, its digit becomes free (in both passes)
                ignored = (evidence[:, 0] == 0).nonzero(as_tuple=True)[0]
                free_kind = self.kind(pattern, True)
                at = ignored + start
                part = _Part(free_kind, at, self.base(free_kind, rows[at], position[at]))
                add(part, free_kind.forward(alpha[at], part.base))
                kept = (evidence[:, 0] != 0).nonzero(as_tuple=True)[0]
                span, base, new, evidence = kept + start, base[kept], new[kept], evidence[kept]
            if new.shape[0]:
                add(_Part(kind, span, base), new / evidence)
        if middle < jobs.shape[0]:
            span = slice(middle, None)
            kind = self.kind(pattern, True)
            part = _Part(kind, span, self.base(kind, rows[span], position[span]))
            add(part, kind.forward(alpha[span], part.base))  # sums are kept: no renormalisation needed
        if not pattern & 1 or step == 0:
            group.alpha = None  # no posterior to take here (x_i revealed, or the virtual position -1)

    def run(self):
        """(rows, positions, posteriors) of the free positions of the real jobs."""
        V, m, full, language = self.V, self.m, self.full, self.language
        num_first = self.jobs()
        job_row, job_start = self.job_row, self.job_start
        num_jobs = job_row.shape[0]
        job_cut = torch.full((num_jobs,), -1, dtype=torch.long)  # where a job reached a cut (-1: its row's end)

        # forward: every job one position per step
        rotated = language.initial.view(V, -1).t().reshape(-1)  # a fully free window keeps its oldest digit last
        groups = [self.group(full, [(None, torch.arange(num_first), rotated.expand(num_first, -1))], 0)]
        if num_jobs > num_first:
            ones = torch.ones(num_jobs - num_first, 1, dtype=torch.float64)
            groups.append(self.group(0, [(None, torch.arange(num_first, num_jobs), ones)], 0))
        history = []
        while groups:
            step = len(history)
            pieces = {}
            for group in groups:
                self.step(group, step, pieces)
            history.append(groups)
            groups = []
            for pattern, parts in pieces.items():
                if pattern == 0:  # a fully revealed window: these jobs have reached a cut
                    for _, jobs, _ in parts:
                        job_cut[jobs] = job_start[jobs] + step + 1
                else:
                    groups.append(self.group(pattern, parts, step + 1))

        # real jobs: the first of each row, and the one starting after the cut where a real one ends; job ids grow
        # with the position within a row, so a reversed running minimum finds the first job starting at or after i
        first_job = torch.full((self.observed.shape[0], self.width + 1), num_jobs, dtype=torch.long)
        first_job[job_row[num_first:], job_start[num_first:] + 1] = torch.arange(num_first, num_jobs)
        first_job = torch.flip(torch.cummin(torch.flip(first_job, [1]), 1).values, [1])
        successor = torch.full((num_jobs,), -1, dtype=torch.long)
        at_cut = (job_cut >= 0).nonzero(as_tuple=True)[0]
        following = first_job[job_row[at_cut], job_cut[at_cut] + 1]
        successor[at_cut] = torch.where(following < num_jobs, following, -1)
        real = _reachable(successor, num_first)
        everything_real = bool(real.all())

        # backward, through the same groups in reverse; beta is renormalised only where a revealed symbol shrank it
        rows_out, positions_out, values_out = [], [], []
        later = {}  # pattern -> beta of that pattern's group at the next step
        for step in reversed(range(len(history))):
            here = {}
            for group in history[step]:
                count = group.jobs.shape[0]
                beta = torch.empty(count, V ** bin(group.pattern).count("1"), dtype=torch.float64)
                beta[: group.ending] = 1.0
                for part in group.parts:
                    kind = part.kind
                    if kind.target_pattern == 0:
                        message = torch.ones(part.base.shape[0], 1, dtype=torch.float64)
                    else:
                        message = later[kind.target_pattern].index_select(0, part.destination)
                        if kind.successor_width == 1:
                            message = message / message.sum(-1, keepdim=True)
                    new = kind.backward(message, part.base)
                    if isinstance(part.rows, slice):
                        beta[part.rows].view(new.shape).copy_(new)
                    else:
                        beta.view((-1,) + new.shape[1:]).index_copy_(0, part.rows, new)
                if group.alpha is not None:
                    if group.pattern == full and m > 1:  # alpha (rows, rest, oldest), beta (rows, oldest, rest)
                        product = group.alpha.view(count, -1, V) * beta.view(count, V, -1).transpose(1, 2)
                        weights = product.sum(-1).view(count, -1, V).sum(1)
                    else:
                        weights = (group.alpha * beta).view(count, -1, V).sum(1)
                    select = slice(None) if everything_real else real[group.jobs]
                    rows_out.append(job_row[group.jobs][select])
                    positions_out.append((job_start[group.jobs] + step)[select])
                    values_out.append((weights / weights.sum(-1, keepdim=True))[select])
                here[group.pattern] = beta
            later = here
        return rows_out, positions_out, values_out


def ngram_posterior(language, symbols, observed, lengths, budget: int = 2**28, compiled: bool | None = None):
    """p(x_i = v | revealed symbols) at each row's first `lengths[r]` positions (the rest of a row is unused).

    `symbols` (num, width) long, `observed` (num, width) bool. Returns (num, width, V) float64: the posterior at free
    positions (masked, or ignored), a point mass at the other revealed positions. `compiled` picks the numba kernel
    of `ngram_posterior_compiled` (reached windows only, row by row) over the torch one here; None picks it when numba
    is installed. The torch path solves rows in chunks whose fully free windows hold about `budget` bytes of forward
    messages, which keeps the working set small.

    Batch invariance: the compiled kernel solves each row alone, so a row's posterior is bit-identical in any batch.
    The torch path's dense steps are batched matrix products, which BLAS blocks by batch size, so there a row agrees
    with itself alone (or in another chunk) to rounding only, about 1e-16; exact elementwise products instead cost
    25-80x more per dense step (measured for issue K), so the torch path keeps BLAS.
    """
    V, m = language.vocab_size, language.n - 1
    num, width = symbols.shape
    inside = torch.arange(width) < lengths[:, None]
    observed = observed & inside
    blank = ~observed.any(1)
    busy = (~blank).nonzero(as_tuple=True)[0]
    use_compiled = compiled_available() if compiled is None else compiled
    if use_compiled:  # the kernel writes every position of the busy rows up to their length
        token = torch.empty(num, width, V, dtype=torch.float64)
        compiled_ngram_posterior(language, busy, symbols, observed, lengths, token)
        token[~inside] = torch.nn.functional.one_hot(symbols[~inside], V).to(torch.float64)
    else:  # point masses, then the posteriors of the free positions
        token = torch.zeros(num, width, V, dtype=torch.float64).scatter_(-1, symbols[..., None], 1.0)
    if bool(blank.any()):
        token[blank] = _stationary_marginal(language)
    if use_compiled or busy.numel() == 0:
        return token
    free_windows = (~observed[busy]).unfold(1, min(m, width), 1).all(-1).sum(1) + 1
    chunk_of = torch.cumsum(free_windows * (8 * V**m), 0) // budget
    for chunk in torch.unique_consecutive(chunk_of):
        rows = busy[chunk_of == chunk]
        smoother = _Smoother(language, symbols[rows], observed[rows], lengths[rows])
        rows_out, positions_out, values_out = smoother.run()
        if rows_out:
            token[rows[torch.cat(rows_out)], torch.cat(positions_out)] = torch.cat(values_out)
    return token


def ngram_masked_log_posterior(language, symbols, observed, lengths, out):
    """`out[r, i] = log p(x_i | revealed symbols)` at the masked positions i < lengths[r], written by the compiled
    kernel itself (no (num, width, V) float64 posterior in between), the lowest value of out's dtype for log 0; the
    other positions of `out` are left as they are. Each row is solved alone by the same compiled loop, so its values
    do not depend on the other rows: bit-identical in any batch. Returns False, writing nothing, when numba is not
    installed."""
    if not compiled_available():
        return False
    inside = torch.arange(symbols.shape[1]) < lengths[:, None]
    observed = observed & inside
    blank = ~observed.any(1)
    busy = (~blank).nonzero(as_tuple=True)[0]
    compiled_ngram_posterior(language, busy, symbols, observed, lengths, out, log_masked=True)
    if bool(blank.any()):
        rows, positions = (blank[:, None] & inside).nonzero(as_tuple=True)
        out[rows, positions] = log_or_lowest(_stationary_marginal(language), out.dtype)
    return True


def _stationary_marginal(language):
    """p(x_i = v) with nothing revealed: the stationary chain, F = pi and B = 1 at every position."""
    marginal = language._emit(language.initial)
    return marginal / marginal.sum()
