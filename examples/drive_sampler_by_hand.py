"""Drive generate()'s sampler by hand: the same loop generate() runs, with the model call in your hands.

    python examples/drive_sampler_by_hand.py

Builds a small random MDM, decodes a prompt step by step (printing the canvas and the candidates after each step) and
checks that the result equals `model.generate(...)` token for token.
"""

import torch

from hf_mdm import MDMConfig, MDMForMaskedGeneration
from hf_mdm.generation import DiffusionGenerationConfig, DiffusionSampler


MASK, STEPS, NEW_TOKENS = 31, 8, 8


def main() -> torch.LongTensor:
    torch.manual_seed(0)
    config = MDMConfig(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=64, mask_token_id=MASK)  # fmt: skip
    model = MDMForMaskedGeneration(config).eval()
    prompt = torch.tensor([[5, 6, 7, MASK, 9]])

    # 1. The sampler, from a generation config: strategy, reveal counts, schedule, cache, logits processors.
    generation_config = DiffusionGenerationConfig(steps=STEPS, strategy="confidence", mask_token_id=MASK)
    sampler = DiffusionSampler.from_config(generation_config)
    # 2. The canvas (prompt, then NEW_TOKENS [MASK]; every [MASK] is filled), its block plan and time grid.
    state = sampler.prepare(prompt, max_new_tokens=NEW_TOKENS)
    # 3. The loop: for each block, run the model on the request the sampler builds (rows whose canvas changed, the
    #    positions to score), then step.
    with torch.no_grad():
        for block in sampler.blocks:
            sampler.begin_block(state, block)
            while sampler.is_running(state):
                request = sampler.model_request(state)  # None: no row changed since its last forward
                logits = None
                if request is not None:
                    logits = model(request.input_ids, position_ids=request.position_ids,
                                   logits_to_keep=request.keep).logits  # fmt: skip
                output = sampler.step(state, logits, request)
                print(f"t={output.t:.3f} -> s={output.s:.3f}: canvas {output.canvas[0].tolist()}  "
                      f"candidates {output.candidates[0].tolist()}")  # fmt: skip

    reference = model.generate(prompt, max_new_tokens=NEW_TOKENS, steps=STEPS, strategy="confidence")
    assert torch.equal(state.canvas, reference), (state.canvas, reference)
    print("equal to model.generate(...):", state.canvas[0].tolist())
    return state.canvas


if __name__ == "__main__":
    main()
