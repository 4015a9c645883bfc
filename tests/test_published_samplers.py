"""The samplers published with SEDD, MDLM and BD3-LM (`hf_mdm.generation.published_samplers`) reproduce the authors'
samples token for token on the tiny fixture checkpoints, keep their structure at other seeds, and refuse bad
arguments before any forward.

Each case of `fixtures/{sedd,mdlm,bd3lm}-tiny/reference_generate.json` holds the authors' arguments and seeds, their
output ids and the inputs of every model call they made (see each folder's README.md).
"""

import copy
import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModel

from hf_mdm import DiTForMaskedDiffusion
from hf_mdm.generation.published_samplers import (
    PUBLISHED_SAMPLERS,
    reveal_weights,
    sample_categorical,
    sample_like_authors,
)
from hf_mdm.generation.published_samplers.bd3lm import nucleus


FIXTURES = Path(__file__).parent / "fixtures"
MASK, BOS = 127, 126  # all three fixtures: vocab 128, [MASK] the last id; BD3-LM's BOS stands in for GPT-2's 50256


@functools.cache
def load(family):
    """The fixture checkpoint in its authors' format (SEDD's config.json has no model_type, so not AutoModel)."""
    folder = FIXTURES / f"{family}-tiny"
    model = DiTForMaskedDiffusion.from_pretrained(folder) if family == "sedd" else AutoModel.from_pretrained(folder)
    return model.eval()


class Recorder:
    """The model, with the input ids and sigma of every call recorded."""

    def __init__(self, model):
        self.model, self.config, self.device, self.training = model, model.config, model.device, model.training
        self.calls = []

    def __call__(self, input_ids, sigma):
        self.calls.append((input_ids.tolist(), sigma.tolist()))
        return self.model(input_ids, sigma=sigma)


def cases(family):
    data = json.loads((FIXTURES / f"{family}-tiny" / "reference_generate.json").read_text())
    return [pytest.param(case, id=case["name"]) for case in data["cases"]]


def generator(seed):
    return torch.Generator().manual_seed(seed)


def run_recorded(family, name, batch_size, length, steps, seed, **options):
    """(ids, number of model calls, the recorded model): `name` on the `family` fixture, torch seed `seed`."""
    model = Recorder(load(family))
    ids, calls = sample_like_authors(
        model,
        name,
        batch_size=batch_size,
        length=length,
        steps=steps,
        generator=generator(seed),
        return_model_calls=True,
        **options,
    )
    return ids, calls, model


@pytest.mark.parametrize("case", cases("mdlm"))
def test_mdlm_ddpm_cache_reproduces_the_authors(case):
    """Ids, number of forwards (cache hits skip one) and the canvas of every forward, final argmax included."""
    args = case["args"]
    assert (args["predictor"], args["noise_removal"], args["eps"]) == ("ddpm_cache", True, 1e-5)
    sizes = [args[key] for key in ("batch_size", "length", "num_steps", "torch_manual_seed")]
    ids, calls, model = run_recorded("mdlm", "mdlm_ddpm_cache", *sizes)
    assert ids.tolist() == case["output_ids"]
    assert calls == case["num_forwards"] == len(model.calls)
    assert [call[0] for call in model.calls] == case["canvas_before_each_forward"]


@pytest.mark.parametrize("case", cases("sedd"))
def test_sedd_reproduces_the_authors(case):
    """Euler, analytic and the prefix/suffix infill of run_sample_cond.py: ids, and (ids, sigma) of every call."""
    args = case["args"]
    assert (args["denoise"], args["eps"]) == (True, 1e-5)
    infill = {"prefix": args["prefix"], "suffix": args["suffix"]} if args["prefix"] is not None else {}
    sizes = [*args["batch_dims"], args["steps"], args["torch_manual_seed"]]
    ids, calls, model = run_recorded("sedd", f"sedd_{args['predictor']}", *sizes, **infill)
    assert ids.tolist() == case["output_ids"]
    assert calls == len(case["forward_calls"]) == args["steps"] + 1
    assert [call[0] for call in model.calls] == [call["indices"] for call in case["forward_calls"]]
    sigmas = torch.tensor([call["sigma"] for call in case["forward_calls"]])
    torch.testing.assert_close(torch.tensor([call[1] for call in model.calls]), sigmas)


@pytest.mark.parametrize("case", cases("bd3lm"))
def test_bd3lm_semi_ar_reproduces_the_authors(case):
    """First-hitting with and without kv_cache, nucleus 1.0 and 0.9, and the batched non-first-hitting sampler with
    its t = 0 quirk: ids, the authors' NFE count, and the ids of every forward (with kv_cache the authors feed the
    block alone and add one key/value pass per clean block, which the uncached forward here does not need)."""
    args = case["args"]
    assert args["block_size"] == load("bd3lm").config.block_size
    sizes = [args[key] for key in ("batch", "seqlen", "num_steps", "torch_manual_seed")]
    options = {key: args[key] for key in ("first_hitting", "nucleus_p", "kv_cache", "bos_token_id")}
    numpy_random_state = np.random.RandomState(args["np_random_seed"])
    ids, calls, model = run_recorded(
        "bd3lm", "bd3lm_semi_ar", *sizes, numpy_random_state=numpy_random_state, **options
    )
    assert ids.tolist() == case["output_ids"]
    theirs = [call["input_ids"] for call in case["forward_calls"] if not call["store_kv"]]
    ours = [call[0] for call in model.calls]
    if args["kv_cache"]:
        ours = [[row[-args["block_size"] :] for row in call] for call in ours]
    assert ours == theirs
    assert calls == len(theirs) == case["nfes"]


SAMPLER_FAMILIES = {"mdlm_ddpm_cache": "mdlm", "sedd_euler": "sedd", "sedd_analytic": "sedd", "bd3lm_semi_ar": "bd3lm"}


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(sorted(SAMPLER_FAMILIES)),
    seed=st.integers(0, 2**31 - 1),
    steps=st.integers(1, 12),
    batch_size=st.integers(1, 3),
    first_hitting=st.booleans(),
    nucleus_p=st.sampled_from([1.0, 0.5]),
    infill=st.booleans(),
)
def test_samples_are_complete_at_any_seed(name, seed, steps, batch_size, first_hitting, nucleus_p, infill):
    """At seeds and settings the fixtures do not hold: the canvas has the asked shape, no [MASK] is left, BD3-LM's
    sample starts with BOS and SEDD's infill keeps its prefix and suffix."""
    model = load(SAMPLER_FAMILIES[name])
    options, length, prefix, suffix = {}, 16, [5, 9, 33], [70, 71]
    if name == "bd3lm_semi_ar":
        first_hitting = first_hitting and batch_size == 1
        steps = max(steps, model.config.block_size) if first_hitting else steps
        options = {"first_hitting": first_hitting, "nucleus_p": nucleus_p, "bos_token_id": BOS}
    elif name.startswith("sedd") and infill:
        options = {"prefix": prefix, "suffix": suffix}
    numpy_random_state = np.random.RandomState(seed) if name == "bd3lm_semi_ar" else None
    ids, _, _ = run_recorded(
        SAMPLER_FAMILIES[name], name, batch_size, length, steps, seed, numpy_random_state=numpy_random_state, **options
    )
    assert ids.shape == (batch_size, length) and ids.dtype == torch.long
    assert ((ids >= 0) & (ids < model.config.vocab_size) & (ids != MASK)).all()
    if name == "bd3lm_semi_ar":
        assert (ids[:, 0] == BOS).all()
    if "prefix" in options:
        assert (ids[:, :3] == torch.tensor(prefix)).all() and (ids[:, -2:] == torch.tensor(suffix)).all()


def test_mdlm_last_forward_takes_the_argmax():
    """With eps = 0.999 one step reveals almost nothing, so the last forward (t = eps) decides most tokens: each
    position still masked takes the argmax of the model's logits, and the others keep their token."""
    ids, _, model = run_recorded("mdlm", "mdlm_ddpm_cache", 2, 16, 1, 3, eps=0.999)
    canvas = torch.tensor(model.calls[-1][0])
    assert (canvas == MASK).sum() > 16
    logits = load("mdlm")(canvas, sigma=torch.tensor(model.calls[-1][1])).logits
    assert torch.equal(ids, torch.where(canvas == MASK, logits.argmax(-1), canvas))


def test_sedd_denoiser_samples_from_the_unnormalised_probabilities():
    """SEDD's last step is the analytic step with dsigma = sigma(eps) and the [MASK] column dropped: a draw (not an
    argmax) from s_j e^sigma (1 - e^-sigma) = p̂_j, with the (B, L, V - 1) uniform tensor that follows the steps' one.
    With eps = 0.999 most positions reach it masked; the expected ids are built from the score as the authors do."""
    ids, _, model = run_recorded("sedd", "sedd_analytic", 2, 16, 1, 5, eps=0.999)
    canvas, sigma = torch.tensor(model.calls[-1][0]), torch.tensor(model.calls[-1][1], dtype=torch.float64)
    assert (canvas == MASK).sum() > 16
    logits = load("sedd")(canvas, sigma=sigma.float()).logits.double()
    score = (logits - torch.expm1(sigma).log()[:, None, None]).exp().scatter(-1, canvas[..., None], 1.0)
    staggered = score * sigma.exp()[:, None, None]
    staggered[..., MASK] += (1 - sigma.exp())[:, None] * score.sum(-1)
    transition = torch.where(canvas == MASK, 1 - (-sigma).exp()[:, None], 0.0)[..., None] + (-sigma).exp()[
        :, None, None
    ] * torch.nn.functional.one_hot(canvas, MASK + 1)
    weights = (staggered * transition)[..., :-1]
    draws = generator(5)
    torch.rand(2, 16, MASK + 1, generator=draws)
    uniform = torch.rand(2, 16, MASK, generator=draws).double()
    assert torch.equal(ids, (weights / (1e-10 - (uniform + 1e-10).log())).argmax(-1))


def test_bd3lm_kv_cache_flag_changes_no_id():
    """kv_cache=True runs the uncached block-causal forward (the same float32 math): the same ids and forwards."""
    (ids, calls, _), (kv_ids, kv_calls, _) = (
        run_recorded(
            "bd3lm",
            "bd3lm_semi_ar",
            1,
            16,
            8,
            7,
            numpy_random_state=np.random.RandomState(7),
            kv_cache=kv_cache,
            bos_token_id=BOS,
        )
        for kv_cache in (False, True)
    )
    assert ids.tolist() == kv_ids.tolist() and calls == kv_calls


def test_sample_categorical_draws_what_the_authors_draw():
    """argmax(q / (1e-10 - log(u + 1e-10))) with u = torch.rand_like(q) after torch.manual_seed: our generator's
    draws are those of the global RNG, in q's dtype, so the ids are equal."""
    weights = torch.rand(3, 5, 11, generator=generator(1), dtype=torch.float64)
    torch.manual_seed(4)
    theirs = (weights / (1e-10 - (torch.rand_like(weights) + 1e-10).log())).argmax(-1)
    assert torch.equal(sample_categorical(weights, generator(4)), theirs)


def test_sample_categorical_follows_the_weights():
    """The draw is a categorical draw from q / sum(q): frequencies match, a non-positive weight never wins."""
    weights = torch.tensor([[0.5, 0.3, 0.2, 0.0, -0.4]]).expand(20000, 5)
    counts = torch.bincount(sample_categorical(weights, generator(0)), minlength=5) / 20000
    torch.testing.assert_close(counts[:3], torch.tensor([0.5, 0.3, 0.2]), atol=0.02, rtol=0)
    assert counts[3:].sum() == 0


def sedd_euler_weights(p_hat, t, dt, eps=1e-3):
    """SEDD's Euler weights at a masked position, written from the score: s_j = p̂_j / expm1(sigma(t)),
    [dt sigma'(t) s_j, 1 - dt sigma'(t) sum_j s_j] (FORMATS.md section 1)."""
    sigma, rate = -math.log1p(-(1 - eps) * t), (1 - eps) / (1 - (1 - eps) * t)
    score = p_hat / math.expm1(sigma)
    weights = dt * rate * score
    weights[..., -1] = 1 - dt * rate * score[..., :-1].sum(-1)
    return weights


@pytest.mark.parametrize("t", [1.0, 0.6, 0.05])
def test_reveal_weights_are_sedds_euler_weights_up_to_a_row_factor(t):
    """q_j = p̂_j (t - s), q_MASK = t - (t - s) sum p̂ is t x SEDD's Euler weights (a per-row factor the draw ignores),
    and for a normalised p, q_MASK = s (MDLM's)."""
    dt = 0.125
    p_hat = torch.rand(2, 3, 9, generator=generator(0), dtype=torch.float64) * 0.2
    p_hat[..., -1] = 0
    ours = reveal_weights(p_hat, torch.tensor(t), torch.tensor(t - dt), mask_token_id=8, normalized=False)
    torch.testing.assert_close(ours, t * sedd_euler_weights(p_hat, t, dt))
    p = p_hat / p_hat.sum(-1, keepdim=True)
    normalized = reveal_weights(p, torch.tensor(t), torch.full((1, 1, 1), t - dt, dtype=torch.float64), 8, True)
    torch.testing.assert_close(normalized, reveal_weights(p, torch.tensor(t), torch.tensor(t - dt), 8, False))


def test_nucleus_keeps_the_top_mass_and_renormalises():
    probs = torch.tensor([[0.1, 0.5, 0.25, 0.15]], dtype=torch.float64)
    torch.testing.assert_close(nucleus(probs, 0.8), torch.tensor([[0.0, 2 / 3, 1 / 3, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(nucleus(probs, 0.3), torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64))
    assert nucleus(probs, 1.0) is probs


def test_bd3lm_low_entropy_samples_are_redrawn_then_refused():
    """The authors' stop test: past 256 tokens a sample whose last 256 tokens have entropy < 4 nats is discarded and
    redrawn (10 tries); the tiny model repeats one token, so every try fails and the sampler says so."""
    model = Recorder(load("bd3lm"))
    sizes = dict(batch_size=1, length=260, steps=1, generator=generator(0))
    with pytest.raises(ValueError, match="Sampling failed"):
        sample_like_authors(model, "bd3lm_semi_ar", first_hitting=False, bos_token_id=BOS, **sizes)
    assert len(model.calls) == 10 * 260 // 4


def refused(model, name, match, **arguments):
    """Call with `arguments` on top of valid defaults and check the ValueError, raised before any forward. `model`:
    a fixture family or a `Recorder`."""
    model = Recorder(load(model)) if isinstance(model, str) else model
    defaults = dict(batch_size=1, length=16, steps=4, generator=generator(0))
    if name == "bd3lm_semi_ar":
        defaults.update(numpy_random_state=np.random.RandomState(0), bos_token_id=BOS)
    with pytest.raises(ValueError, match=match):
        sample_like_authors(model, name, **{**defaults, **arguments})
    assert model.calls == []


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "family, name, match, arguments",
    [
        ("mdlm", "mdlm", "Unknown published sampler", {}),
        ("mdlm", "mdlm_ddpm_cache", "Bad sampler arguments", {"temperature": 0.5}),
        ("mdlm", "sedd_euler", "use one of", {}),
        ("sedd", "mdlm_ddpm_cache", "use one of", {}),
        ("sedd", "bd3lm_semi_ar", "use one of", {}),
        ("bd3lm", "mdlm_ddpm_cache", "block_size=4: use bd3lm_semi_ar", {}),
        ("mdlm", "bd3lm_semi_ar", "block_size=None: use mdlm_ddpm_cache", {}),
        ("mdlm", "mdlm_ddpm_cache", "torch.Generator", {"generator": None}),
        ("mdlm", "mdlm_ddpm_cache", "torch.Generator", {"generator": 0}),
        ("mdlm", "mdlm_ddpm_cache", "makes no numpy draws", {"numpy_random_state": np.random.RandomState(0)}),
        ("mdlm", "mdlm_ddpm_cache", "batch_size", {"batch_size": 0}),
        ("mdlm", "mdlm_ddpm_cache", "batch_size", {"batch_size": True}),
        ("mdlm", "mdlm_ddpm_cache", "steps", {"steps": 2.0}),
        ("mdlm", "mdlm_ddpm_cache", "length", {"length": 0}),
        ("mdlm", "mdlm_ddpm_cache", "max_position_embeddings", {"length": 17}),
        ("sedd", "sedd_euler", "max_position_embeddings", {"length": 32}),
        ("mdlm", "mdlm_ddpm_cache", "eps", {"eps": 0.0}),
        ("sedd", "sedd_analytic", "eps", {"eps": 1.0}),
        ("mdlm", "mdlm_ddpm_cache", "return_model_calls", {"return_model_calls": "yes"}),
        ("sedd", "sedd_analytic", "do not fit", {"prefix": list(range(10)), "suffix": list(range(7))}),
        ("sedd", "sedd_analytic", "is \\[MASK\\]", {"prefix": [5, MASK]}),
        ("sedd", "sedd_analytic", "not a token", {"suffix": [128]}),
        ("sedd", "sedd_analytic", "1-D", {"prefix": torch.tensor([[5, 9]])}),
        ("sedd", "sedd_analytic", "list of token ids", {"prefix": "Hi, my name is"}),
        ("bd3lm", "bd3lm_semi_ar", "batch size 1", {"batch_size": 2}),
        ("bd3lm", "bd3lm_semi_ar", "numpy_random_state", {"numpy_random_state": None}),
        ("bd3lm", "bd3lm_semi_ar", "steps >= 4", {"steps": 3}),
        ("bd3lm", "bd3lm_semi_ar", "multiple of the model's block_size", {"length": 14}),
        ("bd3lm", "bd3lm_semi_ar", "is \\[MASK\\]", {"bos_token_id": MASK}),
        ("bd3lm", "bd3lm_semi_ar", "nucleus_p", {"nucleus_p": 0.0}),
        ("bd3lm", "bd3lm_semi_ar", "nucleus_p", {"nucleus_p": True}),
        ("bd3lm", "bd3lm_semi_ar", "first_hitting", {"first_hitting": 1}),
        ("bd3lm", "bd3lm_semi_ar", "kv_cache", {"kv_cache": "yes"}),
        ("bd3lm", "bd3lm_semi_ar", "context_size", {"context_size": 32}),
        ("bd3lm", "bd3lm_semi_ar", "context_size", {"context_size": True}),
        ("bd3lm", "bd3lm_semi_ar", "context_size", {"context_size": 10}),
    ],
)
def test_bad_arguments_are_refused_before_any_forward(family, name, match, arguments):
    refused(family, name, match, **arguments)


@pytest.mark.bad_input
def test_a_generator_on_another_device_is_refused():
    """The draws are made on the model's device: a CPU generator for a model elsewhere is refused, naming the fix."""
    model = Recorder(load("mdlm"))
    model.device = torch.device("cuda")
    refused(model, "mdlm_ddpm_cache", "torch.Generator\\(device=model.device\\)")


@pytest.mark.bad_input
def test_bd3lm_needs_a_bos_token():
    """The authors' block sampler starts with BOS: no bos_token_id argument and none in the config is refused."""
    model = Recorder(load("bd3lm"))
    model.config = copy.deepcopy(model.config)
    model.config.bos_token_id = None
    refused(model, "bd3lm_semi_ar", "pass bos_token_id", bos_token_id=None)


@pytest.mark.bad_input
def test_a_model_in_training_mode_is_refused():
    """Dropout in training mode would draw from the global RNG and change the logits: refused."""
    model = load("mdlm")
    model.train()
    try:
        refused("mdlm", "mdlm_ddpm_cache", "model.eval")
    finally:
        model.eval()


@pytest.mark.bad_input
def test_a_model_without_the_dit_api_is_refused():
    with pytest.raises(ValueError, match="needs a DiT model"):
        sample_like_authors(
            torch.nn.Linear(2, 2), "mdlm_ddpm_cache", batch_size=1, length=4, steps=1, generator=generator(0)
        )


def test_the_registry_holds_the_published_samplers():
    assert sorted(PUBLISHED_SAMPLERS) == [
        "bd3lm_semi_ar",
        "llada21_editing",
        "llada2_threshold",
        "mdlm_ddpm_cache",
        "sdar_block",
        "sedd_analytic",
        "sedd_euler",
    ]
