"""AR -> MDM adaptation: weights copied, a mask token added, and the causal switch reproduces the source exactly."""

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from hf_mdm import DataCollatorForMaskedDiffusion, MDMForMaskedGeneration

from .conftest import toy_corpus, word_tokenizer


DIMS = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=2,
    eos_token_id=3,
)
CAUSAL_LMS = {
    "llama": (LlamaConfig, LlamaForCausalLM, {}),
    "mistral": (MistralConfig, MistralForCausalLM, {"sliding_window": None}),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 8}),
}


def tiny_causal_lm(kind, vocab_size, **overrides):
    config_class, model_class, extra = CAUSAL_LMS[kind]
    torch.manual_seed(0)
    return model_class(config_class(vocab_size=vocab_size, **DIMS, **extra, **overrides)).eval()


@pytest.mark.parametrize("kind", sorted(CAUSAL_LMS))
@pytest.mark.parametrize("causal", ["is_causal", "block_size=1"])
def test_causal_switch_reproduces_the_source_logits(kind, causal):
    """The causal switch, or a block-diffusion model with blocks of one token (`from_causal_lm(block_size=1)`)."""
    tokenizer = word_tokenizer(with_mask=False)
    source = tiny_causal_lm(kind, vocab_size=len(tokenizer))
    ids = torch.randint(4, len(tokenizer), (2, 9))
    with torch.no_grad():
        expected = source(ids).logits
    block_size = 1 if causal == "block_size=1" else None
    model = MDMForMaskedGeneration.from_causal_lm(
        source, tokenizer=tokenizer, mask_token="[MASK]", block_size=block_size
    ).eval()
    assert tokenizer.mask_token_id == model.config.mask_token_id == len(tokenizer) - 1
    assert model.config.vocab_size == len(tokenizer) and model.config.block_size == block_size
    model.config.is_causal = block_size is None
    with torch.no_grad():
        ours = model(ids).logits
    keep = torch.arange(len(tokenizer) - 1)  # the source's vocabulary, without the new mask column
    # logits_shift=1: our logits[:, i] is the source's prediction made at position i - 1
    torch.testing.assert_close(ours[:, 1:, keep], expected[:, :-1, keep], atol=1e-5, rtol=1e-5)


def test_adapted_model_is_bidirectional_and_has_a_mean_mask_embedding():
    tokenizer = word_tokenizer(with_mask=False)
    source = tiny_causal_lm("llama", vocab_size=len(tokenizer))
    mean = source.get_input_embeddings().weight.mean(0)
    model = MDMForMaskedGeneration.from_causal_lm(source, tokenizer=tokenizer, mask_token="[MASK]").eval()
    torch.testing.assert_close(model.get_input_embeddings().weight[model.config.mask_token_id], mean)
    ids = torch.randint(4, 16, (1, 6))
    changed = ids.clone()
    changed[0, -1] = 4 if ids[0, -1] != 4 else 5
    assert not torch.allclose(model(ids).logits[0, 1], model(changed).logits[0, 1])


def test_room_in_a_padded_vocabulary_is_used_without_resizing():
    tokenizer = word_tokenizer(with_mask=False)
    padded_vocab = len(tokenizer) + 8
    source = tiny_causal_lm("qwen2", vocab_size=padded_vocab)
    model = MDMForMaskedGeneration.from_causal_lm(source, tokenizer=tokenizer, mask_token="[MASK]")
    assert model.config.vocab_size == padded_vocab
    assert model.config.mask_token_id == len(tokenizer) - 1 < padded_vocab


def test_adapted_model_saves_loads_and_trains(tmp_path):
    tokenizer = word_tokenizer(with_mask=False)
    model = MDMForMaskedGeneration.from_causal_lm(
        tiny_causal_lm("llama", vocab_size=len(tokenizer)), tokenizer=tokenizer, mask_token="[MASK]"
    )
    model.save_pretrained(tmp_path)
    reloaded = MDMForMaskedGeneration.from_pretrained(tmp_path)
    assert reloaded.config.logits_shift == 1
    batch = DataCollatorForMaskedDiffusion(tokenizer, generator=torch.Generator().manual_seed(0))(
        [tokenizer(text) for text in toy_corpus(8)]
    )
    loss = reloaded(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and reloaded.lm_head.weight.grad is not None


@pytest.mark.bad_input
def test_adaptation_errors_name_the_fix():
    tokenizer = word_tokenizer(with_mask=False)
    with pytest.raises(ValueError, match="no mask token and none was given.*mask_token="):
        MDMForMaskedGeneration.from_causal_lm(tiny_causal_lm("llama", len(tokenizer)), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="needs its tokenizer"):
        MDMForMaskedGeneration.from_causal_lm(tiny_causal_lm("llama", len(tokenizer)), mask_token="[MASK]")
    masked_tokenizer = word_tokenizer()
    with pytest.raises(ValueError, match="disagrees with mask_token='<mask>'"):
        MDMForMaskedGeneration.from_causal_lm(
            tiny_causal_lm("llama", len(masked_tokenizer)), tokenizer=masked_tokenizer, mask_token="<mask>"
        )
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="Cannot adapt a 'gpt2' model"):
        MDMForMaskedGeneration.from_causal_lm(gpt2, tokenizer=tokenizer, mask_token="[MASK]")
    with pytest.raises(TypeError, match="causal LM or a path"):
        MDMForMaskedGeneration.from_causal_lm(42)
