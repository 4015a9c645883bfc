"""enable_diffusion_generation refuses causal LMs (their logits predict the next token: decoding them as a masked LM's
gives text without an error) and points to MDMForMaskedGeneration.from_causal_lm; masked LMs are accepted."""

import pytest
import torch
from transformers import (
    BertForMaskedLM,
    BertLMHeadModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForCausalLM,
    XLMConfig,
    XLMWithLMHeadModel,
)

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.generation import DiffusionGenerationMixin, enable_diffusion_generation
from hf_mdm.generation.enable_diffusion_generation import causal_lm_evidence

from ..conftest import tiny_bert_config, tiny_config, word_tokenizer


SIZES = dict(vocab_size=17, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)


class RenamedLlama(LlamaForCausalLM):
    """A causal LM under a name that says nothing: AutoModelForCausalLM's mapping still recognises it."""


class UnmappedConfig(PretrainedConfig):
    model_type = "unmapped-causal-lm-test"


class UnmappedForCausalLM(PreTrainedModel):
    """A causal LM that no Auto mapping knows (as remote code is) and whose config says nothing: only its class
    name tells."""

    config_class = UnmappedConfig

    def __init__(self, config):
        super().__init__(config)
        self.lm_head = torch.nn.Embedding(17, 17)
        self.post_init()


CAUSAL_LMS = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**SIZES)),
    "renamed_llama": lambda: RenamedLlama(LlamaConfig(**SIZES)),
    "gpt2": lambda: GPT2LMHeadModel(
        GPT2Config(vocab_size=17, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    ),  # fmt: skip
    "bert_decoder": lambda: BertLMHeadModel(tiny_bert_config(17, is_decoder=True)),
    "roberta_causal": lambda: RobertaForCausalLM(RobertaConfig(is_decoder=True, **SIZES)),
    "bert_masked_lm_configured_as_decoder": lambda: BertForMaskedLM(tiny_bert_config(17, is_decoder=True)),
    "unmapped_causal_lm_class_name": lambda: UnmappedForCausalLM(UnmappedConfig()),
    "xlm_configured_as_causal": lambda: XLMWithLMHeadModel(
        XLMConfig(vocab_size=17, emb_dim=16, n_layers=1, n_heads=2, causal=True)
    ),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("build", CAUSAL_LMS.values(), ids=CAUSAL_LMS.keys())
def test_causal_lms_are_refused_pointing_to_from_causal_lm(build):
    torch.manual_seed(0)
    model = build().eval()
    with pytest.raises(ValueError, match="this is a causal LM: .*MDMForMaskedGeneration.from_causal_lm"):
        enable_diffusion_generation(model, word_tokenizer())
    assert not isinstance(model, DiffusionGenerationMixin)  # left untouched


def test_masked_lms_and_diffusion_models_are_accepted():
    torch.manual_seed(0)
    bert = BertForMaskedLM(tiny_bert_config(17)).eval()
    assert causal_lm_evidence(bert) is None
    assert isinstance(enable_diffusion_generation(bert, mask_token_id=4), DiffusionGenerationMixin)
    # XLM's one LM class is both AutoModelForCausalLM's and AutoModelForMaskedLM's: a masked LM despite its name
    xlm = XLMWithLMHeadModel(XLMConfig(vocab_size=17, emb_dim=16, n_layers=1, n_heads=2)).eval()
    assert causal_lm_evidence(xlm) is None
    converted = MDMForMaskedGeneration(tiny_config(logits_shift=1))  # what from_causal_lm returns
    assert causal_lm_evidence(converted) is None and enable_diffusion_generation(converted) is converted
