"""Everything else works on the DiT of SEDD, MDLM and BD3-LM (issue N, item 3): `generate()` with every registered
strategy on the three fixture checkpoints (tests/fixtures/{sedd,mdlm,bd3lm}-tiny), SEDD conditioned on each step's
own time, the stock Trainer fine-tuning a loaded checkpoint, `sweep_steps` and its card, lm-eval, `elbo_perplexity`
and the text-generation pipeline on time-conditioned DiTs. Loading, logits parity and saving are in
tests/test_dit_checkpoints.py."""

import functools
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Trainer, pipeline

from hf_mdm import (
    DataCollatorForMaskedDiffusion,
    DiffusionTextGenerationPipeline,
    DiTConfig,
    DiTForMaskedDiffusion,
    NGramLanguage,
    masked_diffusion_loss,
)
from hf_mdm.evaluation import LanguageTask, elbo_perplexity, sweep_steps
from hf_mdm.generation import DiffusionSampler
from hf_mdm.generation.strategies import STRATEGIES
from hf_mdm.hub import ModelCard

from .conftest import decode_rows
from .test_trainer import training_args


FIXTURES = Path(__file__).parent / "fixtures"
FAMILIES = ("sedd", "mdlm", "bd3lm")
MASK, PAD, VOCAB = 127, 0, 128  # the fixtures' [MASK] is their last id; 0 is [PAD] in `fixture_tokenizer`
# Left padding and mixed prompt lengths; with 8 new tokens every row fits the fixtures' 16 positions.
PROMPTS = torch.tensor([[PAD, PAD, 5, 6], [7, 8, 9, 10], [PAD, PAD, PAD, 11]])
PROMPT_MASK = (PROMPTS != PAD).long()
NEW_TOKENS = 8
EPS = 1e-3  # the fixtures' log-linear schedule
# sigma(t) in float32, as the authors compute it, against the float64 formula: near t = 1, 1 - (1 - eps) t loses
# digits (relative error ~1e-5); neighbouring grid points differ far more.
FLOAT32_SIGMA = 3e-5


def folder(family):
    return FIXTURES / f"{family}-tiny"


@functools.cache
def load(family, dtype=torch.float32):
    """The fixture checkpoint (float64: tokens never hinge on rounding ties between two computation orders)."""
    return DiTForMaskedDiffusion.from_pretrained(folder(family)).to(dtype).eval()


def decode(model, rows=(0, 1, 2), alone=False, **kwargs):
    """generate() on PROMPTS rows `rows`, one generator per row (`alone`: one row, its padding dropped)."""
    return decode_rows(
        model, PROMPTS, PROMPT_MASK, rows, alone, max_new_tokens=NEW_TOKENS, pad_token_id=PAD,
        return_dict_in_generate=True, **kwargs,
    )  # fmt: skip


def log_linear_sigma(t):
    """The authors' total noise sigma(t) = -log(1 - (1 - eps) t), in float64."""
    return -math.log1p(-(1 - EPS) * t)


def record_sigmas(model):
    """The noise levels the backbone is conditioned on, one tensor per forward (a hook on `sigma_map`)."""
    seen = []
    handle = model.backbone.sigma_map.register_forward_hook(lambda module, args, output: seen.append(args[0].clone()))
    return seen, handle


def fixture_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the fixtures' 128 ids: [PAD]=0, [UNK]=1, [BOS]=2, [EOS]=3, words w4..w126, and
    [MASK]=127 (their [MASK], the last id)."""
    specials = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    vocab = {**specials, **{f"w{i}": i for i in range(4, MASK)}, "[MASK]": MASK}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]", mask_token="[MASK]")  # fmt: skip


# ---- 1. generate() with every strategy ----------------------------------------------------------------------------
@pytest.mark.parametrize("do_sample", [False, True], ids=["greedy", "sampled"])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_strategy_fills_a_left_padded_batch_on_each_checkpoint(family, strategy, do_sample):
    out = decode(load(family), strategy=strategy, do_sample=do_sample)
    generated = out.sequences[:, PROMPTS.shape[1] :]
    assert out.sequences.shape == (3, PROMPTS.shape[1] + NEW_TOKENS)
    assert torch.equal(out.sequences[:, : PROMPTS.shape[1]], PROMPTS)  # prompt and padding untouched
    assert not (generated == MASK).any() and int(generated.max()) < VOCAB
    assert (out.nfe >= 1).all()


GREEDY, SAMPLED = dict(strategy="confidence"), dict(strategy="random", do_sample=True)


@pytest.mark.parametrize(
    "family, settings",
    [(family, GREEDY) for family in FAMILIES] + [(family, SAMPLED) for family in FAMILIES],
    ids=[f"{family}-greedy" for family in FAMILIES] + [f"{family}-sampled" for family in FAMILIES],
)
def test_a_padded_row_decodes_as_the_same_row_alone(family, settings):
    model = load(family, torch.float64)
    batch = decode(model, **settings)
    for row in range(PROMPTS.shape[0]):
        alone = decode(model, rows=[row], alone=True, **settings)
        kept = torch.cat([PROMPT_MASK[row].bool(), torch.ones(NEW_TOKENS, dtype=torch.bool)])
        assert torch.equal(batch.sequences[row, kept], alone.sequences[0]), f"row {row}"
        assert int(batch.nfe[row]) == int(alone.nfe[0])


@pytest.mark.parametrize("do_sample", [False, True], ids=["greedy", "sampled"])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_bd3lm_default_exact_cache_gives_the_tokens_of_uncached_decoding(strategy, do_sample):
    model = load("bd3lm", torch.float64)
    cached = decode(model, strategy=strategy, do_sample=do_sample)  # a block-causal model's default: "exact"
    uncached = decode(model, strategy=strategy, do_sample=do_sample, cache="none")
    assert torch.equal(cached.sequences, uncached.sequences)
    assert torch.equal(cached.nfe, uncached.nfe)


def test_bd3lm_decodes_with_the_exact_cache_by_default():
    """The default cache of a block-causal model is "exact" (the equality above compares it with "none")."""
    model = load("bd3lm")
    widths = []
    handle = model.backbone.register_forward_hook(lambda module, args, output: widths.append(output[0].shape[1]))
    try:
        decode(model, rows=[1], strategy="confidence")
    finally:
        handle.remove()
    # prompt 4 + 8 new: blocks [4, 8), [8, 12); after the first forward a cached one runs a window, never the canvas
    assert widths[0] == 8 and max(widths[1:]) < 12


# ---- 2. SEDD is conditioned on each step's own time ---------------------------------------------------------------
@pytest.mark.parametrize(
    "strategy, steps",
    # `editing` with more steps than positions goes on after the block is filled, each step at its own t
    [("confidence", 4), ("confidence", 8), ("editing", 12)],
)
def test_sedd_gets_one_forward_per_step_at_that_step_s_noise_level(strategy, steps):
    model = load("sedd")
    seen, handle = record_sigmas(model)
    try:
        out = decode(model, rows=[1], strategy=strategy, steps=steps)
    finally:
        handle.remove()
    assert len(seen) == steps == int(out.nfe[0])
    expected = torch.tensor([log_linear_sigma(1 - k / steps) for k in range(steps)], dtype=torch.float64)
    torch.testing.assert_close(torch.stack(seen)[:, 0].double(), expected, rtol=FLOAT32_SIGMA, atol=0)


@pytest.mark.parametrize("family", ["mdlm", "sedd"])
def test_in_a_batch_a_row_runs_forwards_only_at_its_own_reveal_steps(family):
    """`random` draws each row's reveal steps; generate() visits the union of them. A row whose canvas a visit leaves
    unchanged keeps its logits (MDLM: the same canvas gives the same logits); a time-conditioned row needs none there
    either, since it reveals nothing at that step. Each row's NFE is its own number of reveal steps."""
    model = load(family)
    seen, handle = record_sigmas(model)
    try:
        out = decode(model, strategy="random", do_sample=True, steps=32)
    finally:
        handle.remove()
    assert torch.equal(out.nfe, out.steps_per_block.sum(1))  # steps_per_block: the steps where the row revealed
    assert int(out.nfe.min()) < len(seen)  # some row skipped a visited step: logits of an unchanged canvas reused


def test_sedd_random_strategy_forwards_only_at_reveal_steps_each_at_its_own_time():
    """The ancestral sampler visits only the steps where a position is revealed; each forward is at that step's t."""
    steps = 32
    model = load("sedd")
    seen, handle = record_sigmas(model)
    try:
        out = decode(model, rows=[1], strategy="random", do_sample=True, steps=steps)
    finally:
        handle.remove()
    sigmas = torch.stack(seen)[:, 0].double()
    assert len(seen) == int(out.nfe[0]) <= NEW_TOKENS
    grid = torch.tensor([log_linear_sigma(1 - k / steps) for k in range(steps)], dtype=torch.float64)
    nearest = (sigmas[:, None] - grid[None]).abs().min(1)
    assert float(nearest.values.max()) <= 1e-5 * float(grid.max())  # each forward at a step of the grid
    assert (nearest.indices.diff() > 0).all()  # at later steps one after the other


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_in_a_batch_every_sedd_row_reveals_from_a_forward_at_the_step_s_own_time(strategy, monkeypatch):
    """Whatever its batch mates do, a row of a time-conditioned model reveals tokens only from logits computed at
    the step's t in that very step (never from logits of an earlier step it reused)."""
    steps = []
    step = DiffusionSampler.step

    def recording_step(self, state, logits, request=None):
        output = step(self, state, logits, request)
        steps.append((request, output.revealed.any(1).nonzero().squeeze(1).tolist(), output.t))
        return output

    monkeypatch.setattr(DiffusionSampler, "step", recording_step)
    decode(load("sedd"), strategy=strategy, do_sample=True, steps=16)
    revealing = [(request, rows, t) for request, rows, t in steps if rows]
    assert len(revealing) >= 4
    for request, rows, t in revealing:
        assert request is not None and set(rows) <= set(request.rows.tolist()) and request.t == t


# ---- 3. the stock Trainer fine-tunes a loaded checkpoint ----------------------------------------------------------
def fixture_dataset(num=32, seed=0):
    """Pre-tokenized rows of 6 to 16 word ids (never [PAD] nor [MASK]), as the fixtures have no tokenizer."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(6, 17, (num,), generator=generator).tolist()
    rows = [torch.randint(4, MASK, (length,), generator=generator).tolist() for length in lengths]
    return Dataset.from_dict({"input_ids": rows})


class RecordingCollator(DataCollatorForMaskedDiffusion):
    """The collator, keeping the `t` of every batch it returns."""

    def __call__(self, examples):
        batch = super().__call__(examples)
        self.times = getattr(self, "times", []) + [batch["t"].clone()]
        return batch


@pytest.mark.parametrize("family", ["sedd", "bd3lm"])
def test_the_stock_trainer_fine_tunes_a_loaded_checkpoint(family, tmp_path):
    model = DiTForMaskedDiffusion.from_pretrained(folder(family))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    block_size = model.config.block_size  # BD3-LM: each block of 4 tokens at its own time
    collator = RecordingCollator(fixture_tokenizer(), schedule=model.config.noise_schedule, block_size=block_size)
    seen, handle = record_sigmas(model)
    trainer = Trainer(model=model, args=training_args(tmp_path, 4, per_device_train_batch_size=8),
                      train_dataset=fixture_dataset(), data_collator=collator)  # fmt: skip
    try:
        trainer.train()
    finally:
        handle.remove()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 4 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    changed = [name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])]
    assert "backbone.blocks.0.attn_qkv.weight" in changed and "backbone.output_layer.linear.weight" in changed
    assert len(seen) == len(collator.times) == 4  # one forward per batch
    for sigma, t in zip(seen, collator.times):
        if family == "sedd":  # each row conditioned on sigma(t) of the time its tokens were masked at
            assert t.dim() == 1
            torch.testing.assert_close(sigma, model.config.noise_schedule.total_noise(t), rtol=1e-6, atol=0)
        else:  # BD3-LM is not time-conditioned: a per-token t, and adaLN on 0
            assert t.dim() == 2 and float(sigma.abs().max()) == 0.0


def test_a_sedd_forward_on_a_collator_batch_is_conditioned_on_the_collator_s_t():
    model = load("sedd")
    collator = DataCollatorForMaskedDiffusion(fixture_tokenizer(), schedule=model.config.noise_schedule,
                                              generator=torch.Generator().manual_seed(0))  # fmt: skip
    batch = collator([dict(example) for example in fixture_dataset(8)])
    with torch.no_grad():
        given_t = model(**batch)
        given_sigma = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                            sigma=model.config.noise_schedule.total_noise(batch["t"]))  # fmt: skip
        other_sigma = model(batch["input_ids"], attention_mask=batch["attention_mask"], sigma=torch.full((8,), 3.0))
    assert torch.equal(given_t.logits, given_sigma.logits)
    assert not torch.allclose(given_t.logits, other_sigma.logits)  # the check above can fail: sigma matters
    # The loss weights the tokens by w(t) of the collator's t, given to the forward.
    reference = masked_diffusion_loss(given_t.logits, batch["labels"], t=batch["t"],
                                      attention_mask=batch["attention_mask"],
                                      schedule=model.config.noise_schedule)  # fmt: skip
    assert math.isclose(float(given_t.loss), float(reference), rel_tol=1e-6)


# ---- 4. sweep_steps and its card on a native DiT ------------------------------------------------------------------
@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=3, seed=0)


def native_dit(tokenizer, output_parametrization, time_conditioning, seed=0):
    """A tiny native DiT over a language's tokenizer (symbols, then <mask>, <pad>, <bos>, <eos>, <unk>). SEDD's score
    parametrization needs [MASK] last: its vocabulary is the symbols and <mask>. The adaLN projections, zero at
    initialisation (every block the identity, sigma without effect), are drawn at random so that the noise level
    changes the logits."""
    mask = tokenizer.mask_token_id
    vocab_size = mask + 1 if output_parametrization == "score" else len(tokenizer)
    config = DiTConfig(vocab_size=vocab_size, hidden_size=32, cond_dim=16, num_hidden_layers=2, num_attention_heads=4,
                       max_position_embeddings=32, mask_token_id=mask, time_conditioning=time_conditioning,
                       output_parametrization=output_parametrization)  # fmt: skip
    torch.manual_seed(seed)
    model = DiTForMaskedDiffusion(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "adaLN_modulation" in name:
                parameter.normal_(std=0.1)
    return model


VARIANTS = [("score", True), ("logits", True), ("logits", False)]


@pytest.mark.parametrize("output_parametrization, time_conditioning", VARIANTS, ids=["score", "logits-tc", "logits"])
def test_sweep_steps_and_its_card_on_a_native_dit(language, output_parametrization, time_conditioning):
    tokenizer = language.tokenizer()
    model = native_dit(tokenizer, output_parametrization, time_conditioning)
    ids = torch.tensor([[0, 1, tokenizer.mask_token_id, 2]])
    with torch.no_grad():
        low, high = (model(ids, t=torch.tensor([t])).logits for t in (0.1, 0.9))
    assert torch.allclose(low, high) != time_conditioning  # the variants differ where they should
    rows = sweep_steps(model, tokenizer, LanguageTask(language), steps=[2, 4], strategies=["random", "confidence"],
                       lengths=[8], num_samples=8, progress=False)  # fmt: skip
    assert sorted((row["strategy"], row["steps"]) for row in rows) == [("confidence", 2), ("confidence", 4),
                                                                        ("random", 2), ("random", 4)]  # fmt: skip
    for row in rows:
        assert 0 <= row["ser_low"] <= row["ser"] <= row["ser_high"] <= 1
        assert math.isfinite(row["log_perplexity"]) and math.isfinite(row["log_perplexity_se"])
        assert row["ter_gap_se"] >= 0 and 0 <= row["invalid_token_rate"] <= 1
        assert 1 <= row["nfe"] <= row["steps"]
        if row["strategy"] == "confidence" and time_conditioning:
            assert row["nfe"] == row["steps"]  # a forward at every step, at its own time
    card = ModelCard.from_sweep(rows, model=model, model_name="tiny DiT")
    configs = {result.metric_config for result in card.data.eval_results
               if result.metric_type != "accuracy_under_parallelism"}  # fmt: skip
    assert configs == {f"strategy={name},length=8,steps={steps},block_size=8" for name in ("random", "confidence")
                       for steps in (2, 4)}  # fmt: skip
    curves = {result.metric_config for result in card.data.eval_results
              if result.metric_type == "accuracy_under_parallelism"}  # fmt: skip
    assert len(curves) == 2 and all(f"strategy={name}" in " ".join(curves) for name in ("random", "confidence"))
    assert "| steps |" in card.text and "tiny DiT" in card.text


# ---- 5. lm-eval on a time-conditioned DiT (the SEDD checkpoint) ---------------------------------------------------
def record_forward_inputs(model):
    """(input_ids, attention_mask, t) of every forward of `model`."""
    seen = []

    def hook(module, args, kwargs):
        seen.append((kwargs["input_ids"].clone(), kwargs["attention_mask"].clone(), kwargs["t"].clone()))

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


def test_lm_eval_loglikelihood_on_sedd_is_finite_with_standard_errors_and_conditioned_on_the_masked_fraction():
    lm_eval_harness = pytest.importorskip("hf_mdm.integrations.lm_eval_harness")
    from lm_eval.api.instance import Instance

    model = load("sedd")
    lm = lm_eval_harness.MaskedDiffusionLM(pretrained=model, tokenizer=fixture_tokenizer(), mc_num=8, mc_groups=2)
    requests = [("w5 w6 w7", " w8 w9 w10"), ("w11", " w12 w13 w14 w15")]
    continuation_length = {6: 3, 5: 4}  # by a canvas's real tokens: context + continuation
    seen, handle = record_forward_inputs(model)
    try:
        results = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(requests)])
    finally:
        handle.remove()
    for pair, (value, _) in zip(requests, results):
        assert math.isfinite(value) and value < 0
        assert math.isfinite(lm.standard_errors[pair]) and lm.standard_errors[pair] >= 0
    fractions = []
    for input_ids, attention_mask, t in seen:  # canvases right-padded with [MASK] outside the attention mask
        real = attention_mask.bool()
        masked, length = ((input_ids == MASK) & real).sum(1), real.sum(1)
        for row_masked, row_length, row_t in zip(masked.tolist(), length.tolist(), t.tolist()):
            fractions.append(row_masked / continuation_length[row_length])
            assert math.isclose(row_t, fractions[-1], rel_tol=1e-6), (row_masked, row_length, row_t)
    assert len(set(fractions)) > 3  # canvases at several times


def test_lm_eval_generate_until_on_sedd_decodes_words_at_each_step_s_noise_level():
    lm_eval_harness = pytest.importorskip("hf_mdm.integrations.lm_eval_harness")
    from lm_eval.api.instance import Instance

    model = load("sedd")
    lm = lm_eval_harness.MaskedDiffusionLM(pretrained=model, tokenizer=fixture_tokenizer(), strategy="confidence")
    seen, handle = record_sigmas(model)
    try:
        (text,) = lm.generate_until([Instance("generate_until", {}, ("w5 w6 w7", {"max_gen_toks": 4}), 0)])
    finally:
        handle.remove()
    words = text.split()
    assert 1 <= len(words) <= 4 and all(word[0] == "w" and 4 <= int(word[1:]) < MASK for word in words)
    assert lm.nfe == len(seen) == 4  # one step per new token, a forward at each
    expected = torch.tensor([log_linear_sigma(1 - k / 4) for k in range(4)], dtype=torch.float64)
    torch.testing.assert_close(torch.stack(seen)[:, 0].double(), expected, rtol=FLOAT32_SIGMA, atol=0)


# ---- 6. elbo_perplexity on a time-conditioned DiT -----------------------------------------------------------------
def test_elbo_perplexity_on_sedd_is_the_bound_with_each_row_conditioned_on_its_own_t():
    model, tokenizer = load("sedd"), fixture_tokenizer()
    dataset, num_samples = fixture_dataset(6, seed=1), 4
    result = elbo_perplexity(model, dataset, num_samples, tokenizer=tokenizer, batch_size=24, seed=0)
    assert math.isfinite(result["nelbo"]) and result["nelbo"] > 0 and math.isfinite(result["nelbo_standard_error"])
    assert result["perplexity_bound"] == pytest.approx(math.exp(result["nelbo"]))
    schedule = model.config.noise_schedule

    def bound(sigma_of):
        """The same draws (one batch: 6 sequences x 4 draws), each row given sigma explicitly."""
        collator = DataCollatorForMaskedDiffusion(tokenizer, schedule=schedule,
                                                  generator=torch.Generator().manual_seed(0))  # fmt: skip
        batch = collator([dict(example) for example in dataset] * num_samples)
        with torch.no_grad():
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"], sigma=sigma_of(batch["t"]))
        rows = masked_diffusion_loss(logits.logits, batch["labels"], t=batch["t"], schedule=schedule,
                                     attention_mask=batch["attention_mask"], reduction="none")  # fmt: skip
        totals = rows.double().view(num_samples, len(dataset)).mean(0)
        return float(totals.sum() / batch["attention_mask"][: len(dataset)].sum())

    assert result["nelbo"] == pytest.approx(bound(schedule.total_noise), rel=1e-6)
    assert result["nelbo"] != pytest.approx(bound(lambda t: schedule.total_noise(1 - t)), rel=1e-3)  # t matters


# ---- 7. the text-generation pipeline ------------------------------------------------------------------------------
def test_the_text_generation_pipeline_runs_a_time_conditioned_checkpoint():
    generator = pipeline("text-generation", model=load("sedd"), tokenizer=fixture_tokenizer())
    assert type(generator) is DiffusionTextGenerationPipeline
    text = generator("w5 w6", max_new_tokens=4, steps=4)[0]["generated_text"]
    words = text.split()
    assert words[:2] == ["w5", "w6"] and len(words) == 6


@pytest.mark.parametrize(
    "family",
    [
        pytest.param("sedd", marks=pytest.mark.xfail(
            strict=True, raises=ValueError,
            reason="transformers' pipeline() reads the folder with AutoConfig first, and SEDD's config.json has no "
            "model_type (\"Unrecognized model\"); load it with DiTForMaskedDiffusion.from_pretrained and pass the "
            "instance (test above), or save it as an hf-mdm folder",
        )),
        "mdlm",
        "bd3lm",
    ],
)  # fmt: skip
def test_published_folders_load_in_the_pipeline_and_in_lm_eval(family):
    lm_eval_harness = pytest.importorskip("hf_mdm.integrations.lm_eval_harness")
    tokenizer = fixture_tokenizer()
    lm = lm_eval_harness.MaskedDiffusionLM(pretrained=str(folder(family)), tokenizer=tokenizer)
    assert type(lm.model) is DiTForMaskedDiffusion
    generator = pipeline("text-generation", model=str(folder(family)), tokenizer=tokenizer)
    assert type(generator.model) is DiTForMaskedDiffusion
    assert len(generator("w5 w6", max_new_tokens=4, steps=4)[0]["generated_text"].split()) == 6
