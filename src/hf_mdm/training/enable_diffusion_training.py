"""Let a stock masked LM (BERT, RoBERTa, ModernBERT, ...) train on the masked-diffusion objective, stock Trainer.

Trainer calls `model(**batch)` and then `compute_loss_func(outputs, labels, num_items_in_batch)`: the loss never sees
the batch. Stock forwards swallow the collator's `t`, so two hooks move `t`, `mask_probability` and `attention_mask`
(without the prompt, when the batch has `prompt_mask`: the tokens the loss divides by) from the forward's keyword
arguments onto its outputs, where `masked_diffusion_loss` reads them. The checkpoint is untouched.

Trainer's default `remove_unused_columns=True` keeps only the dataset columns the model's forward names, read with
`inspect.signature(model.forward)`; the instance's `forward` is therefore the class's own with the prompt columns of
instruction tuning added to its signature (see `hf_mdm.masked_diffusion_objective`), so they reach
`DataCollatorForMaskedDiffusion`.
"""

import inspect
import types

import torch

from ..masked_diffusion_objective import PROMPT_COLUMNS, check_prompt_not_scored, loss_token_mask, prompt_tokens


_HOOKED = "_hf_mdm_diffusion_training_hooks"


def forward_naming_prompt_columns(model_class: type):
    """`model_class.forward`, unchanged, under a signature that also names the prompt columns (keyword-only)."""
    signature = inspect.signature(model_class.forward)
    parameters = list(signature.parameters.values())
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for name in PROMPT_COLUMNS
        if name not in signature.parameters
    ]
    position = next((i for i, p in enumerate(parameters) if p.kind is inspect.Parameter.VAR_KEYWORD), len(parameters))

    def forward(self, *args, **kwargs):
        return model_class.forward(self, *args, **kwargs)

    forward.__signature__ = signature.replace(parameters=parameters[:position] + extra + parameters[position:])
    forward.__doc__ = model_class.forward.__doc__
    return forward


def enable_diffusion_training(model: torch.nn.Module) -> torch.nn.Module:
    """Return `model` with hooks that copy `t` and `attention_mask` from its inputs onto its outputs, and a forward
    whose signature names the prompt columns, so that the Trainer keeps them for the collator (idempotent)."""
    if getattr(model, _HOOKED, None) is not None:
        return model
    stash: dict = {}

    def take_diffusion_inputs(module, args, kwargs):
        columns = {name: kwargs.pop(name, None) for name in PROMPT_COLUMNS}
        labels, attention_mask = kwargs.get("labels"), kwargs.get("attention_mask")
        stash["t"] = kwargs.pop("t", None)
        stash["mask_probability"] = kwargs.pop("mask_probability", None)
        inputs = args[0] if args else kwargs.get("input_ids")
        inputs = inputs if inputs is not None else kwargs.get("inputs_embeds")
        shape = inputs.shape[:2] if inputs is not None else None
        prompt = prompt_tokens(shape, attention_mask, **columns)
        check_prompt_not_scored(labels, prompt)
        stash["attention_mask"] = loss_token_mask(attention_mask, prompt)  # what the loss divides by
        return args, kwargs

    def attach_diffusion_inputs(module, args, kwargs, output):
        if isinstance(output, dict):
            output["t"] = stash.pop("t", None)
            output["mask_probability"] = stash.pop("mask_probability", None)
            output["attention_mask"] = stash.pop("attention_mask", None)
        return output

    handles = (
        model.register_forward_pre_hook(take_diffusion_inputs, with_kwargs=True),
        model.register_forward_hook(attach_diffusion_inputs, with_kwargs=True),
    )
    model.forward = types.MethodType(forward_naming_prompt_columns(type(model)), model)
    setattr(model, _HOOKED, handles)
    return model
