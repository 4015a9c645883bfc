"""The measurement side works on the families hf-mdm reads natively (issue O): LLaDA 2.x, LLaDA-MoE and SDAR, each a
tiny model of the family over a formal language's tokenizer: `sweep_steps` and its card, `hf-mdm`'s folder loading,
lm-eval (log-likelihood and generation) and the text-generation pipeline. Loading the published folders, logits
parity, the authors' samplers, training and saving are in the per-family test files."""

import math

import pytest
import torch
from transformers import pipeline

from hf_mdm import (
    DiffusionTextGenerationPipeline,
    LLaDA2MoeConfig,
    LLaDA2MoeForMaskedDiffusion,
    LLaDAMoEConfig,
    LLaDAMoEForMaskedDiffusion,
    NGramLanguage,
    SDARConfig,
    SDARForMaskedDiffusion,
)
from hf_mdm.evaluation import LanguageTask, sweep_steps
from hf_mdm.hub import ModelCard
from hf_mdm.model_loading import diffusion_model_class, load_for_diffusion_generation


FAMILIES = ("llada2_moe", "lladamoe", "sdar")
SIZES = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64)  # fmt: skip
BLOCK = 4


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=3, seed=0)


def family_model(family, tokenizer, seed=0):
    """A tiny model of `family` over `tokenizer`'s ids (block-causal with blocks of 4 where the family is)."""
    ids = dict(vocab_size=len(tokenizer), mask_token_id=tokenizer.mask_token_id, pad_token_id=tokenizer.pad_token_id,
               eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)  # fmt: skip
    torch.manual_seed(seed)
    if family == "llada2_moe":
        config = LLaDA2MoeConfig(**ids, **SIZES, head_dim=8, moe_intermediate_size=16, num_experts=4,
                                 num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1,
                                 block_size=BLOCK)  # fmt: skip
        return LLaDA2MoeForMaskedDiffusion(config).eval()
    if family == "lladamoe":
        config = LLaDAMoEConfig(**ids, hidden_size=32, dense_intermediate_size=64, expert_intermediate_size=16,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                max_position_embeddings=64, num_experts=4, num_experts_per_tok=2,
                                moe_layer_freq=[0, 1])  # fmt: skip
        return LLaDAMoEForMaskedDiffusion(config).eval()
    return SDARForMaskedDiffusion(SDARConfig(**ids, **SIZES, head_dim=8, block_size=BLOCK)).eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_sweep_steps_and_its_card_on_each_native_family(language, family):
    tokenizer = language.tokenizer()
    model = family_model(family, tokenizer)
    rows = sweep_steps(model, tokenizer, LanguageTask(language), steps=[2, 8], strategies=["confidence"], lengths=[8],
                       num_samples=8, progress=False)  # fmt: skip
    block = getattr(model.config, "block_size", None) or 8  # LLaDA-MoE is bidirectional: one block
    assert [(row["steps"], row["block_size"]) for row in rows] == [(2, block), (8, block)]
    for row in rows:
        assert 0 <= row["ser_low"] <= row["ser"] <= row["ser_high"] <= 1
        assert math.isfinite(row["log_perplexity"]) and 1 <= row["nfe"] <= row["steps"]
    card = ModelCard.from_sweep(rows, model=model, model_name=f"tiny {family}")
    assert "## Score | tokens per forward" in card.text and f"tiny {family}" in card.text


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_folder_is_measured_by_lm_eval_the_cli_loader_and_the_pipeline(language, family, tmp_path):
    """A saved folder of each family loads as its own class for `hf-mdm` (train/sweep/eval) and lm-eval, whose
    log-likelihood and generation run on it, and in `pipeline("text-generation")`."""
    lm_eval_harness = pytest.importorskip("hf_mdm.integrations.lm_eval_harness")
    from lm_eval.api.instance import Instance

    tokenizer = language.tokenizer()
    model = family_model(family, tokenizer)
    model.save_pretrained(tmp_path)
    family_class = type(model)
    assert diffusion_model_class(str(tmp_path)) is family_class
    assert type(load_for_diffusion_generation(str(tmp_path), tokenizer)) is family_class
    lm = lm_eval_harness.MaskedDiffusionLM(pretrained=str(tmp_path), tokenizer=tokenizer, mc_num=4, mc_groups=2)
    assert type(lm.model) is family_class
    context, continuation = "0 1 2 0", " 1 2"
    ((value, _),) = lm.loglikelihood([Instance("loglikelihood", {}, (context, continuation), 0)])
    assert math.isfinite(value) and value < 0
    (text,) = lm.generate_until([Instance("generate_until", {}, (context, {"max_gen_toks": 8}), 0)])
    words = text.split()
    assert 1 <= len(words) <= 8 and all(word in {"0", "1", "2", "3", "4", "5"} for word in words)  # the symbols
    assert 1 <= lm.nfe <= 8  # at most one forward per generated token
    generator = pipeline("text-generation", model=str(tmp_path), tokenizer=tokenizer)
    assert type(generator) is DiffusionTextGenerationPipeline and type(generator.model) is family_class


@pytest.mark.bad_input
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_refuses_an_empty_or_too_long_sequence_before_its_layers(language, family):
    """The stacks share one input preparation (`diffusion_stack_inputs`): its refusals hold for every family."""
    model = family_model(family, language.tokenizer())
    too_long = torch.zeros(1, model.config.max_position_embeddings + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="65 positions but the model was built for max_position_embeddings=64"):
        model(too_long)
    with pytest.raises(ValueError, match="empty sequence"):
        model(torch.zeros(1, 0, dtype=torch.long))


@pytest.mark.bad_input
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_refuses_hf_mdm_remote_code_before_writing_and_takes_a_model_card(language, family, tmp_path):
    """The shared save (`DiffusionPretrainedMixin.save_pretrained`): remote code is MDM's and cannot run these
    families, so it is refused before anything is written (SDAR once saved silently without it); a model card is
    written beside the weights."""
    model = family_model(family, language.tokenizer())
    with pytest.raises(ValueError, match=f"which cannot run {type(model).__name__}; save without it"):
        model.save_pretrained(tmp_path / "refused", remote_code=True)
    assert not (tmp_path / "refused").exists()
    model.save_pretrained(tmp_path / "saved", model_card=ModelCard("# tiny"))
    assert (tmp_path / "saved" / "README.md").read_text().strip().endswith("# tiny")
