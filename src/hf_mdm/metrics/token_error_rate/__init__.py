"""The `token_error_rate` evaluate module: `evaluate.load(hf_mdm.metrics.path("token_error_rate"))`."""
