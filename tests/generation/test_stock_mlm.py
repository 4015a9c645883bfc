"""enable_diffusion_generation: generate() on stock masked LMs from tiny configs (no downloads), and streaming."""

import contextlib
import io

import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForMaskedLM,
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForMaskedLM,
    ModernBertConfig,
    ModernBertForMaskedLM,
    RobertaConfig,
    RobertaForMaskedLM,
    TextDiffusionStreamer,
)

from hf_mdm.generation import DiffusionGenerationMixin, enable_diffusion_generation

from ..conftest import tiny_bert_config
from .test_generate import MASK, PROMPT_MASK, PROMPTS, VOCAB


SIZES = dict(vocab_size=VOCAB, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)


def tiny_bert():
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config(VOCAB, max_position_embeddings=64))
    return enable_diffusion_generation(model.eval(), mask_token_id=MASK)


def tiny_modernbert():
    torch.manual_seed(0)
    config = ModernBertConfig(
        hidden_size=16,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        cls_token_id=2,
        sep_token_id=3,
        **SIZES,
    )
    return enable_diffusion_generation(ModernBertForMaskedLM(config).eval(), mask_token_id=MASK)


def tiny_others():
    torch.manual_seed(0)
    return [
        RobertaForMaskedLM(RobertaConfig(hidden_size=16, max_position_embeddings=72, **SIZES)),
        AlbertForMaskedLM(AlbertConfig(embedding_size=8, hidden_size=16, max_position_embeddings=64, **SIZES)),
        DistilBertForMaskedLM(DistilBertConfig(vocab_size=VOCAB, dim=16, n_layers=1, n_heads=2, hidden_dim=32)),
    ]


@pytest.mark.parametrize("build", [tiny_bert, tiny_modernbert])
@pytest.mark.parametrize("strategy", ["random", "confidence", "threshold"])
def test_stock_mlm_generates(build, strategy):
    model = build()
    out = model.generate(
        PROMPTS,
        attention_mask=PROMPT_MASK,
        max_new_tokens=8,
        steps=4,
        block_length=4,
        strategy=strategy,
        return_dict_in_generate=True,
    )
    assert torch.equal(out.sequences[:, :5], PROMPTS)
    assert not (out.sequences == MASK).any()
    assert (out.nfe >= 1).all()


@pytest.mark.parametrize("build", [tiny_bert, tiny_modernbert])
def test_left_padding_gives_the_same_tokens_as_the_unpadded_prompt(build):
    model = build()
    batch = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, steps=8)
    alone = model.generate(PROMPTS[:1, 2:], max_new_tokens=8, steps=8)
    assert torch.equal(batch[0, 2:], alone[0])


def test_roberta_albert_distilbert_generate():
    for model in tiny_others():
        model = enable_diffusion_generation(model.eval(), mask_token_id=MASK)
        out = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=4, steps=2)
        assert out.shape == (2, 9) and not (out == MASK).any()


def test_enable_keeps_the_checkpoint_and_is_idempotent(tmp_path):
    model = tiny_bert()
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert enable_diffusion_generation(model) is model
    assert isinstance(model, BertForMaskedLM) and isinstance(model, DiffusionGenerationMixin)
    assert type(model).__name__ == "BertForMaskedLM"
    model.generation_config.steps = 3
    model.save_pretrained(tmp_path)
    reloaded = BertForMaskedLM.from_pretrained(tmp_path)
    assert reloaded.config.architectures == ["BertForMaskedLM"]
    assert all(torch.equal(reloaded.state_dict()[name], tensor) for name, tensor in weights.items())
    enable_diffusion_generation(reloaded)  # picks up the saved generation_config.json
    assert (reloaded.generation_config.steps, reloaded.generation_config.mask_token_id) == (3, MASK)


class DigitTokenizer:
    """Just enough of a tokenizer for TextStreamer: ids are printed as space-separated numbers."""

    def decode(self, ids, **kwargs):
        return "".join(f"{i} " for i in (ids.tolist() if hasattr(ids, "tolist") else ids))


def test_text_diffusion_streamer_gets_drafts_and_final_blocks():
    model = tiny_bert()
    streamer = TextDiffusionStreamer(DigitTokenizer(), skip_prompt=True)
    drafts = []
    put_draft = streamer.put_draft
    streamer.put_draft = lambda value, **kwargs: (drafts.append(value), put_draft(value, **kwargs))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        out = model.generate(PROMPTS[1:], max_new_tokens=8, steps=4, block_length=4, streamer=streamer)
    # a draft shows what follows the text printed for good: the whole generation, then the block after block 0
    assert [draft.shape for draft in drafts] == [(1, 8), (1, 8), (1, 4), (1, 4)]
    assert torch.equal(drafts[-1], out[:, -4:])
    final = printed.getvalue().split("\x1b[J")[-1]  # what is left after the last draft was cleared
    assert final.split() == [str(i) for i in out[0, 9:].tolist()]


def test_bert_tokenizer_outputs_can_be_passed_whole():
    """`generate(**tokenizer(...))` works with the token_type_ids BERT tokenizers return; pairs are refused."""
    torch.manual_seed(0)
    bert = BertForMaskedLM(tiny_bert_config(20)).eval()
    model = enable_diffusion_generation(bert, mask_token_id=4)
    ids = torch.tensor([[5, 6, 7]])
    with_types = model.generate(input_ids=ids, token_type_ids=torch.zeros_like(ids), max_new_tokens=3, steps=3)
    assert torch.equal(with_types, model.generate(input_ids=ids, max_new_tokens=3, steps=3))
    with pytest.raises(ValueError, match="single segment"):
        model.generate(input_ids=ids, token_type_ids=torch.tensor([[0, 1, 1]]), max_new_tokens=3, steps=3)
