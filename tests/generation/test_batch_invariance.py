"""A row's output is the same alone and in any batch: block plan, cache spans and random draws are per row."""

import pytest
import torch

from .test_generate import MASK, PAD, tiny_mdm


# Mates of every kind: continuation, infilling (prompt [MASK] early and late), left padding, EOS in the vocabulary.
PROMPTS = [[5, 6, 7], [3, MASK, 5, 6, 7, 8], [9, 9, 2, MASK], [MASK, 4], [12, 13, 14, 15, 16, 17, 18]]


def left_padded(rows):
    width = max(len(row) for row in rows)
    ids = torch.tensor([[PAD] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return ids, mask


def real_tokens(sequence, row_mask, max_new_tokens):
    keep = torch.cat([row_mask.bool(), torch.ones(max_new_tokens, dtype=torch.bool)])
    return sequence[keep]


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
@pytest.mark.parametrize(
    "settings",
    [
        dict(strategy="confidence"),
        dict(strategy="confidence", do_sample=True, strategy_temperature=1.0),
        dict(strategy="random", do_sample=True),
        dict(strategy="threshold", threshold=0.5),
        dict(strategy="remdm", do_sample=True, strategy_kwargs={"eta": 0.3}),
        dict(strategy="editing", strategy_kwargs={"edit_threshold": 0.3}),
    ],
    ids=["greedy", "sampled", "random", "threshold", "remdm", "editing"],
)
def test_every_row_decodes_alone_as_in_the_mixed_batch(settings, cache):
    model = tiny_mdm()
    kwargs = dict(max_new_tokens=8, steps=8, block_length=4, cache=cache, eos_token_id=2, pad_token_id=PAD, **settings)
    ids, mask = left_padded(PROMPTS)
    generators = [torch.Generator().manual_seed(row) for row in range(len(PROMPTS))]
    batch = model.generate(ids, attention_mask=mask, generator=generators, **kwargs)
    for row, prompt in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([prompt]), generator=[torch.Generator().manual_seed(row)], **kwargs)
        assert torch.equal(real_tokens(batch[row], mask[row], 8), alone[0]), f"row {row}"


def test_pure_infilling_rows_are_independent_of_their_mates():
    model = tiny_mdm()
    rows = [[5, MASK, MASK, 7, 8], [MASK, 3, 4, 5, 6, MASK, MASK]]
    ids, mask = left_padded(rows)
    kwargs = dict(max_new_tokens=0, steps=3, cache="none")
    batch = model.generate(ids, attention_mask=mask, **kwargs)
    for row, prompt in enumerate(rows):
        alone = model.generate(torch.tensor([prompt]), **kwargs)
        assert torch.equal(batch[row][mask[row].bool()], alone[0])
