"""The transformers boundary: private names only in transformers_compat, the declared floor enforced, the cache
argument under the installed version's name, denoiser adapters chosen by model class, no deprecation on our paths."""

import ast
import dataclasses
import inspect
import logging
import pathlib
import re
import subprocess
import sys

import pytest
import torch
from transformers import BertForMaskedLM, LlamaModel
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.utils import logging as transformers_logging

import hf_mdm
from hf_mdm import MDMForMaskedGeneration, enable_diffusion_generation
from hf_mdm.generation import DualBlockCache, MaskedLMDenoiser, MDMDenoiser, register_denoiser
from hf_mdm.generation.denoisers import DENOISERS
from hf_mdm.transformers_compat import CACHE_ARGUMENT, TRANSFORMERS_FLOOR

from .conftest import tiny_bert_config, tiny_config


PACKAGE = pathlib.Path(hf_mdm.__file__).parent
BOUNDARY = PACKAGE / "transformers_compat.py"


def private_transformers_imports(path: pathlib.Path) -> list[str]:
    """`_`-prefixed names (or module path parts) imported from transformers in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "transformers"
        ):
            parts = node.module.split(".") + [alias.name for alias in node.names]
            found += [f"{node.module}:{part}" for part in parts if part.startswith("_")]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "transformers" and any(part.startswith("_") for part in parts):
                    found.append(alias.name)
    return found


def test_only_the_boundary_module_imports_private_transformers_names():
    offenders = {
        str(path.relative_to(PACKAGE)): names
        for path in PACKAGE.rglob("*.py")
        if path != BOUNDARY and (names := private_transformers_imports(path))
    }
    assert offenders == {}, "import these through hf_mdm.transformers_compat instead"


def test_the_scanner_sees_a_private_import(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("from transformers.utils.generic import _rename_kwargs_for_bc\nimport transformers._x.y\n")
    assert private_transformers_imports(source) == [
        "transformers.utils.generic:_rename_kwargs_for_bc",
        "transformers._x.y",
    ]


def test_version_checks_live_only_in_the_boundary_module():
    pattern = re.compile(r"transformers\.__version__|version\(\s*[\"']transformers[\"']\s*\)")
    outside = [
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p != BOUNDARY and pattern.search(p.read_text())
    ]
    assert outside == []
    assert pattern.search(BOUNDARY.read_text())


@pytest.mark.bad_input
def test_an_installed_transformers_below_the_floor_fails_at_import_naming_the_fix():
    probe = (
        "import importlib.metadata as m\n"
        "real = m.version\n"
        "m.version = lambda name: '5.0.0' if name == 'transformers' else real(name)\n"
        "import hf_mdm\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError")
    assert "transformers 5.0.0 is installed" in last_line
    assert f'pip install -U "transformers>={TRANSFORMERS_FLOOR}"' in last_line


def test_the_cache_argument_name_is_the_one_stock_models_of_this_version_take():
    assert CACHE_ARGUMENT in inspect.signature(LlamaModel.forward).parameters
    assert CACHE_ARGUMENT in {field.name for field in dataclasses.fields(BaseModelOutputWithPast)}


def test_our_forward_takes_cache_and_still_accepts_past_key_values():
    model = MDMForMaskedGeneration(tiny_config()).eval()
    ids = torch.randint(5, 17, (2, 10), generator=torch.Generator().manual_seed(0))
    assert "cache" in inspect.signature(MDMForMaskedGeneration.forward).parameters

    def block_logits(**cache_argument):
        cache = DualBlockCache()
        cache.record(torch.tensor([4, 4]), 8, 10, torch.arange(2), 2)
        model(ids, **{next(iter(cache_argument)): cache})  # records the keys/values outside [4, 8)
        cache.replay(torch.arange(2))
        positions = torch.arange(4, 8)[None].expand(2, -1)
        return model(ids[:, 4:8], position_ids=positions, **{next(iter(cache_argument)): cache}).logits

    expected = block_logits(cache=True)
    if CACHE_ARGUMENT == "cache":  # transformers >= 5.24 deprecates the old name, as for its own models
        with pytest.warns(FutureWarning, match="past_key_values"):
            legacy = block_logits(past_key_values=True)
    else:
        legacy = block_logits(past_key_values=True)
    torch.testing.assert_close(legacy, expected)
    full = model(ids).logits[:, 4:8]
    torch.testing.assert_close(expected, full, atol=1e-5, rtol=1e-5)


def tiny_bert():
    config = tiny_bert_config(40)
    return enable_diffusion_generation(BertForMaskedLM(config).eval(), mask_token_id=3)


def test_the_denoiser_adapter_is_the_one_the_model_class_names():
    assert isinstance(DENOISERS.build(MDMForMaskedGeneration.denoiser_adapter, model=None), MDMDenoiser)
    assert isinstance(DENOISERS.build(tiny_bert().denoiser_adapter, model=None), MaskedLMDenoiser)
    with pytest.raises(ValueError, match="'masked_lm' adapter, which cannot"):
        tiny_bert().generate(torch.tensor([[5, 6]]), max_new_tokens=4, steps=2, cache="prefix")


def test_a_registered_adapter_named_by_a_model_class_runs_its_forwards():
    calls = []

    @register_denoiser("counting_masked_lm")
    class CountingDenoiser(MaskedLMDenoiser):
        def logits(self, request):
            calls.append(request.input_ids.shape)
            return super().logits(request)

    try:
        model = tiny_bert()
        expected = model.generate(torch.tensor([[5, 6]]), max_new_tokens=4, steps=4)
        model.denoiser_adapter = "counting_masked_lm"
        torch.testing.assert_close(model.generate(torch.tensor([[5, 6]]), max_new_tokens=4, steps=4), expected)
        assert len(calls) == 4
    finally:
        del DENOISERS["counting_masked_lm"]


def test_no_transformers_deprecation_message_on_forward_generate_train_and_save(tmp_path):
    """FutureWarnings are errors in this suite (setup.cfg); transformers also logs renames, caught here."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    root = transformers_logging.get_logger("transformers")
    logging.Logger.warning_once.cache_clear()  # transformers logs each deprecation once per process
    root.addHandler(handler)
    try:
        model = MDMForMaskedGeneration(tiny_config())
        ids = torch.randint(5, 17, (2, 10), generator=torch.Generator().manual_seed(0))
        labels = torch.where(ids > 10, ids, -100)
        model(ids, labels=labels, t=torch.tensor([0.5, 0.5])).loss.backward()
        model.eval()
        for cache in ("none", "prefix", "dual"):
            model.generate(ids[:, :4], max_new_tokens=6, steps=6, block_length=3, cache=cache)
        model.save_pretrained(tmp_path)
        MDMForMaskedGeneration.from_pretrained(tmp_path)
    finally:
        root.removeHandler(handler)
    assert [r.getMessage() for r in records if "deprecat" in r.getMessage().lower()] == []
