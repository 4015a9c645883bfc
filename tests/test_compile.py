"""torch.compile and generate(): `model.compile()` compiles the forwards generate() makes (what docs/generation.md
advises); `torch.compile(model).generate` is the original module's method and compiles nothing (what it warns of)."""

import torch

from hf_mdm import MDMForMaskedGeneration

from .conftest import tiny_config


def counting_backend(graphs):
    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    return backend


def test_model_compile_in_place_compiles_what_generate_runs(tokenizer):
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(tiny_config()).eval()
    prompt = tokenizer(["the cat"], return_tensors="pt")
    expected = model.generate(**prompt, max_new_tokens=4, steps=4, do_sample=False)

    graphs = []
    wrapper = torch.compile(model, backend=counting_backend(graphs))
    assert wrapper.generate.__self__ is model  # attribute access goes through to the original module
    assert torch.equal(wrapper.generate(**prompt, max_new_tokens=4, steps=4, do_sample=False), expected)
    assert graphs == []  # nothing was compiled

    model.compile(backend=counting_backend(graphs))
    assert torch.equal(model.generate(**prompt, max_new_tokens=4, steps=4, do_sample=False), expected)
    assert len(graphs) > 0
