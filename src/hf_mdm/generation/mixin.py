"""DiffusionGenerationMixin: `generate()` for masked diffusion LMs (ours, and stock masked LMs via
`enable_diffusion_generation`).

The canvas is the prompt followed by `max_new_tokens` [MASK] tokens; [MASK] tokens already in the prompt are filled
too, every other token is kept exactly. The generated region is split into blocks decoded left to right (block 0
also holds the row's own prompt [MASK] tokens); each block runs its share of `steps` reverse steps. `generate()` is a
short loop around three registered parts: the `DiffusionSampler` (strategy, reveal counts, the time grid; see
`sampler.py`), the block cache and the denoiser adapter that calls the model.
"""

import copy
import os

import torch
from transformers import (
    LogitsProcessorList,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation.streamers import BaseStreamer
from transformers.utils import GENERATION_CONFIG_NAME, logging

from ..schedules import get_schedule
from ..transformers_compat import attention_implementation, generation_config_load_kwargs
from .caches import CACHES
from .callbacks import HistoryCallback, StreamerCallback
from .configuration import DiffusionGenerationConfig, check_block_length
from .denoisers import DENOISERS, DenoiseRequest
from .outputs import DiffusionGenerationOutput
from .reveal_counts import get_reveal_count_rule
from .sampler import DiffusionSampler
from .sampling import RowRandomness
from .state import DiffusionState
from .strategies import get_strategy


logger = logging.get_logger(__name__)

DEFAULT_MAX_NEW_TOKENS = 32
# Steps per position to fill beyond which a run is refused: a ranked strategy's extra steps reveal nothing (the sampler
# skips them), and for the ancestral and revising strategies each extra step still costs bookkeeping and memory.
MAX_STEPS_PER_POSITION = 16


def _as_diffusion_config(config) -> DiffusionGenerationConfig:
    """A private copy of `config` as a `DiffusionGenerationConfig` (a plain `GenerationConfig` is converted)."""
    if config is None:
        return DiffusionGenerationConfig()
    if isinstance(config, DiffusionGenerationConfig):
        return copy.deepcopy(config)
    return DiffusionGenerationConfig.from_dict(config.to_dict())


class DiffusionGenerationMixin:
    """Adds `generate()` (masked diffusion decoding) to a masked LM; its defaults live in `generation_config`."""

    generation_config_class = DiffusionGenerationConfig
    # The registered `DenoiserAdapter` that runs this model (see `generation.denoisers`); subclasses name their own.
    denoiser_adapter = "masked_lm"

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        generation_config: DiffusionGenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        streamer: BaseStreamer | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> torch.LongTensor | DiffusionGenerationOutput:
        r"""
        Fill a canvas of [MASK] tokens by masked diffusion.

        Args:
            input_ids: (batch, prompt) prompt, left-padded for batches; [MASK] tokens in it are filled too. None:
                unconditional generation of `max_new_tokens` tokens (one row per generator).
            attention_mask: (batch, prompt) 1 for real tokens, 0 for padding (padding is never attended or changed).
            generation_config: overrides `self.generation_config`; keyword arguments override both.
            logits_processor: extra processors, applied before temperature / top-k / top-p; they receive the canvas
                of the row as `input_ids` once per scored position.
            streamer: receives the prompt, `put_draft(value=...)` of the generated region after every step (when it
                has `put_draft`, e.g. `transformers.TextDiffusionStreamer`), each finished block and `end()`.
            generator: one generator shared by the batch, or one per row (then a row's output does not depend on
                the other rows of its batch).
            token_type_ids: accepted so that `generate(**bert_tokenizer(text, return_tensors="pt"))` works; the canvas
                is one segment, so they must be all zeros (the BERT-family default, used for every position).

        Returns:
            `torch.LongTensor` (batch, prompt + max_new_tokens), or a [`DiffusionGenerationOutput`] with
            `return_dict_in_generate=True`.
        """
        # 1. Prepare: config, canvas, per-row block plan, sampler, cache, denoiser, callbacks.
        self._refuse_prompt_learning_adapter()
        if token_type_ids is not None and bool(token_type_ids.ne(0).any()):
            raise ValueError(
                "generate() decodes a single segment, so token_type_ids must be all zeros; omit them, or tokenize "
                "the prompt as one text instead of a pair."
            )
        config = self._prepare_diffusion_generation_config(generation_config, **kwargs)
        input_ids, attention_mask = self._prepare_diffusion_inputs(input_ids, attention_mask, config, generator)
        mask_token_id = self._resolve_mask_token_id(config)
        prompt_length = input_ids.shape[1]
        max_new_tokens = self._resolve_max_new_tokens(config, input_ids, mask_token_id)
        canvas = torch.cat([input_ids, input_ids.new_full((input_ids.shape[0], max_new_tokens), mask_token_id)], 1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((canvas.shape[0], max_new_tokens))], 1)
        fill = (canvas == mask_token_id) & attention_mask.bool()
        first_starts, block_ends = self._plan_blocks(fill, prompt_length, max_new_tokens, config.block_length)
        steps = config.steps if config.steps is not None else max(int(fill.sum(1).max()), 1)
        denoiser = DENOISERS.build(self.denoiser_adapter, model=self)
        schedule = self._resolve_schedule(config)
        strategy = get_strategy(config.strategy, schedule=schedule, **config.strategy_arguments())
        cache = CACHES.build(config.cache)
        self._check_diffusion_setup(config, fill, max_new_tokens, block_ends, steps, denoiser, strategy, cache)
        eos, pad_token_id = self._resolve_eos_and_pad(config, canvas.device, mask_token_id)
        sampler = DiffusionSampler(
            strategy,
            get_reveal_count_rule(config.reveal_counts, **(config.reveal_counts_kwargs or {})),
            schedule,
            self._diffusion_logits_processors(config, logits_processor, canvas.device),
            RowRandomness(generator, canvas.shape[0]),
            config.do_sample,
            eos,
            pad_token_id,
        )
        sampler.set_timesteps(steps, block_ends)
        state = DiffusionState(
            canvas=canvas,
            attention_mask=attention_mask,
            position_ids=(attention_mask.cumsum(1) - 1).clamp(min=0),
            fill=fill,
            mask_token_id=mask_token_id,
            prompt_length=prompt_length,
            done=~fill.any(1),
            nfe=canvas.new_zeros(canvas.shape[0]),
            steps_per_block=canvas.new_zeros((canvas.shape[0], len(block_ends))),
        )
        history = HistoryCallback() if config.output_history else None
        callbacks = [callback for callback in (history, streamer and StreamerCallback(streamer)) if callback]
        for callback in callbacks:
            callback.on_start(state)

        # 2. For each block: for each step, denoise the rows whose canvas changed, then step the sampler.
        for block_index in range(len(block_ends)):
            if bool(state.done.all()):
                break
            sampler.begin_block(state, block_index, first_starts)
            refresh_cache = True
            while bool(sampler.active_rows(state).any()):
                rows, columns = sampler.denoise_request(state)
                logits = None
                if rows.numel() > 0:
                    logits = denoiser.logits(self._denoise_request(state, rows, columns, cache, refresh_cache))
                    refresh_cache = False
                sampler.step(state, logits, rows, columns)
                for callback in callbacks:
                    callback.on_step(state)
            for callback in callbacks:
                callback.on_block_end(state)

        # 3. Finish: refuse a run that met non-finite probabilities, the callbacks' last word, then the output.
        self._check_finite(state)
        for callback in callbacks:
            callback.on_end(state)
        if not config.return_dict_in_generate:
            return state.canvas
        return DiffusionGenerationOutput(
            sequences=state.canvas,
            nfe=state.nfe,
            steps_per_block=state.steps_per_block,
            history=tuple(history.history) if history is not None else None,
        )

    # PEFT: `get_peft_model(model, LoraConfig(task_type="CAUSAL_LM"))` wraps the model in PeftModelForCausalLM, which
    # reads this hook when it wraps the model and swaps in its own to add a prompt-learning adapter's virtual tokens.
    def prepare_inputs_for_generation(self, *args, **kwargs):
        """Autoregressive decoding's per-step hook, which diffusion `generate()` never calls; a call is an error."""
        raise NotImplementedError(
            f"{type(self).__name__} decodes by masked diffusion: use its generate(), which has no per-token step "
            "and never calls prepare_inputs_for_generation."
        )

    def _refuse_prompt_learning_adapter(self) -> None:
        """A swapped-in prepare_inputs_for_generation (PEFT prompt/prefix tuning) would be ignored silently."""
        if getattr(self.prepare_inputs_for_generation, "__self__", self) is not self:
            raise ValueError(
                "A PEFT prompt-learning adapter (prompt, prefix or p-tuning) adds its virtual tokens through "
                "prepare_inputs_for_generation, which masked diffusion decoding never calls: generate() would ignore "
                "it. Use an adapter that changes weights, e.g. LoraConfig(task_type='CAUSAL_LM')."
            )

    def _prepare_diffusion_generation_config(self, generation_config, **kwargs) -> DiffusionGenerationConfig:
        """Priority: keyword arguments > `generation_config` > `self.generation_config` > the config's defaults."""
        model_config = getattr(self, "generation_config", None)
        config = _as_diffusion_config(generation_config if generation_config is not None else model_config)
        if generation_config is not None and model_config is not None:
            config.update(**_as_diffusion_config(model_config).to_dict(), defaults_only=True)
        config.update(**config.diffusion_defaults(), defaults_only=True)
        unused = config.update(**kwargs)
        if unused:
            raise ValueError(
                f"generate() got unexpected arguments {sorted(unused)}: they are neither generate() arguments nor "
                "DiffusionGenerationConfig fields. Check their spelling."
            )
        return config

    def _prepare_diffusion_inputs(self, input_ids, attention_mask, config, generator):
        """Validate the prompt and its mask, build an empty prompt when there is none, expand num_return_sequences."""
        if input_ids is None:
            batch_size = len(generator) if isinstance(generator, (list, tuple)) else 1
            input_ids = torch.zeros((batch_size, 0), dtype=torch.long, device=self.device)
        if generator is not None and not isinstance(generator, (torch.Generator, list, tuple)):
            raise TypeError(
                f"`generator` must be a torch.Generator or a list of them (one per row), got "
                f"{type(generator).__name__}; pass torch.Generator().manual_seed({generator!r}) instead of a seed."
            )
        if (
            not isinstance(input_ids, torch.Tensor)
            or input_ids.dim() != 2
            or input_ids.is_floating_point()
            or input_ids.dtype == torch.bool
        ):
            raise ValueError(
                "`input_ids` must be a 2-D integer tensor (batch, length) of token ids; add a batch dimension with "
                "input_ids[None] or tokenize with return_tensors='pt'."
            )
        input_ids = input_ids.long()
        vocab_size = getattr(self.config, "vocab_size", None)
        if input_ids.numel() and vocab_size is not None and bool(((input_ids < 0) | (input_ids >= vocab_size)).any()):
            raise ValueError(
                f"`input_ids` hold ids outside the model's vocabulary 0..{vocab_size - 1} "
                f"(min {int(input_ids.min())}, "
                f"max {int(input_ids.max())}); encode the prompt with this model's tokenizer."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has shape "
                f"{tuple(input_ids.shape)}; pass the mask the tokenizer returned with these ids."
            )
        elif attention_mask.numel() and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
            raise ValueError(
                "`attention_mask` must hold only 0 (padding) and 1 (real token); soft or additive masks are not "
                "supported by generate(). Pass the mask the tokenizer returned."
            )
        attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.long)
        if input_ids.shape[1] > 0 and bool((attention_mask[:, -1] == 0).any()):
            logger.warning_once(
                "A right-padded prompt was detected: the generated tokens will follow the padding. Use "
                "tokenizer.padding_side = 'left' for batched prompts."
            )
        if bool((attention_mask == 0).any()):
            self._warn_if_padding_is_inexact()
        if config.num_return_sequences > 1:
            input_ids = input_ids.repeat_interleave(config.num_return_sequences, dim=0)
            attention_mask = attention_mask.repeat_interleave(config.num_return_sequences, dim=0)
        return input_ids, attention_mask

    def _warn_if_padding_is_inexact(self) -> None:
        """Half-precision SDPA rounds a padded row differently from the same row alone (its kernel accumulates over the
        padded key length in another order), so the generated tokens can differ; eager attention and float32 do not."""
        backend = attention_implementation(self.config)
        if backend == "sdpa" and self.dtype in (torch.bfloat16, torch.float16):
            logger.warning_once(
                f"Padded prompts with attn_implementation='sdpa' in {self.dtype}: a padded row can decode to other "
                "tokens than the same row unpadded (the kernel's rounding depends on the padded length). For "
                "padding-exact decoding load the model with attn_implementation='eager' (or use float32)."
            )

    def _resolve_mask_token_id(self, config) -> int:
        mask_token_id = config.mask_token_id
        model_mask_token_id = getattr(self.config, "mask_token_id", None)
        if mask_token_id is None:
            mask_token_id = model_mask_token_id
        if mask_token_id is None:
            raise ValueError(
                "No [MASK] token id: set `mask_token_id` in the model config or generation config, or pass it: "
                "model.generate(..., mask_token_id=tokenizer.mask_token_id) (or "
                "enable_diffusion_generation(model, mask_token_id=tokenizer.mask_token_id))."
            )
        vocab_size = getattr(self.config, "vocab_size", None)
        if vocab_size is not None and not 0 <= mask_token_id < vocab_size:
            raise ValueError(
                f"mask_token_id={mask_token_id} is outside the model's vocabulary (vocab_size={vocab_size}); pass the "
                "tokenizer's mask_token_id."
            )
        if model_mask_token_id is not None and mask_token_id != model_mask_token_id:
            raise ValueError(
                f"mask_token_id={mask_token_id} differs from the model config's mask_token_id={model_mask_token_id}: "
                "the model was trained to denoise the config's [MASK]. Drop the argument (or fix the config)."
            )
        return mask_token_id

    def _resolve_max_new_tokens(self, config, input_ids, mask_token_id) -> int:
        if config.max_new_tokens is not None:
            return config.max_new_tokens
        if config.max_length is not None:
            if config.max_length <= input_ids.shape[1]:
                raise ValueError(
                    f"max_length={config.max_length} leaves no room after the {input_ids.shape[1]}-token prompt; "
                    "pass max_new_tokens instead."
                )
            return config.max_length - input_ids.shape[1]
        return 0 if bool((input_ids == mask_token_id).any()) else DEFAULT_MAX_NEW_TOKENS

    @staticmethod
    def _plan_blocks(fill, prompt_length, max_new_tokens, block_length) -> tuple[torch.LongTensor, list[int]]:
        """(first_starts, block_ends): block k ends at `block_ends[k]` for every row and starts at the previous end;
        block 0 starts at the row's own first position to fill (its first prompt [MASK], else the prompt's end)."""
        length = prompt_length + max_new_tokens
        positions = torch.arange(length, device=fill.device)
        first_starts = torch.where(fill, positions, length).min(1).values.clamp(max=prompt_length)
        first_starts = torch.where(fill.any(1), first_starts, length)
        if block_length is None or max_new_tokens == 0:
            return first_starts, [length]
        return first_starts, list(range(prompt_length + block_length, length + 1, block_length))

    def _check_diffusion_setup(self, config, fill, max_new_tokens, block_ends, steps, denoiser, strategy, cache):
        """Input-dependent checks, before any forward."""
        check_block_length(config.block_length, max_new_tokens)  # max_new_tokens may come from max_length here
        if steps < len(block_ends):
            raise ValueError(
                f"steps={steps} is fewer than the {len(block_ends)} blocks; every block needs at least one step. "
                "Raise `steps` or `block_length`."
            )
        most_steps = MAX_STEPS_PER_POSITION * max(int(fill.sum(1).max()), len(block_ends))
        if strategy.fixed_steps and steps > most_steps:
            raise ValueError(
                f"steps={steps} is more than {MAX_STEPS_PER_POSITION} steps per position to fill (at most "
                f"{most_steps} here): a ranked strategy reveals nothing in the extra steps, and the others pay for "
                f"each one. Pass steps <= {most_steps} (steps = the number of positions decodes one token per step)."
            )
        max_positions = getattr(self.config, "max_position_embeddings", None)
        if max_positions is not None and fill.shape[1] > max_positions:
            raise ValueError(
                f"Prompt + max_new_tokens = {fill.shape[1]} positions, but the model accepts at most "
                f"{max_positions} (max_position_embeddings). Shorten the prompt or lower max_new_tokens."
            )
        if cache.active and not denoiser.supports_cache:
            raise ValueError(
                f"cache={config.cache!r} needs a denoiser adapter that runs a block cache (such as "
                f"MDMForMaskedGeneration's); {type(self).__name__} uses the {denoiser.name!r} adapter, which cannot. "
                "Use cache='none'."
            )
        if strategy.revises and not cache.refreshes_revealed:
            raise ValueError(
                f"Strategy {strategy.name!r} remasks or edits revealed tokens, but cache={config.cache!r} keeps the "
                "keys of revealed tokens of the block and would not see the change. Use a cache that recomputes the "
                "block ('none', 'prefix' or 'dual') or a strategy that never revises."
            )

    def _resolve_eos_and_pad(self, config, device, mask_token_id):
        if config.eos_token_id is None:
            return None, config.pad_token_id
        eos = torch.tensor(config.eos_token_id, device=device).reshape(-1)
        pad_token_id = config.pad_token_id
        if pad_token_id is None:
            pad_token_id = int(eos[0])
            logger.warning_once(
                f"`pad_token_id` is not set: positions after EOS are filled with eos ({pad_token_id})."
            )
        vocab_size = getattr(self.config, "vocab_size", None)
        if vocab_size is not None and not 0 <= pad_token_id < vocab_size:
            raise ValueError(
                f"pad_token_id={pad_token_id} is outside the model's vocabulary (vocab_size={vocab_size}); pass the "
                "tokenizer's pad_token_id."
            )
        if pad_token_id == mask_token_id:
            raise ValueError(
                f"pad_token_id={pad_token_id} is the [MASK] id: positions after EOS would look undecoded. Pass the "
                "tokenizer's pad_token_id (or its eos_token_id)."
            )
        return eos, pad_token_id

    def _resolve_schedule(self, config):
        """The config's schedule, else the model's training schedule, else linear."""
        if config.schedule is not None:
            return get_schedule(config.schedule, **(config.schedule_kwargs or {}))
        model_schedule = getattr(self.config, "schedule", None)
        if model_schedule is not None:
            return get_schedule(model_schedule, **(getattr(self.config, "schedule_kwargs", None) or {}))
        return get_schedule("linear")

    def _diffusion_logits_processors(self, config, logits_processor, device) -> LogitsProcessorList:
        """transformers' `SuppressTokensLogitsProcessor` for `suppress_tokens`, the caller's processors, then (when
        sampling) transformers' temperature, top-k and top-p warpers."""
        processors = LogitsProcessorList()
        if config.suppress_tokens:
            vocab_size = getattr(self.config, "vocab_size", None)
            if vocab_size is not None and max(config.suppress_tokens) >= vocab_size:
                raise ValueError(
                    f"suppress_tokens holds ids outside the vocabulary (vocab_size={vocab_size}): "
                    f"{sorted(token for token in config.suppress_tokens if token >= vocab_size)}; pass this model's "
                    "tokenizer ids."
                )
            processors.append(SuppressTokensLogitsProcessor(config.suppress_tokens, device=device))
        processors.extend(logits_processor or [])
        if config.do_sample:
            if config.temperature is not None and config.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(config.temperature))
            if config.top_k:
                processors.append(TopKLogitsWarper(config.top_k))
            if config.top_p is not None and config.top_p < 1.0:
                processors.append(TopPLogitsWarper(config.top_p))
        return processors

    def _check_finite(self, state) -> None:
        """One check per call (no sync per step): NaN / inf in p(. | x_t) means the tokens are garbage."""
        if bool(state.non_finite.any()):
            rows = state.non_finite.nonzero().squeeze(1).tolist()
            backend = attention_implementation(self.config)
            raise ValueError(
                f"The model (attention {backend!r}, dtype {self.dtype}) or a logits processor gave NaN or infinite "
                f"logits, or removed every token, for rows {rows}; the generated tokens would be meaningless. Try "
                "attn_implementation='eager' or float32, and check the logits processors."
            )

    @staticmethod
    def _denoise_request(state, rows, columns, cache, refresh_cache) -> DenoiseRequest:
        """The denoiser's inputs for batch rows `rows` and window `columns` of the current block."""
        batch_size = state.batch_size
        canvas, attention_mask, position_ids = state.canvas, state.attention_mask, state.position_ids
        if rows.numel() != batch_size:
            canvas, attention_mask, position_ids = canvas[rows], attention_mask[rows], position_ids[rows]
        return DenoiseRequest(
            input_ids=canvas,
            attention_mask=attention_mask,
            position_ids=position_ids,
            keep=state.window_start + columns,
            block_starts=state.block_starts[rows],
            block_end=state.block_end,
            rows=rows,
            batch_size=batch_size,
            cache=cache,
            refresh_cache=refresh_cache,
        )

    def adjust_generation_fn(
        self,
        generation_config,
        from_auto_class,
        from_pipeline,
        pretrained_model_name_or_path,
        cache_dir,
        force_download,
        proxies,
        local_files_only,
        token,
        revision,
        subfolder,
        trust_remote_code,
        **kwargs,
    ):
        """`from_pretrained` hook: load `generation_config.json` as a `DiffusionGenerationConfig` when there is one.

        A local generation_config.json that cannot be read, or whose `mask_token_id` differs from the model
        config's, is an error (it is never silently replaced by defaults)."""
        if generation_config is not None:
            self.generation_config = _as_diffusion_config(generation_config)
        elif pretrained_model_name_or_path is not None:
            local_file = os.path.join(str(pretrained_model_name_or_path), subfolder or "", GENERATION_CONFIG_NAME)
            try:
                self.generation_config = DiffusionGenerationConfig.from_pretrained(
                    pretrained_model_name_or_path,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    proxies=proxies,
                    local_files_only=local_files_only,
                    token=token,
                    revision=revision,
                    subfolder=subfolder,
                    **generation_config_load_kwargs(from_auto_class, from_pipeline),
                )
            except OSError as error:
                if os.path.isfile(local_file):
                    raise OSError(
                        f"{local_file} exists but cannot be read as a generation config ({error}); fix or delete it."
                    ) from error
                logger.info(
                    "No generation_config.json found; using the generation config built from the model config."
                )
        saved_mask = getattr(self.generation_config, "mask_token_id", None)
        model_mask = getattr(self.config, "mask_token_id", None)
        if saved_mask is not None and model_mask is not None and saved_mask != model_mask:
            raise ValueError(
                f"{pretrained_model_name_or_path}: generation_config.json says mask_token_id={saved_mask} but the "
                f"model config says {model_mask}; the model denoises the config's [MASK]. Fix generation_config.json."
            )


__all__ = ["DiffusionGenerationMixin"]
