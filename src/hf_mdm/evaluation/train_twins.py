"""An MDM for a formal-language measurement and the stock `Trainer` run that trains it, shared by `hf-mdm demo` and
`train_research_models`; its autoregressive twin (same size, same data) is `train_autoregressive_baseline`.

The MDM is a LLaMA-style `MDMForMaskedGeneration` with feed-forward width 4 x hidden, positions for the longest
training sequence and the tokenizer's vocabulary and special ids; it minimises the masked-diffusion NELBO
E_t E_{x_t ~ q(x_t | x_0)} [ w(t) sum_{i masked} -log p(x_0^i | x_t) ] on batches of `DataCollatorForMaskedDiffusion`.
"""

from transformers import Trainer, TrainingArguments, set_seed

from ..configuration_mdm import MDMConfig
from ..modeling_mdm import MDMForMaskedGeneration
from ..training import DataCollatorForMaskedDiffusion


def twin_mdm_config(
    tokenizer,
    hidden_size: int,
    num_hidden_layers: int,
    num_attention_heads: int,
    max_position_embeddings: int,
    block_size: int | None = None,
) -> MDMConfig:
    """The MDM's configuration: the given size, feed-forward width 4 x `hidden_size`, the tokenizer's vocabulary and
    its [MASK], pad, bos and eos ids; `block_size` B makes it a block-diffusion model (None: bidirectional)."""
    return MDMConfig(
        block_size=block_size,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        **{
            name: getattr(tokenizer, name)
            for name in ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id")
        },
    )


def seeded_mdm(config: MDMConfig, seed: int) -> MDMForMaskedGeneration:
    """A new MDM initialised under `transformers.set_seed(seed)`. The Trainer seeds only when it is built, after the
    model, so a model built unseeded starts from other weights in every run (and every loss after differs)."""
    set_seed(seed)
    return MDMForMaskedGeneration(config)


def train_mdm(
    model, data, tokenizer, args: TrainingArguments, resume_from_checkpoint=None, t_interval=None
) -> Trainer:
    """Train `model` on `data` (column `input_ids`) with the stock `Trainer` and the masked-diffusion collator (on a
    block-diffusion model, one time per block of its `block_size`: the BD3-LM objective; `t_interval`: BD3-LM's
    clipped noise, t uniform on [low, high)); returns the trainer (its `state.log_history` holds the logged loss)."""
    collator = DataCollatorForMaskedDiffusion(
        tokenizer,
        schedule=getattr(model.config, "noise_schedule", "linear"),
        block_size=getattr(model.config, "block_size", None),
        t_interval=t_interval,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator)
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer
