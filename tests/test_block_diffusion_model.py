"""Block-diffusion models (`MDMConfig(block_size=B)`): block-causal attention through transformers' mask registry.

B = 1 is the causal model, B >= L the bidirectional one, a token never sees a later block, padding and the batch
change nothing, and `from_causal_lm(block_size=1)` reproduces the source causal LM
(tests/test_causal_lm_adaptation.py).
"""

import pytest
import torch

from hf_mdm import MDMConfig, MDMForMaskedGeneration
from hf_mdm.block_positions import PAD_BLOCK, block_ids


DIMS = dict(
    vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, mask_token_id=49, max_position_embeddings=64,
)  # fmt: skip
BACKENDS = ["eager", "sdpa"]


def twin(reference, attn_implementation, **fields):
    """A model with `reference`'s weights and other attention fields."""
    model = MDMForMaskedGeneration(MDMConfig(**DIMS, attn_implementation=attn_implementation, **fields)).eval()
    model.load_state_dict(reference.state_dict())
    return model.requires_grad_(False)


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return MDMForMaskedGeneration(MDMConfig(**DIMS)).eval()


def left_padded(ids, pads):
    """Row b of `ids` (B, T) with its first `pads[b]` tokens replaced by padding: the batch of rows of mixed lengths,
    its mask and position ids (as generate() builds them)."""
    mask = (torch.arange(ids.shape[1])[None, :] >= torch.tensor(pads)[:, None]).long()
    return ids.masked_fill(mask == 0, 0), mask, (mask.cumsum(1) - 1).clamp(min=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_block_size_one_is_the_causal_model(reference, backend):
    ids = torch.randint(0, 49, (3, 11))
    causal = twin(reference, backend, is_causal=True)
    block = twin(reference, backend, block_size=1)
    torch.testing.assert_close(block(ids).logits, causal(ids).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("block_size", [11, 12, 64])
def test_a_block_as_long_as_the_sequence_is_the_bidirectional_model(reference, backend, block_size):
    ids = torch.randint(0, 49, (3, 11))
    bidirectional = twin(reference, backend)
    block = twin(reference, backend, block_size=block_size)
    torch.testing.assert_close(block(ids).logits, bidirectional(ids).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("block_size", [2, 3, 4])
def test_a_token_never_sees_a_later_block_and_sees_its_own(reference, backend, block_size):
    model = twin(reference, backend, block_size=block_size)
    ids = torch.randint(0, 49, (2, 12))
    logits = model(ids).logits
    for start in range(block_size, 12, block_size):
        changed = ids.clone()
        changed[:, start:] = (changed[:, start:] + 1) % 49
        other = model(changed).logits
        torch.testing.assert_close(other[:, :start], logits[:, :start], atol=1e-6, rtol=1e-6)
    # bidirectional inside a block: the block's first token sees a change of its last one
    first = ids.clone()
    first[:, block_size - 1] = (first[:, block_size - 1] + 1) % 49
    assert not torch.allclose(model(first).logits[:, 0], logits[:, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_left_padding_and_the_batch_change_no_logits(reference, backend):
    model = twin(reference, backend, block_size=4)
    ids, pads = torch.randint(0, 49, (3, 10)), [0, 3, 5]
    padded, mask, positions = left_padded(ids, pads)
    batched = model(padded, attention_mask=mask, position_ids=positions).logits
    for row, pad in enumerate(pads):
        alone = model(ids[row : row + 1, pad:]).logits[0]
        torch.testing.assert_close(batched[row, pad:], alone, atol=1e-5, rtol=1e-5)


# transformers' and torch's flex-attention code on CPU call deprecated torch APIs (`create_block_mask(_compile=)`,
# `torch.jit.script_method`); none is hf-mdm's call
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_flex_attention_gives_the_eager_logits(reference):
    pytest.importorskip("torch.nn.attention.flex_attention")
    ids = torch.randint(0, 49, (2, 10))
    padded, mask, positions = left_padded(ids, [0, 2])
    with torch.no_grad():
        eager = twin(reference, "eager", block_size=3)(padded, attention_mask=mask, position_ids=positions).logits
        flex = twin(reference, "flex_attention", block_size=3)(
            padded, attention_mask=mask, position_ids=positions
        ).logits
    torch.testing.assert_close(flex[mask.bool()], eager[mask.bool()], atol=1e-5, rtol=1e-5)


def test_block_ids_count_real_tokens_only():
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]])
    assert block_ids(mask, 7, 2).tolist() == [
        [PAD_BLOCK, PAD_BLOCK, 0, 0, 1, 1, 2],
        [0, 0, 1, 1, 2, PAD_BLOCK, PAD_BLOCK],
    ]
    assert block_ids(None, 5, 2).tolist() == [[0, 0, 1, 1, 2]]


@pytest.mark.bad_input
def test_a_padding_mask_that_misses_cached_keys_is_refused():
    with pytest.raises(ValueError, match="covers 4 tokens, but the keys are 6"):
        block_ids(torch.ones(1, 4), 6, 2)


@pytest.mark.bad_input
@pytest.mark.parametrize("fields", [{"block_size": 0}, {"block_size": -2}, {"block_size": 4, "is_causal": True}])
def test_bad_block_sizes_are_refused(fields):
    with pytest.raises(ValueError, match="block_size"):
        MDMConfig(**DIMS, **fields)


def test_block_size_survives_save_and_load(tmp_path, reference):
    model = twin(reference, "sdpa", block_size=4)
    model.save_pretrained(tmp_path)
    loaded = MDMForMaskedGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.block_size == 4
    ids = torch.randint(0, 49, (2, 9))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
