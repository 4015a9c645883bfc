"""Integrations with other libraries, each an optional extra imported on its own (nothing here is imported by
`import hf_mdm`): `lm_eval_harness` (lm-evaluation-harness, `pip install hf-mdm[eval]`)."""
