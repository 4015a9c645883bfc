"""How many intra-op threads an `hf-mdm` command uses: the user's choice, else few enough to degrade gracefully.

Every command takes `--threads N`. Without it, and without `OMP_NUM_THREADS` in the environment (which torch already
follows), the count is chosen at the first forward of a transformers model, when its size is known:

    threads = 1                                   for a model under SMALL_MODEL_PARAMETERS parameters,
    threads = max(1, min(torch's default, cores - round(1-minute load average)))   otherwise.

Why (benchmarks/thread_counts.py, docs/benchmarks.md "Intra-op threads"): a tiny model's step is hundreds of small
ops, each a parallel region that waits for its slowest thread. When one other process keeps a core of a 2-core machine
busy, two intra-op threads share the one free core and each region waits for the descheduled thread: the demo's
training step went from 0.05 s to 2.9 s. One thread costs such a model nothing measurable on an idle machine and
keeps its speed under load. A bigger model's ops are long enough for threads to pay on idle cores, so it gets those.
"""

import contextlib
import os
from dataclasses import dataclass, field

import torch
from torch.nn.modules.module import register_module_forward_pre_hook
from transformers import PreTrainedModel
from transformers.utils import logging


logger = logging.get_logger(__name__)

SMALL_MODEL_PARAMETERS = 1_000_000


@dataclass
class ThreadArguments:
    """`--threads`, which `hf_mdm.cli.main` adds to every command."""

    threads: int | None = field(
        default=None,
        metadata={
            "help": "Intra-op threads. Default: OMP_NUM_THREADS if set, else 1 for a model under 1M parameters "
            "(graceful on a busy machine), else the idle cores."
        },
    )

    def __post_init__(self):
        if self.threads is not None and self.threads < 1:
            raise ValueError(
                f"--threads must be a positive number of threads, got {self.threads}; leave it out for the default."
            )


def idle_cores() -> int:
    """The cores this process may run on minus the 1-minute load average (rounded), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform: count every core as idle
        return cores
    return max(1, cores - round(load))


def default_threads(num_parameters: int) -> int:
    """The intra-op threads for a model of `num_parameters` when the user chose none (see the module docstring)."""
    if num_parameters < SMALL_MODEL_PARAMETERS:
        return 1
    return max(1, min(torch.get_num_threads(), idle_cores()))


def _choose_at_first_forward():
    """Register a global forward pre-hook that sets `default_threads` of the first transformers model run, then removes
    itself (the outermost module's hook runs first, so that module is the whole model). Other modules run first are
    passed over: the oracle denoiser has no parameters and would otherwise set one thread for an autoregressive model
    of any size that runs after it. Returns the hook's handle."""

    def choose(module, args):
        if not isinstance(module, PreTrainedModel):
            return
        handle.remove()
        num_parameters = sum(parameter.numel() for parameter in module.parameters())
        threads = default_threads(num_parameters)
        torch.set_num_threads(threads)
        logger.info(
            f"{threads} intra-op thread(s) for this {num_parameters:,}-parameter {type(module).__name__}; "
            "choose with --threads N or OMP_NUM_THREADS."
        )

    handle = register_module_forward_pre_hook(choose)
    return handle


@contextlib.contextmanager
def intra_op_threads(threads: int | None):
    """Run a command under the thread policy: `threads` if given, else `OMP_NUM_THREADS` if set, else the default
    chosen at the first forward. Torch's thread count and the global hooks are restored afterwards."""
    previous = torch.get_num_threads()
    handle = None
    if threads is not None:
        torch.set_num_threads(threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        handle = _choose_at_first_forward()
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()  # a no-op if the first forward removed it
        torch.set_num_threads(previous)
