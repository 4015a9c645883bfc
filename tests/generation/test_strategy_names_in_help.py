"""The CLI help and the generation config's docstring name every registered strategy (derived from STRATEGIES)."""

import dataclasses

from hf_mdm.cli.generate import GenerateArguments
from hf_mdm.generation import STRATEGIES, DiffusionGenerationConfig


def test_the_generate_cli_help_names_every_built_in_strategy():
    (strategy,) = [field for field in dataclasses.fields(GenerateArguments) if field.name == "strategy"]
    assert set(STRATEGIES) >= {"remdm", "editing"}
    for name in STRATEGIES:
        assert name in strategy.metadata["help"], name


def test_the_generation_config_docstring_names_every_built_in_strategy():
    for name in STRATEGIES:
        assert f"`{name}`" in DiffusionGenerationConfig.__doc__, name
