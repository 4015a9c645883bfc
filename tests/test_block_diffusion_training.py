"""Training a block-diffusion model (BD3-LM's objective) with the stock Trainer.

The forward with labels runs once over [x_t ; x_0]; its logits for block b equal those of the block-causal model run
on [clean blocks < b, noisy block b] (every padding and `logits_shift`), B >= L is the bidirectional objective, eager
and sdpa agree, gradients flow. The collator draws one time per block; a time that varies inside a model block, a
masked token without a label, and the other inputs that would train wrong are refused.
"""

import itertools

import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import DynamicCache, Trainer

from hf_mdm import DataCollatorForMaskedDiffusion, MDMConfig, MDMForMaskedGeneration, masked_diffusion_loss
from hf_mdm.block_positions import block_ids
from hf_mdm.cli import main
from hf_mdm.cli.train import build_training_inputs, training_collator
from hf_mdm.configuration_llada2_moe import LLaDA2MoeConfig
from hf_mdm.configuration_sdar import SDARConfig
from hf_mdm.evaluation.elbo_perplexity import elbo_perplexity
from hf_mdm.evaluation.monte_carlo_loglikelihood import continuation_parts, monte_carlo_loglikelihood
from hf_mdm.generation.denoisers import model_block_size
from hf_mdm.modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion
from hf_mdm.modeling_sdar import SDARForMaskedDiffusion

from .conftest import tiny_config, toy_corpus, word_tokenizer
from .test_cli_train import parsed
from .test_trainer import logged_losses, toy_dataset, training_args


DIMS = dict(
    vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, mask_token_id=49, max_position_embeddings=64,
)  # fmt: skip
MASK = DIMS["mask_token_id"]


def block_model(block_size, logits_shift=0, attn_implementation="sdpa", seed=0):
    torch.manual_seed(seed)
    config = MDMConfig(
        **DIMS, block_size=block_size, logits_shift=logits_shift, attn_implementation=attn_implementation
    )
    return MDMForMaskedGeneration(config).eval()


def noisy_batch(batch_size, length, pads, seed=0, probability=0.5):
    """Left-padded clean rows, their noisy copy (each real token masked w.p. `probability`), labels and mask."""
    generator = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, MASK, (batch_size, length), generator=generator)
    attention_mask = (torch.arange(length)[None, :] >= torch.tensor(pads)[:, None]).long()
    clean = clean.masked_fill(attention_mask == 0, 0)
    masked = (torch.rand(batch_size, length, generator=generator) < probability) & attention_mask.bool()
    noisy = torch.where(masked, MASK, clean)
    labels = torch.where(masked, clean, -100)
    return clean, noisy, labels, attention_mask


def per_block_reference(model, clean, noisy, attention_mask):
    """(B, L, V) logits of each real token from the plain block-causal model run row by row, block by block, on
    [clean blocks < b, noisy block b] (padding stripped): what decoding block b sees."""
    block_size = model.config.block_size
    reference = torch.zeros(*clean.shape, model.config.vocab_size)
    for row in range(clean.shape[0]):
        real = attention_mask[row].bool()
        columns = real.nonzero()[:, 0]
        row_clean, row_noisy = clean[row, real], noisy[row, real]
        for start in range(0, len(columns), block_size):
            end = min(start + block_size, len(columns))
            ids = torch.cat([row_clean[:start], row_noisy[start:end]])[None]
            reference[row, columns[start:end]] = model(input_ids=ids).logits[0, start:end]
    return reference


def real_logits(logits, attention_mask):
    return logits[attention_mask.bool()]


@pytest.mark.parametrize("logits_shift", [0, 1])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_one_forward_over_noisy_and_clean_equals_the_per_block_reference(backend, logits_shift):
    model = block_model(4, logits_shift, backend)
    clean, noisy, labels, attention_mask = noisy_batch(3, 13, pads=[0, 3, 6])
    with torch.no_grad():
        out = model(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=torch.full((3,), 0.5))
        reference = per_block_reference(model, clean, noisy, attention_mask)
    torch.testing.assert_close(
        real_logits(out.logits, attention_mask), real_logits(reference, attention_mask), atol=1e-5, rtol=1e-5
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    block_size=st.integers(1, 7),
    length=st.integers(1, 12),
    pads=st.lists(st.integers(0, 11), min_size=1, max_size=3),
    logits_shift=st.sampled_from([0, 1]),
    probability=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_the_block_objective_matches_the_reference_for_any_blocks_and_padding(
    block_size, length, pads, logits_shift, probability, seed
):
    pads = [min(pad, length - 1) for pad in pads]
    model = block_model(block_size, logits_shift)
    clean, noisy, _, attention_mask = noisy_batch(len(pads), length, pads, seed, probability)
    with torch.no_grad():
        logits = model(input_ids=noisy, attention_mask=attention_mask, clean_input_ids=clean).logits
        reference = per_block_reference(model, clean, noisy, attention_mask)
    torch.testing.assert_close(
        real_logits(logits, attention_mask), real_logits(reference, attention_mask), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("logits_shift", [0, 1])
@pytest.mark.parametrize("block_size", [13, 64])
def test_a_block_as_long_as_the_sequence_gives_the_bidirectional_loss(block_size, logits_shift):
    block = block_model(block_size, logits_shift)
    bidirectional = block_model(None, logits_shift)
    _, noisy, labels, attention_mask = noisy_batch(3, 13, pads=[0, 2, 5])
    t = torch.tensor([0.3, 0.6, 0.9])
    inputs = dict(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=t)
    with torch.no_grad():
        expected, got = bidirectional(**inputs), block(**inputs)
    torch.testing.assert_close(got.loss, expected.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        real_logits(got.logits, attention_mask), real_logits(expected.logits, attention_mask), atol=1e-5, rtol=1e-5
    )


def test_eager_and_sdpa_give_the_same_loss_and_gradients():
    _, noisy, labels, attention_mask = noisy_batch(2, 10, pads=[0, 4])
    inputs = dict(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=torch.tensor([0.4, 0.8]))
    results = []
    for backend in ("eager", "sdpa"):
        model = block_model(3, 1, backend).train()
        loss = model(**inputs).loss
        loss.backward()
        results.append((loss.detach(), model.model.embed_tokens.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-5)


# transformers' and torch's flex-attention code on CPU call deprecated torch APIs; none is hf-mdm's call
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_flex_attention_gives_the_eager_objective():
    pytest.importorskip("torch.nn.attention.flex_attention")
    _, noisy, labels, attention_mask = noisy_batch(2, 10, pads=[0, 3])
    inputs = dict(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=torch.tensor([0.4, 0.8]))
    with torch.no_grad():
        eager = block_model(3, 1, "eager")(**inputs)
        flex = block_model(3, 1, "flex_attention")(**inputs)
    torch.testing.assert_close(flex.loss, eager.loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        real_logits(flex.logits, attention_mask), real_logits(eager.logits, attention_mask), atol=1e-5, rtol=1e-5
    )


def test_gradients_reach_every_weight_through_both_halves():
    model = block_model(3).train()
    clean, noisy, labels, attention_mask = noisy_batch(2, 12, pads=[0, 3], probability=0.6)
    loss = model(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=torch.tensor([0.5, 0.7])).loss
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    # A clean token of an earlier block conditions the later blocks: its embedding row gets a gradient although it
    # is never an input of the noisy half nor a target.
    visible = set(noisy[attention_mask.bool()].tolist()) | set(labels[labels != -100].tolist())
    only_clean = sorted(set(clean[:, :9][attention_mask[:, :9].bool()].tolist()) - visible)
    weight_grad = model.model.embed_tokens.weight.grad
    assert all(weight_grad[token].abs().sum() > 0 for token in only_clean)


def test_without_labels_the_forward_is_the_block_causal_one():
    model = block_model(4)
    _, noisy, _, attention_mask = noisy_batch(2, 9, pads=[0, 2])
    with torch.no_grad():
        logits = model(input_ids=noisy, attention_mask=attention_mask).logits
    assert logits.shape == (2, 9, DIMS["vocab_size"])
    blocks = block_ids(attention_mask, 9, 4)
    # token 0 of row 0 sees only block 0: changing a later block changes nothing there
    changed = noisy.clone()
    changed[0, 8] = (changed[0, 8] + 1) % MASK
    with torch.no_grad():
        other = model(input_ids=changed, attention_mask=attention_mask).logits
    earlier = blocks[0] < blocks[0, 8]
    torch.testing.assert_close(other[0, earlier], logits[0, earlier])


# --- per-token times and the loss --------------------------------------------------------------------------------
def test_a_per_token_time_weights_each_token_by_its_block():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=generator)
    labels = torch.tensor([[3, -100, 4, 5, -100, 6], [-100, 7, 8, -100, 9, 10]])
    blocks = torch.tensor([[0, 0, 0, 1, 1, 1]] * 2)
    block_times = torch.tensor([[0.2, 0.7], [0.5, 0.9]])
    t = block_times.gather(1, blocks)
    per_token = masked_diffusion_loss(logits, labels, t=t, block_size=3, reduction="none")
    # the same as two separate per-row losses, one per block
    expected = sum(
        masked_diffusion_loss(
            logits, labels.masked_fill(blocks != block, -100), t=block_times[:, block], reduction="none"
        )
        for block in range(2)
    )
    torch.testing.assert_close(per_token, expected)


def test_a_per_row_time_on_a_block_model_is_accepted_and_equals_the_same_time_per_token():
    model = block_model(3)
    _, noisy, labels, attention_mask = noisy_batch(2, 9, pads=[0, 2])
    t = torch.tensor([0.3, 0.8])
    inputs = dict(input_ids=noisy, attention_mask=attention_mask, labels=labels)
    with torch.no_grad():
        per_row = model(**inputs, t=t).loss
        per_token = model(**inputs, t=t[:, None].expand(-1, 9).clone()).loss
    torch.testing.assert_close(per_row, per_token)


@pytest.mark.bad_input
@pytest.mark.parametrize("model_block_size", [None, 2, 6])
def test_a_time_varying_inside_a_model_block_is_refused(tokenizer, model_block_size):
    collator = DataCollatorForMaskedDiffusion(tokenizer, block_size=3, generator=torch.Generator().manual_seed(0))
    batch = collator([{"input_ids": tokenizer(text)["input_ids"]} for text in toy_corpus(4)])
    model = MDMForMaskedGeneration(tiny_config(block_size=model_block_size))
    with pytest.raises(ValueError, match=r"varies inside one of the model's blocks.*block_size=model.config"):
        model(**batch)
    with pytest.raises(ValueError, match="varies inside one of the model's blocks"):
        masked_diffusion_loss(torch.randn(*batch["labels"].shape, 20), batch["labels"], t=batch["t"])


def test_a_collator_block_that_is_a_multiple_of_the_model_block_is_accepted(tokenizer):
    collator = DataCollatorForMaskedDiffusion(tokenizer, block_size=6, generator=torch.Generator().manual_seed(0))
    batch = collator([{"input_ids": tokenizer(text)["input_ids"]} for text in toy_corpus(4)])
    loss = MDMForMaskedGeneration(tiny_config(block_size=3))(**batch).loss
    assert torch.isfinite(loss)


@pytest.mark.bad_input
def test_a_masked_token_without_a_label_is_refused():
    model = block_model(4)
    _, noisy, labels, attention_mask = noisy_batch(2, 8, pads=[0, 1])
    masked = (noisy == MASK) & attention_mask.bool()
    labels[masked.nonzero()[0][0], masked.nonzero()[0][1]] = -100
    with pytest.raises(ValueError, match="masked tokens have no label.*DataCollatorForMaskedDiffusion"):
        model(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=torch.tensor([0.5, 0.5]))


@pytest.mark.bad_input
def test_block_training_inputs_that_cannot_build_the_clean_copy_are_refused():
    model = block_model(4)
    clean, noisy, labels, attention_mask = noisy_batch(2, 8, pads=[0, 1])
    t = torch.tensor([0.5, 0.5])
    embeds = model.model.embed_tokens(noisy)
    with pytest.raises(ValueError, match="with inputs_embeds it is unknown. Pass input_ids"):
        model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, t=t)
    with pytest.raises(ValueError, match="not both"):
        model(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=t, clean_input_ids=clean)
    with pytest.raises(ValueError, match="give the clean token at every position"):
        model(input_ids=noisy, attention_mask=attention_mask, clean_input_ids=clean[:, :5])
    with pytest.raises(ValueError, match="this model is bidirectional"):
        block_model(None)(input_ids=noisy, attention_mask=attention_mask, clean_input_ids=clean)
    with pytest.raises(TypeError, match="clean_input_ids must hold token ids as torch.long"):
        model(input_ids=noisy, attention_mask=attention_mask, clean_input_ids=clean.float())
    with pytest.raises(ValueError, match="reads no cache; drop `cache`"):
        model(input_ids=noisy, attention_mask=attention_mask, clean_input_ids=clean, cache=DynamicCache())
    with pytest.raises(ValueError, match="numbers the blocks from the 2-D padding mask"):
        model(input_ids=noisy, attention_mask=attention_mask[:, None, None, :].bool(), clean_input_ids=clean)


# --- the collator -------------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    block_size=st.integers(1, 8),
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=5),
    left=st.booleans(),
    antithetic=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_the_collator_draws_one_time_per_block_of_real_tokens(block_size, lengths, left, antithetic, seed):
    tokenizer = word_tokenizer()
    tokenizer.padding_side = "left" if left else "right"
    generator = torch.Generator().manual_seed(seed)
    collator = DataCollatorForMaskedDiffusion(
        tokenizer, block_size=block_size, antithetic=antithetic, generator=generator
    )
    examples = [{"input_ids": torch.randint(5, 17, (n,), generator=generator).tolist()} for n in lengths]
    batch = collator(examples)
    t, attention_mask = batch["t"], batch["attention_mask"]
    blocks = block_ids(attention_mask, t.shape[1], block_size)
    assert t.shape == attention_mask.shape
    assert (t[attention_mask == 0] == 0).all()
    times = {}
    for row, column in attention_mask.nonzero().tolist():
        times.setdefault((row, int(blocks[row, column])), set()).add(float(t[row, column]))
    assert all(len(values) == 1 for values in times.values())  # one time per block
    drawn = torch.tensor(sorted(value for values in times.values() for value in values))
    if drawn.numel():
        assert ((drawn >= collator.eps) & (drawn < 1)).all()
    if antithetic and drawn.numel() > 1:  # stratified over all blocks of the batch
        torch.testing.assert_close(drawn.diff(), torch.full_like(drawn[1:], (1 - collator.eps) / drawn.numel()))
    assert ((batch["labels"] != -100) == (batch["input_ids"] == tokenizer.mask_token_id)).all()


def test_each_block_is_masked_at_its_own_rate(tokenizer):
    collator = DataCollatorForMaskedDiffusion(tokenizer, block_size=8, generator=torch.Generator().manual_seed(0))
    batch = collator([{"input_ids": [5] * 64} for _ in range(64)])
    masked = batch["input_ids"] == tokenizer.mask_token_id
    block_t = batch["t"].view(64, 8, 8)[..., 0].reshape(-1)
    block_rate = masked.view(64, 8, 8).float().mean(-1).reshape(-1)
    # linear schedule: a block at time t masks each token with probability t; 512 blocks of 8 tokens
    centred_t, centred_rate = block_t - block_t.mean(), block_rate - block_rate.mean()
    slope = (centred_t * centred_rate).sum() / centred_t.pow(2).sum()
    assert abs(float(slope) - 1.0) < 0.1
    assert abs(float((block_rate - block_t).mean())) < 0.02


def test_prompts_are_never_masked_and_eos_padding_is_trained_on_with_blocks(tokenizer):
    collator = DataCollatorForMaskedDiffusion(
        tokenizer, block_size=2, eos_padding=True, generator=torch.Generator().manual_seed(0)
    )
    examples = [
        {"input_ids": tokenizer(text)["input_ids"], "prompt_length": 2 + index % 2}
        for index, text in enumerate(toy_corpus(16))
    ]
    examples[0]["input_ids"] = examples[0]["input_ids"][:4]
    batch = collator(examples)
    assert ((batch["input_ids"] == tokenizer.mask_token_id) & batch["prompt_mask"].bool()).sum() == 0
    eos = tokenizer.eos_token_id
    assert (batch["labels"] == eos).any()  # the EOS padding is masked and scored like the response
    model = MDMForMaskedGeneration(tiny_config(block_size=2))
    assert torch.isfinite(model(**batch).loss)


def test_clipped_times_lie_in_the_interval(tokenizer):
    collator = DataCollatorForMaskedDiffusion(
        tokenizer, block_size=2, t_interval=(0.3, 0.8), generator=torch.Generator().manual_seed(0)
    )
    batch = collator([{"input_ids": tokenizer(text)["input_ids"]} for text in toy_corpus(16)])
    real = batch["t"][batch["attention_mask"].bool()]
    assert ((real >= 0.3) & (real < 0.8)).all()
    assert real.max() - real.min() > 0.4  # spread over the interval


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, error, match",
    [
        (dict(block_size=0), ValueError, "block_size must be >= 1"),
        (dict(block_size=2.0), TypeError, "block_size must be a whole number"),
        (dict(t_interval=(0.0, 0.5)), ValueError, "0 < low < high <= 1"),
        (dict(t_interval=(0.6, 0.5)), ValueError, "0 < low < high <= 1"),
        (dict(t_interval=(0.5, 1.5)), ValueError, "0 < low < high <= 1"),
        (dict(t_interval=0.5), TypeError, "pair of numbers"),
        (dict(t_interval=(0.1, 0.5), eps=0.01), ValueError, "t_interval replaces eps"),
    ],
)
def test_bad_block_arguments_of_the_collator_are_refused(tokenizer, arguments, error, match):
    with pytest.raises(error, match=match):
        DataCollatorForMaskedDiffusion(tokenizer, **arguments)


# --- the stock Trainer ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("logits_shift", [0, 1])
def test_the_stock_trainer_trains_a_block_model(tmp_path, tokenizer, logits_shift):
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(tiny_config(block_size=2, logits_shift=logits_shift))
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path, 40),
        train_dataset=toy_dataset(tokenizer),
        data_collator=DataCollatorForMaskedDiffusion(tokenizer, block_size=2),
    )
    trainer.train()
    losses = logged_losses(trainer)
    assert len(losses) == 40 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


def test_the_stock_trainer_fine_tunes_a_block_model_on_prompts(tmp_path, tokenizer):
    texts = toy_corpus(32)
    dataset = Dataset.from_dict(
        {"input_ids": [tokenizer(text)["input_ids"] for text in texts], "prompt_length": [2] * len(texts)}
    )
    torch.manual_seed(0)
    trainer = Trainer(
        model=MDMForMaskedGeneration(tiny_config(block_size=3)),
        args=training_args(tmp_path, 30),
        train_dataset=dataset,
        data_collator=DataCollatorForMaskedDiffusion(tokenizer, block_size=3, eos_padding=True),
    )
    trainer.train()
    losses = logged_losses(trainer)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10


@pytest.mark.bad_input
def test_per_token_times_of_a_wrong_shape_or_range_are_refused():
    model = block_model(3)
    _, noisy, labels, attention_mask = noisy_batch(2, 9, pads=[0, 2])
    inputs = dict(input_ids=noisy, attention_mask=attention_mask, labels=labels)
    with pytest.raises(ValueError, match=r"give one per row \(2,\) or one per token \(2, 9\)"):
        model(**inputs, t=torch.full((2, 8), 0.5))
    t = torch.full((2, 9), 0.5)
    t[labels != -100] = 0.0  # a scored token at time 0 (its weight would be infinite)
    with pytest.raises(ValueError, match=r"t must lie in \(0, 1\]"):
        model(**inputs, t=t)


# --- hf-mdm train --block-size ------------------------------------------------------------------------------------
CLI_RUN = ["--hidden_size", "32", "--num_hidden_layers", "2", "--max_steps", "3", "--per_device_train_batch_size",
           "4", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true"]  # fmt: skip


def test_train_block_size_builds_a_block_model_and_its_collator(tmp_path):
    language = ["--language", "ngram", "--num_examples", "16", "--sequence_length", "12"]
    assert main(["train", *language, "--block-size", "4", "--output_dir", str(tmp_path), *CLI_RUN]) == 0
    assert MDMForMaskedGeneration.from_pretrained(tmp_path).config.block_size == 4
    model_args, data, language_args, _ = parsed([*language, "--block_size", "4", "--output_dir", str(tmp_path)])
    tokenizer, dataset, model = build_training_inputs(model_args, data, language_args)
    assert training_collator(tokenizer, model, data).block_size == model.config.block_size == 4
    # a loaded block model brings its own block size to the collator
    model_args, data, language_args, _ = parsed(
        [*language, "--model_name_or_path", str(tmp_path), "--output_dir", "x"]
    )
    tokenizer, dataset, model = build_training_inputs(model_args, data, language_args)
    assert training_collator(tokenizer, model, data).block_size == 4


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--block-size", "0"], "--block_size must be >= 1, got 0"),
        (["--block-size", "4", "--model_name_or_path", "some/model"], "--block_size describe a new model"),
    ],
)
def test_bad_block_size_flags_print_one_line(tmp_path, capsys, arguments, message):
    language = ["--language", "ngram", "--num_examples", "16", "--sequence_length", "12"]
    assert main(["train", *language, *arguments, "--output_dir", str(tmp_path), *CLI_RUN[4:]]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("hf-mdm train: error:") and message in error


# --- likelihood evaluation on a block model ------------------------------------------------------------------------
def block_causal_model(family):
    """A block-causal model of each family whose forward reads `config.block_size` (block 2), on the toy vocabulary."""
    torch.manual_seed(0)
    if family == "mdm":
        return MDMForMaskedGeneration(tiny_config(block_size=2)).eval()
    toy = tiny_config()
    sizes = dict(vocab_size=toy.vocab_size, mask_token_id=toy.mask_token_id, pad_token_id=toy.pad_token_id,
                 bos_token_id=toy.bos_token_id, eos_token_id=toy.eos_token_id, hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8, block_size=2,
                 max_position_embeddings=64)  # fmt: skip
    if family == "sdar":
        return SDARForMaskedDiffusion(SDARConfig(**sizes)).eval()
    config = LLaDA2MoeConfig(**sizes, moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2, n_group=2,
                             topk_group=1, first_k_dense_replace=1)  # fmt: skip
    return LLaDA2MoeForMaskedDiffusion(config).eval()


@pytest.mark.parametrize("family", ["mdm", "sdar", "llada2_moe"])
def test_elbo_perplexity_of_a_block_model_is_its_training_objective(tokenizer, family):
    """Every block-causal family is scored with the block objective (the evaluations read its block size through its
    denoiser adapter; a list of model types had left SDAR and LLaDA 2.x scored as bidirectional)."""
    model = block_causal_model(family)
    assert model_block_size(model) == 2
    examples = [{"input_ids": tokenizer(text)["input_ids"]} for text in toy_corpus(6)]
    result = elbo_perplexity(model, examples, num_samples=1, tokenizer=tokenizer, batch_size=8, seed=3)
    collator = DataCollatorForMaskedDiffusion(tokenizer, block_size=2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(**collator(examples)).loss  # each block given the clean earlier blocks
    assert result["nelbo"] == pytest.approx(float(expected), rel=1e-5)


def block_reference_log_prob(model, canvas, masked, position):
    """log p(canvas[position] | the block-causal model on the canvas up to the end of `position`'s block, with the
    `masked` positions of that block masked and the earlier blocks clean)."""
    block_size = model.config.block_size
    end = min((position // block_size + 1) * block_size, len(canvas))
    ids = torch.tensor(canvas[:end])
    ids[[p for p in masked if p < end]] = model.config.mask_token_id
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0, position]
    return float(logits.log_softmax(-1)[canvas[position]])


def test_monte_carlo_loglikelihood_of_a_block_size_one_model_is_its_autoregressive_likelihood():
    model = block_model(1)
    context, continuation = [5, 9, 11], [7, 3, 20, 8]
    canvas = context + continuation
    (estimate,) = monte_carlo_loglikelihood(model, [(context, continuation)], MASK, num_samples=16, num_groups=4)
    positions = range(len(context), len(canvas))
    exact = sum(block_reference_log_prob(model, canvas, [p], p) for p in positions)
    assert estimate.value == pytest.approx(exact, abs=1e-5)
    assert estimate.standard_error == pytest.approx(0.0, abs=1e-9)  # every draw is the same: one token per block


def test_monte_carlo_loglikelihood_of_a_block_model_estimates_the_per_block_bound():
    model = block_model(3)
    context, continuation = [5, 9], [7, 3, 20, 8, 14]
    canvas = context + continuation
    # the exact bound: per block part y_k, sum over sizes l of (1 / l) * the mean over subsets of that size
    exact = 0.0
    for part in ([2], [3, 4, 5], [6]):
        for size in range(1, len(part) + 1):
            subsets = list(itertools.combinations(part, size))
            total = sum(block_reference_log_prob(model, canvas, subset, p) for subset in subsets for p in subset)
            exact += total / len(subsets) / size
    (estimate,) = monte_carlo_loglikelihood(model, [(context, continuation)], MASK, num_samples=256, num_groups=8)
    assert estimate.standard_error > 0
    assert abs(estimate.value - exact) < 4 * estimate.standard_error


@settings(max_examples=50, deadline=None)
@given(context_length=st.integers(0, 20), length=st.integers(1, 20), block_size=st.integers(1, 8))
def test_continuation_parts_are_the_model_blocks(context_length, length, block_size):
    parts = continuation_parts(context_length, length, block_size)
    assert sum(parts) == length and all(part > 0 for part in parts)
    ends = context_length + torch.tensor(parts).cumsum(0)
    blocks = [block_ids(None, context_length + length, block_size)[0, start:end].unique() for start, end in zip(
        [context_length, *ends[:-1].tolist()], ends.tolist())]  # fmt: skip
    assert all(len(block) == 1 for block in blocks)  # a part lies in one block
    assert len({int(block) for block in blocks}) == len(parts)  # and parts lie in different blocks
