"""Block size as an axis of the sweeps (`sweep_steps(block_sizes=...)`, `search_steps_needed`, `hf-mdm sweep
--block-size`) and a column of their tables and cards: the rows, B = 1 against the exact autoregressive row, resume
files written before the columns, the fits per block size, and the refusals (a block-causal model decodes its own
block size only)."""

import json
import math

import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from transformers import BigBirdConfig, BigBirdForMaskedLM

import hf_mdm.evaluation.sweep as sweep_module
import hf_mdm.evaluation.train_twins as train_twins
from hf_mdm import CopyLanguage, NGramLanguage, enable_diffusion_generation
from hf_mdm.cli import main
from hf_mdm.evaluation import (
    LanguageTask,
    PromptTask,
    fit_step_scaling,
    markdown_table,
    search_steps_needed,
    sweep_steps,
)
from hf_mdm.evaluation.exact_autoregressive import ExactAutoregressiveLM
from hf_mdm.evaluation.research_models import ResearchTraining, train_block_models, training_record
from hf_mdm.evaluation.sweep_table import check_sweep_rows
from hf_mdm.evaluation.train_twins import seeded_mdm, twin_mdm_config
from hf_mdm.hub import ModelCard
from hf_mdm.languages import research_language

from .conftest import tiny_config, word_tokenizer
from .test_reproduce import TINY_TRAINING, tiny_preset  # noqa: F401 (a fixture)


TIMINGS = ("latency_s", "latency_s_se", "tokens_per_s")


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=3, seed=0)  # sparse: invalid sequences exist, so SER can be above 0


def oracle(language):
    return enable_diffusion_generation(language.oracle_model(), language.tokenizer())


def sweep(language, **overrides):
    arguments = dict(steps=[8], strategies=["random"], lengths=[8], num_samples=16, progress=False)
    arguments.update(overrides)
    return list(sweep_steps(oracle(language), language.tokenizer(), LanguageTask(language), **arguments))


def test_every_block_size_is_a_row_with_its_steps_per_block_and_tokens_per_forward(language):
    rows = sweep(language, steps=[4, 8], block_sizes=[1, 2, "L"], cells=[("random", 8, 8, 1), ("random", 8, 4, 2),
                 ("random", 8, 8, 2), ("random", 8, 4, 8), ("random", 8, 8, 8)])  # fmt: skip
    by_cell = {(row["block_size"], row["steps"]): row for row in rows}
    assert set(by_cell) == {(1, 8), (2, 4), (2, 8), (8, 4), (8, 8)}  # B = 1 at 4 steps has fewer steps than blocks
    for (block_size, steps), row in by_cell.items():
        assert row["steps_per_block"] == steps / math.ceil(8 / block_size)
        assert row["tokens_per_forward"] == pytest.approx(8 / row["nfe"])
        generate = json.loads(row["generation"])["generate"]
        assert generate.get("block_length") == (block_size if block_size < 8 else None)
    assert by_cell[(1, 8)]["nfe"] == 8  # one forward per block of one token
    check_sweep_rows(rows)  # the same (strategy, length, steps) at two block sizes are two cells


def test_rows_of_the_axis_are_the_single_block_size_sweeps(language):
    """A cell's numbers do not depend on the other block sizes of its sweep, nor on how the size is given."""
    axis = sweep(language, block_sizes=[2, 4])
    alone = sweep(language, block_length=2) + sweep(language, block_sizes=[4])
    strip = [{k: v for k, v in row.items() if k not in TIMINGS} for row in axis]
    assert strip == [{k: v for k, v in row.items() if k not in TIMINGS} for row in alone]


def test_block_size_one_reproduces_the_exact_autoregressive_row(language):
    """Block size 1 on the exact oracle samples p(x_i | x_<i) one token at a time, as the language's exact causal LM
    does through transformers' generate(): the same SER (0: an exact sampler draws no invalid sequence) and the
    same log-perplexity within the 95% interval of the difference. One block with few steps does not."""
    cells = [("random", 16, 16, 1), ("confidence", 16, 16, 1), ("random", 16, 2, 16)]
    rows = sweep(language, steps=[2, 16], strategies=["random", "confidence"], lengths=[16], num_samples=200,
                 block_sizes=[1, "L"], batch_size=200, cells=cells,
                 autoregressive_model=ExactAutoregressiveLM(language))  # fmt: skip
    autoregressive = next(row for row in rows if row["strategy"] == "autoregressive")
    assert (autoregressive["block_size"], autoregressive["nfe"], autoregressive["tokens_per_forward"]) == (1, 16, 1)
    block_one = [row for row in rows if row["block_size"] == 1 and row["strategy"] != "autoregressive"]
    assert len(block_one) == 2
    for row in [*block_one, autoregressive]:
        assert row["ser"] == 0 and row["invalid_token_rate"] == 0
    for row in block_one:
        half_width = 1.96 * math.hypot(row["log_perplexity_se"], autoregressive["log_perplexity_se"])
        assert abs(row["log_perplexity"] - autoregressive["log_perplexity"]) <= half_width
    one_block = next(row for row in rows if (row["block_size"], row["steps"], row["strategy"]) == (16, 2, "random"))
    assert one_block["ser_low"] > autoregressive["ser_high"]  # the comparison can tell decoders apart


def test_the_exact_autoregressive_model_is_the_languages_conditional(language):
    sequences = language.sample(5, 7, torch.Generator().manual_seed(0))
    bos = torch.full((5, 1), language.tokenizer().bos_token_id)
    model = ExactAutoregressiveLM(language)
    logits = model(torch.cat([bos, sequences], 1)).logits[:, :-1].double()
    chosen = logits.log_softmax(-1).gather(-1, sequences[..., None])[..., 0]
    torch.testing.assert_close(chosen, language.token_log_probs(sequences))
    last = model(torch.cat([bos, sequences], 1), logits_to_keep=1).logits
    torch.testing.assert_close(last, model(torch.cat([bos, sequences], 1)).logits[:, -1:])


@pytest.mark.bad_input
def test_the_exact_autoregressive_model_refuses_a_language_that_is_not_a_chain(language):
    with pytest.raises(ValueError, match="prefixes of longer ones"):
        ExactAutoregressiveLM(CopyLanguage(language))


def strip_block_columns(path):
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    columns = lines[0]["sweep_identity"]["score_columns"]
    lines[0]["sweep_identity"]["score_columns"] = [c for c in columns if c not in BLOCK_COLUMNS]
    for row in lines[1:]:
        for column in BLOCK_COLUMNS:
            del row[column]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")


BLOCK_COLUMNS = ("block_size", "steps_per_block", "tokens_per_forward")


@pytest.mark.bad_input
def test_a_resume_file_written_before_the_block_columns_is_refused(language, tmp_path):
    path = tmp_path / "sweep.jsonl"
    sweep(language, output_path=path)
    strip_block_columns(path)
    with pytest.raises(ValueError, match=r"rows lack the columns \['block_size', 'steps_per_block', 'tokens_per_"):
        sweep(language, output_path=path, resume=True)


def test_resuming_with_another_block_size_runs_only_its_cells(language, tmp_path, monkeypatch):
    path = tmp_path / "sweep.jsonl"
    first = sweep(language, output_path=path, block_sizes=[2])
    ran = []
    run_cell = sweep_module.run_cell
    monkeypatch.setattr(sweep_module, "run_cell", lambda *args: ran.append(args[6]) or run_cell(*args))
    both = sweep(language, output_path=path, resume=True, block_sizes=[2, "L"])
    assert ran == [8] and both[0] == first[0] and both[1]["block_size"] == 8


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(block_sizes=[2], block_length=2), "both set the block size"),
        (dict(block_sizes=[0]), "every entry of block_sizes must be a positive integer"),
        (dict(block_sizes=["4"]), "every entry of block_sizes must be a positive integer"),
        (dict(block_sizes=4), "block_sizes must be a list"),
        (dict(block_sizes=[3]), "does not divide"),
        (dict(block_sizes=[1], steps=[4]), r"fewer steps than blocks"),
        (dict(block_sizes=[2, 4], cells=[("random", 8, 8)]), "name one: \\(strategy, length, steps, block_size\\)"),
        (dict(block_sizes=[2], cells=[("random", 8, 8, 4)]), "is not in the grid"),
        (dict(steps_per_block=2), "sets \\['steps_per_block'\\] itself"),
    ],
)
def test_a_bad_block_axis_is_refused_before_any_cell(language, monkeypatch, overrides, match):
    def never(*args):
        raise AssertionError("a cell ran before the arguments were checked")

    monkeypatch.setattr(sweep_module, "run_cell", never)
    with pytest.raises(ValueError, match=match):
        sweep(language, **overrides)


@pytest.fixture(scope="module")
def block_model(language):
    config = twin_mdm_config(language.tokenizer(), 32, 1, 4, 16, block_size=4)
    return seeded_mdm(config, 0).eval()


@pytest.mark.bad_input
@pytest.mark.parametrize("block_sizes", [[2], [4, 8], [1, "L"]])
def test_a_block_causal_model_refuses_other_block_sizes_loudly(language, block_model, monkeypatch, block_sizes):
    monkeypatch.setattr(sweep_module, "run_cell", lambda *args: pytest.fail("a cell ran"))
    task = LanguageTask(language)
    with pytest.raises(ValueError, match="block-causal with block_size=4: generate\\(\\) decodes its own blocks"):
        sweep_steps(block_model, language.tokenizer(), task, steps=[8], lengths=[8], block_sizes=block_sizes,
                    num_samples=2, progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="block-causal with block_size=4"):
        search_steps_needed(block_model, language.tokenizer(), task, 0.1, max_steps=8, lengths=[8],
                            block_sizes=block_sizes, num_samples=2, progress=False)  # fmt: skip


def test_a_block_causal_models_rows_carry_its_block_size(language, block_model):
    (row,) = sweep_steps(block_model, language.tokenizer(), LanguageTask(language), steps=[4], lengths=[8],
                         block_sizes=[4], num_samples=2, progress=False)  # fmt: skip
    assert (row["block_size"], row["steps_per_block"]) == (4, 2)
    assert "block_length" not in json.loads(row["generation"])["generate"]  # the model decodes its own blocks


def block_rows():
    rows = []
    for block_size, needed in ((2, {8: 8, 16: 16, 32: 32}), (None, {8: 2, 16: 2, 32: 4})):
        for length, steps_needed in needed.items():
            for steps in (2, 4, 8, 16, 32):
                errors = 0 if steps >= steps_needed else 50
                rows.append(dict(strategy="random", length=length, steps=steps, block_size=block_size or length,
                                 num_samples=100, ser=errors / 100, ser_low=0.0, ser_high=1.0))  # fmt: skip
    return [row for row in rows if row["steps"] >= row["length"] // row["block_size"]]


def test_a_fit_is_one_block_size(language):
    rows = block_rows()
    with pytest.raises(ValueError, match=r"block sizes \[2, 'L'\].*pass block_size="):
        fit_step_scaling(rows, "random", "ser", 0.1)
    per_size = fit_step_scaling(rows, "random", "ser", 0.1, block_size=2)
    assert per_size.steps_needed == {8: 8, 16: 16, 32: 32} and per_size.exponent == pytest.approx(1.0)
    assert per_size.describe().startswith("random, block size 2: steps for ser <= 0.1")
    one_block = fit_step_scaling(rows, "random", "ser", 0.1, block_size="L")
    assert one_block.steps_needed == {8: 2, 16: 2, 32: 4} and one_block.describe().startswith("random: steps")
    with pytest.raises(ValueError, match="Unknown block size 3"):
        fit_step_scaling(rows, "random", "ser", 0.1, block_size=3)


def test_the_card_shows_the_block_columns_and_one_fit_per_block_size(language):
    rows = sweep(language, steps=[4, 8], block_sizes=[2, "L"])
    card = ModelCard.from_sweep(rows, model_name="oracle")
    header = markdown_table(rows).splitlines()[0]
    assert "| steps | block size | steps/block | NFE | tokens/forward |" in header and header in card.text
    assert "- random, block size 2: steps for ser <= 0.1" in card.text and "- random: steps for ser" in card.text
    configs = {result.metric_config for result in card.data.eval_results}
    assert "strategy=random,length=8,steps=8,block_size=2" in configs


def test_search_starts_at_one_step_per_block_and_fits_each_block_size(language):
    table, fits = search_steps_needed(oracle(language), language.tokenizer(), LanguageTask(language), 0.05,
                                      max_steps=16, lengths=[4, 8], strategies=["random"], block_sizes=[1, "L"],
                                      num_samples=32, progress=False)  # fmt: skip
    assert [fit.block_size for fit in fits] == [1, None]
    assert fits[0].steps_needed == {4: 4, 8: 8}  # exact at one step per token, where the search starts
    assert min(row["steps"] for row in table if row["block_size"] == 1 and row["length"] == 8) == 8


def test_the_cli_passes_the_block_sizes_through(tmp_path, capsys):
    arguments = ["sweep", "--oracle", "--language", "ngram", "--language_vocab_size", "6", "--language_support", "3",
                 "--steps", "8", "--lengths", "8", "--strategies", "random", "--num_samples", "8"]  # fmt: skip
    assert main([*arguments, "--block-size", "2", "L", "--oracle_autoregressive",
                 "--output_dir", str(tmp_path / "axis")]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "axis" / "sweep.json").read_text().splitlines()]
    assert [(row["strategy"], row["block_size"]) for row in rows] == [("random", 2), ("random", 8),
                                                                      ("autoregressive", 1)]  # fmt: skip
    assert main([*arguments, "--block_length", "4", "--output_dir", str(tmp_path / "alias")]) == 0
    (row,) = [json.loads(line) for line in (tmp_path / "alias" / "sweep.json").read_text().splitlines()]
    assert row["block_size"] == 4
    capsys.readouterr()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--oracle", "--block-size", "0"], "--block_size takes positive integers or L"),
        (["--oracle", "--block-size", "two"], "--block_size takes positive integers or L"),
        (["--model_name_or_path", "missing", "--oracle_autoregressive"], "--oracle_autoregressive goes with --oracle"),
    ],
)
def test_the_cli_refuses_a_bad_block_size_in_one_line(tmp_path, capsys, arguments, message):
    assert main(["sweep", "--language", "ngram", *arguments, "--output_dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


@pytest.mark.usefixtures("tiny_preset")
def test_reproduce_searches_every_block_size_and_trains_a_block_model_per_integer_size(tmp_path):
    output = tmp_path / "out"
    assert main(["reproduce", "--preset", "tiny", "--output_dir", str(output), "--block-sizes", "2", "L",
                 *TINY_TRAINING]) == 0  # fmt: skip
    oracle_results = (output / "hmm" / "oracle" / "results.md").read_text()
    assert "| confidence, block size 2 | ser <= 0.05 |" in oracle_results and "| confidence | ser <= 0.05 |" in (
        oracle_results)  # fmt: skip
    block = output / "hmm" / "trained-block2"
    assert training_record(output / "hmm" / "models" / "mdm-block2")["train_steps"] == 2
    probes = [json.loads(line) for line in (block / "ser_probes-confidence.jsonl").open()][1:]
    assert {row["block_size"] for row in probes} == {2} and "block size 2" in (block / "README.md").read_text()
    assert "trained block-diffusion MDM (block size 2)" in (output / "summary.md").read_text()


@pytest.mark.bad_input
@pytest.mark.usefixtures("tiny_preset")
def test_reproduce_refuses_a_block_size_that_does_not_divide_a_length(tmp_path, capsys):
    assert main(["reproduce", "--preset", "tiny", "--output_dir", str(tmp_path), "--block-sizes", "4"]) == 2
    assert "--block_size 4 must divide every measured length [4, 6, 8]" in capsys.readouterr().err


def test_block_models_train_with_their_block_size_and_clipped_times_and_a_folder_keeps_its_settings(
    tmp_path, monkeypatch
):
    collators = []
    collator_class = train_twins.DataCollatorForMaskedDiffusion

    def spy(*args, **kwargs):
        collators.append(kwargs)
        return collator_class(*args, **kwargs)

    monkeypatch.setattr(train_twins, "DataCollatorForMaskedDiffusion", spy)
    language = research_language("hmm")
    training = ResearchTraining(hidden_size=16, num_hidden_layers=1, train_steps=2, examples_per_length=8,
                                t_interval=(0.5, 1.0))  # fmt: skip
    models = train_block_models(language, [8], tmp_path, training, block_sizes=[2, 4])
    assert {size: model.config.block_size for size, model in models.items()} == {2: 2, 4: 4}
    assert [(kwargs["block_size"], kwargs["t_interval"]) for kwargs in collators] == [(2, (0.5, 1.0)), (4, (0.5, 1.0))]
    assert all(kwargs["schedule"].name == models[2].config.schedule for kwargs in collators)  # the model's schedule
    assert training_record(tmp_path / "mdm-block2")["t_interval"] == [0.5, 1.0]
    train_block_models(language, [8], tmp_path, training, block_sizes=[2])  # finished: loaded, not retrained
    assert len(collators) == 2
    with pytest.raises(ValueError, match="t_interval: \\[0.5, 1.0\\] there, None asked"):
        train_block_models(language, [8], tmp_path, ResearchTraining(hidden_size=16, num_hidden_layers=1,
                           train_steps=2, examples_per_length=8), block_sizes=[2])  # fmt: skip


@pytest.mark.bad_input
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(length=4, sizes=[1], steps=[2]).via("fewer steps than blocks")
@example(length=2, sizes=[3, None], steps=[1, 1]).via("one block twice, a step count twice")
@given(
    length=st.sampled_from([1, 2, 3, 4, 6, 12]),
    sizes=st.lists(st.sampled_from([None, "L", 0, 1, 2, 3, 4, 5, 6, 12, 14, 2.0, "4", True]), max_size=3),
    steps=st.lists(st.integers(0, 14), max_size=3),
)
def test_a_block_axis_runs_exactly_its_possible_grid_or_is_refused_before_any_cell(
    language, monkeypatch, length, sizes, steps
):
    """Over any block sizes, lengths and steps: either a ValueError before the first cell, or exactly the cells whose
    block size divides the length (None, "L" and any size above the length: one block, the row says the length) with
    at least one step per block, each run once."""
    ran = []
    monkeypatch.setattr(sweep_module, "run_cell", lambda *args: ran.append(args[3:7]) or {"strategy": args[3]})
    block = [length if size in (None, "L") else min(size, length) if type(size) is int else size for size in sizes]
    valid = (
        length >= language.min_length and steps and all(n >= 1 for n in steps) and block
        and all(type(b) is int and 1 <= b and length % b == 0 for b in block)
        and all(n >= math.ceil(length / b) for b in block for n in steps)
    )  # fmt: skip
    try:
        sweep(language, lengths=[length], steps=steps, block_sizes=sizes)
    except ValueError:
        assert not valid and not ran
        return
    assert valid
    expected = [("random", length, n, b) for b in dict.fromkeys(block) for n in steps]
    assert sorted(ran) == sorted(dict.fromkeys(expected))


def test_tokens_per_forward_counts_the_tokens_decoded_before_eos():
    """A row that stops at the block holding its EOS decoded fewer tokens than the length: tokens per forward is the
    decoded tokens over the forwards, as generate() reports them, not length / NFE."""
    tokenizer = word_tokenizer()
    model = seeded_mdm(tiny_config(block_size=4), 0).eval()
    task = PromptTask(Dataset.from_dict({"prompt": ["the cat", "a dog"] * 2, "answer": ["sat"] * 4}))
    arguments = dict(steps=[8], strategies=["confidence"], lengths=[8], num_samples=4, batch_size=4, progress=False)
    (free,) = sweep_steps(model, tokenizer, task, **arguments)
    record = json.loads(free["generation"])["generate"]
    first = model.generate(**task.inputs(tokenizer, [0]), **record, generator=sweep_module.sample_generators(
        0, "confidence", 8, [0]), return_dict_in_generate=True).sequences[0, 2:]  # fmt: skip
    eos = int(first[4])  # a token of the second block: sample 0 stops there
    (row,) = sweep_steps(model, tokenizer, task, eos_token_id=eos, **arguments)
    out = model.generate(**task.inputs(tokenizer, list(range(4))), **json.loads(row["generation"])["generate"],
                         generator=sweep_module.sample_generators(0, "confidence", 8, list(range(4))),
                         return_dict_in_generate=True)  # fmt: skip
    assert int(out.num_decoded_tokens.min()) < 8  # some row stopped early
    assert row["tokens_per_forward"] == pytest.approx(float(out.num_decoded_tokens.sum() / out.nfe.sum()))
    assert row["nfe"] == pytest.approx(float(out.nfe.float().mean()))


def test_a_stock_masked_lm_whose_config_has_another_block_size_is_swept_as_bidirectional(language):
    """BigBird's config has a `block_size` (its sparse-attention blocks), but generate() decodes it as a bidirectional
    masked LM: the sweep takes the block size from the denoiser adapter, as generate() does, not from the config."""
    tokenizer = language.tokenizer()
    torch.manual_seed(0)
    config = BigBirdConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, block_size=4, attention_type="original_full",
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id, sep_token_id=None)  # fmt: skip
    model = enable_diffusion_generation(BigBirdForMaskedLM(config).eval(), tokenizer)
    rows = sweep_steps(model, tokenizer, LanguageTask(language), steps=[8], lengths=[8], block_sizes=[2, "L"],
                       num_samples=2, progress=False)  # fmt: skip
    assert [row["block_size"] for row in rows] == [2, 8]
    assert json.loads(rows[0]["generation"])["generate"]["block_length"] == 2
