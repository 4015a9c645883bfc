"""DiffusionGenerationMixin: `generate()` for masked diffusion LMs (ours, and stock masked LMs via
`enable_diffusion_generation`).

The canvas is the prompt followed by `max_new_tokens` [MASK] tokens; [MASK] tokens already in the prompt are filled
too, every other token is kept exactly. The generated region is split into blocks decoded left to right (block 0
also holds the prompt's [MASK] tokens); each block runs its share of `steps` reverse steps t -> s with
t = 1 - k/K, s = 1 - (k+1)/K. A step:

1. runs the model on the rows whose tokens changed since their last forward (exact reuse: the others keep their
   candidates, spending no forward), with the LM head only on the block's still-masked positions;
2. draws candidates x̂ ~ p(. | x_t) after the logits processors (argmax when not sampling) and strategy scores;
3. lets the strategy pick positions to reveal; they take their candidate and never change again;
4. stops a row once it revealed EOS and everything before it (the [MASK] after EOS become pad).
"""

import copy

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
from transformers.generation.streamers import BaseStreamer
from transformers.utils import logging

from ..schedules import get_schedule
from .caches import DiffusionBlockCache
from ..transformers_compat import generation_config_load_kwargs
from .configuration import DiffusionGenerationConfig, check_block_length
from .denoisers import DENOISERS
from .outputs import DiffusionGenerationOutput
from .reveal_counts import get_reveal_count_rule
from .sampling import RowRandomness, sample_categorical
from .strategies import RevealStep, get_strategy


logger = logging.get_logger(__name__)

DEFAULT_MAX_NEW_TOKENS = 32


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
        real = attention_mask.bool()
        fill = (canvas == mask_token_id) & real
        blocks = self._plan_blocks(fill, prompt_length, max_new_tokens, config.block_length)
        steps = config.steps if config.steps is not None else max(int(fill.sum(1).max()), 1)
        denoiser = DENOISERS.build(self.denoiser_adapter, model=self)
        uses_cache = self._check_diffusion_setup(config, canvas, max_new_tokens, blocks, steps, denoiser)
        eos, pad_token_id = self._resolve_eos_and_pad(config, canvas.device)

        schedule = self._resolve_schedule(config)
        strategy = get_strategy(config.strategy, schedule=schedule, **config.strategy_arguments())
        count_rule = get_reveal_count_rule(config.reveal_counts, **(config.reveal_counts_kwargs or {}))
        processors = self._diffusion_logits_processors(config, logits_processor)
        randomness = RowRandomness(generator, canvas.shape[0])
        cache = DiffusionBlockCache(dual=config.cache == "dual") if uses_cache else None
        position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)

        batch_size, length = canvas.shape
        positions = torch.arange(length, device=canvas.device)
        done = ~fill.any(1)
        nfe = torch.zeros(batch_size, dtype=torch.long, device=canvas.device)
        steps_per_block = torch.zeros(batch_size, len(blocks), dtype=torch.long, device=canvas.device)
        history = [] if config.output_history else None
        streamed_until = prompt_length
        if streamer is not None:
            streamer.put(canvas[:, :prompt_length].cpu())

        base_steps, extra_steps = divmod(steps, len(blocks))
        for block_index, (start, end) in enumerate(blocks):
            if bool(done.all()):
                break
            block_steps = base_steps + (block_index < extra_steps)
            masked = (canvas[:, start:end] == mask_token_id) & real[:, start:end]
            counts = count_rule(masked.sum(1), block_steps, schedule) if strategy.uses_counts else None
            candidates = torch.zeros_like(masked, dtype=torch.long)
            scores = torch.zeros_like(masked, dtype=torch.float32)
            stale = torch.ones_like(done)
            refresh_cache = cache is not None
            step = 0
            while True:
                active = ~done & masked.any(1)
                if not bool(active.any()):
                    break
                if strategy.fixed_steps and step >= block_steps:
                    raise RuntimeError(
                        f"Strategy {strategy.name!r} left [MASK] tokens after the last step of a block; a strategy "
                        "must reveal every masked position by s = 0 (or set `fixed_steps = False`)."
                    )
                need = (active & stale).nonzero().squeeze(1)
                if need.numel() > 0:
                    columns = masked[need].any(0).nonzero().squeeze(1)  # block positions some of these rows need
                    logits = self._denoiser_logits(
                        denoiser,
                        canvas,
                        attention_mask,
                        position_ids,
                        need,
                        start + columns,
                        (start, end),
                        cache,
                        refresh_cache,
                    )
                    refresh_cache = False
                    # noise for the whole block, so that a row's draws do not depend on which columns its mates need
                    noise = randomness.rand(need, end - start, canvas.device)[:, columns] if config.do_sample else None
                    new_candidates, new_scores = self._propose(
                        logits, canvas[need], processors, noise, strategy, mask_token_id
                    )
                    candidates[need[:, None], columns] = new_candidates
                    if new_scores is not None:
                        scores[need[:, None], columns] = new_scores.float()
                    nfe[need] += 1
                    stale[need] = False

                rows = active.nonzero().squeeze(1)
                t = max(1.0 - step / block_steps, 0.0)
                s = max(1.0 - (step + 1) / block_steps, 0.0)
                reveal_rows = strategy.select(
                    RevealStep(
                        masked=masked[rows],
                        scores=scores[rows],
                        counts=counts[rows, step] if counts is not None else None,
                        t=t,
                        s=s,
                        rows=rows,
                        randomness=randomness,
                    )
                )
                reveal = torch.zeros_like(masked)
                reveal[rows] = reveal_rows & masked[rows]
                canvas[:, start:end] = torch.where(reveal, candidates, canvas[:, start:end])
                stale |= reveal.any(1)
                steps_per_block[rows, block_index] += 1
                step += 1
                done = self._finish_rows(canvas, fill, real, done, positions, eos, pad_token_id, mask_token_id)
                masked = (canvas[:, start:end] == mask_token_id) & real[:, start:end]

                if history is not None:
                    history.append(canvas.clone())
                if streamer is not None and hasattr(streamer, "put_draft"):
                    draft = canvas.clone()
                    draft[:, start:end] = torch.where(masked, candidates, canvas[:, start:end])
                    streamer.put_draft(value=draft[:, prompt_length:].cpu())
            if streamer is not None and end > streamed_until:
                streamer.put(canvas[:, streamed_until:end].cpu())
                streamed_until = end

        if streamer is not None:
            if streamed_until < length:
                streamer.put(canvas[:, streamed_until:].cpu())
            streamer.end()
        if not config.return_dict_in_generate:
            return canvas
        return DiffusionGenerationOutput(
            sequences=canvas,
            nfe=nfe,
            steps_per_block=steps_per_block,
            history=tuple(history) if history is not None else None,
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
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise ValueError(
                "`input_ids` must be a 2-D LongTensor (batch, length); add a batch dimension with input_ids[None] "
                "or tokenize with return_tensors='pt'."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has shape "
                f"{tuple(input_ids.shape)}; pass the mask the tokenizer returned with these ids."
            )
        attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.long)
        if input_ids.shape[1] > 0 and bool((attention_mask[:, -1] == 0).any()):
            logger.warning_once(
                "A right-padded prompt was detected: the generated tokens will follow the padding. Use "
                "tokenizer.padding_side = 'left' for batched prompts."
            )
        if config.num_return_sequences > 1:
            input_ids = input_ids.repeat_interleave(config.num_return_sequences, dim=0)
            attention_mask = attention_mask.repeat_interleave(config.num_return_sequences, dim=0)
        return input_ids, attention_mask

    def _resolve_mask_token_id(self, config) -> int:
        mask_token_id = config.mask_token_id
        if mask_token_id is None:
            mask_token_id = getattr(self.config, "mask_token_id", None)
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
    def _plan_blocks(fill, prompt_length, max_new_tokens, block_length) -> list[tuple[int, int]]:
        """Canvas spans [start, end) decoded one after the other; block 0 starts at the first [MASK] of the batch."""
        length = prompt_length + max_new_tokens
        masked_positions = fill.any(0).nonzero()
        first = int(masked_positions[0]) if masked_positions.numel() > 0 else prompt_length
        if block_length is None or max_new_tokens == 0:
            return [(first, length)]
        ends = list(range(prompt_length + block_length, length + 1, block_length))
        return list(zip([first] + ends[:-1], ends))

    def _check_diffusion_setup(self, config, canvas, max_new_tokens, blocks, steps, denoiser) -> bool:
        """Input-dependent checks, before any forward; returns whether the block cache is used."""
        check_block_length(config.block_length, max_new_tokens)  # max_new_tokens may come from max_length here
        if steps < len(blocks):
            raise ValueError(
                f"steps={steps} is fewer than the {len(blocks)} blocks; every block needs at least one step. Raise "
                "`steps` or `block_length`."
            )
        max_positions = getattr(self.config, "max_position_embeddings", None)
        if max_positions is not None and canvas.shape[1] > max_positions:
            raise ValueError(
                f"Prompt + max_new_tokens = {canvas.shape[1]} positions, but the model accepts at most "
                f"{max_positions} (max_position_embeddings). Shorten the prompt or lower max_new_tokens."
            )
        if config.cache == "none":
            return False
        if not denoiser.supports_cache:
            raise ValueError(
                f"cache={config.cache!r} needs a denoiser adapter that runs a block cache (such as "
                f"MDMForMaskedGeneration's); {type(self).__name__} uses the {denoiser.name!r} adapter, which does not. "
                "Use cache='none'."
            )
        return True

    def _resolve_eos_and_pad(self, config, device):
        if config.eos_token_id is None:
            return None, config.pad_token_id
        eos = torch.tensor(config.eos_token_id, device=device).reshape(-1)
        pad_token_id = config.pad_token_id
        if pad_token_id is None:
            pad_token_id = int(eos[0])
            logger.warning_once(
                f"`pad_token_id` is not set: positions after EOS are filled with eos ({pad_token_id})."
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

    @staticmethod
    def _diffusion_logits_processors(config, logits_processor) -> LogitsProcessorList:
        """The caller's processors, then (when sampling) transformers' temperature, top-k and top-p warpers."""
        processors = LogitsProcessorList(logits_processor or [])
        if config.do_sample:
            if config.temperature is not None and config.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(config.temperature))
            if config.top_k:
                processors.append(TopKLogitsWarper(config.top_k))
            if config.top_p is not None and config.top_p < 1.0:
                processors.append(TopPLogitsWarper(config.top_p))
        return processors

    def _denoiser_logits(self, denoiser, canvas, attention_mask, position_ids, rows, keep, block, cache, refresh):
        """Logits (len(rows), len(keep), vocab) at canvas positions `keep` (inside `block`) for batch rows `rows`."""
        batch_size = canvas.shape[0]
        if rows.numel() != batch_size:
            canvas, attention_mask, position_ids = canvas[rows], attention_mask[rows], position_ids[rows]
        return denoiser.logits(canvas, attention_mask, position_ids, keep, block, cache, refresh, rows, batch_size)

    @staticmethod
    def _propose(logits, row_canvas, processors, noise, strategy, mask_token_id):
        """Candidates x̂ ~ p(. | x_t) (drawn with `noise`; the argmax when it is None) and the strategy's scores."""
        num_rows, width, vocab = logits.shape
        logits = logits.float()
        logits[..., mask_token_id] = float("-inf")
        if len(processors) > 0:
            row_ids = row_canvas.unsqueeze(1).expand(-1, width, -1).reshape(num_rows * width, -1)
            logits = processors(row_ids, logits.reshape(num_rows * width, vocab)).view(num_rows, width, vocab)
        probs = logits.softmax(-1)  # once per forward, shared by sampling and the strategy's score
        candidates = probs.argmax(-1) if noise is None else sample_categorical(probs, noise)
        return candidates, strategy.score(probs, candidates)

    @staticmethod
    def _finish_rows(canvas, fill, real, done, positions, eos, pad_token_id, mask_token_id) -> torch.BoolTensor:
        """Rows with nothing left to fill, or that revealed EOS and everything before it (then pad after EOS)."""
        length = canvas.shape[1]
        first_masked = torch.where((canvas == mask_token_id) & real, positions, length).min(1).values
        finished = done | (first_masked == length)
        if eos is None:
            return finished
        first_eos = torch.where(torch.isin(canvas, eos) & fill, positions, length).min(1).values
        stopped = ~done & (first_eos < first_masked)
        # No host sync on stopped.any(): filling an all-false mask is a no-op.
        canvas.masked_fill_(fill & stopped[:, None] & (positions[None, :] > first_eos[:, None]), pad_token_id)
        return finished | stopped

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
        """`from_pretrained` hook: load `generation_config.json` as a `DiffusionGenerationConfig` when there is one."""
        if generation_config is not None:
            self.generation_config = _as_diffusion_config(generation_config)
        elif pretrained_model_name_or_path is not None:
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
            except OSError:
                logger.info(
                    "No generation_config.json found; using the generation config built from the model config."
                )


__all__ = ["DiffusionGenerationMixin"]
