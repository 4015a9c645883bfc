"""The model file is model code: what it imports (the closure that a remote-code export ships) holds the objective,
the config, generation and the Hub-facing mixin of checkpoint_formats, never training/, hub/, evaluation/ or above."""

from hf_mdm.remote_code import flattened_sources


MODEL_MAY_NOT_REACH = ("training", "hub", "evaluation", "languages", "metrics", "integrations", "cli")


def test_the_model_reaches_no_module_above_it():
    shipped = {name.removesuffix(".py") for name in flattened_sources()}
    above = sorted(name for name in shipped if name.split("_")[0] in MODEL_MAY_NOT_REACH)
    assert not above, f"modeling_mdm imports (directly or not) {above}; move the shared code below the model."
    assert {"masked_diffusion_objective", "configuration_mdm", "checkpoint_formats_pretrained_mixin"} <= shipped
