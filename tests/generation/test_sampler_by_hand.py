"""The documented example that drives DiffusionSampler by hand (from_config, prepare, begin_block, model_request,
step) reproduces generate() token for token, one step output per step."""

import pathlib

from ..conftest import load_script


EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "drive_sampler_by_hand.py"


def test_the_hand_driven_sampler_equals_generate(capsys):
    example = load_script(EXAMPLE)
    canvas = example.main()  # asserts equality with model.generate itself
    assert not (canvas == example.MASK).any()
    printed = capsys.readouterr().out
    assert "equal to model.generate" in printed
    steps = [line for line in printed.splitlines() if line.startswith("t=")]
    assert len(steps) == example.STEPS  # one DiffusionSamplerOutput per step, t -> s on the grid 1 - k/K
    assert steps[0].startswith("t=1.000 -> s=0.875") and steps[-1].startswith("t=0.125 -> s=0.000")
