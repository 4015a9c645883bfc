"""Block caches: confidence decoding without cache vs threshold decoding with a prefix or a dual cache, and a
block-causal model (`MDMConfig(block_size=32)`) decoded with its exact cache vs without a cache.

Length 256, block 32 (Fast-dLLM's setting). A random model is never confident, so threshold decoding would reveal one
token per forward; the models are therefore first trained briefly on a periodic language (each row repeats a random
pattern of period 2..8, the prompt shows a few periods), where confident predictions are possible: the bidirectional
model with the masked-diffusion objective, the block-causal one with the same loop, where the model's forward computes
the block-diffusion objective (BD3-LM: each block from the clean earlier blocks, one forward of length 2L). Reports
wall time, speed-up against the same model's uncached confidence row, forwards per row, tokens per forward, agreement
(fraction of generated tokens equal to the same model's uncached confidence output, and to the same strategy's
uncached output) and accuracy (equal to the true continuation). Prints a Markdown table.

    python benchmarks/generate_cache.py [--device cuda] [--checkpoint periodic.pt] [--models block]
"""

import argparse
import os
import statistics
import time

import torch

from hf_mdm import MDMConfig, MDMForMaskedGeneration
from hf_mdm.generation import enable_diffusion_generation


# Per model: its cases; the first is the reference of speed-up and agreement.
CASES = {
    "bidirectional": [
        ("confidence, no cache", dict(strategy="confidence", cache="none")),
        ("threshold 0.9, no cache", dict(strategy="threshold", cache="none")),
        ("threshold 0.9, prefix cache", dict(strategy="threshold", cache="prefix")),
        ("threshold 0.9, dual cache", dict(strategy="threshold", cache="dual")),
        ("confidence, dual cache", dict(strategy="confidence", cache="dual")),
    ],
    "block": [
        ("confidence, no cache", dict(strategy="confidence", cache="none")),
        ("confidence, exact cache", dict(strategy="confidence", cache="exact")),
        ("threshold 0.9, no cache", dict(strategy="threshold", cache="none")),
        ("threshold 0.9, exact cache", dict(strategy="threshold", cache="exact")),
    ],
}


def periodic_rows(batch, length, vocab, generator):
    """Rows x_i = pattern[i mod period], period in 2..8, tokens in 1..vocab-2 (vocab-1 is [MASK])."""
    period = torch.randint(2, 9, (batch,), generator=generator)
    pattern = torch.randint(1, vocab - 1, (batch, 8), generator=generator)
    return pattern.gather(1, torch.arange(length)[None, :] % period[:, None])


def train(model, args, device):
    """Masked-diffusion training on the periodic language (the prompt is never masked)."""
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(args.train_steps):
        rows = periodic_rows(16, args.prompt + args.length, args.vocab, generator).to(device)
        t = torch.rand(16, 1, generator=generator).clamp(0.02, 1.0).to(device)
        masked = torch.rand(rows.shape, generator=generator).to(device) < t
        masked[:, : args.prompt] = False
        loss = model(
            rows.masked_fill(masked, args.vocab - 1), labels=rows.masked_fill(~masked, -100), t=t.squeeze(1)
        ).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def trained_model(args, device, block_size=None, checkpoint=None):
    """The benchmark's model (block-causal with `block_size`), trained by `train` or loaded from `checkpoint`."""
    torch.manual_seed(0)
    config = MDMConfig(
        vocab_size=args.vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=args.prompt + args.length,
        mask_token_id=args.vocab - 1,
        block_size=block_size,
    )
    model = MDMForMaskedGeneration(config).to(device)
    if checkpoint and os.path.exists(checkpoint):
        model.load_state_dict(torch.load(checkpoint, map_location=device))
    else:
        train(model, args, device)
        if checkpoint:
            torch.save(model.state_dict(), checkpoint)
    return enable_diffusion_generation(model.eval())


def timed_generate(model, prompt, device, repeats, **kwargs):
    """(output, median seconds) of `repeats` calls of model.generate(prompt, **kwargs)."""
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(prompt, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256, help="generated tokens")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--block", type=int, default=32, help="block_length, and the block-causal model's block_size")
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--checkpoint", default=None, help="bidirectional model's state dict to load or to write")
    parser.add_argument("--block-checkpoint", default=None, help="the same for the block-causal model")
    parser.add_argument("--models", choices=["bidirectional", "block", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    device = torch.device(args.device)
    rows = periodic_rows(args.batch, args.prompt + args.length, args.vocab, torch.Generator().manual_seed(1)).to(
        device
    )
    prompt, truth = rows[:, : args.prompt], rows[:, args.prompt :]
    shared = dict(max_new_tokens=args.length, steps=args.length, block_length=args.block, return_dict_in_generate=True)

    print(
        f"device={device.type}, batch={args.batch}, prompt={args.prompt}, generated={args.length}, "
        f"block={args.block}, steps={args.length} (ranked: one token per step)\n"
    )
    print(
        "| model | decoding | time (s) | speed-up | forwards per row (mean) | tokens per forward | agreement with "
        "uncached confidence | agreement with the same strategy uncached | accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    models = ["bidirectional", "block"] if args.models == "both" else [args.models]
    for kind in models:
        block_size, checkpoint = (args.block, args.block_checkpoint) if kind == "block" else (None, args.checkpoint)
        model = trained_model(args, device, block_size, checkpoint)
        uncached, baseline = {}, None
        for name, case in CASES[kind]:
            out, seconds = timed_generate(model, prompt, device, args.repeats, **shared, **case)
            generated = out.sequences[:, args.prompt :]
            if case["cache"] == "none":
                uncached[case["strategy"]] = generated
            baseline = seconds if baseline is None else baseline
            agreement = (generated == uncached["confidence"]).float().mean().item()
            exactness = (generated == uncached[case["strategy"]]).float().mean().item()
            accuracy = (generated == truth).float().mean().item()
            print(
                f"| {kind} | {name} | {seconds:.2f} | {baseline / seconds:.1f}x | {out.nfe.float().mean().item():.1f} "
                f"| {out.tokens_per_forward.mean().item():.2f} | {agreement:.3f} | {exactness:.3f} | {accuracy:.3f} |"
            )


if __name__ == "__main__":
    main()
