"""`save_pretrained(remote_code=True)` folders load with trust_remote_code where hf-mdm cannot be imported."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.remote_code import flattened_sources

from .conftest import tiny_config


@pytest.mark.parametrize("block_size", [None, 2])
def test_exported_folder_loads_without_hf_mdm(tmp_path, block_size):
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(tiny_config(block_size=block_size)).eval()
    model.save_pretrained(tmp_path / "model", remote_code=True)
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_mdm.MDMForMaskedGeneration"
    ids = torch.arange(5, 12)[None]
    torch.save(model(ids).logits, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_mdm"] = None  # importing hf_mdm now raises ImportError
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert "hf_mdm" not in type(model).__module__, type(model).__module__
        expected = torch.load({str(tmp_path / "expected.pt")!r})
        assert torch.equal(model(torch.arange(5, 12)[None]).logits, expected)
        assert model.generate(torch.tensor([[5, 6]]), max_new_tokens=4, steps=4).shape == (1, 6)
        assert type(model.generation_config).__name__ == "DiffusionGenerationConfig"
        print("remote code OK")
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "remote code OK" in result.stdout


def test_flattened_sources_only_import_flat_siblings():
    sources = flattened_sources()
    assert {"modeling_mdm.py", "configuration_mdm.py", "schedules.py", "masked_diffusion_objective.py"} <= set(sources)
    for name, text in sources.items():
        assert "from .." not in text, name
        for line in text.splitlines():
            if line.strip().startswith("from ."):
                assert line.split()[1][1:] + ".py" in sources, (name, line)
