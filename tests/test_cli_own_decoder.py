"""`hf-mdm sweep` and `hf-mdm card` on a DiffusionGemma folder: decoded by its own generate(), carded from its rows."""

import pytest
from huggingface_hub import ModelCard as HubModelCard

from hf_mdm import NGramLanguage
from hf_mdm.cli import main
from hf_mdm.evaluation import read_sweep_rows

from .test_model_card import run_usage_snippet
from .test_own_decoder_adapters import tiny_diffusion_gemma


pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

LANGUAGE = ["--language", "ngram", "--language_vocab_size", "6", "--language_support", "3"]


@pytest.fixture
def gemma_folder(tmp_path):
    tokenizer = NGramLanguage(6, n=2, support=3).tokenizer()
    folder = tmp_path / "gemma"
    tiny_diffusion_gemma(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_sweep_then_card_of_a_diffusion_gemma_folder(gemma_folder, tmp_path, capsys):
    assert main(["sweep", "--model_name_or_path", str(gemma_folder), *LANGUAGE, "--steps", "2", "4",
                 "--lengths", "8", "--num_samples", "4", "--output_dir", str(tmp_path / "sweep")]) == 0  # fmt: skip
    assert "| entropy_bound | 8 | 4 | 4 | 2 |" in capsys.readouterr().out  # its rule, its canvas of 4, 2 steps each
    rows = read_sweep_rows(tmp_path / "sweep" / "sweep.jsonl")
    assert [(row["strategy"], row["steps"], row["nfe"]) for row in rows] == [
        ("entropy_bound", 2, 2),
        ("entropy_bound", 4, 4),
    ]
    assert main(["card", "--sweep", str(tmp_path / "sweep" / "sweep.jsonl"), "--output_dir", str(gemma_folder),
                 "--model_name_or_path", str(gemma_folder)]) == 0  # fmt: skip
    text = (gemma_folder / "README.md").read_text()
    assert "`DiffusionGemmaForBlockDiffusion` (model_type `diffusion_gemma`)" in text
    assert (
        "## Score | tokens per forward" in text
        and len(HubModelCard.load(gemma_folder / "README.md").data.eval_results) == 9
    )  # 2 rows x (3 error metrics + tokens per forward) + the AUP of their one curve
    snippet = run_usage_snippet(text, gemma_folder)
    assert snippet["ids"].shape == (4, 8)


@pytest.mark.bad_input
def test_a_strategy_diffusion_gemma_does_not_have_is_one_line(gemma_folder, tmp_path, capsys):
    assert main(["sweep", "--model_name_or_path", str(gemma_folder), *LANGUAGE, "--steps", "2", "--lengths", "8",
                 "--strategies", "confidence", "--output_dir", str(tmp_path / "sweep")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "hf-mdm sweep: error:" in err and "strategies=['entropy_bound']" in err
    assert not (tmp_path / "sweep" / "sweep.jsonl").exists()  # refused before the resume file or any cell
