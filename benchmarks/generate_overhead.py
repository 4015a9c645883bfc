"""Overhead of generate(): its wall time divided by the time of its forward passes run bare.

Every forward generate() makes is recorded (inputs, positions, `logits_to_keep`) and replayed bare right after the
call, so both see the same machine load: "overhead" = generate time / replay time, 1.0 meaning generate() costs exactly
its forwards (target <= 1.05). For reference, "vs full forwards" divides by as many bare full-canvas forwards (all
rows, all logits): below 1 when exact reuse drops rows and the LM head runs only on still-masked block positions.
Median over `--repeats` runs. Prints a Markdown table.

    python benchmarks/generate_overhead.py [--device cuda] [--batch 8] [--length 256]
"""

import argparse
import time

import torch

from hf_mdm import MDMConfig, MDMForMaskedGeneration
from hf_mdm.generation import enable_diffusion_generation


CASES = [
    dict(strategy="confidence", steps=64, block_length=None),
    dict(strategy="confidence", steps=64, block_length=32),
    dict(strategy="margin", steps=64, block_length=32, do_sample=True, top_k=50),
    dict(strategy="random", steps=256, block_length=None),
]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def wall_time(function, device):
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def run_each(model, calls):
    """Run the forwards one after the other, dropping each output (as generate() does)."""
    for kwargs in calls:
        model(**kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256, help="generated tokens")
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = MDMConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=max(args.hidden // 64, 1),
        max_position_embeddings=args.prompt + args.length,
        mask_token_id=args.vocab - 1,
    )
    model = enable_diffusion_generation(MDMForMaskedGeneration(config).to(device).eval())
    prompt = torch.randint(0, args.vocab - 1, (args.batch, args.prompt), device=device)
    canvas = torch.randint(0, args.vocab - 1, (args.batch, args.prompt + args.length), device=device)
    with torch.no_grad():
        model(canvas)  # warm-up

    calls = []

    def record(module, args, kwargs):
        calls.append(
            {key: value.clone() if isinstance(value, torch.Tensor) else value for key, value in kwargs.items()}
        )

    model.register_forward_pre_hook(record, with_kwargs=True)
    print(
        f"device={device.type}, batch={args.batch}, prompt={args.prompt}, generated={args.length}, "
        f"hidden={args.hidden}, layers={args.layers}, vocab={args.vocab}\n"
    )
    print(
        "| strategy | steps | block | sampling | forward calls | generate (s) | its forwards, bare (s) | overhead "
        "| vs full forwards |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        runs = []
        for _ in range(args.repeats):
            calls.clear()
            generator = torch.Generator(device).manual_seed(0)
            seconds = wall_time(
                lambda: model.generate(prompt, max_new_tokens=args.length, generator=generator, **case), device
            )
            recorded = list(calls)
            replay = wall_time(lambda: run_each(model, recorded), device)
            full = wall_time(lambda: run_each(model, [{"input_ids": canvas}] * len(recorded)), device)
            runs.append((seconds / replay, seconds, replay, seconds / full, len(recorded)))
        overhead, seconds, replay, versus_full, count = sorted(runs)[len(runs) // 2]
        sampling = "top-k 50" if case.get("do_sample") else "greedy"
        print(
            f"| {case['strategy']} | {case['steps']} | {case['block_length'] or '-'} | {sampling} | {count} "
            f"| {seconds:.2f} | {replay:.2f} | {overhead:.3f} | {versus_full:.3f} |"
        )


if __name__ == "__main__":
    main()
