"""The lm-evaluation-harness model type `hf-mdm` (the `[eval]` extra): masked diffusion LMs under `lm_eval`.

    import hf_mdm.integrations.lm_eval_harness  # registers "hf-mdm" with lm-eval
    lm_eval.simple_evaluate(model="hf-mdm", model_args="pretrained=DIR,steps=64,strategy=confidence", tasks=[...])

From a shell, `python -m hf_mdm.integrations.lm_eval_harness` is lm-eval's own command line (`lm_eval run ...`, every
flag as documented by lm-eval) with `hf-mdm` registered (lm-eval discovers no model types from other packages) and
the Monte Carlo row added to its table and JSON (`add_monte_carlo_errors`).

- `loglikelihood`: the Monte Carlo masked-diffusion bound of `evaluation.monte_carlo_loglikelihood` (`mc_num` draws,
  `mc_groups` groups for the standard error); lm-eval gets the estimate, `standard_errors` keeps each request's error
  and `get_model_info` their per-task summary for lm-eval's results (`results["config"]["monte_carlo"]`).
- `loglikelihood_rolling`: the same bound over lm-eval's disjoint rolling windows of `max_length` tokens; the windows'
  estimates add up, their errors in quadrature.
- `generate_until`: `model.generate()` with the model arguments' step budget, strategy and block length (and any other
  `DiffusionGenerationConfig` field), cut at the first `until` string.

A diffusion LM that brings its own decoder (a DiffusionGemma folder or instance, an `LLaDA2Pipeline`: see
`hf_mdm.own_decoders`) generates through its adapter: `steps` (required) is the budget of each request's `max_gen_toks`
tokens, `block_length` the block size where the decoder takes one, the other model_args are the decoder's options
and a task's sampling keys map to its own (`OwnDecoder.sampling_options`); every group of requests is checked before
the first generates. `nfe` counts the decoder's forwards. Log-likelihood requests are refused: such a decoder has no
masked-diffusion bound here.
"""

import copy
import math

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.evaluator import simple_evaluate as lm_eval_simple_evaluate
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging

from ..evaluation.monte_carlo_loglikelihood import monte_carlo_loglikelihood, request_seed
from ..generation import DiffusionGenerationMixin, enable_diffusion_generation
from ..model_loading import load_for_diffusion_generation
from ..model_source import check_model_source
from ..own_decoders import own_decoder_class
from ..tokenizer_checks import model_mask_token_id
from .lm_eval_model_arguments import check_model_arguments, usable_device


logger = logging.get_logger(__name__)

# The metric `add_monte_carlo_errors` adds to each task of lm-eval's results.
MONTE_CARLO_METRIC = "loglikelihood_mc_se"

# lm-eval's own generation keys that map onto `generate()` arguments; `until` and `max_gen_toks` are handled here.
GENERATION_KEYS = ("do_sample", "temperature", "top_p", "top_k")


def load_masked_lm(pretrained, tokenizer=None, dtype=None):
    """(model with `generate()`, tokenizer) from a folder or an instance: hf-mdm, LLaDA and Dream folders load as
    `MDMForMaskedGeneration`; any other folder as `AutoModelForMaskedLM` given `generate()`. A folder that does not
    exist is reported as such before anything is loaded."""
    if isinstance(pretrained, str):
        check_model_source(pretrained, "pretrained", required_file="config.json")
        tokenizer = pretrained if tokenizer is None else tokenizer
    elif not isinstance(pretrained, torch.nn.Module):
        raise TypeError(f"pretrained must be a folder or a model instance, got {type(pretrained).__name__}.")
    elif dtype is not None:
        raise ValueError("dtype applies to a folder being loaded; convert the instance yourself (model.to(dtype)).")
    elif tokenizer is None:
        raise ValueError("A model instance needs its tokenizer: pass model_args tokenizer=<tokenizer or folder>.")
    if isinstance(tokenizer, str):
        check_model_source(tokenizer, "tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    elif not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise TypeError(f"tokenizer must be a folder or a tokenizer instance, got {type(tokenizer).__name__}.")
    if isinstance(pretrained, str):
        return load_for_diffusion_generation(pretrained, tokenizer, **({"dtype": dtype} if dtype else {})), tokenizer
    if isinstance(pretrained, DiffusionGenerationMixin):
        return pretrained, tokenizer
    return enable_diffusion_generation(pretrained, tokenizer), tokenizer  # its special tokens are never generated


@register_model("hf-mdm")
class MaskedDiffusionLM(TemplateLM):
    """lm-eval's `LM` interface over a masked diffusion LM (hf-mdm, LLaDA/Dream folders, stock masked LMs).

    Args (lm-eval `--model_args`):
        pretrained: model folder, or a model instance (Python only).
        tokenizer: tokenizer folder or instance; default `pretrained`'s folder.
        steps, strategy, block_length: the step budget of `generate_until` (`generate()`'s arguments).
        mc_num: Monte Carlo draws per log-likelihood request (default 128, as LLaDA and Dream evaluate).
        mc_groups: independent groups of draws the standard error comes from (default 8).
        batch_size: requests per forward (lm-eval's `--batch_size`); a log-likelihood forward holds
            `batch_size * (mc_num + 1)` rows unless `mc_batch_size` caps it.
        mc_batch_size: at most this many rows per log-likelihood forward.
        max_length: longest canvas; default the model's `max_position_embeddings` (else the tokenizer's limit).
        max_gen_toks: new tokens when a task sets none (default 256).
        device, dtype: where and in which dtype to run; a device this machine lacks (lm-eval's command line passes
            `cuda:0` by default) falls back to CUDA if any, else the CPU, with a warning.
        seed: seed of the Monte Carlo draws and of sampled generation (each request's own, from its tokens).
        max_batch_size: accepted because lm-eval's command line passes it; only meaningful for `batch_size=auto`,
            which is refused.
        other keys: the `DiffusionGenerationConfig` fields `generate()` reads (e.g. `cache=prefix`,
            `threshold=0.9`); every argument is checked by `check_model_arguments` before the model loads.

    After a run, `standard_errors` maps each scored (context, continuation) or (string,) to its Monte Carlo standard
    error in nats, and `nfe` / `generated_rows` / `decoded_tokens` count the forward passes, rows and decoded tokens of
    `generate_until`.
    """

    backend = "causal"  # context and continuation are encoded together, then split (lm-eval's `_encode_pair`)

    def __init__(
        self,
        pretrained=None,
        tokenizer=None,
        steps: int | None = None,
        strategy: str | None = None,
        block_length: int | None = None,
        mc_num: int = 128,
        mc_groups: int = 8,
        batch_size: int | str = 1,
        mc_batch_size: int | None = None,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        device: str | None = None,
        dtype: str | None = None,
        seed: int = 0,
        max_batch_size: int | None = None,
        **generation_kwargs,
    ):
        super().__init__()
        if pretrained is None:
            raise ValueError("hf-mdm needs model_args pretrained=<model folder> (in Python, a folder or a model).")
        if isinstance(pretrained, str):
            check_model_source(pretrained, "pretrained", required_file="config.json")
        own = own_decoder_class(pretrained)
        fields = {"steps": steps, "strategy": strategy, "block_length": block_length, **generation_kwargs}
        arguments, generation = check_model_arguments(
            {"mc_num": mc_num, "mc_groups": mc_groups, "batch_size": batch_size, "mc_batch_size": mc_batch_size,
             "max_length": max_length, "max_gen_toks": max_gen_toks, "device": device, "dtype": dtype, "seed": seed,
             "max_batch_size": max_batch_size},
            {} if own else fields,  # a model's own decoder checks its own options (`_load_own_decoder`)
        )  # fmt: skip
        self._device = usable_device(device)
        self.max_gen_toks, self.decoder = max_gen_toks, None
        if own is not None:
            self._load_own_decoder(own, pretrained, tokenizer, dtype, fields)
        else:
            self.model, self.tokenizer = load_masked_lm(pretrained, tokenizer, dtype)
            self.model = self.model.to(self._device).eval()
            self.generation_config = copy.deepcopy(self.model.generation_config)
            self.generation_config.update(**generation)
            self.generation_config.validate()
            self.mask_token_id = model_mask_token_id(self.model, self.generation_config, self.tokenizer)
            if self.mask_token_id is None:
                raise ValueError(
                    "Neither the model nor the tokenizer has a [MASK] token; add mask_token_id to config.json."
                )
        self.mc_num, self.mc_groups, self.seed = mc_num, mc_groups, seed
        self.batch_size = arguments["batch_size"]
        self.mc_batch_size = min(self.batch_size * (mc_num + 1), mc_batch_size or math.inf)
        self.max_length = max_length or self._default_max_length()
        self.standard_errors: dict[tuple, float] = {}
        self.task_standard_errors: dict[str, dict[tuple, float]] = {}
        self.nfe = 0
        self.decoded_tokens = 0
        self.generated_rows = 0

    def _load_own_decoder(self, adapter, pretrained, tokenizer, dtype, fields: dict) -> None:
        """A model with its own decoder: `self.decoder` (its adapter), `self.model` (its weights) and the cell of
        every request (strategy, steps, block size, options), whose options are checked here."""
        if isinstance(pretrained, str):
            pretrained = adapter.from_pretrained(pretrained, **({"dtype": dtype} if dtype else {}))
            tokenizer = tokenizer or getattr(pretrained, "name_or_path", None)
        elif dtype is not None:
            raise ValueError(
                "dtype applies to a folder being loaded; convert the instance yourself (model.to(dtype))."
            )
        tokenizer = tokenizer if tokenizer is not None else getattr(pretrained, "tokenizer", None)
        if tokenizer is None:
            raise ValueError("A model instance needs its tokenizer: pass model_args tokenizer=<tokenizer or folder>.")
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.decoder = adapter(pretrained.to(self._device))
        self.model = self.decoder.module.eval()
        fields = {key: value for key, value in fields.items() if value is not None}
        steps = fields.pop("steps", None)
        if steps is None:
            raise ValueError(
                f"The {adapter.name!r} decoder needs model_args steps=N: the step budget of each request's "
                "max_gen_toks tokens."
            )
        self.own_cell = dict(strategy=fields.pop("strategy", self.decoder.strategy), steps=steps,
                             block_size=fields.pop("block_length", None), options=fields)  # fmt: skip
        self.decoder.check_options(self.own_cell["strategy"], fields)  # the length comes with each task
        own, asked = self.decoder.block_size(), self.own_cell["block_size"]
        if own is not None and asked not in (None, own):
            raise ValueError(
                f"The {adapter.name!r} decoder refines the model's own blocks of {own} tokens, not "
                f"block_length={asked}: pass block_length={own} or leave it unset."
            )

    def _check_own_cell(self, max_new_tokens: int, overrides: dict) -> dict:
        """The decoder's options for requests of `max_new_tokens` tokens with the task's sampling `overrides`,
        after the decoder's checks (a ValueError naming the fix)."""
        cell = self.own_cell
        options = {**cell["options"], **self.decoder.sampling_options(overrides)}
        block_size = self.decoder.block_size() or cell["block_size"] or max_new_tokens
        self.decoder.check(cell["strategy"], max_new_tokens, cell["steps"], block_size, options)
        return options

    def _default_max_length(self) -> int:
        config = self.model.config
        for name in ("max_position_embeddings", "max_sequence_length", "n_positions"):
            if getattr(config, name, None):
                return int(getattr(config, name))
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if limit and limit < 1e9 else 2048

    # ---- tokenization (TemplateLM) -------------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        eos = self.tokenizer.eos_token_id
        return eos if eos is not None else self.tokenizer.sep_token_id

    @property
    def prefix_token_id(self) -> int:
        for token_id in (self.tokenizer.bos_token_id, self.tokenizer.cls_token_id, self.eot_token_id):
            if token_id is not None:
                return token_id
        raise ValueError("The tokenizer has no BOS, CLS or EOS token to condition an empty context on.")

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tokenizer.encode(string, add_special_tokens=bool(add_special_tokens))

    def tok_decode(self, tokens) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    # ---- log-likelihood ------------------------------------------------------------------------------------------
    def _estimate(self, pairs: list[tuple[list[int], list[int]]]):
        return monte_carlo_loglikelihood(
            self.model,
            pairs,
            self.mask_token_id,
            num_samples=self.mc_num,
            num_groups=self.mc_groups,
            batch_size=self.mc_batch_size,
            seed=self.seed,
        )

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        results = super().loglikelihood(requests, disable_tqdm)
        self._record_task_errors(requests)
        return results

    def _refuse_own_decoder_loglikelihood(self) -> None:
        if self.decoder is not None:
            raise ValueError(
                f"{type(self.decoder.model).__name__} brings its own decoder ({self.decoder.name!r}): hf-mdm measures "
                "its generation (generate_until tasks); it has no masked-diffusion log-likelihood bound. Run "
                "generate_until tasks with it."
            )

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        self._refuse_own_decoder_loglikelihood()
        pairs = []
        for (context, continuation), context_ids, continuation_ids in requests:
            if len(continuation_ids) + 1 > self.max_length:
                raise ValueError(
                    f"A continuation of {len(continuation_ids)} tokens does not fit max_length={self.max_length} "
                    "with any context; raise max_length in model_args (the bound would be of a truncated text)."
                )
            pairs.append((context_ids[-(self.max_length - len(continuation_ids)) :], continuation_ids))
        estimates = self._estimate(pairs)
        results = []
        for (strings, _, _), estimate in zip(requests, estimates):
            self.standard_errors[strings] = estimate.standard_error
            self.cache_hook.add_partial("loglikelihood", strings, (estimate.value, estimate.is_greedy))
            results.append((estimate.value, estimate.is_greedy))
        self._log_errors([estimate.standard_error for estimate in estimates])
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        self._refuse_own_decoder_loglikelihood()
        windows, owners = [], []
        for index, request in enumerate(requests):
            tokens = self.tok_encode(request.args[0])
            for pair in get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length - 1, 1):
                windows.append(make_disjoint_window(pair))
                owners.append(index)
        estimates = self._estimate(windows)
        values, variances = [0.0] * len(requests), [0.0] * len(requests)
        for owner, estimate in zip(owners, estimates):
            values[owner] += estimate.value
            variances[owner] += estimate.standard_error**2
        for request, value, variance in zip(requests, values, variances):
            self.standard_errors[request.args] = math.sqrt(variance)
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, value)
        self._log_errors([math.sqrt(variance) for variance in variances])
        self._record_task_errors(requests)
        return values

    def _record_task_errors(self, requests) -> None:
        """File each lm-eval request's standard error under its task and (document, choice)."""
        for request in requests:
            if request.task_name is not None:
                errors = self.task_standard_errors.setdefault(request.task_name, {})
                errors[request.doc_id, request.idx] = self.standard_errors[request.args]

    def get_model_info(self) -> dict:
        """What `lm_eval.simple_evaluate` adds to `results["config"]`: the model's size and dtype, and under
        `monte_carlo` the estimator's settings and, per task, the Monte Carlo standard errors of its log-likelihood
        requests in nats (`requests`, `rms`, `max`; `add_monte_carlo_errors` puts `rms` into the results table)."""
        tasks = {}
        for task, errors in sorted(self.task_standard_errors.items()):
            values = list(errors.values())
            rms = math.sqrt(sum(error**2 for error in values) / len(values))
            tasks[task] = {"requests": len(values), "rms": rms, "max": max(values)}
        return {
            "model_num_parameters": sum(parameter.numel() for parameter in self.model.parameters()),
            "model_dtype": str(getattr(self.model, "dtype", "")),
            "monte_carlo": {"mc_num": self.mc_num, "mc_groups": self.mc_groups, "seed": self.seed, "tasks": tasks},
        }

    @staticmethod
    def _log_errors(errors: list[float]) -> None:
        if errors:
            logger.info(
                f"hf-mdm: {len(errors)} Monte Carlo log-likelihoods; standard error mean "
                f"{sum(errors) / len(errors):.4f}, max {max(errors):.4f} nats (per request in `standard_errors`)."
            )

    # ---- generation ----------------------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        results = [None] * len(requests)
        # Requests with the same generation arguments run together, `batch_size` at a time.
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(repr(sorted(request.args[1].items())), []).append(index)
        # every group's arguments are checked before the first request generates
        arguments = [self._generation_arguments(dict(requests[indices[0]].args[1])) for indices in groups.values()]
        if self.decoder is not None:
            arguments = [
                (until, length, self._check_own_cell(length, overrides)) for until, length, overrides in arguments
            ]
        progress = tqdm(total=len(requests), disable=disable_tqdm, desc="hf-mdm generate_until")
        for indices, (until, max_new_tokens, overrides) in zip(groups.values(), arguments):
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                texts = self._generate([requests[i].args[0] for i in batch], max_new_tokens, overrides)
                for index, text in zip(batch, texts):
                    for stop in until:
                        text = text.split(stop)[0] if stop else text
                    results[index] = text
                    self.cache_hook.add_partial("generate_until", requests[index].args, text)
                progress.update(len(batch))
        progress.close()
        return results

    def _generation_arguments(self, gen_kwargs: dict):
        until = gen_kwargs.pop("until", None) or [self.tok_decode([self.eot_token_id])]
        until = [until] if isinstance(until, str) else list(until)
        max_new_tokens = int(gen_kwargs.pop("max_gen_toks", self.max_gen_toks))
        unknown = sorted(set(gen_kwargs) - set(GENERATION_KEYS))
        if unknown:
            raise ValueError(
                f"The task's generation_kwargs {unknown} have no meaning for masked diffusion generate(); hf-mdm "
                f"understands until, max_gen_toks and {', '.join(GENERATION_KEYS)}."
            )
        if gen_kwargs.get("temperature") == 0:
            gen_kwargs = {"do_sample": False}  # lm-eval's spelling of greedy
        return until, max_new_tokens, gen_kwargs

    def _generate(self, contexts: list[str], max_new_tokens: int, overrides: dict) -> list[str]:
        if max_new_tokens >= self.max_length:
            raise ValueError(
                f"max_gen_toks={max_new_tokens} leaves no room for a prompt in max_length={self.max_length}; lower "
                "max_gen_toks or raise max_length in model_args."
            )
        room = self.max_length - max_new_tokens  # prompts are cut on the left to fit the canvas
        encoded = [(self.tok_encode(context) or [self.prefix_token_id])[-room:] for context in contexts]
        width = max(map(len, encoded))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eot_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=self.model.device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
        if self.decoder is not None:
            cell = self.own_cell
            block_size = self.decoder.block_size() or cell["block_size"] or max_new_tokens
            sequences, forwards = self.decoder.decode(input_ids, attention_mask.to(self.model.device), cell["steps"],
                                                      max_new_tokens, block_size, None,
                                                      request_seed(self.seed, encoded[0]), **overrides)  # fmt: skip
            self.nfe += int(forwards.sum())
            self.decoded_tokens += len(contexts) * max_new_tokens  # an own decoder fills its whole canvas
            self.generated_rows += len(contexts)
            return self.tokenizer.batch_decode(sequences, skip_special_tokens=True)
        generators = [torch.Generator(self.model.device).manual_seed(request_seed(self.seed, ids)) for ids in encoded]
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask.to(self.model.device),
            generation_config=self.generation_config,
            generator=generators,
            max_new_tokens=max_new_tokens,
            return_dict_in_generate=True,
            **overrides,
        )
        self.nfe += int(output.nfe.sum())
        self.decoded_tokens += int(output.num_decoded_tokens.sum())
        self.generated_rows += len(contexts)
        return self.tokenizer.batch_decode(output.sequences[:, width:], skip_special_tokens=True)


def add_monte_carlo_errors(results: dict) -> dict:
    """Add to `lm_eval.simple_evaluate`'s results, for every task whose log-likelihoods hf-mdm estimated, the metric
    `loglikelihood_mc_se` (the root mean square of their Monte Carlo standard errors, nats), so that lm-eval's table
    and JSON show it; `results["config"]["monte_carlo"]` (from `get_model_info`) has the per-task details. Returns
    `results`, changed in place. The command line `python -m hf_mdm.integrations.lm_eval_harness` does this itself.
    """
    tasks = results.get("config", {}).get("monte_carlo", {}).get("tasks", {})
    for task, summary in tasks.items():
        if task in results.get("results", {}):
            results["results"][task][f"{MONTE_CARLO_METRIC},none"] = summary["rms"]
            results.setdefault("higher_is_better", {}).setdefault(task, {})[MONTE_CARLO_METRIC] = False
    return results


def simple_evaluate(*args, **kwargs) -> dict | None:
    """`lm_eval.simple_evaluate` followed by `add_monte_carlo_errors` (what this module's command line runs)."""
    results = lm_eval_simple_evaluate(*args, **kwargs)
    return results if results is None else add_monte_carlo_errors(results)


__all__ = ["MaskedDiffusionLM", "add_monte_carlo_errors", "load_masked_lm", "simple_evaluate"]


if __name__ == "__main__":
    import lm_eval.evaluator
    from lm_eval.__main__ import cli_evaluate

    # lm-eval's command line calls lm_eval.simple_evaluate, which resolves to lm_eval.evaluator's: this process
    # routes it through `simple_evaluate` above, so that the printed table and the saved JSON hold the Monte Carlo row.
    lm_eval.evaluator.simple_evaluate = simple_evaluate
    cli_evaluate()
