"""Seconds per training step of the `hf-mdm demo` model at 1 and 2 intra-op threads, on the machine as it is and with
one competing busy process that this script starts itself (a spinning loop in a subprocess that ends on its own after
`--spin-seconds`, and is stopped as soon as its cells are measured).

    python benchmarks/thread_counts.py [--threads 1 2] [--steps 20] [--cell-seconds 30] [--spin-seconds 120]
                                       [--hidden-size 64] [--num-hidden-layers 3]

The step is the demo's: `MDMForMaskedGeneration` of the demo's size (hidden 64, 3 layers, 12 token ids: 0.2M
parameters; `--hidden-size` and `--num-hidden-layers` change it, to see where a second thread starts to pay), a
batch of 64 sequences of 16 or 32 symbols through `DataCollatorForMaskedDiffusion`, forward, backward and an AdamW
step (the Trainer adds only its bookkeeping). Each cell times up to `--steps` steps after `--warmup` untimed ones and
stops early after `--cell-seconds`, so a pathological cell (two threads fighting for one free core) stays bounded; it
reports the median wall-clock seconds per step and this process's CPU seconds per step. The thread counts take turns
within a condition. Prints the load average and CPU model first: on a shared machine "as it is" means with whatever
else runs there. Prints a Markdown table.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from hf_mdm import DataCollatorForMaskedDiffusion, MDMForMaskedGeneration
from hf_mdm.cli.demo import DemoArguments, demo_config, demo_language
from hf_mdm.evaluation.train_twins import seeded_mdm


SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def demo_batches(count: int, seed: int = 0) -> list[dict]:
    """`count` collated batches of the demo's data: 64 bigram sequences each, of 16 or 32 symbols."""
    demo = DemoArguments()
    language = demo_language(demo)
    collator = DataCollatorForMaskedDiffusion(language.tokenizer())
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for index in range(count):
        length = demo.lengths[index % len(demo.lengths)]
        rows = language.sample(64, length, generator).tolist()
        batches.append(collator([{"input_ids": row} for row in rows]))
    return batches


def demo_model(args) -> MDMForMaskedGeneration:
    """A freshly initialised MDM of the demo's configuration, with `--hidden-size` and `--num-hidden-layers`."""
    demo = DemoArguments(hidden_size=args.hidden_size, num_hidden_layers=args.num_hidden_layers)
    return seeded_mdm(demo_config(demo, demo_language(demo).tokenizer()), 0)


def time_cell(threads: int, batches: list[dict], args) -> tuple[float, float, int]:
    """(median wall seconds, mean CPU seconds, steps timed) per training step at `threads` intra-op threads."""
    torch.set_num_threads(threads)
    model = demo_model(args).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    wall, cpu = [], []
    deadline = None
    for step, batch in enumerate(batches[: args.warmup + args.steps]):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step < args.warmup:
            continue
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
        deadline = deadline or start_wall + args.cell_seconds
        if time.perf_counter() > deadline:
            break
    return statistics.median(wall), statistics.fmean(cpu), len(wall)


def measure(condition: str, batches: list[dict], args) -> list[str]:
    """One table row per thread count: the best of `--rounds` cells, the thread counts taking turns."""
    cells = {threads: [] for threads in args.threads}
    for _ in range(args.rounds):
        for threads in args.threads:
            cells[threads].append(time_cell(threads, batches, args))
    rows = []
    for threads, results in cells.items():
        wall, cpu, steps = min(results)
        rows.append(f"| {args.parameters} | {condition} | {threads} | {wall:.3f} | {cpu:.3f} | {steps} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per cell (fewer if --cell-seconds ends it)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="cells per thread count and condition; the best is kept")
    parser.add_argument("--cell-seconds", type=float, default=30.0, help="stop timing a cell after this long")
    parser.add_argument("--spin-seconds", type=float, default=120.0, help="the busy process ends after this long")
    parser.add_argument("--no-busy", action="store_true", help="measure only the machine as it is")
    parser.add_argument("--hidden-size", type=int, default=DemoArguments.hidden_size)
    parser.add_argument("--num-hidden-layers", type=int, default=DemoArguments.num_hidden_layers)
    args = parser.parse_args()
    args.parameters = "{:.2f}M".format(demo_model(args).num_parameters() / 1e6)
    batches = demo_batches(args.warmup + args.steps)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    machine = f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    environment = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    print(f"torch {torch.__version__}, {machine}, load average {load} (1, 5, 15 min) at start; {environment}\n")
    print("| parameters | machine | intra-op threads | s / step (median) | CPU s / step | steps timed |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in measure("as it is", batches, args):
        print(row, flush=True)
    if args.no_busy:
        return
    spinner = subprocess.Popen([sys.executable, "-c", SPIN, str(args.spin_seconds)])
    try:
        for row in measure("+ 1 busy process", batches, args):
            print(row, flush=True)
    finally:
        spinner.kill()
        spinner.wait()


if __name__ == "__main__":
    main()
