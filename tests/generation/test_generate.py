"""Behaviour of DiffusionGenerationMixin.generate on a tiny MDMForMaskedGeneration and on a scripted masked LM."""

import os

import pytest
import torch
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import MaskedLMOutput

from hf_mdm import MDMConfig, MDMForMaskedGeneration
from hf_mdm.generation import (
    REVEAL_COUNT_RULES,
    STRATEGIES,
    DiffusionGenerationOutput,
    RevealStrategy,
    enable_diffusion_generation,
    get_reveal_count_rule,
    register_strategy,
)
from hf_mdm.schedules import get_schedule


os.environ.setdefault("HF_HUB_OFFLINE", "1")

MASK, PAD, EOS, VOCAB = 39, 0, 1, 40


def tiny_mdm(seed: int = 0, **overrides) -> MDMForMaskedGeneration:
    """A 2-layer MDM with large init weights, so that its predictions vary from position to position."""
    torch.manual_seed(seed)
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        mask_token_id=MASK,
        pad_token_id=PAD,
        initializer_range=0.5,
    )
    fields.update(overrides)
    return enable_diffusion_generation(MDMForMaskedGeneration(MDMConfig(**fields)).eval())


class ScriptedMaskedLM(nn.Module):
    """Predicts `script[r, i]` at position i, r = first token mod len(script), with probability decreasing in i (so
    the confidence order is left to right)."""

    def __init__(self, script: torch.LongTensor):
        super().__init__()
        self.config = PreTrainedConfig(vocab_size=VOCAB, mask_token_id=MASK, pad_token_id=PAD)
        self.register_buffer("script", script)
        self.forward_calls = 0

    def forward(self, input_ids, attention_mask=None):
        self.forward_calls += 1
        batch, length = input_ids.shape
        logits = torch.zeros(batch, length, VOCAB)
        confidence = 8.0 - 0.1 * torch.arange(length, dtype=torch.float)
        rows = self.script[input_ids[:, 0] % self.script.shape[0], :length]
        logits.scatter_(2, rows.unsqueeze(-1), confidence.expand(batch, length).unsqueeze(-1).contiguous())
        return MaskedLMOutput(logits=logits)


def scripted(script) -> ScriptedMaskedLM:
    return enable_diffusion_generation(ScriptedMaskedLM(torch.tensor(script)))


PROMPTS = torch.tensor([[PAD, PAD, 5, 6, 7], [3, 4, 5, 6, 7]])
PROMPT_MASK = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
STRATEGY_NAMES = ["random", "confidence", "margin", "entropy", "threshold"]


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_prompt_and_padding_kept_and_no_mask_left(strategy, cache):
    out = tiny_mdm().generate(
        PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, steps=4, block_length=4, strategy=strategy, cache=cache
    )
    assert out.shape == (2, 13)
    assert torch.equal(out[:, :5], PROMPTS)
    assert not (out == MASK).any()


def test_steps_one_reveals_everything_in_one_forward():
    out = tiny_mdm().generate(
        PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, steps=1, return_dict_in_generate=True
    )
    assert not (out.sequences == MASK).any()
    assert out.nfe.tolist() == [1, 1]
    assert out.steps_per_block.tolist() == [[1], [1]]


@pytest.mark.parametrize("rule", sorted(REVEAL_COUNT_RULES))
@pytest.mark.parametrize("strategy", ["confidence", "margin", "entropy"])
def test_ranked_strategies_reveal_the_scheduled_count(strategy, rule):
    steps, block = 6, 8
    out = tiny_mdm().generate(
        PROMPTS,
        attention_mask=PROMPT_MASK,
        max_new_tokens=16,
        steps=steps,
        block_length=block,
        strategy=strategy,
        reveal_counts=rule,
        schedule="cosine",
        strategy_temperature=0.5,
        return_dict_in_generate=True,
        output_history=True,
    )
    masked = [torch.full((2,), 16)] + [(canvas == MASK).sum(1) for canvas in out.history]
    revealed = torch.stack([before - after for before, after in zip(masked, masked[1:])], dim=1)
    expected = get_reveal_count_rule(rule)(torch.full((2,), block), steps // 2, get_schedule("cosine"))
    assert torch.equal(revealed, torch.cat([expected, expected], dim=1))


def test_random_with_many_steps_spends_at_most_one_forward_per_position():
    out = tiny_mdm().generate(
        PROMPTS,
        attention_mask=PROMPT_MASK,
        max_new_tokens=8,
        steps=128,  # 16 steps per position, the most generate() accepts
        strategy="random",
        return_dict_in_generate=True,
    )
    assert not (out.sequences == MASK).any()
    assert (out.nfe <= 8).all() and (out.nfe >= 1).all()
    assert out.steps_per_block.max() <= 128


def test_greedy_decoding_is_deterministic():
    model = tiny_mdm()
    first = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, steps=8, strategy="margin")
    second = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, steps=8, strategy="margin")
    assert torch.equal(first, second)


def test_same_seed_same_samples():
    model = tiny_mdm()
    kwargs = dict(attention_mask=PROMPT_MASK, max_new_tokens=12, steps=6, strategy="random", do_sample=True, top_k=10)
    runs = [model.generate(PROMPTS, generator=torch.Generator().manual_seed(seed), **kwargs) for seed in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_row_output_does_not_depend_on_batch_mates(cache):
    model = tiny_mdm()
    prompts = torch.tensor([[PAD, PAD, 5, 6, 7], [3, 4, 5, 6, 7], [PAD, 9, 9, 2, 5]])
    mask = (prompts != PAD).long()
    kwargs = dict(max_new_tokens=8, steps=8, block_length=4, strategy="confidence", do_sample=True, cache=cache)
    kwargs.update(strategy_temperature=1.0, temperature=0.8)
    batch = model.generate(
        prompts, attention_mask=mask, generator=[torch.Generator().manual_seed(row) for row in range(3)], **kwargs
    )
    for row in range(3):
        real = mask[row].bool()
        alone = model.generate(prompts[row : row + 1, real], generator=[torch.Generator().manual_seed(row)], **kwargs)
        assert torch.equal(batch[row, ~torch.cat([~real, torch.zeros(8, dtype=torch.bool)])], alone[0])


def test_history_has_one_canvas_per_step():
    out = tiny_mdm().generate(
        PROMPTS,
        attention_mask=PROMPT_MASK,
        max_new_tokens=8,
        steps=4,
        block_length=4,
        return_dict_in_generate=True,
        output_history=True,
    )
    assert isinstance(out, DiffusionGenerationOutput)
    assert len(out.history) == 4
    assert all(canvas.shape == (2, 13) for canvas in out.history)
    assert torch.equal(out.history[-1], out.sequences)
    assert out.steps_per_block.tolist() == [[2, 2], [2, 2]]


def test_eos_stops_the_row_and_pads_after_it():
    script = [[10, 11, EOS, 12, 13, 14, 15, 16], [10, 11, 12, 13, 14, EOS, 15, 16]]
    model = scripted(script)
    out = model.generate(
        torch.tensor([[20], [21]]),
        max_new_tokens=7,
        steps=7,
        eos_token_id=EOS,
        pad_token_id=PAD,
        return_dict_in_generate=True,
    )
    assert out.sequences.tolist() == [[20, 11, EOS, PAD, PAD, PAD, PAD, PAD], [21, 11, 12, 13, 14, EOS, PAD, PAD]]
    assert out.nfe.tolist() == [2, 5]
    assert model.forward_calls == 5  # the batch stops once both rows are done


def test_infilling_fills_only_mask_tokens():
    script = [[30 + i for i in range(10)]]
    prompt = torch.tensor([[2, MASK, 4, MASK, MASK, 7, 8, MASK, 9, 5]])
    out = scripted(script).generate(prompt, steps=4, strategy="confidence")
    expected = torch.where(prompt == MASK, torch.tensor(script), prompt)
    assert torch.equal(out, expected)
    generated = tiny_mdm().generate(prompt, max_new_tokens=4, steps=4, cache="dual", block_length=2)
    keep = torch.cat([prompt != MASK, torch.zeros(1, 4, dtype=torch.bool)], 1)
    assert torch.equal(generated[keep], prompt[prompt != MASK]) and not (generated == MASK).any()


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cache_is_exact_when_each_block_takes_one_forward(cache):
    model = tiny_mdm()
    kwargs = dict(attention_mask=PROMPT_MASK, max_new_tokens=12, steps=3, block_length=4, return_dict_in_generate=True)
    plain = model.generate(PROMPTS, **kwargs)
    cached = model.generate(PROMPTS, cache=cache, **kwargs)
    assert torch.equal(plain.sequences, cached.sequences)
    assert torch.equal(plain.nfe, cached.nfe)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("logits_shift", [0, 1])
def test_cached_replays_match_uncached_decoding_when_the_cache_is_exact(cache, logits_shift):
    """With one layer a token's keys/values depend only on itself and its position, so the recorded prefix (and
    suffix) are exact and every replayed forward of a block must give the uncached result."""
    model = tiny_mdm(num_hidden_layers=1, logits_shift=logits_shift)
    kwargs = dict(attention_mask=PROMPT_MASK, max_new_tokens=12, steps=12, block_length=4)
    plain = model.generate(PROMPTS, return_dict_in_generate=True, **kwargs)
    cached = model.generate(PROMPTS, cache=cache, return_dict_in_generate=True, **kwargs)
    assert torch.equal(plain.sequences, cached.sequences)
    assert (plain.nfe > 3).all()  # several forwards per block: the replay path ran


@pytest.mark.parametrize("cache", ["none", "dual"])
def test_lm_head_runs_only_on_the_still_masked_positions_of_the_block(cache):
    model = tiny_mdm()
    widths = []
    model.lm_head.register_forward_hook(lambda module, args, output: widths.append(args[0].shape[1]))
    model.generate(PROMPTS[1:], max_new_tokens=12, steps=6, block_length=4, cache=cache, reveal_counts="even")
    assert widths == [4, 2] * 3  # each block: 4 masked positions, then 2 after the first step revealed 2


def test_threshold_adapts_the_number_of_forwards():
    model = tiny_mdm()
    strict = model.generate(
        PROMPTS, max_new_tokens=8, strategy="threshold", threshold=1.0, return_dict_in_generate=True
    )
    loose = model.generate(
        PROMPTS, max_new_tokens=8, strategy="threshold", threshold=1e-6, return_dict_in_generate=True
    )
    assert strict.nfe.tolist() == [8, 8]  # p < 1 everywhere: one position per forward
    assert loose.nfe.tolist() == [1, 1]


def test_unconditional_generation_and_num_return_sequences():
    model = tiny_mdm()
    out = model.generate(max_new_tokens=6, steps=3, generator=[torch.Generator().manual_seed(i) for i in range(2)])
    assert out.shape == (2, 6) and not (out == MASK).any()
    repeated = model.generate(
        PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=4, num_return_sequences=3, do_sample=True
    )
    assert repeated.shape == (6, 9)
    assert torch.equal(repeated[:3, :5], PROMPTS[:1].expand(3, -1))


def test_a_registered_strategy_with_its_own_parameter_needs_no_other_edit():
    @register_strategy("leftmost-test")
    class LeftmostStrategy(RevealStrategy):
        """Reveal the `width` leftmost masked positions per step (its own parameter, via strategy_kwargs)."""

        def __init__(self, schedule, width=1):
            super().__init__(schedule)
            self.width = width

        def select(self, step):
            ranks = step.masked.long().cumsum(1)
            return step.masked & (ranks <= self.width)

    try:
        out = tiny_mdm().generate(
            PROMPTS,
            max_new_tokens=4,
            steps=4,
            strategy="leftmost-test",
            return_dict_in_generate=True,
            output_history=True,
        )
        assert [(canvas[:, 5:] == MASK).sum(1).tolist() for canvas in out.history] == [[3, 3], [2, 2], [1, 1], [0, 0]]
        assert [(canvas[0, 5 + i] != MASK).item() for i, canvas in enumerate(out.history)] == [True] * 4
        wide = tiny_mdm().generate(
            PROMPTS,
            max_new_tokens=4,
            steps=4,
            strategy="leftmost-test",
            strategy_kwargs={"width": 2},
            return_dict_in_generate=True,
            output_history=True,
        )
        assert [(canvas[:, 5:] == MASK).sum(1).tolist() for canvas in wide.history] == [[2, 2], [0, 0]]
        with pytest.raises(ValueError, match="Bad strategy_kwargs .* 'leftmost-test'"):
            tiny_mdm().generate(PROMPTS, max_new_tokens=4, strategy="leftmost-test", strategy_kwargs={"depth": 2})
    finally:
        STRATEGIES.pop("leftmost-test")
