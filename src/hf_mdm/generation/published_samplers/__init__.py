"""The samplers published with SEDD, MDLM and BD3-LM, reproduced draw for draw on a DiT model
(`hf_mdm.DiTForMaskedDiffusion`): under the same seeds they return the authors' token ids.

    ids = sample_like_authors(model, "mdlm_ddpm_cache", batch_size=2, length=1024, steps=1000,
                              generator=torch.Generator().manual_seed(0))

| name | authors' code | model (`output_parametrization`) |
|---|---|---|
| `mdlm_ddpm_cache` | MDLM `_sample` (`ddpm_cache`, final argmax) | `"logits"`, bidirectional |
| `sedd_euler`, `sedd_analytic` | SEDD `get_pc_sampler` + Denoiser (infill: `run_sample_cond.py`) | `"score"` |
| `bd3lm_semi_ar` | BD3-LM `_semi_ar_sampler` (`first_hitting`, `nucleus_p`, `kv_cache`) | `"logits"`, `block_size` |

`generator` replaces the authors' global torch RNG (`torch.Generator().manual_seed(s)` draws what
`torch.manual_seed(s)` does on CPU), `numpy_random_state` BD3-LM's global numpy RNG (`numpy.random.RandomState(s)`
draws what `numpy.random.seed(s)` does). Token identity is checked on CPU; on CUDA the authors' `rand_like` uses the
CUDA generator but BD3-LM's `torch.randint` the CPU one, while here both come from `generator`.

These samplers take no prompt (except SEDD's infill) and no padding, as published; `model.generate()` is the
library's sampler for that. A new one is a `PublishedSampler` subclass registered with
`@register_published_sampler(name)`.

The samplers of the prompted block-diffusion families continue a prompt; they are `PromptedPublishedSampler`s in the
same registry, run with `decode_like_authors(model, name, input_ids, ...)` (see `prompted.py`):

| name | authors' code | model |
|---|---|---|
| `llada2_threshold` | LLaDA 2.0 `LLaDA2MoeModelLM.generate` | `LLaDA2MoeForMaskedDiffusion` (its block_size) |
| `llada21_editing` | LLaDA 2.1 `generate` (threshold + token-to-token editing) | the same |
| `sdar_block` | SDAR `block_diffusion_generate` | `SDARForMaskedDiffusion` |
"""

from .base import PUBLISHED_SAMPLERS, PublishedSampler, build_published_sampler, register_published_sampler
from .bd3lm import BD3LMSemiAR
from .categorical import keep_unmasked, reveal_weights, sample_categorical
from .llada2 import LLaDA2Threshold, LLaDA21Editing
from .mdlm import MDLMDDPMCache
from .prompted import PromptedPublishedSampler, check_flag, decode_like_authors
from .sdar import SDARBlockDiffusion
from .sedd import SEDDAnalytic, SEDDEuler


def sample_like_authors(
    model,
    name: str,
    *,
    batch_size,
    length,
    steps,
    generator,
    numpy_random_state=None,
    return_model_calls: bool = False,
    **sampler_kwargs,
):
    """Ids (batch_size, length) from the published sampler `name` with options `sampler_kwargs` (see its class);
    with `return_model_calls`, also the number of model forwards made. Bad arguments raise a ValueError before any
    forward."""
    check_flag(return_model_calls, "return_model_calls")
    sampler = build_published_sampler(name, False, **sampler_kwargs)
    ids, calls = sampler.sample(
        model,
        batch_size=batch_size,
        length=length,
        steps=steps,
        generator=generator,
        numpy_random_state=numpy_random_state,
    )
    return (ids, calls) if return_model_calls else ids


__all__ = [
    "BD3LMSemiAR",
    "LLaDA21Editing",
    "LLaDA2Threshold",
    "MDLMDDPMCache",
    "PUBLISHED_SAMPLERS",
    "PromptedPublishedSampler",
    "PublishedSampler",
    "SDARBlockDiffusion",
    "SEDDAnalytic",
    "SEDDEuler",
    "decode_like_authors",
    "keep_unmasked",
    "register_published_sampler",
    "reveal_weights",
    "sample_categorical",
    "sample_like_authors",
]
