"""Greedy `generate()` reproduces LLaDA's and Dream's reference samplers token for token on the tiny fixture folders.

Each case of `fixtures/{llada,dream}-tiny/reference_generate.json` holds the arguments passed to the reference sampler,
the canvas before each of its forward passes and its output; the count rules are the named options
`reveal_counts="llada"` / `"dream"` of our generation config, the rankings our `confidence` / `margin` / `entropy`.
"""

import functools
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from hf_mdm.checkpoint_formats import DreamFormat, LLaDAFormat


FIXTURES = Path(__file__).parent / "fixtures"
DREAM_ALGORITHMS = {"entropy": "entropy", "maskgit_plus": "confidence", "topk_margin": "margin"}


def reference_cases(folder):
    cases = json.loads((FIXTURES / folder / "reference_generate.json").read_text())["cases"]
    return [pytest.param(folder, case, id=f"{folder}-{case['name']}") for case in cases]


CASES = reference_cases("llada-tiny") + reference_cases("dream-tiny")


@functools.cache
def load(folder):
    return AutoModel.from_pretrained(FIXTURES / folder).eval()


def generate_arguments(folder, args):
    """Our generate() arguments for the keyword arguments the reference sampler got."""
    if folder == "llada-tiny":
        assert args["remasking"] == "low_confidence" and args["temperature"] == 0 and args["cfg_scale"] == 0
        return dict(
            max_new_tokens=args["gen_length"],
            steps=args["steps"],
            block_length=args["block_length"],
            strategy="confidence",
            reveal_counts="llada",
        )
    assert args["temperature"] == 0 and args["alg_temp"] is None
    return dict(
        max_new_tokens=args["max_new_tokens"],
        steps=args["steps"],
        strategy=DREAM_ALGORITHMS[args["alg"]],
        reveal_counts="dream",
        reveal_counts_kwargs={"eps": args["eps"]},
    )


def prompt_and_mask(case):
    attention_mask = case["attention_mask"]
    return torch.tensor(case["prompt"]), torch.tensor(attention_mask) if attention_mask is not None else None


@pytest.mark.parametrize("folder, case", CASES)
def test_greedy_generate_reproduces_the_reference_sampler_step_by_step(folder, case):
    prompt, attention_mask = prompt_and_mask(case)
    output = load(folder).generate(
        prompt,
        attention_mask=attention_mask,
        eos_token_id=None,  # the references never stop a row at EOS
        do_sample=False,
        return_dict_in_generate=True,
        output_history=True,
        **generate_arguments(folder, case["args"]),
    )
    # The reference's forward k + 1 sees the canvas its step k left; its last step leaves the output.
    expected_history = case["canvas_before_each_forward"][1:] + [case["output_ids"]]
    assert expected_history == case.get("canvas_after_each_step", expected_history)
    history = [canvas.tolist() for canvas in output.history]
    assert len(history) == len(expected_history)
    for step, (ours, reference) in enumerate(zip(history, expected_history)):
        assert ours == reference, f"canvas after step {step} differs"
    assert output.sequences.tolist() == case["output_ids"]


@pytest.mark.parametrize("folder, case", reference_cases("dream-tiny"))
def test_a_mapped_dream_generation_config_selects_the_same_sampler(folder, case):
    """A generation_config.json as Dream writes it, with the case's arguments, gives the case's output unaided."""
    args = case["args"]
    dream_fields = json.loads((FIXTURES / folder / "generation_config.json").read_text())
    dream_fields.update(args)
    generation_config = DreamFormat.to_generation_config(dream_fields)
    assert not hasattr(generation_config, "alg") and not hasattr(generation_config, "eps")
    prompt, attention_mask = prompt_and_mask(case)
    output = load(folder).generate(prompt, attention_mask=attention_mask, generation_config=generation_config)
    assert output.tolist() == case["output_ids"]


def test_dream_generation_config_fields_map_onto_ours():
    dream_fields = json.loads((FIXTURES / "dream-tiny" / "generation_config.json").read_text())
    config = DreamFormat.to_generation_config(dream_fields)
    assert (config.strategy, config.reveal_counts, config.reveal_counts_kwargs) == ("random", "dream", {"eps": 1e-3})
    assert (config.steps, config.do_sample, config.temperature, config.mask_token_id) == (512, False, None, 120)
    assert config.return_dict_in_generate is False
    sampled = DreamFormat.to_generation_config(
        {**dream_fields, "alg": "topk_margin", "temperature": 0.7, "alg_temp": 0.2}
    )
    assert (sampled.strategy, sampled.do_sample, sampled.temperature, sampled.strategy_temperature) == (
        "margin",
        True,
        0.7,
        0.2,
    )
    with pytest.raises(ValueError, match="alg='beam'"):
        DreamFormat.to_generation_config({**dream_fields, "alg": "beam"})


def test_foreign_folders_load_a_generation_config_for_their_own_sampler():
    dream = load("dream-tiny")
    assert (dream.generation_config.strategy, dream.generation_config.reveal_counts) == ("random", "dream")
    with pytest.raises(ValueError, match="unexpected arguments"):
        dream.generate(torch.tensor([[48, 87]]), alg="entropy")
    llada = load("llada-tiny").generation_config
    assert (llada.strategy, llada.reveal_counts) == ("confidence", "llada")
    assert LLaDAFormat.to_generation_config(llada).to_dict() == llada.to_dict()
