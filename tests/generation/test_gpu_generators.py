"""CPU generators (one per row, as sweeps pass them) drive a model on the GPU with the draws they make on CPU."""

import pytest
import torch

from .test_generate import tiny_mdm


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("strategy", ["random", "confidence", "remdm"])
def test_cpu_generators_on_a_cuda_model_sample_as_on_cpu(strategy):
    model = tiny_mdm().float().eval()
    kwargs = dict(max_new_tokens=8, steps=8, do_sample=True, strategy=strategy, pad_token_id=0)
    prompt = torch.tensor([[5, 6, 7], [8, 9, 10]])

    def generators():
        return [torch.Generator().manual_seed(seed) for seed in (1, 2)]

    on_cpu = model.generate(prompt, generator=generators(), **kwargs)
    on_gpu = model.cuda().generate(prompt.cuda(), generator=generators(), **kwargs)
    assert torch.equal(on_cpu, on_gpu.cpu())


@pytest.mark.bad_input
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_per_row_generators_on_different_devices_are_refused():
    generators = [torch.Generator(), torch.Generator(device="cuda")]
    with pytest.raises(ValueError, match="different devices"):
        tiny_mdm().generate(torch.tensor([[5, 6], [7, 8]]), max_new_tokens=4, steps=4, generator=generators)
