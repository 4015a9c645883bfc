"""Integrations with other libraries, each an optional extra imported on its own (nothing here is imported by
`import hf_mdm`): `lm_eval_harness` (lm-evaluation-harness, `pip install hf-mdm[eval]`), and
`lm_eval_model_arguments`, the checks of its model arguments, which need no lm-eval (so `hf-mdm eval` checks its
options before importing it)."""
