"""Block caches: a replayed forward of the block sees exactly what a full forward sees while nothing changed."""

import pytest
import torch

from hf_mdm.generation import DualBlockCache, PrefixBlockCache

from .test_generate import MASK, PAD, tiny_mdm


@pytest.mark.parametrize("dual", [False, True])
@pytest.mark.parametrize("logits_shift", [0, 1])
def test_replay_matches_the_full_forward_for_left_padded_rows(dual, logits_shift):
    model = tiny_mdm(logits_shift=logits_shift)
    canvas = torch.tensor(
        [
            [PAD, PAD, PAD, 5, 6, 7, 8, MASK, MASK, MASK, 3, MASK, MASK, MASK],
            [4, 5, 6, 7, 8, 9, 10, 11, MASK, 12, MASK, MASK, MASK, MASK],
            [PAD, 9, 8, 7, 6, 5, 4, MASK, 2, MASK, MASK, MASK, MASK, MASK],
        ]
    )
    attention_mask = (canvas != PAD).long()
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    start, end, length = 7, 10, canvas.shape[1]
    full = model(canvas, attention_mask=attention_mask, position_ids=position_ids, logits_to_keep=slice(start, end))

    cache = DualBlockCache() if dual else PrefixBlockCache()
    query_start = start - logits_shift
    query_end = end if dual else length
    cache.record(torch.full((3,), query_start), end, length, torch.arange(3), batch_size=3)
    assert (cache.query_start, cache.query_end) == (query_start, query_end)
    recorded = model(
        canvas,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        logits_to_keep=slice(start, end),
    )
    torch.testing.assert_close(recorded.logits, full.logits)

    for rows in (torch.arange(3), torch.tensor([0, 2]), torch.tensor([1])):
        cache.replay(rows)
        replayed = model(
            canvas[rows, query_start:query_end],
            attention_mask=attention_mask[rows],
            position_ids=position_ids[rows, query_start:query_end],
            cache=cache,
            logits_to_keep=slice(start - query_start, end - query_start),
        )
        torch.testing.assert_close(replayed.logits, full.logits[rows], rtol=1e-4, atol=1e-4)


def test_cache_reports_the_full_canvas_as_key_length():
    cache = DualBlockCache()
    cache.record(torch.tensor([4, 4]), 8, 20, torch.arange(2), batch_size=2)
    assert cache.get_mask_sizes(20, 0) == (20, 0)
    cache.replay(torch.arange(2))
    assert cache.get_mask_sizes(4, 0) == (20, 0)
    assert cache.get_seq_length() == 4
