"""Generative perplexity: generated texts scored by a causal LM, batched, with a sliding window for long texts."""

import os

import datasets
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_mdm.metrics import inputs  # a module, not its classes: evaluate loads the first Metric class it finds


_DESCRIPTION = """
Generative perplexity: the perplexity a causal language model (`AutoModelForCausalLM`, an instance or a local path)
assigns to generated texts,

    perplexity(text) = exp( -1/(n-1) * sum_{i >= 1} log q(t_i | t_<i) )

over the text's tokens t_0..t_{n-1} (t_0 = <bos> when `add_start_token`). Texts longer than `max_length` are scored
with a sliding window: each window ends `stride` tokens after the previous one and every token is scored once, with
at least `max_length - stride` tokens of context. Windows of all texts are batched `batch_size` at a time.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: the texts to score.
    model: a causal LM instance, or the path of a local directory holding one (nothing is downloaded).
    tokenizer: its tokenizer; loaded from the model's directory when omitted.
    batch_size: windows per forward pass (default 8).
    max_length: window length in tokens (default: the model's max_position_embeddings, capped at 1024).
    stride: tokens scored per window (default max_length // 2); 1 <= stride < max_length.
    add_start_token: prepend the tokenizer's <bos> so the first token is scored too (default True).
Returns:
    perplexities (one per text), mean_perplexity, log_perplexity (token-weighted mean NLL, nats), num_tokens.
Examples:
    >>> gp = evaluate.load(hf_mdm.metrics.path("generative_perplexity"))
    >>> gp.compute(predictions=["0 1 2"], model="path/to/causal-lm")["mean_perplexity"]
"""


class GenerativePerplexity(inputs.CheckedInputsMetric):
    """exp(-1/(n-1) sum_i log q(t_i | t_<i)) of each text under a causal LM, with strided windows for long texts."""

    DESCRIPTION = _DESCRIPTION
    INPUTS_DESCRIPTION = _KWARGS_DESCRIPTION
    FEATURES = datasets.Features({"predictions": datasets.Value("string")})
    PREDICTION_KINDS = ("text",)

    def _compute(
        self, predictions, model=None, tokenizer=None, batch_size=8, max_length=None, stride=None, add_start_token=True
    ):
        batch_size = inputs.check_positive_int(self.name, "batch_size", batch_size)
        if not isinstance(add_start_token, bool):
            raise ValueError(f"add_start_token must be True or False, got {add_start_token!r}.")
        for name, value in (("max_length", max_length), ("stride", stride)):
            if value is not None:
                inputs.check_positive_int(self.name, name, value)
        model, tokenizer = _load(model, tokenizer)
        if max_length is None:
            max_length = min(getattr(model.config, "max_position_embeddings", None) or 1024, 1024)
        stride = max_length // 2 if stride is None else stride
        if not 1 <= stride < max_length:
            raise ValueError(f"Need 1 <= stride < max_length, got stride={stride}, max_length={max_length}.")
        texts = _encode(predictions, tokenizer, add_start_token)
        vocab_size = getattr(model.config, "vocab_size", None)
        outside = sorted({token for ids in texts for token in ids if vocab_size is not None and token >= vocab_size})
        if outside:
            raise ValueError(
                f"The tokenizer gives ids {outside[:5]} outside the model's vocabulary (vocab_size={vocab_size}): "
                "pass the tokenizer of this causal LM."
            )
        windows = [(index, *window) for index, ids in enumerate(texts) for window in _windows(ids, max_length, stride)]

        nll = torch.zeros(len(texts), dtype=torch.float64)
        model.eval()
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            for index, value in zip([w[0] for w in chunk], _window_nll([w[1:] for w in chunk], model)):
                nll[index] += value
        counts = torch.tensor([len(ids) - 1 for ids in texts], dtype=torch.float64)
        perplexities = (nll / counts).exp()
        return {
            "perplexities": perplexities.tolist(),
            "mean_perplexity": float(perplexities.mean()),
            "log_perplexity": float(nll.sum() / counts.sum()),
            "num_tokens": int(counts.sum()),
        }


def _load(model, tokenizer):
    if model is None:
        raise ValueError("generative_perplexity needs model=: a causal LM instance or a local directory holding one.")
    if isinstance(model, (str, os.PathLike)):
        if not os.path.isdir(model):
            raise ValueError(
                f"model={str(model)!r} is not a local directory. Download it first (e.g. `hf download <id> "
                "--local-dir <dir>`) and pass the directory, or pass a loaded model."
            )
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
        model = AutoModelForCausalLM.from_pretrained(model)
    if tokenizer is None:
        source = getattr(model, "name_or_path", "")
        if not source or not os.path.isdir(source):
            raise ValueError(
                "Pass tokenizer=: the model instance does not come from a local directory to load it from."
            )
        tokenizer = AutoTokenizer.from_pretrained(source)
    return model, tokenizer


def _encode(texts, tokenizer, add_start_token):
    start = []
    if add_start_token:
        if tokenizer.bos_token_id is None:
            raise ValueError(
                "The tokenizer has no <bos> token; pass add_start_token=False (the first token is then not scored)."
            )
        start = [tokenizer.bos_token_id]
    encoded = [start + tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    short = [i for i, ids in enumerate(encoded) if len(ids) < 2]
    if short:
        raise ValueError(
            f"Texts {short[:5]} have fewer than 2 tokens, so nothing can be scored; drop them"
            + ("" if add_start_token else " or pass add_start_token=True")
            + "."
        )
    return encoded


def _windows(ids, max_length, stride):
    """(window ids, number of leading context-only tokens) covering tokens 1..n-1 once each."""
    scored_from = 1
    while scored_from < len(ids):
        end = min(scored_from + stride, len(ids))
        begin = max(0, end - max_length)
        yield ids[begin:end], scored_from - begin
        scored_from = end


def _window_nll(windows, model):
    """Summed -log q(t_i | t_<i) over the scored tokens of each window (right-padded batch)."""
    width = max(len(ids) for ids, _ in windows)
    input_ids = torch.zeros(len(windows), width, dtype=torch.long)
    attention_mask = torch.zeros(len(windows), width, dtype=torch.long)
    labels = torch.full((len(windows), width), -100, dtype=torch.long)
    for row, (ids, context) in enumerate(windows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, context : len(ids)] = torch.tensor(ids[context:])
    with torch.no_grad():
        logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device)).logits
    targets = labels[:, 1:].to(logits.device)
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
    return nll.sum(-1).double().cpu().tolist()
