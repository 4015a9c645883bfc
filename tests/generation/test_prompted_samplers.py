"""`PromptedPublishedSampler` (published_samplers/prompted.py): the checks every prompted published sampler makes
before any forward, and its batch rule (each row run alone, outputs right-padded). The LLaDA 2.x samplers' parity
with their authors is tests/test_llada2_samplers.py."""

import pytest
import torch

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.generation.published_samplers import decode_like_authors, sample_like_authors
from hf_mdm.generation.published_samplers.prompted import PromptedPublishedSampler
from tests.conftest import tiny_config


class GreedyUntilEos(PromptedPublishedSampler):
    """A toy prompted sampler: one [MASK] appended per forward and filled with its argmax, stopping after token 5
    (the toy model's first argmax after token 14 or 5) or `new` tokens; the output is the generated part, so rows have
    different lengths."""

    name, family = "greedy_until_eos", "MDM"

    def __init__(self, new=4):
        self.new = new

    def check_run(self, config, input_ids):
        return {"pad_token_id": config.pad_token_id}

    def run(self, model, config, input_ids, generator, pad_token_id):
        x = input_ids
        for _ in range(self.new):
            x = torch.cat([x, torch.full_like(x[:, :1], config.mask_token_id)], dim=1)
            x[:, -1] = model(x).argmax(-1)[:, -1]
            if x[0, -1] == 5:
                break
        return x[:, input_ids.shape[1] :]


class Counting:
    """The model with its forwards counted (and a device that can be faked)."""

    def __init__(self, model):
        self.model, self.config, self.device, self.training, self.calls = model, model.config, model.device, False, 0

    def __call__(self, input_ids, **kwargs):
        self.calls += 1
        return self.model(input_ids, **kwargs)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MDMForMaskedGeneration(tiny_config()).eval()


PROMPTS = torch.tensor([[5, 7, 9], [6, 8, 10]])


def test_a_batch_is_each_row_run_alone_right_padded(model):
    sampler = GreedyUntilEos(new=6)
    counted = Counting(model)
    ids, calls = sampler.decode(counted, PROMPTS)
    rows = [sampler.decode(model, PROMPTS[i : i + 1])[0][0] for i in range(2)]
    assert calls == counted.calls == sum(sampler.decode(model, PROMPTS[i : i + 1])[1] for i in range(2))
    assert len(rows[0]) != len(rows[1])
    assert ids.shape == (2, max(len(row) for row in rows))
    for i, row in enumerate(rows):
        assert ids[i, : len(row)].tolist() == row.tolist()
        assert (ids[i, len(row) :] == model.config.pad_token_id).all()


def test_an_attention_mask_without_padding_is_accepted(model):
    sampler = GreedyUntilEos()
    ids, _ = sampler.decode(model, PROMPTS, attention_mask=torch.ones_like(PROMPTS))
    assert torch.equal(ids, sampler.decode(model, PROMPTS)[0])


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"input_ids": PROMPTS[0]}, "\\(batch, prompt length\\)"),
        ({"input_ids": PROMPTS[:0]}, "at least one row"),
        ({"input_ids": [[5, 7]]}, "\\(batch, prompt length\\)"),
        ({"input_ids": PROMPTS.float()}, "integer token ids"),
        ({"input_ids": PROMPTS.bool()}, "integer token ids"),
        ({"input_ids": PROMPTS + 100}, "vocabulary"),
        ({"input_ids": torch.tensor([[5, 4]])}, "\\[MASK\\] id 4"),
        ({"attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])}, "without padding"),
        ({"attention_mask": torch.ones(2, 2)}, "input_ids' shape"),
        ({"attention_mask": torch.full((2, 3), 2)}, "0 \\(padding\\) and 1"),
        ({"generator": 0}, "torch.Generator"),
    ],
)
def test_bad_arguments_are_refused_before_any_forward(model, arguments, match):
    counted = Counting(model)
    arguments = {"input_ids": PROMPTS, **arguments}
    with pytest.raises(ValueError, match=match):
        GreedyUntilEos().decode(counted, **arguments)
    assert counted.calls == 0


@pytest.mark.bad_input
def test_a_generator_on_another_device_is_refused(model):
    counted = Counting(model)
    counted.device = torch.device("cuda")
    with pytest.raises(ValueError, match="torch.Generator\\(device=model.device\\)"):
        GreedyUntilEos().decode(counted, PROMPTS, generator=torch.Generator())
    assert counted.calls == 0


@pytest.mark.bad_input
def test_a_model_in_training_mode_or_without_mask_id_is_refused(model):
    counted = Counting(model)
    counted.training = True
    with pytest.raises(ValueError, match="model.eval"):
        GreedyUntilEos().decode(counted, PROMPTS)
    with pytest.raises(ValueError, match="mask_token_id"):
        GreedyUntilEos().decode(torch.nn.Linear(2, 2), PROMPTS)
    assert counted.calls == 0


@pytest.mark.bad_input
def test_each_entry_point_refuses_the_other_kind_of_sampler(model):
    with pytest.raises(ValueError, match="samples without a prompt: call sample_like_authors"):
        decode_like_authors(model, "mdlm_ddpm_cache", PROMPTS)
    with pytest.raises(ValueError, match="Unknown published sampler"):
        decode_like_authors(model, "no_such_sampler", PROMPTS)
    with pytest.raises(ValueError, match="return_model_calls"):
        decode_like_authors(model, "mdlm_ddpm_cache", PROMPTS, return_model_calls="yes")
    with pytest.raises(ValueError, match="return_model_calls"):
        sample_like_authors(
            model, "mdlm_ddpm_cache", batch_size=1, length=4, steps=1, generator=None, return_model_calls=1
        )
