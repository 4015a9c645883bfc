"""Let a stock masked LM (BERT, RoBERTa, ModernBERT, ...) train on the masked-diffusion objective, stock Trainer.

Trainer calls `model(**batch)` and then `compute_loss_func(outputs, labels, num_items_in_batch)`: the loss never sees
the batch. Stock forwards swallow the collator's `t`, so two hooks move `t` and `attention_mask` from the forward's
keyword arguments onto its outputs, where `masked_diffusion_loss` reads them. The checkpoint is untouched.
"""

import torch


_HOOKED = "_hf_mdm_diffusion_training_hooks"


def enable_diffusion_training(model: torch.nn.Module) -> torch.nn.Module:
    """Return `model` with hooks that copy `t` and `attention_mask` from its inputs onto its outputs (idempotent)."""
    if getattr(model, _HOOKED, None) is not None:
        return model
    stash: dict = {}

    def take_diffusion_inputs(module, args, kwargs):
        stash["t"] = kwargs.pop("t", None)
        stash["attention_mask"] = kwargs.get("attention_mask")
        return args, kwargs

    def attach_diffusion_inputs(module, args, kwargs, output):
        if isinstance(output, dict):
            output["t"] = stash.pop("t", None)
            output["attention_mask"] = stash.pop("attention_mask", None)
        return output

    handles = (
        model.register_forward_pre_hook(take_diffusion_inputs, with_kwargs=True),
        model.register_forward_hook(attach_diffusion_inputs, with_kwargs=True),
    )
    setattr(model, _HOOKED, handles)
    return model
