"""The `generative_perplexity` evaluate module: `evaluate.load(hf_mdm.metrics.path("generative_perplexity"))`."""
