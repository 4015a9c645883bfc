"""The `sequence_error_rate` evaluate module: `evaluate.load(hf_mdm.metrics.path("sequence_error_rate"))`."""
