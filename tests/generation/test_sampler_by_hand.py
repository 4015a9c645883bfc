"""The documented example that drives DiffusionSampler by hand reproduces generate() token for token."""

import importlib.util
import pathlib


EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "drive_sampler_by_hand.py"


def test_the_hand_driven_sampler_equals_generate(capsys):
    spec = importlib.util.spec_from_file_location("drive_sampler_by_hand", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    canvas = example.main()  # asserts equality with model.generate itself
    assert not (canvas == example.MASK).any()
    assert "equal to model.generate" in capsys.readouterr().out
