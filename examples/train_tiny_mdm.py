"""Train a tiny masked diffusion LM with the stock Trainer on an embedded corpus, print its loss curve and samples.

Needs no download: the corpus is generated from a small grammar, the tokenizer is built with `tokenizers`.
Runs in well under a minute on 2 CPU cores.

    python examples/train_tiny_mdm.py [--steps 300]
"""

import argparse
import random

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Trainer, TrainingArguments

from hf_mdm import DataCollatorForMaskedDiffusion, MDMConfig, MDMForMaskedGeneration


SUBJECTS = ["the cat", "the dog", "a bird", "my friend", "the teacher"]
VERBS = ["sees", "likes", "follows", "finds"]
OBJECTS = ["the ball", "a tree", "the river", "an apple", "the house"]
ENDINGS = ["today .", "again .", "at night .", "in the park ."]


def corpus(num: int, seed: int = 0) -> list[str]:
    """Sentences '<subject> <verb> <object> <ending>' drawn uniformly from the grammar above."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(part) for part in (SUBJECTS, VERBS, OBJECTS, ENDINGS)) for _ in range(num)]


def build_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    words = sorted({word for text in texts for word in text.split()})
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[MASK]", "[EOS]"] + words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]", eos_token="[EOS]"
    )


def loss_curve(losses: list[float], buckets: int = 12, width: int = 40) -> str:
    size = max(1, len(losses) // buckets)
    means = [sum(losses[i : i + size]) / len(losses[i : i + size]) for i in range(0, len(losses), size)]
    top = max(means)
    return "\n".join(
        f"  steps {i * size + 1:>4}-{min((i + 1) * size, len(losses)):>4} | "
        f"{'#' * max(1, round(width * m / top))} {m:.3f}"
        for i, m in enumerate(means)
    )


def build_model(tokenizer, **config_fields) -> MDMForMaskedGeneration:
    """The tiny MDM of this example over `tokenizer` (seeded); `config_fields` add to its MDMConfig."""
    torch.manual_seed(0)
    return MDMForMaskedGeneration(
        MDMConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            mask_token_id=tokenizer.mask_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **config_fields,
        )
    )


def train(model, tokenizer, texts, collator, steps: int, output_dir: str) -> None:
    """The stock Trainer on `texts` with `collator`; prints the loss curve and saves model and tokenizer."""
    dataset = Dataset.from_dict({"text": texts}).map(lambda batch: tokenizer(batch["text"]), batched=True)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=output_dir,
            max_steps=steps,
            per_device_train_batch_size=32,
            learning_rate=3e-3,
            warmup_steps=20,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=0,
        ),
        train_dataset=dataset,
        data_collator=collator,
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(f"\nPer-token NELBO (exp of it bounds the perplexity) over {len(losses)} steps:")
    print(loss_curve(losses))
    trainer.save_model(output_dir)
    tokenizer.save_pretrained(output_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--output-dir", default="outputs/tiny-mdm")
    args = parser.parse_args()

    texts = corpus(2000)
    tokenizer = build_tokenizer(texts)
    model = build_model(tokenizer)
    train(model, tokenizer, texts, DataCollatorForMaskedDiffusion(tokenizer), args.steps, args.output_dir)

    model.eval()
    prompts = ["the cat", "my friend likes"]
    tokenizer.padding_side = "left"
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    for steps in (1, 6):
        sequences = model.generate(**inputs, max_new_tokens=6, steps=steps, strategy="confidence")
        print(f"\nSamples, 6 new tokens in {steps} step(s), confidence strategy:")
        for text in tokenizer.batch_decode(sequences, skip_special_tokens=True):
            print(f"  {text}")
    print(f"\nSaved model and tokenizer to {args.output_dir}")


if __name__ == "__main__":
    main()
