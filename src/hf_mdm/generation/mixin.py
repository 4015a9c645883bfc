"""DiffusionGenerationMixin: `generate()` for masked diffusion LMs (ours, and stock masked LMs via
`enable_diffusion_generation`).

The canvas is the prompt followed by `max_new_tokens` [MASK] tokens; [MASK] tokens already in the prompt are filled
too, every other token is kept exactly. The generated region is split into blocks decoded left to right (block 0
also holds the row's own prompt [MASK] tokens; on a block-causal model the blocks are the model's, with the exact
cache by default); each block runs its share of `steps` reverse steps, or `steps_per_block`. `generate()` checks
its inputs, then runs a short loop around the `DiffusionSampler` built from the generation config (strategy, reveal
counts, block cache, the block plan and time grid, each model request; see `sampler.py`) and the denoiser adapter
that calls the model; `build_diffusion_sampler` builds both, for generate() and for whoever needs its sampler.
"""

import os

import torch
from transformers import LogitsProcessorList
from transformers.generation.streamers import BaseStreamer
from transformers.utils import GENERATION_CONFIG_NAME, logging

from ..schedules import get_schedule
from ..tokenizer_checks import model_mask_token_id
from ..transformers_compat import attention_implementation, generation_config_load_kwargs
from .arguments import as_diffusion_config, check_token_ids, resolve_generation_config
from .callbacks import DecodingCallback, HistoryCallback, StreamerCallback
from .configuration import DiffusionGenerationConfig
from .denoisers import DENOISERS, DenoiserAdapter
from .outputs import DiffusionGenerationOutput
from .sampler import DiffusionSampler, check_input_ids
from .strategies import MAX_STEPS_PER_POSITION


logger = logging.get_logger(__name__)

DEFAULT_MAX_NEW_TOKENS = 32
# Token positions (rows x canvas length, after num_return_sequences) beyond which a call is refused before the canvas
# is allocated: 2**31 ids are 16 GiB, and the logits of one forward hundreds of times more.
MAX_CANVAS_POSITIONS = 2**31


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
        callbacks: list[DecodingCallback] | None = None,
        **kwargs,
    ) -> torch.LongTensor | DiffusionGenerationOutput:
        r"""
        Fill a canvas of [MASK] tokens by masked diffusion.

        Args:
            input_ids: (batch, prompt) prompt, left-padded for batches; [MASK] tokens in it are filled too. None:
                unconditional generation of `max_new_tokens` tokens (one row per generator). An empty batch
                (0, prompt) returns an empty (0, prompt + max_new_tokens) result.
            attention_mask: (batch, prompt) 1 for real tokens, 0 for padding (padding is never attended or changed).
            generation_config: overrides `self.generation_config`; keyword arguments override both (conflicting
                arguments are refused: see `generation.arguments`).
            logits_processor: extra processors, applied before temperature / top-k / top-p; they receive the canvas
                of the row as `input_ids` once per scored position.
            streamer: receives the prompt, `put_draft(value=...)` of the generated region after every step (when it
                has `put_draft`, e.g. `transformers.TextDiffusionStreamer`), each finished block and `end()`.
            generator: one generator shared by the batch, or one per row (then a row's output does not depend on
                the other rows of its batch).
            token_type_ids: accepted so that `generate(**bert_tokenizer(text, return_tensors="pt"))` works; the canvas
                is one segment, so they must be all zeros (the BERT-family default, used for every position).
            callbacks: `DecodingCallback` instances, called at the start, after every step, at the end of every block
                and at the end (after the history and streamer callbacks).

        Returns:
            `torch.LongTensor` (batch, prompt + max_new_tokens), or a [`DiffusionGenerationOutput`] with
            `return_dict_in_generate=True`.
        """
        # 1. Check the caller's hooks and inputs, then build the sampler from the resolved config, before any
        #    allocation that grows with them.
        self._refuse_prompt_learning_adapter()
        callbacks = self._check_hooks(logits_processor, streamer, callbacks)
        input_ids, attention_mask = self._prepare_diffusion_inputs(
            input_ids, attention_mask, token_type_ids, generator
        )
        sampler, denoiser, config = self.build_diffusion_sampler(
            generation_config, logits_processor, generator, device=input_ids.device, **kwargs
        )
        max_new_tokens = self._resolve_max_new_tokens(config, input_ids, sampler.mask_token_id)
        self._check_canvas_size(input_ids.shape[0] * config.num_return_sequences, input_ids.shape[1] + max_new_tokens)

        # 2. The canvas, its block plan and time grid (`prepare` refuses a plan no row could run).
        model_order = self._end_marker_order(config, input_ids, attention_mask, max_new_tokens)
        sampler.check_model_order(model_order, config.sep_token_id)
        state = sampler.prepare(input_ids, attention_mask, max_new_tokens, model_order)

        # 3. The callbacks: the history, the streamer, then the caller's.
        history = HistoryCallback() if config.output_history else None
        own = [callback for callback in (history, streamer and StreamerCallback(streamer)) if callback]
        callbacks = own + callbacks
        for callback in callbacks:
            callback.on_start(state)

        # 4. Block by block, step by step: denoise the rows whose canvas changed, then step the sampler.
        for block in sampler.blocks:
            if bool(state.done.all()):
                break
            sampler.begin_block(state, block)
            while sampler.is_running(state):
                request = sampler.model_request(state)
                sampler.step(state, denoiser.logits(request) if request is not None else None, request)
                for callback in callbacks:
                    callback.on_step(state)
            for callback in callbacks:
                callback.on_block_end(state)

        # 5. Finish: refuse a run that met non-finite probabilities, the callbacks' last word, then the output.
        self._check_finite(state)
        for callback in callbacks:
            callback.on_end(state)
        if not config.return_dict_in_generate:
            return state.canvas
        history = tuple(history.history) if history is not None else None
        return DiffusionGenerationOutput(
            sequences=state.canvas,
            nfe=state.nfe,
            steps_per_block=state.steps_per_block,
            history=history,
            num_decoded_tokens=sampler.decoded_tokens(state),
        )

    def build_diffusion_sampler(
        self,
        generation_config: DiffusionGenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        device: torch.device | None = None,
        **kwargs,
    ) -> tuple[DiffusionSampler, DenoiserAdapter, DiffusionGenerationConfig]:
        """(sampler, denoiser, config) that `generate(generation_config=..., logits_processor=..., generator=...,
        **kwargs)` decodes with: the config resolved from the keywords, `generation_config` and the model's (see
        `generation.arguments`), the model's denoiser adapter, and the `DiffusionSampler` that config describes
        (strategy, reveal counts, schedule (the config's, else the model's training one), cache, logits processors)
        for the model's [MASK] id, on `device` (default the model's). Refuses an argument or a config the model
        cannot decode with, before any forward."""
        denoiser = DENOISERS.build(self.denoiser_adapter, model=self)
        block_size = denoiser.block_size()
        config = resolve_generation_config(
            kwargs, generation_config, getattr(self, "generation_config", None), block_size=block_size
        )
        mask_token_id = self._resolve_mask_token_id(config)
        check_token_ids(config, getattr(self.config, "vocab_size", None), mask_token_id)
        sampler = DiffusionSampler.from_config(
            config, mask_token_id=mask_token_id, schedule=self._model_schedule(), logits_processor=logits_processor,
            generator=generator, device=self.device if device is None else device, block_size=block_size,
            time_conditioned=denoiser.time_conditioned(),
        )  # fmt: skip
        denoiser.check_cache(sampler.cache)
        return sampler, denoiser, config

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

    @staticmethod
    def _check_hooks(logits_processor, streamer, callbacks) -> list[DecodingCallback]:
        """The caller's processors, streamer and callbacks have the types generate() calls them as."""
        if logits_processor is not None and (
            not isinstance(logits_processor, (list, tuple)) or not all(map(callable, logits_processor))
        ):
            raise TypeError(
                f"`logits_processor` must be a list of logits processors, got {type(logits_processor).__name__}; "
                "wrap it: logits_processor=LogitsProcessorList([processor])."
            )
        if streamer is not None and not all(callable(getattr(streamer, hook, None)) for hook in ("put", "end")):
            raise TypeError(
                f"`streamer` must have put() and end() (a transformers streamer such as TextDiffusionStreamer), got "
                f"{type(streamer).__name__}."
            )
        if callbacks is None:
            return []
        if not isinstance(callbacks, (list, tuple)) or not all(isinstance(c, DecodingCallback) for c in callbacks):
            raise TypeError(
                "`callbacks` must be a list of hf_mdm.generation.DecodingCallback instances (subclass it and override "
                f"on_start / on_step / on_block_end / on_end), got {callbacks!r}."
            )
        return list(callbacks)

    def _prepare_diffusion_inputs(self, input_ids, attention_mask, token_type_ids, generator):
        """Validate the prompt, its mask and token types, and build an empty prompt when there is none."""
        if input_ids is None:
            batch_size = len(generator) if isinstance(generator, (list, tuple)) else 1
            input_ids = torch.zeros((batch_size, 0), dtype=torch.long, device=self.device)
        if generator is not None and not (
            isinstance(generator, torch.Generator)
            or (isinstance(generator, (list, tuple)) and all(isinstance(g, torch.Generator) for g in generator))
        ):
            seed = generator if isinstance(generator, int) else "seed"
            raise TypeError(
                f"`generator` must be a torch.Generator or a list of them (one per row), got {generator!r}; pass "
                f"torch.Generator().manual_seed({seed}) instead of a seed."
            )
        check_input_ids(input_ids)
        input_ids = input_ids.long()
        vocab_size = getattr(self.config, "vocab_size", None)
        if input_ids.numel() and vocab_size is not None and bool(((input_ids < 0) | (input_ids >= vocab_size)).any()):
            raise ValueError(
                f"`input_ids` hold ids outside the model's vocabulary 0..{vocab_size - 1} "
                f"(min {int(input_ids.min())}, "
                f"max {int(input_ids.max())}); encode the prompt with this model's tokenizer."
            )
        for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if tensor is not None and (not isinstance(tensor, torch.Tensor) or tensor.shape != input_ids.shape):
                shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise ValueError(
                    f"{name} has shape {shape} but input_ids has shape {tuple(input_ids.shape)}; pass the "
                    f"{name} the tokenizer returned with these ids (return_tensors='pt')."
                )
        if token_type_ids is not None and bool(token_type_ids.ne(0).any()):
            raise ValueError(
                "generate() decodes a single segment, so token_type_ids must be all zeros; omit them, or tokenize "
                "the prompt as one text instead of a pair."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
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
        mask_token_id = model_mask_token_id(self, config)
        config_mask_token_id = getattr(self.config, "mask_token_id", None)
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
        if config_mask_token_id is not None and mask_token_id != config_mask_token_id:
            raise ValueError(
                f"mask_token_id={mask_token_id} differs from the model config's mask_token_id={config_mask_token_id}: "
                "the model was trained to denoise the config's [MASK]. Drop the argument (or fix the config)."
            )
        return mask_token_id

    def _resolve_max_new_tokens(self, config, input_ids, mask_token_id) -> int:
        """`max_new_tokens`, else `max_length` - prompt, else 0 for a prompt with [MASK] tokens (pure infilling),
        else min(32, the positions the model has left after the prompt), cut to a multiple of `block_length`."""
        prompt_length = input_ids.shape[1]
        if config.max_new_tokens is not None:
            return config.max_new_tokens
        if config.max_length is not None:
            if config.max_length <= prompt_length:
                raise ValueError(
                    f"max_length={config.max_length} leaves no room after the {prompt_length}-token prompt; "
                    "pass max_new_tokens instead."
                )
            return config.max_length - prompt_length
        if bool((input_ids == mask_token_id).any()):
            return 0
        positions = getattr(self.config, "max_position_embeddings", None)
        new_tokens = (
            DEFAULT_MAX_NEW_TOKENS if positions is None else min(DEFAULT_MAX_NEW_TOKENS, positions - prompt_length)
        )
        if config.block_length:
            new_tokens -= new_tokens % config.block_length
        if new_tokens < 1:
            blocks = f" in blocks of {config.block_length}" if config.block_length else ""
            raise ValueError(
                f"The prompt has {prompt_length} tokens and the model accepts {positions} positions: no room for new "
                f"tokens{blocks}. Shorten the prompt (or pass max_new_tokens=0 to fill only its [MASK] tokens)."
            )
        return new_tokens

    def _check_canvas_size(self, rows: int, length: int) -> None:
        """Before the canvas is allocated: its length fits the model, its size fits `MAX_CANVAS_POSITIONS`."""
        max_positions = getattr(self.config, "max_position_embeddings", None)
        if max_positions is not None and length > max_positions:
            raise ValueError(
                f"Prompt + max_new_tokens = {length} positions, but the model accepts at most "
                f"{max_positions} (max_position_embeddings). Shorten the prompt or lower max_new_tokens."
            )
        if rows * length > MAX_CANVAS_POSITIONS:
            raise ValueError(
                f"{rows} rows (after num_return_sequences) x {length} positions = {rows * length} token positions is "
                f"more than generate() allocates ({MAX_CANVAS_POSITIONS}); lower max_new_tokens, the batch or "
                "num_return_sequences."
            )

    @staticmethod
    def _end_marker_order(config, input_ids, attention_mask, max_new_tokens) -> torch.LongTensor | None:
        """When every prompt ends with the tokenizer's end marker (`sep_token_id`, e.g. BERT's [SEP]), the canvas
        column order in which the model sees it after the generated region: [CLS] prompt new tokens [SEP], as in
        pretraining. The returned canvas keeps the prompt as given (its [SEP] included), the new tokens after it."""
        batch_size, prompt_length = input_ids.shape
        if config.sep_token_id is None or batch_size == 0 or prompt_length == 0 or max_new_tokens == 0:
            return None
        real = attention_mask[:, :prompt_length].bool()
        ends = (input_ids[:, -1] == config.sep_token_id) & real[:, -1]
        if not bool(ends.any()):
            return None
        if not bool(ends[real.any(1)].all()):
            raise ValueError(
                f"Some prompts end with the tokenizer's end marker (sep_token_id={config.sep_token_id}) and others "
                "do not; tokenize every prompt the same way, left-padded (tokenizer.padding_side = 'left')."
            )
        positions = torch.arange(prompt_length + max_new_tokens, device=input_ids.device)
        marker = positions[prompt_length - 1 : prompt_length]
        return torch.cat([positions[: prompt_length - 1], positions[prompt_length:], marker])

    def _model_schedule(self):
        """The model's training schedule (used when the generation config names none), else None (linear)."""
        model_schedule = getattr(self.config, "schedule", None)
        if model_schedule is None:
            return None
        return get_schedule(model_schedule, **(getattr(self.config, "schedule_kwargs", None) or {}))

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
            self.generation_config = as_diffusion_config(generation_config)
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


__all__ = ["DiffusionGenerationMixin", "MAX_STEPS_PER_POSITION"]  # the step cap, from strategies
