"""`sdar_block`: SDAR's published sampler (JetAstra/SDAR `generate.py::block_diffusion_generate`), decision for
decision, on `SDARForMaskedDiffusion`.

    ids = decode_like_authors(model, "sdar_block", input_ids, gen_length=64, block_length=4, denoising_steps=4,
                              top_k=1, remasking_strategy="low_confidence_dynamic", confidence_threshold=0.85)

For a prompt of P tokens, block length L and n = ceil((P + gen_length) / L) blocks, the canvas is the prompt then
[MASK] up to n L tokens, positions 0..nL-1, and a query of block q sees key block k iff k <= q (block = position // L,
the authors' `tril(ones(n, n))` repeated L times both ways, whatever the model's `block_size`):

1. prefill: the first floor(P / L) L prompt tokens, one forward that stores its keys/values;
2. each later block (the first may start with the prompt's last tokens, never masked) runs up to `denoising_steps`
   + 1 forwards, each over the block alone, reading the stored keys/values without storing its own. A step samples
   x0 ~ softmax(top_p(top_k(logits / T))) at every block position (torch.multinomial, in position order; greedy is
   `top_k=1`) and its probability p, then reveals n_s masked positions, n_s = L // steps plus one for the first
   L % steps steps: `sequential` the leftmost masked ones, `low_confidence_static` the n_s of highest p,
   `low_confidence_dynamic` every masked position with p > `confidence_threshold` if there are at least n_s, else
   the n_s of highest p. (When n_s exceeds the masks left, the authors' top-k also picks revealed positions and
   redraws them, prompt tokens of the first, partial block included; reproduced. A block that still holds [MASK]
   after its steps, because a step drew the [MASK] token, whose logit they keep, raises a RuntimeError where their
   function raises an IndexError.) A block without [MASK] is committed: one forward that stores its keys/values;
3. after each block, stop if any `stopping_criteria_idx` id occurs after the prompt.

The result is the whole canvas (prompt, decoded blocks, [MASK] left in blocks never reached), as theirs. The authors'
function takes one prompt (batch size 1, no padding): a (B, P) batch runs each row alone (`decode`), and padding
is refused. `entropy_bounded` is refused: in the authors' code it reads a never-initialised `transfer_index` (a
NameError on its first step) and takes the entropy of the drawn token's probability, not of a distribution.
Defaults are their command line's (block_length 4, denoising_steps 4, temperature 1, top_k 0, top_p 1,
low_confidence_dynamic at 0.85) with `block_length` the model's `block_size`, `gen_length` their function's 128.
"""

import torch

from ...transformers_compat import LayerlessCache
from ...value_checks import check_integer, is_real
from .base import register_published_sampler
from .filtered_draws import sample_filtered, transfer_counts
from .prompted import PromptedPublishedSampler


REMASKING_STRATEGIES = ("sequential", "low_confidence_static", "low_confidence_dynamic")
BROKEN_STRATEGIES = {
    "entropy_bounded": (
        "the authors' code for it is broken (it writes into a `transfer_index` it never created, a NameError on "
        "its first step, and computes the entropy of the drawn token's probability, not of a distribution)"
    )
}


class StoreOnRequestCache(LayerlessCache):
    """The authors' use of one `DynamicCache` through SDAR's `store_kv` flag: every forward attends to the stored
    keys/values followed by its own, and appends its own only when `store` is set (the prefill and the commit of a
    finished block), so the denoising forwards of a block read the cache without changing it."""

    def __init__(self):
        super().__init__()
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.store = False

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if layer_idx in self.keys:
            key_states = torch.cat([self.keys[layer_idx], key_states], dim=-2)
            value_states = torch.cat([self.values[layer_idx], value_states], dim=-2)
        if self.store:
            self.keys[layer_idx], self.values[layer_idx] = key_states, value_states
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.keys[layer_idx].shape[-2] if layer_idx in self.keys else 0

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.get_seq_length(layer_idx) + query_length, 0


def block_visibility(length: int, block_length: int, dtype, device) -> torch.Tensor:
    """(1, 1, length, length) additive mask (0 where seen, the dtype's minimum elsewhere) of block-causal attention
    with blocks of `block_length` positions: query block q sees key block k iff k <= q."""
    blocks = torch.arange(length, device=device) // block_length
    seen = blocks[None, :] <= blocks[:, None]
    return torch.zeros(length, length, dtype=dtype, device=device).masked_fill(~seen, torch.finfo(dtype).min)[
        None, None
    ]


def positions_to_reveal(strategy: str, masked, probs, count: int, threshold: float) -> torch.BoolTensor:
    """(1, L) the block positions one step reveals under the authors' remasking `strategy` (module docstring)."""
    reveal = torch.zeros_like(masked)
    if strategy == "sequential":
        first = int(masked[0].nonzero()[0, 0])
        reveal[0, first : first + count] = True
        return reveal
    confidence = torch.where(masked, probs, -torch.inf)
    confident = confidence[0] > threshold
    if strategy == "low_confidence_dynamic" and int(confident.sum()) >= count:
        return confident[None]
    reveal[0, torch.topk(confidence[0], count).indices] = True
    return reveal


@register_published_sampler("sdar_block")
class SDARBlockDiffusion(PromptedPublishedSampler):
    """SDAR's `block_diffusion_generate` (module docstring). Options: `gen_length` (128), `block_length` (the
    model's `block_size`), `denoising_steps` (4; steps per block), `temperature` (1.0, > 0), `top_k` (0: off),
    `top_p` (1.0: off), `remasking_strategy` ("low_confidence_dynamic"), `confidence_threshold` (0.85),
    `stopping_criteria_idx` (None, or token ids)."""

    family = "SDAR"

    def __init__(
        self,
        gen_length=128,
        block_length=None,
        denoising_steps=4,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        remasking_strategy="low_confidence_dynamic",
        confidence_threshold=0.85,
        eb_threshold=None,
        stopping_criteria_idx=None,
    ):
        if remasking_strategy in BROKEN_STRATEGIES:
            raise ValueError(
                f"remasking_strategy={remasking_strategy!r} is not reproduced: "
                f"{BROKEN_STRATEGIES[remasking_strategy]}. Use one of {REMASKING_STRATEGIES}."
            )
        if remasking_strategy not in REMASKING_STRATEGIES:
            raise ValueError(f"remasking_strategy must be one of {REMASKING_STRATEGIES}, got {remasking_strategy!r}.")
        if eb_threshold is not None:
            raise ValueError("eb_threshold is read only by the entropy_bounded strategy, which is not reproduced.")
        if not is_real(temperature) or not temperature > 0:
            raise ValueError(
                f"temperature must be > 0 (the authors divide the logits by it), got {temperature!r}; their greedy "
                "decoding is top_k=1."
            )
        if not is_real(top_p) or not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1: off), got {top_p!r}.")
        if not is_real(confidence_threshold):
            raise ValueError(f"confidence_threshold must be a number, got {confidence_threshold!r}.")
        self.gen_length = check_integer(gen_length, "gen_length", 0)
        self.block_length = None if block_length is None else check_integer(block_length, "block_length", 1)
        self.denoising_steps = check_integer(denoising_steps, "denoising_steps", 1)
        self.top_k = check_integer(top_k, "top_k", 0)
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.remasking_strategy, self.confidence_threshold = remasking_strategy, float(confidence_threshold)
        if stopping_criteria_idx is not None and not isinstance(stopping_criteria_idx, (list, tuple)):
            raise ValueError(
                f"stopping_criteria_idx must be None or a list of token ids, got {stopping_criteria_idx!r}."
            )
        self.stopping_criteria_idx = stopping_criteria_idx

    def check_run(self, config, input_ids) -> dict:
        if getattr(config, "model_type", None) != "sdar":
            raise ValueError(
                f"The 'sdar_block' sampler runs an SDAR model (SDARForMaskedDiffusion, model_type 'sdar'), got "
                f"model_type {getattr(config, 'model_type', None)!r}."
            )
        stops = []
        for token in self.stopping_criteria_idx or []:
            stops.append(check_integer(token, "every entry of stopping_criteria_idx", 0))
            if stops[-1] >= config.vocab_size:
                raise ValueError(
                    f"stopping_criteria_idx holds {stops[-1]}, outside the vocabulary 0..{config.vocab_size - 1}."
                )
        return {
            "stops": stops,
            "block_length": self.block_length or config.block_size,
            "pad_token_id": config.mask_token_id,
        }

    def run(self, model, config, input_ids, generator, *, stops, block_length, pad_token_id) -> torch.LongTensor:
        mask_id, device = config.mask_token_id, input_ids.device
        prompt_length = input_ids.shape[1]
        num_blocks = -(-(prompt_length + self.gen_length) // block_length)
        total = num_blocks * block_length
        visible = block_visibility(total, block_length, model.model.dtype, device)
        positions = torch.arange(total, device=device)[None]
        x = torch.full((1, total), mask_id, dtype=torch.long, device=device)
        x[:, :prompt_length] = input_ids
        cache = StoreOnRequestCache()
        prefill = prompt_length // block_length * block_length
        if prefill:
            cache.store = True
            model(
                x[:, :prefill],
                attention_mask=visible[..., :prefill, :prefill],
                position_ids=positions[:, :prefill],
                cache=cache,
            )
        counts = transfer_counts(block_length, self.denoising_steps)
        for block in range(prompt_length // block_length, num_blocks):
            span = slice(block * block_length, (block + 1) * block_length)
            inputs = dict(attention_mask=visible[..., span, : span.stop], position_ids=positions[:, span], cache=cache)
            current = x[:, span].clone()
            for step in range(self.denoising_steps + 1):
                masked = current == mask_id
                cache.store = not bool(masked.any())
                if cache.store:
                    model(current, **inputs)
                    break
                if step == self.denoising_steps:
                    raise RuntimeError(
                        f"Block {block} still holds [MASK] after its {step} steps (a step drew the [MASK] token, "
                        "whose logit the authors' sampler keeps); their function fails here (IndexError on the step's "
                        "transfer count). Use top_k / top_p that exclude [MASK], or model.generate()."
                    )
                tokens, probs = sample_filtered(
                    model(current, **inputs), self.temperature, self.top_k, self.top_p, generator
                )
                reveal = positions_to_reveal(
                    self.remasking_strategy, masked, probs, counts[step], self.confidence_threshold
                )
                current[reveal] = tokens[reveal]
            x[:, span] = current
            if any(bool((x[:, prompt_length:] == stop).any()) for stop in stops):
                break
        return x


__all__ = ["SDARBlockDiffusion", "StoreOnRequestCache"]
