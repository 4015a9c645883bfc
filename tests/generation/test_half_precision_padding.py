"""Left padding in half precision: eager attention decodes a padded row exactly as the same row alone; SDPA, whose
kernel rounds differently with the padded length, is flagged by a warning that names the exact backend."""

import pytest
import torch
from transformers.utils import logging

from hf_mdm import MDMConfig, MDMForMaskedGeneration


VOCAB, PAD_LENGTH = 64, 7


def half_precision_mdm(attn_implementation: str) -> MDMForMaskedGeneration:
    """hidden 128 with the default init: near-uniform logits, where bfloat16 rounding decides between tokens."""
    torch.manual_seed(0)
    config = MDMConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       mask_token_id=VOCAB - 1)  # fmt: skip
    return MDMForMaskedGeneration._from_config(config, attn_implementation=attn_implementation, dtype=torch.bfloat16)


def left_padded(prompt: torch.LongTensor) -> tuple[torch.LongTensor, torch.LongTensor]:
    padding = prompt.new_zeros((1, PAD_LENGTH))
    return torch.cat([padding, prompt], 1), torch.cat([padding, torch.ones_like(prompt)], 1)


def test_eager_bfloat16_decodes_a_left_padded_row_as_the_row_alone():
    model = half_precision_mdm("eager").eval()
    for seed in range(6):
        prompt = torch.randint(0, VOCAB - 2, (1, 6), generator=torch.Generator().manual_seed(seed))
        alone = model.generate(prompt, max_new_tokens=16, steps=16)
        ids, mask = left_padded(prompt)
        padded = model.generate(ids, attention_mask=mask, max_new_tokens=16, steps=16)
        assert torch.equal(padded[0, PAD_LENGTH:], alone[0])


@pytest.mark.parametrize(("attn_implementation", "warned"), [("sdpa", True), ("eager", False)])
def test_padding_with_half_precision_sdpa_warns_and_names_eager(attn_implementation, warned, caplog):
    model = half_precision_mdm(attn_implementation).eval()
    ids, mask = left_padded(torch.arange(6)[None])
    logging.enable_propagation()
    logging.warning_once.cache_clear()  # logged once per process
    try:
        with caplog.at_level("WARNING"):
            model.generate(ids, attention_mask=mask, max_new_tokens=4, steps=4)
    finally:
        logging.disable_propagation()
    messages = [record.getMessage() for record in caplog.records if "padding-exact" in record.getMessage()]
    assert bool(messages) == warned
    if warned:
        assert "attn_implementation='eager'" in messages[0]
