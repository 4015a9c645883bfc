"""LLaDA 2.0's threshold sampler and LLaDA 2.1's threshold sampler with token-to-token editing
(`LLaDA2MoeModelLM.generate` of the Hub's modeling_llada2_moe.py, as vendored in ZHZisZZ/dllm@ca17675:
`dllm/pipelines/llada2/models/` for 2.0, `dllm/pipelines/llada21/models/` for 2.1), on a LLaDA 2.x model
(`hf_mdm.LLaDA2MoeForMaskedDiffusion`) whose `block_size` is the sampler's `block_length`.

Both denoise the canvas [prompt, [MASK] x gen_length] (padded to whole blocks) block by block from the block holding
the prompt's end; every step forwards the whole prefix up to the current block (no cache, positions 0.., the model's
block-causal attention, as the authors' 4-D mask) and draws (x0, p) for each position of the block:

    temperature 0: x0 = argmax, p = softmax(logits)[x0];  else logits / T, top-k, top-p, x0 ~ softmax (multinomial).

A [MASK] is committed where p > threshold if at least `n` positions qualify, else at the `n` most confident ones.
The output is the generated part cut after its first eos (included), as the authors return it. The authors' model
does not suppress [MASK]: p is a softmax over the whole vocabulary, [MASK] included, and a [MASK] the model draws
stays masked (2.0 returns it in the output; 2.1 would loop, see `llada21_editing`).
"""

import math

import torch

from ...value_checks import check_integer, is_real
from .base import check_token, register_published_sampler
from .filtered_draws import sample_filtered, transfer_counts
from .prompted import PromptedPublishedSampler, check_flag


PUBLISHED_VOCAB_SIZE, PUBLISHED_EOS_ID = 157184, 156892  # the authors' generate() default eos_id for their vocabulary


def check_number(value, name: str, low=-math.inf, high=math.inf) -> float:
    """`value` as a float in [low, high], else a ValueError naming `name` (NaN and booleans refused)."""
    if not is_real(value) or math.isnan(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}.")
    return float(value)


def cut_after_first_eos(x: torch.LongTensor, prompt_length: int, gen_length: int, eos_id: int) -> torch.LongTensor:
    """The authors' return value: the first gen_length generated tokens, up to and including the first eos."""
    generated = x[:, prompt_length : prompt_length + gen_length]
    eos = (generated[0] == eos_id).nonzero()
    return generated[:, : int(eos[0]) + 1] if len(eos) else generated


class LLaDA2Sampler(PromptedPublishedSampler):
    """What LLaDA 2.0's and 2.1's `generate()` share: options, canvas, blocks, draws, the mask->token commit rule.

    `gen_length`: tokens after the prompt; `block_length` (None: the model's `block_size`, which it must equal);
    `temperature`, `top_k`, `top_p` (None or 0 / >= 1: off); `threshold`; `eos_early_stop`; `eos_id` (None: the
    config's `eos_token_id`, or the authors' 156892 for the published vocabulary); `mask_id` (None: the config's
    `mask_token_id`, the only one accepted). The authors' RNG is torch's global one: pass `generator=None` to use it,
    or a generator seeded as it would be.
    """

    family = "LLaDA 2.x"
    argmax_of_probabilities: bool  # 2.0 takes argmax(softmax(logits)) at temperature 0, 2.1 argmax(logits)

    def __init__(
        self,
        gen_length=2048,
        block_length=None,
        temperature=0.0,
        top_k=None,
        top_p=None,
        threshold=0.95,
        eos_early_stop=False,
        eos_id=None,
        mask_id=None,
    ):
        self.gen_length = check_integer(gen_length, "gen_length", 1)
        self.block_length = None if block_length is None else check_integer(block_length, "block_length", 1)
        self.temperature = check_number(temperature, "temperature", 0.0)
        self.top_k = None if top_k is None else check_integer(top_k, "top_k", 0)
        self.top_p = None if top_p is None else check_number(top_p, "top_p", 0.0, 1.0)
        self.threshold = check_number(threshold, "threshold")
        self.eos_early_stop = check_flag(eos_early_stop, "eos_early_stop")
        self.eos_id, self.mask_id = eos_id, mask_id

    def check_model(self, model):
        config = super().check_model(model)
        if getattr(config, "model_type", None) != "llada2_moe" or not isinstance(config.block_size, int):
            raise ValueError(
                f"The {self.name!r} sampler is LLaDA 2.x's: it needs a block-causal LLaDA 2.x model "
                f"(hf_mdm.LLaDA2MoeForMaskedDiffusion), got model_type {getattr(config, 'model_type', None)!r}."
            )
        return config

    def check_run(self, config, input_ids):
        block_length = config.block_size if self.block_length is None else self.block_length
        if block_length != config.block_size:
            raise ValueError(
                f"block_length={block_length} but the model attends block-causally in blocks of "
                f"block_size={config.block_size}: the authors' mask and the model's must agree; pass "
                f"block_length={config.block_size} or load the model with block_size={block_length}."
            )
        if self.mask_id is not None and self.mask_id != config.mask_token_id:
            raise ValueError(
                f"mask_id={self.mask_id!r} is not the model's [MASK] id {config.mask_token_id}: drop mask_id."
            )
        eos_id = self.eos_id if self.eos_id is not None else config.eos_token_id
        if eos_id is None and config.vocab_size == PUBLISHED_VOCAB_SIZE:
            eos_id = PUBLISHED_EOS_ID
        if eos_id is None:
            raise ValueError("The model's config has no eos_token_id: pass eos_id= (the authors' end-of-text id).")
        eos_id = check_token(eos_id, "eos_id", config)
        length = -(-(input_ids.shape[1] + self.gen_length) // block_length) * block_length
        if self.top_k is not None and self.top_k > config.vocab_size:
            raise ValueError(f"top_k={self.top_k} exceeds the vocabulary ({config.vocab_size} tokens): lower it.")
        if length > config.max_position_embeddings:
            raise ValueError(
                f"prompt ({input_ids.shape[1]} tokens) + gen_length ({self.gen_length}), in whole blocks of "
                f"{block_length}, is {length} positions, more than the model's max_position_embeddings "
                f"({config.max_position_embeddings}): shorten the prompt or lower gen_length."
            )
        return {"block_length": block_length, "eos_id": eos_id, "pad_token_id": eos_id}

    def logits(self, model, input_ids, **kwargs):
        """The authors' logits, lm_head(last hidden states) in float32 with the [MASK] column as computed: their
        model does not suppress [MASK] (hf-mdm's forward puts it at the float minimum), which changes every p. A peft
        model is read through its wrapped model (adapters included)."""
        model = model.get_base_model() if hasattr(model, "get_base_model") else model
        hidden = model.base_model(input_ids, **kwargs).last_hidden_state
        return model.get_output_embeddings()(hidden).float()

    def draw(self, logits: torch.Tensor, generator) -> tuple[torch.LongTensor, torch.Tensor]:
        """The authors' `_sample_with_temperature_topk_topp` on the block's logits (1, L, V): tokens and their
        probabilities (1, L). A draw is made for every position of the block, masked or not (as theirs)."""
        if self.temperature != 0.0:
            return sample_filtered(logits, self.temperature, self.top_k, self.top_p, generator)
        probs = torch.softmax(logits, dim=-1)
        tokens = (probs if self.argmax_of_probabilities else logits).argmax(dim=-1, keepdim=True)
        return tokens[..., 0], probs.gather(-1, tokens)[..., 0]

    def unmask(self, tokens, probs, masked, count: int) -> torch.BoolTensor:
        """The mask->token rule: the masked positions with p > threshold if there are at least `count`, else the
        `count` most confident masked ones (fewer if fewer are masked)."""
        confidence = torch.where(masked, probs, -torch.inf)[0]
        high = (confidence > self.threshold) & masked[0]
        chosen = torch.zeros_like(masked)
        if int(high.sum()) >= count:
            chosen[0] = high
        elif masked.any():
            chosen[0, torch.topk(confidence, k=min(count, int(masked.sum()))).indices] = True
        return chosen

    def run(self, model, config, input_ids, generator, block_length, eos_id, pad_token_id):
        prompt_length, mask = input_ids.shape[1], config.mask_token_id
        num_blocks = -(-(prompt_length + self.gen_length) // block_length)
        x = torch.full((1, num_blocks * block_length), mask, dtype=torch.long, device=model.device)
        x[:, :prompt_length] = input_ids
        for block in range(prompt_length // block_length, num_blocks):
            end = (block + 1) * block_length
            early = self.denoise_block(model, config, x, end, prompt_length, block_length, eos_id, generator)
            if early is not None:
                return early
            if self.stop_after_block(x[0, prompt_length:end], mask, eos_id):
                break
        return cut_after_first_eos(x, prompt_length, self.gen_length, eos_id)

    def forward_block(self, model, x, end: int, block_length: int, generator):
        """(tokens, probabilities) drawn for the block ending at `end`, from one forward of the prefix x[:, :end]."""
        logits = model(x[:, :end], position_ids=torch.arange(end, device=x.device)[None])
        return self.draw(logits[:, -block_length:], generator)

    def denoise_block(self, model, config, x, end, prompt_length, block_length, eos_id, generator):
        """Denoise x[:, end - block_length : end] in place; an early return value, or None."""
        raise NotImplementedError

    def stop_after_block(self, generated, mask: int, eos_id: int) -> bool:
        raise NotImplementedError


@register_published_sampler("llada2_threshold")
class LLaDA2Threshold(LLaDA2Sampler):
    """LLaDA 2.0's `generate()`: `steps` per block, capped at gen_length // minimal_topk; step s commits by the
    threshold rule with n_s = block_length // steps (+1 for the first block_length % steps steps) and stops when the
    block has no [MASK] (a [MASK] left after the last step stays). `eos_early_stop`: as soon as a committed token is
    eos and no [MASK] is left before the first eos of the canvas, return up to it. After every block that puts an
    eos in the generated part, stop (whatever eos_early_stop says). Forwards: at most `steps` per block.

    Refused where the authors' output would be meaningless: minimal_topk > gen_length (0 steps: only [MASK]), and
    eos_early_stop with an eos in the prompt (their early stop finds the prompt's eos and returns nothing).
    """

    argmax_of_probabilities = True

    def __init__(self, steps=32, minimal_topk=1, **options):
        super().__init__(**options)
        self.steps = check_integer(steps, "steps", 1)
        self.minimal_topk = check_integer(minimal_topk, "minimal_topk", 1)
        if self.gen_length // self.minimal_topk == 0:
            raise ValueError(
                f"minimal_topk={minimal_topk} > gen_length={self.gen_length} caps the steps at "
                "gen_length // minimal_topk = 0 (the authors would return [MASK] only): lower minimal_topk."
            )

    def check_run(self, config, input_ids):
        options = super().check_run(config, input_ids)
        if self.eos_early_stop and (input_ids == options["eos_id"]).any():
            raise ValueError(
                f"input_ids contains eos_id={options['eos_id']} and eos_early_stop=True: the authors' early stop "
                "searches eos from the prompt's start and would return nothing; drop the prompt's eos or pass "
                "eos_early_stop=False."
            )
        return options

    def denoise_block(self, model, config, x, end, prompt_length, block_length, eos_id, generator):
        mask, block = config.mask_token_id, slice(end - block_length, end)
        for count in transfer_counts(block_length, min(self.steps, self.gen_length // self.minimal_topk)):
            masked = x[:, block] == mask
            if not masked.any():
                return None
            tokens, probs = self.forward_block(model, x, end, block_length, generator)
            chosen = self.unmask(tokens, probs, masked, count)
            x[:, block][chosen] = tokens[chosen]
            if self.eos_early_stop and (tokens[chosen] == eos_id).any():
                first_eos = int((x[0, :end] == eos_id).nonzero()[0])
                if (x[0, prompt_length:first_eos] != mask).all():
                    return x[:, prompt_length : first_eos + 1]
        return None

    def stop_after_block(self, generated, mask, eos_id):
        return bool((generated == eos_id).any())


@register_published_sampler("llada21_editing")
class LLaDA21Editing(LLaDA2Sampler):
    """LLaDA 2.1's `generate()`: per block, repeat {forward; commit [MASK]s by the threshold rule with
    n = num_to_transfer; EDIT every position that held a token before this step and is not prompt, where the draw
    differs from it with p > editing_threshold} until a step with no [MASK] left edits nothing, or the block has had
    `max_post_steps` forwards after its last [MASK] went. `eos_early_stop`: stop after a block once the generated
    part has no [MASK] and holds an eos. 2.1's `steps` and `minimal_topk` have no effect (refused here).

    Bound (the authors' loop has none): it never ends when the model keeps drawing [MASK] (a committed [MASK] stays
    masked) or no [MASK] passes the threshold with num_to_transfer=0. A block still holding [MASK] after
    `max_mask_steps` forwards (None: 4 * block_length; without [MASK] draws and with num_to_transfer >= 1 it needs at
    most block_length) raises a RuntimeError instead of looping; every run the authors' code ends within the bound
    ends identically here.
    """

    argmax_of_probabilities = False

    def __init__(self, editing_threshold=0.9, max_post_steps=16, num_to_transfer=1, max_mask_steps=None, **options):
        super().__init__(**options)
        self.editing_threshold = check_number(editing_threshold, "editing_threshold")
        self.max_post_steps = check_integer(max_post_steps, "max_post_steps", 0)
        self.num_to_transfer = check_integer(num_to_transfer, "num_to_transfer", 0)
        self.max_mask_steps = None if max_mask_steps is None else check_integer(max_mask_steps, "max_mask_steps", 1)

    def denoise_block(self, model, config, x, end, prompt_length, block_length, eos_id, generator):
        mask, start = config.mask_token_id, end - block_length
        block = slice(start, end)
        prompt = torch.arange(start, end, device=x.device)[None] < prompt_length
        max_mask_steps = 4 * block_length if self.max_mask_steps is None else self.max_mask_steps
        post_steps = mask_steps = 0
        while True:
            old = x[:, block].clone()
            masked = old == mask
            post_steps += not masked.any()
            if post_steps > self.max_post_steps:
                return None
            if masked.any():
                self.check_progress(mask_steps, max_mask_steps, old, mask)
                mask_steps += 1
            tokens, probs = self.forward_block(model, x, end, block_length, generator)
            edit = ~masked & ~prompt & (probs > self.editing_threshold) & (tokens != old)
            chosen = self.unmask(tokens, probs, masked, self.num_to_transfer) | edit
            x[:, block][chosen] = tokens[chosen]
            if not masked.any() and not edit.any():
                return None

    def check_progress(self, mask_steps: int, max_mask_steps: int, block, mask: int) -> None:
        """RuntimeError when the block has had `max_mask_steps` forwards with [MASK] left."""
        if mask_steps >= max_mask_steps:
            raise RuntimeError(
                f"LLaDA 2.1's sampler is stuck: {int((block == mask).sum())} [MASK] left in a block after "
                f"{mask_steps} forwards (the model keeps drawing [MASK], or no position passes threshold="
                f"{self.threshold} with num_to_transfer={self.num_to_transfer}); the authors' loop may never end. "
                "Raise max_mask_steps (sampling), num_to_transfer or lower threshold, or use llada2_threshold."
            )

    def stop_after_block(self, generated, mask, eos_id):
        return self.eos_early_stop and not (generated == mask).any() and bool((generated == eos_id).any())
