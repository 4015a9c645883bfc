"""Load a PEFT adapter of a masked diffusion LM from its folder, as `AutoPeftModelForCausalLM` does for causal LMs.

`get_peft_model(model, LoraConfig(task_type="CAUSAL_LM"))` wraps an `MDMForMaskedGeneration` in PEFT's
`PeftModelForCausalLM`; its `save_pretrained` writes adapter_config.json with the base model's folder
(`base_model_name_or_path`). PEFT's `AutoPeftModelForCausalLM` then loads that base with `AutoModelForCausalLM`, which
masked diffusion LMs are not registered with (they are not causal LMs: a causal-LM loader must not take them). This
class loads it with `AutoModelForMaskedLM` instead, where hf-mdm registers its model and the LLaDA and Dream formats.
Needs `pip install hf-mdm[peft]`.
"""

from peft import AutoPeftModelForCausalLM
from transformers import AutoModelForMaskedLM


class AutoPeftModelForMaskedLM(AutoPeftModelForCausalLM):
    """`AutoPeftModelForMaskedLM.from_pretrained(adapter_dir)`: the base model from `AutoModelForMaskedLM`, its
    adapter as a `PeftModelForCausalLM` (task_type="CAUSAL_LM"); every argument is PEFT's."""

    _target_class = AutoModelForMaskedLM  # PEFT's switch for the Auto class the base model loads with


__all__ = ["AutoPeftModelForMaskedLM"]
