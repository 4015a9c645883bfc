"""LLaDA 2.0's and 2.1's published samplers (`llada2_threshold`, `llada21_editing`) reproduce the authors'
`generate()` token for token, with the same number of model forwards, on the tiny fixture checkpoint; a batch is each
row's own run; bad arguments are refused before any forward; 2.1's unbounded loop is bounded with an error.

`fixtures/llada2-tiny/reference_generate.json` (greedy) and `reference_generate_sampled.json` (sampled under
`torch.manual_seed`, more step/eos settings, and 2.0 on a model that predicts [MASK]) hold the authors' arguments,
outputs and forward counts (see the folder's README.md).
"""

import copy
import functools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.generation.published_samplers import decode_like_authors, sample_like_authors
from hf_mdm.generation.published_samplers.filtered_draws import transfer_counts
from hf_mdm.modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion
from tests.conftest import tiny_config


FIXTURE = Path(__file__).parent / "fixtures" / "llada2-tiny"
MASK, EOS = 127, 124
PROMPT5, PROMPT8 = [87, 63, 97, 33, 23], [6, 32, 110, 45, 89, 65, 23, 63]


@functools.cache
def load(block_size, mask_row_like=None):
    """The fixture checkpoint, block-causal in blocks of `block_size`; `mask_row_like`: lm_head's [MASK] row replaced
    by 1.01 x that token's row (the model then predicts [MASK] where it predicted that token)."""
    model = LLaDA2MoeForMaskedDiffusion.from_pretrained(FIXTURE, mask_token_id=MASK, block_size=block_size).eval()
    if mask_row_like is not None:
        with torch.no_grad():
            model.lm_head.weight[MASK] = 1.01 * model.lm_head.weight[mask_row_like]
    return model


def cases():
    found = []
    for file in ("reference_generate.json", "reference_generate_sampled.json"):
        for case in json.loads((FIXTURE / file).read_text())["cases"]:
            found.append(pytest.param(case, id=case["name"]))
    return found


def authors_call(case):
    """(model, sampler name, options) of a recorded case: block_length is the model's block_size, mask_id its
    [MASK]; 2.1's `steps` has no effect in the authors' code and is not an option here."""
    options = dict(case["args"])
    options.pop("mask_id")
    name = "llada2_threshold" if case["name"].startswith("v20") else "llada21_editing"
    if name == "llada21_editing":
        options.pop("steps", None)
    mask_row = case.get("lm_head_mask_row")
    model = load(options["block_length"], None if mask_row is None else 63)
    return model, name, options


@pytest.mark.parametrize("case", cases())
def test_each_recorded_generation_is_reproduced_with_the_same_forwards(case):
    model, name, options = authors_call(case)
    seed = case.get("seed")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    ids, calls = decode_like_authors(
        model, name, torch.tensor([case["prompt"]]), generator=generator, return_model_calls=True, **options
    )
    assert ids.tolist() == [case["output"]]
    assert calls == case["n_forward"]


def test_the_global_rng_is_the_authors_when_no_generator_is_given():
    case = next(c.values[0] for c in cases() if c.values[0]["name"] == "v21_sampled_T0.7_topp0.95_seed2")
    model, name, options = authors_call(case)
    torch.manual_seed(case["seed"])
    assert decode_like_authors(model, name, torch.tensor([case["prompt"]]), **options).tolist() == [case["output"]]


def test_the_mask_column_is_the_authors():
    """Their model does not suppress [MASK]: on a model that predicts it, 2.0 keeps [MASK] in its output (the
    recorded case) where hf-mdm's forward (the [MASK] column at the float minimum) would not."""
    case = next(c.values[0] for c in cases() if c.values[0]["name"] == "v20_model_predicts_mask")
    assert MASK in case["output"]
    model, name, options = authors_call(case)
    assert decode_like_authors(model, name, torch.tensor([case["prompt"]]), **options).tolist() == [case["output"]]


@pytest.mark.parametrize(
    "name, options",
    [
        ("llada2_threshold", dict(gen_length=12, steps=4, threshold=0.95)),
        ("llada2_threshold", dict(gen_length=12, steps=4, threshold=0.5, temperature=0.8, top_k=20, top_p=0.9)),
        ("llada21_editing", dict(gen_length=12, threshold=0.7, editing_threshold=0.5, max_post_steps=4)),
        ("llada21_editing", dict(gen_length=12, threshold=0.7, editing_threshold=0.5, temperature=0.7, top_p=0.95)),
    ],
)
def test_a_batch_is_each_row_run_alone_in_order(name, options):
    """Rows are decoded one after the other, as successive calls of the authors' batch-1 function (with one
    generator, row 1's draws follow row 0's); outputs of different lengths are right-padded with eos."""
    model = load(4)
    prompts = torch.tensor([PROMPT5, [5, 9, 14, 30, 41]])
    batch, calls = decode_like_authors(
        model, name, prompts, generator=torch.Generator().manual_seed(7), return_model_calls=True, **options
    )
    generator, rows, row_calls = torch.Generator().manual_seed(7), [], 0
    for prompt in prompts:
        row, n = decode_like_authors(
            model, name, prompt[None], generator=generator, return_model_calls=True, **options
        )
        rows.append(row[0])
        row_calls += n
    assert calls == row_calls
    assert batch.shape == (2, max(len(row) for row in rows))
    for i, row in enumerate(rows):
        assert batch[i, : len(row)].tolist() == row.tolist()
        assert (batch[i, len(row) :] == EOS).all()


@settings(max_examples=8, deadline=None)
@given(
    prompt=st.lists(st.integers(0, 123), min_size=1, max_size=9),
    gen_length=st.integers(1, 10),
    threshold=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    editing=st.booleans(),
)
def test_outputs_stop_at_the_first_eos_and_never_exceed_gen_length(prompt, gen_length, threshold, editing):
    """Whatever the options, the greedy output is at most gen_length tokens, has no token after an eos, and (with
    the fixture's [MASK] row at zero, never the argmax) no [MASK]."""
    name, extra = ("llada21_editing", {"editing_threshold": 0.5}) if editing else ("llada2_threshold", {})
    ids = decode_like_authors(
        load(4), name, torch.tensor([prompt]), gen_length=gen_length, threshold=threshold, **extra
    )
    out = ids[0].tolist()
    assert 1 <= len(out) <= gen_length
    assert EOS not in out[:-1] and MASK not in out


@pytest.mark.parametrize("steps", [1, 3, 4, 6, 32])
def test_transfer_counts_are_the_authors_schedule(steps):
    """block_length // steps per step, the remainder one by one from the first step; the counts add up."""
    counts = transfer_counts(4, steps)
    assert len(counts) == steps and sum(counts) == 4
    assert counts == sorted(counts, reverse=True) and counts[0] - counts[-1] <= 1


class Counting:
    """The model with its forwards counted."""

    def __init__(self, model):
        self.model, self.config, self.device, self.training, self.calls = model, model.config, model.device, False, 0
        self.base_model = self

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.model.base_model(*args, **kwargs)

    def get_output_embeddings(self):
        return self.model.get_output_embeddings()


def refused(name, match, model=None, input_ids=(PROMPT5,), attention_mask=None, config=None, **options):
    """Call `name` with `options` (gen_length 8 unless given) on the fixture (or `model`, with `config` instead of
    its own) and check the ValueError, raised before any forward."""
    counted = Counting(model or load(4))
    counted.config = config or counted.config
    with pytest.raises(ValueError, match=match):
        decode_like_authors(
            counted, name, torch.tensor(input_ids), attention_mask=attention_mask, **{"gen_length": 8, **options}
        )
    assert counted.calls == 0


@pytest.mark.bad_input
@pytest.mark.parametrize("name", ["llada2_threshold", "llada21_editing"])
@pytest.mark.parametrize(
    "options, match",
    [
        ({"block_length": 8}, "block_length=8 but the model attends block-causally in blocks of block_size=4"),
        ({"mask_id": 5}, "not the model's \\[MASK\\] id 127"),
        ({"eos_id": MASK}, "is \\[MASK\\]"),
        ({"eos_id": 128}, "not a token"),
        ({"gen_length": 0}, "gen_length"),
        ({"gen_length": 60}, "max_position_embeddings"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": 129}, "exceeds the vocabulary"),
        ({"top_k": 2.0}, "top_k"),
        ({"top_p": 1.5}, "top_p"),
        ({"threshold": float("nan")}, "threshold"),
        ({"threshold": "0.9"}, "threshold"),
        ({"eos_early_stop": 1}, "eos_early_stop"),
        ({"attention_mask": torch.tensor([[0, 1, 1, 1, 1]])}, "without padding"),
        ({"input_ids": [PROMPT5[:4] + [MASK]]}, "\\[MASK\\] id 127"),
        ({"no_such_option": 1}, "Bad sampler arguments"),
    ],
)
def test_bad_arguments_are_refused_before_any_forward(name, options, match):
    refused(name, match, **options)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "name, options, match",
    [
        ("llada2_threshold", {"steps": 0}, "steps"),
        ("llada2_threshold", {"minimal_topk": 0}, "minimal_topk"),
        ("llada2_threshold", {"gen_length": 4, "minimal_topk": 5}, "lower minimal_topk"),
        ("llada2_threshold", {"eos_early_stop": True, "input_ids": [PROMPT5 + [EOS]]}, "contains eos_id=124"),
        ("llada21_editing", {"steps": 4}, "Bad sampler arguments"),
        ("llada21_editing", {"minimal_topk": 1}, "Bad sampler arguments"),
        ("llada21_editing", {"editing_threshold": None}, "editing_threshold"),
        ("llada21_editing", {"max_post_steps": -1}, "max_post_steps"),
        ("llada21_editing", {"num_to_transfer": -1}, "num_to_transfer"),
        ("llada21_editing", {"max_mask_steps": 0}, "max_mask_steps"),
    ],
)
def test_each_samplers_own_bad_arguments_are_refused(name, options, match):
    refused(name, match, **options)


@pytest.mark.bad_input
def test_a_model_of_another_family_or_without_eos_is_refused():
    refused("llada2_threshold", "needs a block-causal LLaDA 2.x model", model=MDMForMaskedGeneration(tiny_config()))
    config = copy.deepcopy(load(4).config)
    config.eos_token_id = None
    refused("llada21_editing", "pass eos_id=", config=config)


@pytest.mark.bad_input
def test_sample_like_authors_refuses_the_prompted_samplers():
    with pytest.raises(ValueError, match="continues a prompt: call decode_like_authors"):
        sample_like_authors(load(4), "llada2_threshold", batch_size=1, length=8, steps=4, generator=None)


@pytest.mark.bad_input
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_llada21_raises_where_the_authors_loop_never_ends(temperature):
    """On a model that keeps predicting [MASK] the authors' 2.1 `while True` never ends; here the block raises after
    max_mask_steps forwards with [MASK] left, naming the fix."""
    counted = Counting(load(4, mask_row_like=63))
    with pytest.raises(RuntimeError, match="stuck: .* after 6 forwards.*Raise max_mask_steps"):
        decode_like_authors(
            counted,
            "llada21_editing",
            torch.tensor([PROMPT5]),
            generator=torch.Generator().manual_seed(0),
            temperature=temperature,
            gen_length=8,
            top_k=1,
            threshold=0.7,
            max_mask_steps=6,
        )
    assert counted.calls >= 6


# PEFT reads transformers' deprecated `is_gradient_checkpointing` alias when it wraps a model (as tests/test_peft.py).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_peft_model_decodes_with_its_adapters():
    """A LoRA-wrapped model is read through its wrapped model: its ids are those of the merged weights."""
    peft = pytest.importorskip("peft")
    model = LLaDA2MoeForMaskedDiffusion.from_pretrained(FIXTURE, mask_token_id=MASK, block_size=4).eval()
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["query_key_value"])).eval()
    with torch.no_grad():
        for name, weight in wrapped.named_parameters():
            if "lora_B" in name:
                weight.fill_(0.5)
    options = dict(gen_length=12, steps=4, threshold=0.9)
    adapted = decode_like_authors(wrapped, "llada2_threshold", torch.tensor([PROMPT5]), **options)
    merged = decode_like_authors(wrapped.merge_and_unload(), "llada2_threshold", torch.tensor([PROMPT5]), **options)
    assert (
        adapted.tolist()
        == merged.tolist()
        != decode_like_authors(load(4), "llada2_threshold", torch.tensor([PROMPT5]), **options).tolist()
    )
