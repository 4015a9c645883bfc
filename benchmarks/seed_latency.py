"""The seed's latency study as one command: SEDD-small against GPT-2 small, latency per sequence of 1,024 tokens.

Deschenaux & Gulcehre (2024) report that SEDD generates up to 4.5x faster than GPT-2 with its KV cache. This script
instantiates both architectures at their published sizes with random weights (latency does not depend on the values):
`DiTForMaskedDiffusion` as SEDD-small (12 layers, width 768, adaLN conditioning width 128, vocabulary 50,258 with
[MASK], 1,024 positions, score output) and `GPT2LMHeadModel(GPT2Config())` (124M parameters, 1,024 positions), and
times, in one process, per batch size and sequence length L:

* GPT-2: `generate(bos, max_new_tokens=L, min_new_tokens=L, use_cache=True)` from a 1-token prompt, sampling
  (`do_sample=True, top_k=0`) or greedy (`--gpt2-decoding`). The script checks that every forward of the timed call
  feeds one token (the KV cache is used) and stops otherwise. Measured end to end, `--repeats` times.
* The MDM: the published SEDD sampler (`hf_mdm.generation.published_samplers`, `--sampler`; the seed timed
  `analytic`) from all-[MASK]. K steps are K model forwards at length L conditioned on sigma(t), each followed by the
  sampler's update, then one final denoising forward and update. `--sampler generate` times hf-mdm's own
  `generate()` instead (strategy `confidence`, sampled: one forward per step of the time-conditioned model at that
  step's time, no final forward), whose update does not draw SEDD's (B, L, V) uniform tensor. A full forward at
  L = 1,024 costs seconds on a CPU, so the K grid (16 ... 1,024) is not run end to end: the per-step cost s
  (forward + update, timed between the starts of consecutive forwards of the real sampler) and the final-step cost f
  (the rest of the call) are measured in `--repeats` runs of `--probe-steps` steps, and

      latency(K) = K s + f          (computed; `generate`: (K - 1) s + f, f holding its last step)

  The step counts in `--end-to-end-steps` (default: the smallest K) are also timed end to end: their rows report
  the measurement, and the script prints measured against computed with the relative difference, which validates
  the linear model (it holds for the published samplers, whose steps all cost the same; generate()'s steps get
  cheaper as fewer positions are left to score, so K s + f overestimates it: time it end to end).

The measurements run in `--repeats` rounds (GPT-2, the MDM's probe run, its end-to-end runs), so that a machine whose
load drifts slows all of them alike.

Latency per sequence = wall time of the batch / batch size. Every figure is a median with a 95% percentile-bootstrap
interval (scipy.stats.bootstrap over the repeats; the ratio and the computed latencies resample each measured sample
independently). The ratio is GPT-2 latency / MDM latency (> 1: the MDM is faster). The crossing (ratio = 1) is
interpolated between the two neighbouring step counts of the grid that bracket it, with 1 / ratio linear in K (exact
for latency(K) = K s + f); outside the grid it is "not reached", never extrapolated. Prints Markdown tables.

    OMP_NUM_THREADS=1 python benchmarks/seed_latency.py [--batch-sizes 1 8] [--lengths 1024]
        [--steps 16 32 64 128 256 512 1024] [--repeats 3] [--device cuda] [--dtype bfloat16] [--quick]

`--quick` uses tiny models of the same two architectures (seconds; tests/test_seed_latency.py runs it).
"""

import argparse
import dataclasses
import inspect
import os
import platform
import time

import numpy as np
import scipy.stats
import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

import hf_mdm
from hf_mdm import DiTConfig, DiTForMaskedDiffusion
from hf_mdm.generation.published_samplers import sample_like_authors


SEED_CLAIM = 4.5  # Deschenaux & Gulcehre (2024): SEDD up to 4.5x lower latency than GPT-2 with its KV cache
CONFIDENCE = 0.95
# scipy >= 1.15 names bootstrap's generator `rng` (SPEC 7); the declared floor 1.13 knows only `random_state`.
SEED_ARGUMENT = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# (architectures, default grid): the published sizes, and tiny ones of the same classes for --quick.
# The MDM's samplers -> its forwards beyond its K steps: the published SEDD samplers end with a denoising forward,
# hf-mdm's generate() makes one forward per step of a time-conditioned model and none after.
SAMPLERS = {"sedd_analytic": 1, "sedd_euler": 1, "generate": 0}

FULL = dict(
    dit=dict(vocab_size=50258, hidden_size=768, cond_dim=128, num_hidden_layers=12, num_attention_heads=12,
             max_position_embeddings=1024, mask_token_id=50257),
    gpt2=dict(),
    grid=dict(lengths=[1024], batch_sizes=[1, 8], steps=[16, 32, 64, 128, 256, 512, 1024], repeats=3, probe_steps=2),
)  # fmt: skip
QUICK = dict(
    dit=dict(vocab_size=64, hidden_size=32, cond_dim=16, num_hidden_layers=2, num_attention_heads=2,
             max_position_embeddings=32, mask_token_id=63),
    gpt2=dict(vocab_size=63, n_embd=32, n_layer=2, n_head=2, n_positions=32, bos_token_id=62, eos_token_id=62),
    grid=dict(lengths=[32], batch_sizes=[1, 2], steps=[1, 4, 16, 64], repeats=3, probe_steps=2),
)  # fmt: skip


@dataclasses.dataclass
class Estimate:
    """A median and its 95% interval, in seconds per sequence unless said otherwise."""

    median: float
    low: float
    high: float

    def __format__(self, spec):
        return f"{self.median:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def bootstrap(samples: list, statistic) -> Estimate:
    """`statistic(*samples)` with its 95% percentile-bootstrap interval, each sample resampled independently.
    `statistic` takes arrays and an `axis` (numpy's reductions do)."""
    data = [np.asarray(sample, dtype=float) for sample in samples]
    result = scipy.stats.bootstrap(
        data, statistic, confidence_level=CONFIDENCE, method="percentile", n_resamples=9999,
        vectorized=True, **{SEED_ARGUMENT: np.random.default_rng(0)},
    )  # fmt: skip
    return Estimate(float(statistic(*data, axis=-1)), *map(float, result.confidence_interval))


def median(sample) -> Estimate:
    return bootstrap([sample], np.median)


def step_intervals(steps: int, sampler: str) -> int:
    """The forward-to-forward intervals of a K-step run (its forwards minus one): K for the published samplers (their
    final forward is in f), K - 1 for generate() (its last step is in f)."""
    return steps + SAMPLERS[sampler] - 1


def formula(args) -> str:
    """The latency model of the sampler timed, as printed."""
    return "K s + f" if SAMPLERS[args.sampler] else "(K - 1) s + f"


def mdm_latency(intervals: int, step_costs, final_costs) -> Estimate:
    """latency = `intervals` x median step cost + median final-step cost, with its interval."""
    return bootstrap(
        [step_costs, final_costs], lambda s, f, axis: intervals * np.median(s, axis=axis) + np.median(f, axis=axis)
    )


def latency_ratio(intervals: int, gpt2, step_costs, final_costs) -> Estimate:
    """GPT-2 latency / the MDM's latency (`mdm_latency`), with its interval."""
    return bootstrap(
        [gpt2, step_costs, final_costs],
        lambda g, s, f, axis: (
            np.median(g, axis=axis) / (intervals * np.median(s, axis=axis) + np.median(f, axis=axis))
        ),
    )


def crossing(steps: list[int], ratios: list[float]) -> float | None:
    """The step count where ratio(K) = 1, interpolated between the two grid neighbours that bracket it (1 / ratio
    linear in K), or None when no two neighbours bracket it: the crossing lies outside the grid (or the ratio never
    reaches 1 there) and is not extrapolated. `steps` ascending."""
    for index, (k, ratio) in enumerate(zip(steps, ratios)):
        if ratio == 1:
            return float(k)
        if index and (ratios[index - 1] - 1) * (ratio - 1) < 0:
            k0, inverse0, inverse1 = steps[index - 1], 1 / ratios[index - 1], 1 / ratio
            return k0 + (1 - inverse0) * (k - k0) / (inverse1 - inverse0)
    return None


def describe_crossing(steps: list[int], ratios: list[Estimate]) -> str:
    """The crossing with the crossings of the interval bounds (each "< K_min" / "> K_max" when off the grid)."""
    point = crossing(steps, [ratio.median for ratio in ratios])
    if point is None:
        faster = ratios[0].median > 1
        return (
            f"not reached in {steps[0]}..{steps[-1]} steps (the MDM is {'faster' if faster else 'slower'} at every "
            "step count of the grid; the crossing is not extrapolated)"
        )
    bounds = []
    for side in ("low", "high"):
        bound = crossing(steps, [getattr(ratio, side) for ratio in ratios])
        off_grid = f"< {steps[0]}" if getattr(ratios[0], side) < 1 else f"> {steps[-1]}"
        bounds.append(off_grid if bound is None else f"{bound:.0f}")
    return f"{point:.0f} steps [{bounds[0]}, {bounds[1]}] (from the ratio's median and its 95% bounds)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gpt2_run(model, batch: int, length: int, decoding: str, device: torch.device) -> tuple[float, list[int]]:
    """(seconds, the length of each forward's input_ids) of one `generate` of `length` tokens from a 1-token prompt."""
    lengths = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    prompt = torch.full((batch, 1), model.config.bos_token_id, device=device)
    sampling = dict(do_sample=True, top_k=0) if decoding == "sample" else dict(do_sample=False)
    try:
        synchronize(device)
        start = time.perf_counter()
        model.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=length, min_new_tokens=length,
            use_cache=True, pad_token_id=model.config.eos_token_id, **sampling,
        )  # fmt: skip
        synchronize(device)
        return time.perf_counter() - start, lengths
    finally:
        handle.remove()


def gpt2_latency(model, batch: int, length: int, args, device: torch.device) -> float:
    """Seconds per sequence of one generate call of `length` tokens, checked to feed one token per forward (its KV
    cache is used)."""
    elapsed, lengths = gpt2_run(model, batch, length, args.gpt2_decoding, device)
    if lengths != [1] * length:
        raise SystemExit(
            f"GPT-2's generate() made {len(lengths)} forwards with input lengths {sorted(set(lengths))} for "
            f"{length} tokens: it does not reuse its KV cache (expected one token per forward); check use_cache."
        )
    return elapsed / batch


def sampler_run(model, batch: int, length: int, steps: int, args, device: torch.device) -> tuple[list[float], float]:
    """One run of the MDM's sampler: (seconds between the starts of consecutive model forwards, seconds of the rest:
    set-up and the final step). A step runs from the start of one model forward to the start of the next."""
    starts = []

    def record(module, args):
        synchronize(device)
        starts.append(time.perf_counter())

    handle = model.register_forward_pre_hook(record)
    generator = torch.Generator(device=device).manual_seed(0)
    try:
        synchronize(device)
        start = time.perf_counter()
        if args.sampler == "generate":
            empty = torch.zeros((batch, 0), dtype=torch.long, device=device)
            model.generate(empty, max_new_tokens=length, steps=steps, strategy="confidence", do_sample=True,
                           generator=generator)  # fmt: skip
        else:
            sample_like_authors(model, args.sampler, batch_size=batch, length=length, steps=steps, generator=generator)
        synchronize(device)
        total = time.perf_counter() - start
    finally:
        handle.remove()
    if len(starts) != steps + SAMPLERS[args.sampler]:
        raise SystemExit(
            f"The {args.sampler} sampler made {len(starts)} forwards for {steps} steps; this benchmark's latency "
            f"model assumes {steps + SAMPLERS[args.sampler]} (one per step, plus the published samplers' final "
            "denoising step)."
        )
    step_costs = list(np.diff(starts))
    return step_costs, total - sum(step_costs)


@dataclasses.dataclass
class Measurements:
    """Seconds per sequence measured in one (batch size, length) cell, over `--repeats` rounds."""

    gpt2: list  # one generate call per round
    steps: list  # the MDM's step costs: every step of each round's probe run
    finals: list  # the MDM's final-step costs: one per round
    end_to_end: dict  # step count -> one whole sampler run per round


def measure(dit, gpt2, batch: int, length: int, args, device: torch.device) -> Measurements:
    """After warm-up runs (a short generate, a 1-step sampler run), `args.repeats` rounds, each timing GPT-2 once, a
    probe run of `args.probe_steps` sampler steps and every `--end-to-end-steps` run once, so that a machine whose
    load drifts slows all of them alike."""
    gpt2_run(gpt2, batch, min(length, 8), args.gpt2_decoding, device)
    sampler_run(dit, batch, length, 1, args, device)
    measured = Measurements([], [], [], {steps: [] for steps in args.end_to_end_steps})
    for _ in range(args.repeats):
        measured.gpt2.append(gpt2_latency(gpt2, batch, length, args, device))
        step_costs, final = sampler_run(dit, batch, length, args.probe_steps, args, device)
        measured.steps += [cost / batch for cost in step_costs]
        measured.finals.append(final / batch)
        for steps, runs in measured.end_to_end.items():
            step_costs, rest = sampler_run(dit, batch, length, steps, args, device)
            runs.append((sum(step_costs) + rest) / batch)
    return measured


def build_models(args, device: torch.device, dtype: torch.dtype):
    """(SEDD-small-shaped DiT, GPT-2 small), or tiny ones of the same classes with --quick; random weights."""
    sizes = QUICK if args.quick else FULL
    torch.manual_seed(0)
    dit = DiTForMaskedDiffusion(
        DiTConfig(**sizes["dit"], time_conditioning=True, output_parametrization="score")
    )  # fmt: skip
    gpt2 = GPT2LMHeadModel(GPT2Config(**sizes["gpt2"]))
    longest = max(args.lengths)
    for name, positions in (("the DiT", dit.config.max_position_embeddings), ("GPT-2", gpt2.config.n_positions)):
        if longest > positions:
            raise SystemExit(
                f"--lengths {longest} exceeds {name}'s {positions} positions; use lengths <= {positions}."
            )
    return dit.to(device, dtype).eval(), gpt2.to(device, dtype).eval()


def machine() -> str:
    """The CPU model (Linux) or platform's words, the logical CPUs, and the 1-minute load average."""
    names = []
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = names[0] if names else platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical CPUs, 1-minute load average {load:.2f}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, help="sequence lengths (default 1024)")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="default 1 8")
    parser.add_argument("--steps", nargs="+", type=int, help="MDM step counts (default 16 32 ... 1024)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (default 3, at least 2)")
    parser.add_argument("--probe-steps", type=int, help="steps per run that measures the per-step cost (default 2)")
    parser.add_argument(
        "--end-to-end-steps", nargs="*", type=int,
        help="step counts also timed end to end, to validate latency(K) = K s + f (default: the smallest --steps; "
        "give the flag alone for none)",
    )  # fmt: skip
    parser.add_argument("--sampler", default="sedd_analytic", choices=sorted(SAMPLERS))
    parser.add_argument("--gpt2-decoding", default="sample", choices=["sample", "greedy"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--quick", action="store_true", help="tiny models and grid, for the test (seconds)")
    args = parser.parse_args(argv)
    for name, default in (QUICK if args.quick else FULL)["grid"].items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.end_to_end_steps is None:
        args.end_to_end_steps = [min(args.steps)]
    args.steps = sorted(set(args.steps))
    for name in ("lengths", "batch_sizes", "steps", "end_to_end_steps"):
        if any(value < 1 for value in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} must be positive integers, got {getattr(args, name)}")
    if args.repeats < 2:
        parser.error(f"--repeats must be at least 2 (an interval needs two runs), got {args.repeats}")
    if args.probe_steps < 1:
        parser.error(f"--probe-steps must be at least 1, got {args.probe_steps}")
    return args


def study(args, dit, gpt2, device: torch.device, batch: int, length: int) -> dict:
    """The measurements and table rows of one (batch size, length) cell."""
    measured = measure(dit, gpt2, batch, length, args, device)

    def computed(steps):
        return mdm_latency(step_intervals(steps, args.sampler), measured.steps, measured.finals)

    def row(steps):
        """A step count's row: the MDM's end-to-end runs where there are some (a measurement beats the model: the
        cost of generate()'s steps falls as fewer positions are left to score), else K s + f."""
        runs = measured.end_to_end.get(steps)
        if runs:
            mdm, how = median(runs), "measured end to end"
            ratio = bootstrap(
                [measured.gpt2, runs], lambda g, m, axis: np.median(g, axis=axis) / np.median(m, axis=axis)
            )
        else:
            mdm, how = computed(steps), f"computed {formula(args)}"
            ratio = latency_ratio(step_intervals(steps, args.sampler), measured.gpt2, measured.steps, measured.finals)
        return dict(batch=batch, length=length, steps=steps, mdm=mdm, how=how, gpt2=median(measured.gpt2), ratio=ratio)

    rows = [row(steps) for steps in args.steps]
    validation = [
        dict(steps=steps, measured=median(runs), computed=computed(steps))
        for steps, runs in measured.end_to_end.items()
    ]
    crossing_text = describe_crossing(args.steps, [row["ratio"] for row in rows])
    return dict(measured=measured, rows=rows, validation=validation, crossing=crossing_text)


def print_cell(cell: dict, batch: int, length: int, args) -> None:
    measured, rounds = cell["measured"], f"{args.repeats} runs"
    print(
        f"\n### Batch {batch}, length {length}\n\nMeasured (per sequence, median [95% interval]): MDM step "
        f"{median(measured.steps):.4g} s ({len(measured.steps)} steps from {rounds} of {args.probe_steps}), final "
        f"step {median(measured.finals):.4g} s ({rounds}); GPT-2 {cell['rows'][0]['gpt2']:.4g} s for {length} tokens "
        f"({rounds}).\n"
    )
    print("| steps | MDM latency (s) | MDM latency is | GPT-2 latency (s), measured | ratio GPT-2 / MDM |")
    print("|---:|---|---|---|---|")
    for row in cell["rows"]:
        print(f"| {row['steps']} | {row['mdm']:.4g} | {row['how']} | {row['gpt2']:.4g} | {row['ratio']:.3g} |")
    best = max(cell["rows"], key=lambda row: row["ratio"].median)
    print(
        f"\nCrossing (ratio = 1): {cell['crossing']}.\nLargest ratio in the grid: {best['ratio']:.3g} at "
        f"{best['steps']} steps (the seed reports up to {SEED_CLAIM}x lower latency for SEDD on a GPU)."
    )
    for check in cell["validation"]:
        measured, computed = check["measured"], check["computed"]
        print(
            f"Validation at {check['steps']} steps: measured end to end {measured:.4g} s ({args.repeats} runs), "
            f"computed {computed:.4g} s, relative difference (computed - measured) / measured "
            f"{(computed.median - measured.median) / measured.median:+.1%}."
        )
    if not cell["validation"]:
        print("No step count was timed end to end (--end-to-end-steps empty): the linear model is not validated here.")


def main(argv=None) -> list[dict]:
    """Run the study, print it, and return one dict per (batch size, length): its measurements and rows."""
    args = parse_args(argv)
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    dit, gpt2 = build_models(args, device, dtype)
    print(
        f"# Seed latency study{' (--quick: tiny models)' if args.quick else ''}\n\n"
        f"MDM: DiTForMaskedDiffusion ({dit.num_parameters() / 1e6:.1f}M parameters, score output), sampler "
        f"{args.sampler}; AR: GPT2LMHeadModel ({gpt2.num_parameters() / 1e6:.1f}M parameters), generate() with its KV "
        f"cache from a 1-token prompt, {args.gpt2_decoding}; random weights.\n"
        f"{device.type}, {args.dtype}, {torch.get_num_threads()} thread(s) (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}), {machine()}; torch {torch.__version__}, transformers "
        f"{transformers.__version__}, hf-mdm {hf_mdm.__version__}.\n"
        "Latency per sequence (batch time / batch size), seconds, median [95% bootstrap interval]. MDM latencies "
        f"are measured end to end at the --end-to-end-steps, computed as {formula(args)} from the measured step cost "
        "s and final-step cost f elsewhere (each row says which); GPT-2's are measured.",
        flush=True,
    )
    cells = []
    with torch.no_grad():
        for length in args.lengths:
            for batch in args.batch_sizes:
                cell = study(args, dit, gpt2, device, batch, length)
                print_cell(cell, batch, length, args)
                cells.append(dict(batch=batch, length=length, **cell))
    print(f"\nFinished; {machine()}.")
    return cells


if __name__ == "__main__":
    main()
