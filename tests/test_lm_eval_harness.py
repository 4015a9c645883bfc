"""The lm-eval model type `hf-mdm` through `lm_eval.simple_evaluate`, on local tasks written to tmp_path: a formal
language's oracle gets multiple choice and generation right, its rolling log-likelihood matches the exact one, and
folders of every supported kind load."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch


lm_eval = pytest.importorskip("lm_eval")  # the [eval] extra; part of [dev]

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402
from transformers import BertForMaskedLM, BertTokenizerFast  # noqa: E402

from hf_mdm import MDMForMaskedGeneration, NGramLanguage  # noqa: E402
from hf_mdm.integrations.lm_eval_harness import MaskedDiffusionLM, add_monte_carlo_errors  # noqa: E402
from hf_mdm.integrations.lm_eval_model_arguments import usable_device  # noqa: E402

from .conftest import tiny_bert_config, tiny_config  # noqa: E402


FIXTURES = Path(__file__).parent / "fixtures"


def text(ids) -> str:
    return " ".join(map(str, ids))


def write_tasks(directory: Path, language: NGramLanguage, num_docs: int = 6) -> None:
    """A multiple-choice task (the true next 3 symbols against a corrupted copy) and a generation task (the next 3
    symbols, exact match), over sequences of `language`."""
    sequences = language.sample(num_docs, 8, torch.Generator().manual_seed(0)).tolist()
    docs = []
    for row in sequences:
        wrong = [(row[5] + 1) % language.vocab_size] + row[6:]
        docs.append({"context": text(row[:5]), "choices": [" " + text(wrong), " " + text(row[5:])], "label": 1})
    (directory / "choice.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (directory / "continue.jsonl").write_text(
        "".join(json.dumps({"context": text(r[:5]), "answer": text(r[5:])}) + "\n" for r in sequences)
    )
    common = "dataset_path: json\ntest_split: train\n"
    (directory / "choice.yaml").write_text(
        f"task: language_choice\n{common}dataset_kwargs:\n  data_files:\n    train: {directory / 'choice.jsonl'}\n"
        "output_type: multiple_choice\ndoc_to_text: '{{context}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{label}}'\nmetric_list:\n  - metric: acc\n"
    )
    (directory / "continue.yaml").write_text(
        f"task: language_continue\n{common}dataset_kwargs:\n  data_files:\n    train: {directory / 'continue.jsonl'}\n"
        "output_type: generate_until\ndoc_to_text: '{{context}}'\ndoc_to_target: '{{answer}}'\n"
        "generation_kwargs:\n  until: ['\\n']\n  max_gen_toks: 3\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n"
    )


def save_tiny_model(folder: Path, tokenizer):
    """An untrained tiny `MDMForMaskedGeneration` over `tokenizer`'s vocabulary, saved with it in `folder`."""
    config = tiny_config(vocab_size=len(tokenizer), mask_token_id=tokenizer.mask_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    MDMForMaskedGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return config


@pytest.fixture(scope="module")
def deterministic_language():
    # One successor per symbol: the right continuation has probability 1, the corrupted one probability 0.
    return NGramLanguage(5, n=2, support=1, seed=0)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory, deterministic_language):
    directory = tmp_path_factory.mktemp("tasks")
    write_tasks(directory, deterministic_language)
    return directory


def evaluate(task_dir, model, model_args, tasks=("language_choice", "language_continue")):
    return lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=list(tasks),
        task_manager=TaskManager(include_path=str(task_dir)),
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
        bootstrap_iters=0,
    )


def test_simple_evaluate_with_the_registered_name_scores_the_oracle_perfectly(task_dir, deterministic_language):
    results = evaluate(
        task_dir,
        "hf-mdm",
        {
            "pretrained": deterministic_language.oracle_model(),
            "tokenizer": deterministic_language.tokenizer(),
            "steps": 3,
            "strategy": "confidence",
            "mc_num": 16,
        },
    )["results"]
    assert results["language_choice"]["acc,none"] == 1.0
    assert results["language_continue"]["exact_match,none"] == 1.0


def test_a_model_folder_loads_by_path_and_a_wrong_choice_scores_lower(tmp_path, task_dir, deterministic_language):
    config = save_tiny_model(tmp_path / "mdm", deterministic_language.tokenizer())
    output = evaluate(task_dir, "hf-mdm", f"pretrained={tmp_path / 'mdm'},steps=3,block_length=3,mc_num=16")
    assert set(output["results"]) == {"language_choice", "language_continue"}
    assert output["config"]["model"] == "hf-mdm"
    lm = MaskedDiffusionLM(pretrained=str(tmp_path / "mdm"), mc_num=16)
    assert isinstance(lm.model, MDMForMaskedGeneration) and lm.max_length == config.max_position_embeddings


def test_loglikelihood_rolling_matches_the_exact_log_probability_across_windows():
    language = NGramLanguage(6, n=2, seed=1)
    lm = MaskedDiffusionLM(pretrained=language.oracle_model(), tokenizer=language.tokenizer(), max_length=6, mc_num=64)
    sequence = language.sample(1, 14, torch.Generator().manual_seed(2))[0].tolist()
    request = Instance("loglikelihood_rolling", {}, (text(sequence),), 0)
    (value,) = lm.loglikelihood_rolling([request])
    # A bigram chain: each window of 5 tokens conditioned on the one before it is exact, so the windows add up.
    truth = float(language.log_prob(torch.tensor([sequence])))
    standard_error = lm.standard_errors[request.args]
    assert 0 < standard_error and abs(value - truth) <= 3 * standard_error + 1e-4


def test_loglikelihood_keeps_each_requests_standard_error():
    language = NGramLanguage(6, n=2, seed=1)
    lm = MaskedDiffusionLM(pretrained=language.oracle_model(), tokenizer=language.tokenizer(), mc_num=32)
    sequence = language.sample(1, 9, torch.Generator().manual_seed(3))[0].tolist()
    request = Instance("loglikelihood", {}, (text(sequence[:4]), " " + text(sequence[4:])), 0)
    ((value, _),) = lm.loglikelihood([request])
    truth = float(language.log_prob(torch.tensor([sequence])) - language.log_prob(torch.tensor([sequence[:4]])))
    assert abs(value - truth) <= 3 * lm.standard_errors[request.args] + 1e-4


def test_generate_until_cuts_at_the_first_stop_string_and_counts_forwards(deterministic_language):
    lm = MaskedDiffusionLM(
        pretrained=deterministic_language.oracle_model(), tokenizer=deterministic_language.tokenizer(), steps=4
    )
    sequence = deterministic_language.sample(1, 8, torch.Generator().manual_seed(0))[0].tolist()
    stop = str(sequence[6])
    requests = [
        Instance("generate_until", {}, (text(sequence[:4]), {"until": [stop], "max_gen_toks": 4}), 0),
        Instance("generate_until", {}, (text(sequence[:4]), {"until": ["\n"], "max_gen_toks": 4}), 1),
    ]
    cut, whole = lm.generate_until(requests)
    assert whole == text(sequence[4:8])
    assert cut == whole.split(stop)[0] and len(cut) < len(whole)
    assert lm.generated_rows == 2 and 0 < lm.nfe <= 2 * 4


def test_a_block_model_generates_per_block_budgets_as_generate_does_alone(deterministic_language):
    tokenizer = deterministic_language.tokenizer()
    ids = dict(mask_token_id=tokenizer.mask_token_id, pad_token_id=tokenizer.pad_token_id)
    config = tiny_config(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, block_size=2, **ids)
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(config).eval()
    lm = MaskedDiffusionLM(pretrained=model, tokenizer=tokenizer, steps_per_block=1, batch_size=2)
    contexts = ["0 1 2", "3 4"]  # mixed prompt lengths: a total `steps` would be refused on a block model
    generated = lm.generate_until(
        [Instance("generate_until", {}, (context, {"max_gen_toks": 4}), i) for i, context in enumerate(contexts)]
    )
    for context, text_out in zip(contexts, generated):
        inputs = tokenizer([context], return_tensors="pt")
        alone = model.generate(**inputs, max_new_tokens=4, steps_per_block=1)[0, inputs["input_ids"].shape[1] :]
        assert text_out == tokenizer.decode(alone, skip_special_tokens=True)


def test_llada_and_dream_folders_and_stock_masked_lms_load(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(123)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(str(tmp_path / "vocab.txt"))
    for name in ("llada-tiny", "dream-tiny"):
        folder = tmp_path / name
        shutil.copytree(FIXTURES / name, folder)
        tokenizer.save_pretrained(folder)
        lm = MaskedDiffusionLM(pretrained=str(folder), mc_num=16, max_length=32)
        assert isinstance(lm.model, MDMForMaskedGeneration), name
        ((value, _),) = lm.loglikelihood([Instance("loglikelihood", {}, ("w1 w2", " w3 w4"), 0)])
        assert math.isfinite(value) and value < 0
    BertForMaskedLM(tiny_bert_config(len(vocab))).save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")
    lm = MaskedDiffusionLM(pretrained=str(tmp_path / "bert"), mc_num=16, steps=2)
    assert lm.mask_token_id == tokenizer.mask_token_id and lm.prefix_token_id == tokenizer.cls_token_id
    ((value, _),) = lm.loglikelihood([Instance("loglikelihood", {}, ("w1 w2", " w3"), 0)])
    assert math.isfinite(value) and value < 0
    (generated,) = lm.generate_until([Instance("generate_until", {}, ("w1 w2", {"max_gen_toks": 2}), 0)])
    assert isinstance(generated, str)


def test_task_generation_kwargs_without_a_diffusion_meaning_are_refused(deterministic_language):
    lm = MaskedDiffusionLM(
        pretrained=deterministic_language.oracle_model(), tokenizer=deterministic_language.tokenizer()
    )
    with pytest.raises(ValueError, match="num_beams"):
        lm.generate_until([Instance("generate_until", {}, ("0 1", {"num_beams": 4}), 0)])


def test_requests_that_do_not_fit_max_length_are_refused_not_truncated(deterministic_language):
    lm = MaskedDiffusionLM(
        pretrained=deterministic_language.oracle_model(), tokenizer=deterministic_language.tokenizer(), max_length=4
    )
    with pytest.raises(ValueError, match="does not fit max_length=4"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("0", " 1 2 3 4"), 0)])
    with pytest.raises(ValueError, match="leaves no room for a prompt"):
        lm.generate_until([Instance("generate_until", {}, ("0 1", {"max_gen_toks": 4}), 0)])


def test_monte_carlo_errors_are_in_the_results_and_the_table(task_dir):
    language = NGramLanguage(5, n=2, seed=0)  # choices of non-zero probability: finite, non-zero errors
    lm = MaskedDiffusionLM(pretrained=language.oracle_model(), tokenizer=language.tokenizer(), steps=3, mc_num=16)
    results = evaluate(task_dir, lm, None)
    summary = results["config"]["monte_carlo"]
    assert summary["mc_num"] == 16 and set(summary["tasks"]) == {"language_choice"}  # generation has no estimate
    samples = results["samples"]["language_choice"]
    errors = [lm.standard_errors[tuple(arguments)] for sample in samples for arguments in sample["arguments"]]
    assert summary["tasks"]["language_choice"]["requests"] == len(errors) == 12  # 6 documents, 2 choices each
    rms = math.sqrt(sum(error**2 for error in errors) / len(errors))
    assert summary["tasks"]["language_choice"]["rms"] == pytest.approx(rms) and rms > 0
    assert summary["tasks"]["language_choice"]["max"] == pytest.approx(max(errors))

    add_monte_carlo_errors(results)
    assert results["results"]["language_choice"]["loglikelihood_mc_se,none"] == pytest.approx(rms)
    assert "loglikelihood_mc_se,none" not in results["results"]["language_continue"]
    table = lm_eval.utils.make_table(results)
    assert f"|loglikelihood_mc_se|↓  |{rms:.4f}|" in table.replace(" ", "").replace("|↓|", "|↓  |")


def test_an_unavailable_device_falls_back_with_a_warning(caplog):
    requested = f"cuda:{torch.cuda.device_count() + 7}"  # no machine has it
    with caplog.at_level("WARNING"):
        device = usable_device(requested)
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert f"device {requested!r} is not available here" in caplog.text
    assert usable_device("cpu") == torch.device("cpu")


@pytest.mark.slow
def test_the_command_line_runs_on_this_machine_and_prints_the_monte_carlo_row(tmp_path, task_dir):
    """lm-eval's own command line (device cuda:0 by default) through `python -m hf_mdm.integrations.lm_eval_harness`:
    on a machine without that GPU it falls back with a warning; the table and the JSON hold the Monte Carlo row."""
    save_tiny_model(tmp_path / "mdm", NGramLanguage(5, n=2, seed=0).tokenizer())
    command = [sys.executable, "-m", "hf_mdm.integrations.lm_eval_harness", "run", "--model", "hf-mdm",
               "--model_args", f"pretrained={tmp_path / 'mdm'},mc_num=16", "--tasks", "language_choice",
               "--include_path", str(task_dir), "--output_path", str(tmp_path / "results")]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    if not torch.cuda.is_available():
        assert "hf-mdm: device 'cuda:0' is not available here" in run.stderr
    assert "|loglikelihood_mc_se|" in run.stdout.replace(" ", "")
    (saved,) = (tmp_path / "results").rglob("results_*.json")
    results = json.loads(saved.read_text())
    task = results["config"]["monte_carlo"]["tasks"]["language_choice"]
    assert task["requests"] == 12 and results["results"]["language_choice"]["loglikelihood_mc_se,none"] == task["rms"]
