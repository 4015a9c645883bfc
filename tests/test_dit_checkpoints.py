"""SEDD, MDLM and BD3-LM folders in their published formats load as `DiTForMaskedDiffusion` and reproduce the logits
of the authors' own code (tests/fixtures/{sedd,mdlm,bd3lm}-tiny, made by that code; each folder's README says how),
save as hf-mdm folders and back in their own format, and refuse what hf-mdm does not implement."""

import copy
import functools
import json
import logging
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM

from hf_mdm import DiTConfig, DiTForMaskedDiffusion, MDMForMaskedGeneration
from hf_mdm.checkpoint_formats import SEDDFormatConfig, sedd_log_score
from hf_mdm.model_loading import diffusion_model_class, load_for_diffusion_generation


FIXTURES = Path(__file__).parent / "fixtures"
FAMILIES = ("sedd", "mdlm", "bd3lm")
TOLERANCE = 1e-5


def folder(family):
    return FIXTURES / f"{family}-tiny"


def read(family, name):
    return load_file(folder(family) / f"{name}.safetensors")


@functools.cache
def load(family):
    return DiTForMaskedDiffusion.from_pretrained(folder(family)).eval()


def sigma_of(inputs, name):
    """The fixture's sigma (one of `inputs['sigmas']`) whose rounded value ends the expected tensor's name."""
    value = float(name.rsplit("_", 1)[1])
    sigmas = inputs["sigmas"]
    return sigmas[(sigmas - value).abs().argmin()].expand(2)


def time_conditioned_copy(model):
    """The same weights conditioned on sigma (the authors' DIT called without their zeroing of sigma)."""
    model = copy.deepcopy(model)
    model.config.time_conditioning = True
    return model


def max_difference(ours, reference, mask_token_id):
    """Max |difference| outside the [MASK] column (the authors' head gives it a value, ours -inf: never predicted)."""
    keep = torch.arange(ours.shape[-1]) != mask_token_id
    return float((ours[..., keep] - reference[..., keep]).abs().max())


@pytest.mark.parametrize("family", FAMILIES)
def test_each_published_folder_loads_as_the_dit_with_every_weight_used(family, caplog):
    loader = DiTForMaskedDiffusion if family == "sedd" else AutoModel
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        model, info = loader.from_pretrained(folder(family), output_loading_info=True)
    assert type(model) is DiTForMaskedDiffusion
    assert not any(info.values()), info
    assert not [record for record in caplog.records if "weight" in record.getMessage().lower()]
    assert model.config.checkpoint_format == family
    assert model.config.mask_token_id == model.config.vocab_size - 1
    stored = load_file(folder(family) / "model.safetensors")
    state = model.state_dict()
    prefix = "" if family == "sedd" else "backbone."
    for name, tensor in stored.items():
        ours = state[name if name.startswith("sampling_eps") else "backbone." + name.removeprefix(prefix)]
        assert torch.equal(ours, tensor), name


def test_auto_model_reads_a_sedd_folder_given_its_format_config():
    """SEDD's config.json has no model_type, so the Auto classes cannot choose a class from it (transformers 5 has no
    name-pattern fallback); given the format's config class they dispatch to the DiT, which reads the folder as is."""
    config = SEDDFormatConfig.from_pretrained(folder("sedd"))
    model = AutoModel.from_pretrained(folder("sedd"), config=config)
    assert type(model) is DiTForMaskedDiffusion
    assert model.config.original_config == json.loads((folder("sedd") / "config.json").read_text())


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_defaults_to_the_ancestral_sampler_the_authors_use(family):
    config = load(family).generation_config
    assert (config.strategy, config.do_sample, config.mask_token_id) == ("random", True, 127)
    assert load(family).config.noise_schedule.name == "log-linear"


def test_masked_lm_auto_class_and_the_config_fields():
    model = AutoModelForMaskedLM.from_pretrained(folder("bd3lm"))
    assert type(model) is DiTForMaskedDiffusion
    assert model.config.block_size == 4 and not model.config.time_conditioning
    sedd = load("sedd").config
    assert sedd.time_conditioning and sedd.output_parametrization == "score" and sedd.block_size is None


def test_mdlm_raw_logits_at_every_noise_level_and_the_subs_pipeline():
    """raw_logits_sigma_s: the authors' DIT conditioned on s (our model with time_conditioning on); subs_logprobs:
    their Diffusion.forward (sigma zeroed, as mdlm-owt's time_conditioning=False)."""
    inputs, expected = read("mdlm", "inputs"), read("mdlm", "expected_logits")
    ids = inputs["input_ids"]
    conditioned = time_conditioned_copy(load("mdlm"))
    with torch.no_grad():
        for name, reference in expected.items():
            if name.startswith("raw_logits_sigma_"):
                logits = conditioned(ids, sigma=sigma_of(inputs, name)).logits
                assert max_difference(logits, reference, 127) <= TOLERANCE, name
        subs = torch.log_softmax(load("mdlm")(ids).logits, -1)
    masked = ids == 127
    assert max_difference(subs[masked], expected["subs_logprobs"][masked], 127) <= TOLERANCE


def test_bd3lm_training_layout_time_conditioned_variant_and_block_causal_sampling_layout():
    inputs, expected = read("bd3lm", "inputs"), read("bd3lm", "expected_logits")
    xt, x0 = inputs["xt"], inputs["x0"]
    conditioned = time_conditioned_copy(load("bd3lm"))
    with torch.no_grad():
        for name, reference in expected.items():
            if name.startswith("sample_layout_logits_len"):
                length = reference.shape[1]
                logits = load("bd3lm")(xt[:, :length]).logits
            else:
                model = conditioned if name.startswith("tc_") else load("bd3lm")
                logits = model(xt, clean_input_ids=x0, sigma=sigma_of(inputs, name)).logits
            assert max_difference(logits, reference, 127) <= TOLERANCE, name


def test_sedd_log_scores_at_every_noise_level_and_at_sigma_of_t():
    inputs, expected = read("sedd", "inputs"), read("sedd", "expected_logits")
    ids = inputs["input_ids"]
    with torch.no_grad():
        for name, reference in expected.items():
            if name.startswith("log_score_sigma_of_t"):
                sigma, logits = inputs["sigma_of_t_rows"], load("sedd")(ids, t=inputs["t_rows"]).logits
            else:
                sigma = sigma_of(inputs, name)
                logits = load("sedd")(ids, sigma=sigma).logits
            log_score = sedd_log_score(logits, ids, sigma)
            assert max_difference(log_score, reference, 127) <= TOLERANCE, name
            stays = reference.gather(-1, ids[..., None])
            assert torch.equal(log_score.gather(-1, ids[..., None]), stays)  # 0: the score of staying


def test_sedd_score_to_probability_relation():
    """p̂_j = s_j expm1(sigma) = exp(logits_j) at masked positions, from the authors' scores at every sigma; and
    softmax(logits) is the normalised p(x_0 | x_t)."""
    inputs, expected = read("sedd", "inputs"), read("sedd", "expected_logits")
    ids = inputs["input_ids"]
    masked = ids == 127
    for name, reference in expected.items():
        if name.startswith("log_score_sigma_of_t"):
            continue
        sigma = sigma_of(inputs, name)
        with torch.no_grad():
            logits = load("sedd")(ids, sigma=sigma).logits
        p_hat = reference[..., :127].exp() * torch.expm1(sigma)[:, None, None]
        assert torch.allclose(p_hat[masked], logits[..., :127].exp()[masked], rtol=1e-5, atol=1e-8), name
    probs = logits.softmax(-1)
    assert torch.allclose(probs.sum(-1), torch.ones(2, 16)) and float(probs[..., 127].max()) == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_a_padded_row_gives_the_logits_of_the_same_row_alone(family):
    """The authors' DiTs have no padding mask; ours masks pad keys and numbers positions from each row's first real
    token, so a left-padded row reproduces their unpadded row."""
    model = load(family)
    ids = read(family, "inputs")["input_ids" if family != "bd3lm" else "xt"]
    pad = 3
    padded = torch.cat([torch.full((2, pad), 5), ids], dim=1)
    mask = torch.cat([torch.zeros(2, pad, dtype=torch.long), torch.ones_like(ids)], dim=1)
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)
    sigma = torch.tensor([0.7, 2.0])
    with torch.no_grad():
        alone = model(ids, sigma=sigma).logits
        together = model(padded, attention_mask=mask, position_ids=position_ids, sigma=sigma).logits[:, pad:]
    assert max_difference(together, alone, 127) <= TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_save_pretrained_round_trip_and_saving_back_in_the_original_format(family, tmp_path):
    model = load(family)
    ids = read(family, "inputs")["input_ids" if family != "bd3lm" else "xt"]
    sigma = torch.tensor([0.5, 3.0])
    model.save_pretrained(tmp_path / "hf-mdm")
    assert json.loads((tmp_path / "hf-mdm" / "config.json").read_text())["model_type"] == "mdm-dit"
    again = AutoModel.from_pretrained(tmp_path / "hf-mdm").eval()
    model.save_pretrained(tmp_path / "original", original_format=True)
    original = json.loads((folder(family) / "config.json").read_text())
    assert json.loads((tmp_path / "original" / "config.json").read_text()) == original
    saved, published = (load_file(path / "model.safetensors") for path in (tmp_path / "original", folder(family)))
    assert saved.keys() == published.keys()
    assert all(torch.equal(saved[name], published[name]) for name in published)
    reread = DiTForMaskedDiffusion.from_pretrained(tmp_path / "original").eval()
    with torch.no_grad():
        reference = model(ids, sigma=sigma).logits
        assert torch.equal(again(ids, sigma=sigma).logits, reference)
        assert torch.equal(reread(ids, sigma=sigma).logits, reference)


def test_a_fine_tuned_copy_saves_back_with_its_new_weights(tmp_path):
    model = DiTForMaskedDiffusion.from_pretrained(folder("sedd"))
    with torch.no_grad():
        model.backbone.blocks[0].attn_out.weight.add_(1.0)
    model.save_pretrained(tmp_path, original_format=True)
    saved = load_file(tmp_path / "model.safetensors")
    assert torch.equal(saved["blocks.0.attn_out.weight"], model.backbone.blocks[0].attn_out.weight)


@pytest.mark.bad_input
def test_a_time_conditioned_model_refuses_a_forward_without_its_noise_level():
    ids = read("sedd", "inputs")["input_ids"]
    with pytest.raises(ValueError, match="time-conditioned.*pass the diffusion time `t`"):
        load("sedd")(ids)
    with pytest.raises(ValueError, match="not both"):
        load("sedd")(ids, t=torch.full((2,), 0.5), sigma=torch.ones(2))
    with pytest.raises(ValueError, match="one noise level per row"):
        load("sedd")(ids, t=torch.full((2, 16), 0.5))
    with pytest.raises(ValueError, match="3 values for 2 rows"):
        load("sedd")(ids, sigma=torch.ones(3))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "family, edit, message",
    [
        ("sedd", lambda c: c["graph"].update(type="uniform"), "graph.type='uniform'"),
        ("sedd", lambda c: c["noise"].update(type="geometric"), "noise.type='geometric'"),
        ("sedd", lambda c: c["model"].update(scale_by_sigma=False), "model.scale_by_sigma=False"),
        ("bd3lm", lambda c: c.update(causal=True), "causal=True"),
        ("bd3lm", lambda c: c.update(adaln=False), "adaln=False"),
        ("mdlm", lambda c: c.pop("hidden_dim"), "no 'hidden_dim'"),
        ("sedd", lambda c: c["model"].pop("n_heads"), "no 'n_heads'"),
    ],
)
def test_variants_hf_mdm_does_not_implement_are_refused_by_name(family, edit, message, tmp_path):
    shutil.copytree(folder(family), tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "config.json").read_text())
    edit(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        DiTForMaskedDiffusion.from_pretrained(tmp_path)


@pytest.mark.bad_input
def test_loading_a_folder_with_the_other_model_class_names_the_right_one():
    with pytest.raises(ValueError, match="loads as DiTForMaskedDiffusion"):
        MDMForMaskedGeneration.from_pretrained(folder("mdlm"))
    with pytest.raises(ValueError, match="loads as MDMForMaskedGeneration"):
        DiTForMaskedDiffusion.from_pretrained(FIXTURES / "llada-tiny")


@pytest.mark.bad_input
def test_saving_options_the_dit_cannot_honour_are_refused(tmp_path):
    native = DiTForMaskedDiffusion(DiTConfig(vocab_size=32, hidden_size=16, cond_dim=8, num_hidden_layers=1,
                                             num_attention_heads=2, mask_token_id=31))  # fmt: skip
    with pytest.raises(ValueError, match="not read from a SEDD, MDLM or BD3-LM folder"):
        native.save_pretrained(tmp_path, original_format=True)
    with pytest.raises(ValueError, match="remote_code=True"):
        load("mdlm").save_pretrained(tmp_path, remote_code=True)
    resized = DiTForMaskedDiffusion.from_pretrained(folder("mdlm"))
    resized.config.max_position_embeddings = 32
    with pytest.raises(ValueError, match="max_position_embeddings"):
        resized.save_pretrained(tmp_path, original_format=True)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(mask_token_id=None), "needs `mask_token_id`"),
        (dict(mask_token_id=40), "outside the vocabulary"),
        (dict(num_attention_heads=3), "multiple of num_attention_heads"),
        (dict(hidden_size=18, num_attention_heads=6), "even head width"),
        (dict(output_parametrization="scores"), "output_parametrization must be one of"),
        (dict(output_parametrization="score", mask_token_id=0), "absorbing graph"),
        (dict(block_size=0), "block_size must be a positive"),
    ],
)
def test_dit_config_refuses_inconsistent_fields(fields, message):
    kwargs = dict(vocab_size=32, hidden_size=16, cond_dim=8, num_hidden_layers=1, num_attention_heads=2,
                  mask_token_id=31)  # fmt: skip
    with pytest.raises(ValueError, match=message):
        DiTConfig(**{**kwargs, **fields})


def test_log_linear_total_noise_is_the_authors_sigma():
    inputs = read("sedd", "inputs")
    schedule = load("sedd").config.noise_schedule
    assert torch.equal(schedule.total_noise(inputs["t_rows"]), inputs["sigma_of_t_rows"])
    assert math.isclose(float(schedule.total_noise(torch.tensor(1.0))), math.log(1000.0), rel_tol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_command_line_loader_reads_every_family(family):
    """`hf-mdm generate`/`eval` (load_for_diffusion_generation) and `hf-mdm train`/`sweep` (diffusion_model_class)
    load SEDD too, whose config.json has no model_type for the Auto classes."""
    assert diffusion_model_class(str(folder(family))) is DiTForMaskedDiffusion
    model = load_for_diffusion_generation(str(folder(family)), tokenizer=None)
    assert type(model) is DiTForMaskedDiffusion and model.config.checkpoint_format == family
    assert diffusion_model_class(str(FIXTURES / "llada-tiny")) is MDMForMaskedGeneration


@pytest.mark.bad_input
def test_a_sequence_longer_than_the_trained_length_is_refused_padding_aside():
    ids = torch.full((1, 17), 3)
    with pytest.raises(ValueError, match="17 positions.*max_position_embeddings=16"):
        load("mdlm")(ids)
    padded_mask = torch.cat([torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 16, dtype=torch.long)], dim=1)
    positions = (padded_mask.cumsum(1) - 1).clamp(min=0)
    logits = load("mdlm")(ids, attention_mask=padded_mask, position_ids=positions).logits
    assert logits.shape == (1, 17, 128)
