"""Drive generate()'s sampler by hand: the same loop generate() runs, with the model call in your hands.

    python examples/drive_sampler_by_hand.py

Builds a small random MDM, decodes a prompt step by step (printing the canvas and the candidates after each step) and
checks that the result equals `model.generate(...)` token for token.
"""

import torch
from transformers import LogitsProcessorList

from hf_mdm import MDMConfig, MDMForMaskedGeneration
from hf_mdm.generation import DiffusionSampler, DiffusionState, RowRandomness, get_reveal_count_rule, get_strategy
from hf_mdm.schedules import get_schedule


MASK, STEPS, NEW_TOKENS = 31, 8, 8


def main() -> torch.LongTensor:
    torch.manual_seed(0)
    config = MDMConfig(vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=64, mask_token_id=MASK)  # fmt: skip
    model = MDMForMaskedGeneration(config).eval()
    prompt = torch.tensor([[5, 6, 7, MASK, 9]])

    # 1. The canvas and its state: prompt, then NEW_TOKENS [MASK]; every [MASK] is a position to fill.
    canvas = torch.cat([prompt, torch.full((1, NEW_TOKENS), MASK)], dim=1)
    fill = canvas == MASK
    state = DiffusionState(
        canvas=canvas,
        attention_mask=torch.ones_like(canvas),
        position_ids=torch.arange(canvas.shape[1])[None],
        fill=fill,
        mask_token_id=MASK,
        prompt_length=prompt.shape[1],
        done=~fill.any(1),
        nfe=torch.zeros(1, dtype=torch.long),
        steps_per_block=torch.zeros(1, 1, dtype=torch.long),
    )
    # 2. The sampler: strategy, reveal counts, schedule, logits processors, randomness; one block of STEPS steps.
    schedule = get_schedule("linear")
    sampler = DiffusionSampler(get_strategy("confidence", schedule=schedule), get_reveal_count_rule("schedule"),
                               schedule, LogitsProcessorList(), RowRandomness(None, 1), do_sample=False)  # fmt: skip
    sampler.set_timesteps(STEPS, block_ends=[canvas.shape[1]])
    first_starts = fill.float().argmax(1)  # the row's first position to fill starts block 0
    sampler.begin_block(state, 0, first_starts)
    # 3. The loop: denoise the rows that changed, then step.
    with torch.no_grad():
        while bool(sampler.active_rows(state).any()):
            rows, columns = sampler.denoise_request(state)
            logits = None
            if rows.numel() > 0:
                logits = model(state.canvas[rows], logits_to_keep=state.window_start + columns).logits
            sampler.step(state, logits, rows, columns)
            print(f"step {state.step}: canvas {state.canvas[0].tolist()}  candidates {state.candidates[0].tolist()}")

    reference = model.generate(prompt, max_new_tokens=NEW_TOKENS, steps=STEPS, strategy="confidence")
    assert torch.equal(state.canvas, reference), (state.canvas, reference)
    print("equal to model.generate(...):", state.canvas[0].tolist())
    return state.canvas


if __name__ == "__main__":
    main()
